import * as tf from '@tensorflow/tfjs';
import {ValueError, checkEpsilon, checkPositiveInt, show} from '../errors';
import {channelAxisOf, checkInput, paramTensor} from './common';
import {normalizeCanonical} from './normalize';
import {groupPlan} from './plan';

/** Arguments of {@link groupNorm}. */
export interface GroupNormOpArgs {
  /** Number of channel groups; must divide the channel count. */
  numGroups: number;
  /** Channel axis: -1 channels-last (default), 1 channels-first. */
  axis?: number;
  /** Per-channel scale [C]. */
  gamma?: tf.Tensor | null;
  /** Per-channel offset [C]. */
  beta?: tf.Tensor | null;
  /** Added to the variance. Default 1e-5. */
  epsilon?: number;
}

/** Throws unless numGroups divides the channel count. */
export function checkGroups(numGroups: number, channels: number): void {
  if (channels % numGroups !== 0) {
    throw new ValueError(
      `\`numGroups\` must divide the number of channels (${channels}). Received: numGroups=${show(numGroups)}`);
  }
}

/**
 * PyTorch's `F.group_norm`: the channels are split into `numGroups` groups and
 * each group of each sample is normalized over its channels and spatial axes;
 * gamma/beta are per channel. Closed-form gradients. Defaults: axis -1, epsilon 1e-5, no gamma/beta.
 *
 * ```js
 * const y = tfn.ops.groupNorm(x, {numGroups: 4});   // x: [N, H, W, 16]
 * ```
 */
export function groupNorm(x: tf.Tensor, args: GroupNormOpArgs): tf.Tensor {
  const op = 'groupNorm';
  checkInput(x, op, 2);
  const numGroups = checkPositiveInt(args?.numGroups, 'numGroups');
  const axis = channelAxisOf(args.axis ?? -1, x.rank, op);
  const epsilon = checkEpsilon(args.epsilon ?? 1e-5);
  const C = x.shape[axis];
  checkGroups(numGroups, C);
  const plan = groupPlan(x.shape, axis, numGroups);
  return tf.tidy(() => {
    const gamma = paramTensor(args.gamma, [C], plan, 'gamma', op);
    const beta = paramTensor(args.beta, [C], plan, 'beta', op);
    const r = normalizeCanonical(tf.reshape(x, plan.shape), plan, {epsilon, center: true, gamma, beta, withStats: false});
    return tf.reshape(r.output, x.shape);
  });
}
