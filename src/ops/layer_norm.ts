import * as tf from '@tensorflow/tfjs';
import {normalize} from '../engine/normalize';
import {axesPlan} from '../engine/plan';
import {ActivationArg, checkActivation} from '../engine/activation';
import {checkEpsilon, checkInput, resolveAxes} from '../validate';

/** Arguments of {@link layerNorm}. */
export interface LayerNormOpArgs {
  /** Normalized axes (any set, the batch axis included). Default -1. */
  axis?: number | number[];
  /** Scale with the normalized dims' shape. */
  gamma?: tf.Tensor | null;
  /** Offset with the normalized dims' shape. */
  beta?: tf.Tensor | null;
  /** Added to the variance. Default 1e-5. */
  epsilon?: number;
  /** Applied after the affine transform: 'relu', 'silu' (tfjs: 'swish'), 'gelu' (exact erf form) or null (default). */
  activation?: ActivationArg;
}

/**
 * PyTorch's `F.layer_norm` over `axis` (PyTorch's normalized_shape of k dims
 * is axis [-k, ..., -1]). Closed-form gradients. Defaults: axis -1, epsilon 1e-5, no gamma/beta.
 *
 * ```js
 * const y = tfn.ops.layerNorm(x, {axis: -1, gamma, beta});   // x: [N, T, D]; gamma, beta: [D]
 * ```
 */
export function layerNorm(x: tf.Tensor, args: LayerNormOpArgs = {}): tf.Tensor {
  const owner = 'layerNorm';
  checkInput(owner, x, 1);
  const axes = resolveAxes(owner, args.axis ?? -1, x.rank);
  return normalize(x, {owner, plan: axesPlan(x.shape, axes), paramShape: axes.map(a => x.shape[a]),
                       epsilon: checkEpsilon(owner, args.epsilon ?? 1e-5), center: true,
                       activation: checkActivation(owner, args.activation)}, args).output;
}
