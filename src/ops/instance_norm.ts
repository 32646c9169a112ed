import * as tf from '@tensorflow/tfjs';
import {ValueError, checkEpsilon, show} from '../errors';
import {channelAxisOf, checkInput, paramTensor, tidyObject} from './common';
import {normalizeCanonical} from './normalize';
import {instancePlan} from './plan';

/** Arguments of {@link instanceNorm}. */
export interface InstanceNormOpArgs {
  /** Channel axis: -1 channels-last (default), 1 channels-first. */
  axis?: number;
  /** Per-channel scale [C]. */
  gamma?: tf.Tensor | null;
  /** Per-channel offset [C]. */
  beta?: tf.Tensor | null;
  /** Added to the variance. Default 1e-5. */
  epsilon?: number;
}

/** InstanceNorm forward with instance statistics; also returns them ([N, C]) when asked. */
export function instanceNormWithStats(x: tf.Tensor, args: InstanceNormOpArgs, withStats: boolean) {
  const op = 'instanceNorm';
  checkInput(x, op, 3);
  const axis = channelAxisOf(args.axis ?? -1, x.rank, op);
  const epsilon = checkEpsilon(args.epsilon ?? 1e-5);
  const C = x.shape[axis];
  const N = x.shape[0];
  const plan = instancePlan(x.shape, axis);
  if (plan.reduceSize <= 1) {
    throw new ValueError(
      `Expected more than 1 spatial element when training (instance statistics need at least 2 values). ` +
      `Received: input shape=${show(x.shape)}`);
  }
  return tidyObject(() => {
    const gamma = paramTensor(args.gamma, [C], plan, 'gamma', op);
    const beta = paramTensor(args.beta, [C], plan, 'beta', op);
    const r = normalizeCanonical(tf.reshape(x, plan.shape), plan, {epsilon, center: true, gamma, beta, withStats});
    return {
      output: tf.reshape(r.output, x.shape),
      mean: r.mean ? tf.reshape(r.mean, [N, C]) : null,
      variance: r.variance ? tf.reshape(r.variance, [N, C]) : null,
      count: plan.reduceSize,
    };
  });
}

/**
 * PyTorch's `F.instance_norm` with instance statistics: each channel of each
 * sample is normalized over its spatial axes. Closed-form gradients.
 * Defaults: axis -1, epsilon 1e-5, no gamma/beta.
 *
 * ```js
 * const y = tfn.ops.instanceNorm(x, {axis: 1});   // x: [N, C, H, W]
 * ```
 */
export function instanceNorm(x: tf.Tensor, args: InstanceNormOpArgs = {}): tf.Tensor {
  return instanceNormWithStats(x, args, false).output;
}
