import * as tf from '@tensorflow/tfjs';
import {checkEpsilon} from '../errors';
import {checkInput, paramTensor} from './common';
import {normalizeCanonical} from './normalize';
import {axesPlan, resolveAxes} from './plan';

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
}

/** Shape of the normalized dims of `shape` over resolved `axes`. */
export function normalizedShape(shape: number[], axes: number[]): number[] {
  return axes.map(a => shape[a]);
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
  const op = 'layerNorm';
  checkInput(x, op, 1);
  const axes = resolveAxes(args.axis ?? -1, x.rank);
  const epsilon = checkEpsilon(args.epsilon ?? 1e-5);
  const plan = axesPlan(x.shape, axes);
  const pShape = normalizedShape(x.shape, axes);
  return tf.tidy(() => {
    const gamma = paramTensor(args.gamma, pShape, plan, 'gamma', op);
    const beta = paramTensor(args.beta, pShape, plan, 'beta', op);
    const r = normalizeCanonical(tf.reshape(x, plan.shape), plan, {epsilon, center: true, gamma, beta, withStats: false});
    return tf.reshape(r.output, x.shape);
  });
}
