import * as tf from '@tensorflow/tfjs';
import {checkEpsilon} from '../errors';
import {checkInput, paramTensor} from './common';
import {normalizedShape} from './layer_norm';
import {normalizeCanonical} from './normalize';
import {axesPlan, resolveAxes} from './plan';

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
  const op = 'rmsNorm';
  checkInput(x, op, 1);
  const axes = resolveAxes(args.axis ?? -1, x.rank);
  const epsilon = args.epsilon == null ? FLOAT32_EPS : checkEpsilon(args.epsilon);
  const plan = axesPlan(x.shape, axes);
  return tf.tidy(() => {
    const gamma = paramTensor(args.gamma, normalizedShape(x.shape, axes), plan, 'gamma', op);
    const r = normalizeCanonical(tf.reshape(x, plan.shape), plan, {epsilon, center: false, gamma, beta: null, withStats: false});
    return tf.reshape(r.output, x.shape);
  });
}
