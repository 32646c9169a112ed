import * as tf from '@tensorflow/tfjs';
import {normalize} from '../engine/normalize';
import {axesPlan} from '../engine/plan';
import {ActivationArg, checkActivation} from '../engine/activation';
import {checkEpsilon, checkInput, resolveAxes} from '../validate';

/** float32 machine epsilon, PyTorch's `torch.finfo(torch.float32).eps`: RMSNorm's default. */
export const FLOAT32_EPS = 1.1920928955078125e-7;

/** Arguments of {@link rmsNorm}. */
export interface RMSNormOpArgs {
  /** Normalized axes (any set, the batch axis included). Default -1. */
  axis?: number | number[];
  /** Scale with the normalized dims' shape. */
  gamma?: tf.Tensor | null;
  /** Added to the mean square. Default null = float32 machine epsilon (PyTorch 2.4's nn.RMSNorm). */
  epsilon?: number | null;
  /** Applied after the affine transform: 'relu', 'silu' (tfjs: 'swish'), 'gelu' (exact erf form) or null (default). */
  activation?: ActivationArg;
}

/**
 * PyTorch's `F.rms_norm`: y = x / sqrt(mean(x^2 over axis) + epsilon) * gamma.
 * Closed-form gradients (the LayerNorm backward without the mean term).
 * Defaults: axis -1, epsilon float32 eps, no gamma.
 *
 * ```js
 * const y = tfn.ops.rmsNorm(x, {gamma, epsilon: 1e-6});   // x: [N, T, D]; gamma: [D]
 * ```
 */
export function rmsNorm(x: tf.Tensor, args: RMSNormOpArgs = {}): tf.Tensor {
  const owner = 'rmsNorm';
  checkInput(owner, x, 1);
  const axes = resolveAxes(owner, args.axis ?? -1, x.rank);
  const epsilon = args.epsilon == null ? FLOAT32_EPS : checkEpsilon(owner, args.epsilon);
  return normalize(x, {owner, plan: axesPlan(x.shape, axes), paramShape: axes.map(a => x.shape[a]), epsilon, center: false,
                       activation: checkActivation(owner, args.activation)},
                   {gamma: args.gamma}).output;
}
