import * as tf from '@tensorflow/tfjs';
import {normalize} from '../engine/normalize';
import {NormPlan, Role, planFromRoles} from '../engine/plan';
import {ActivationArg, checkActivation} from '../engine/activation';
import {checkEpsilon, checkGroups, checkInput, checkPositiveInt, resolveChannelAxis} from '../validate';

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
  /** Applied after the affine transform: 'relu', 'silu' (tfjs: 'swish'), 'gelu' (exact erf form) or null (default). */
  activation?: ActivationArg;
}

/**
 * GroupNorm's plan: the channel axis splits into [numGroups, C / numGroups];
 * statistics per sample and group, over the group's channels and every
 * spatial axis; gamma/beta per channel (along both halves of the split).
 * [N, H, W, C] becomes [N, H*W, G, C/G] reduced over axes 1 and 3.
 */
export function groupPlan(shape: number[], channelAxis: number, numGroups: number): NormPlan {
  const roles: Role[] = [];
  shape.forEach((size, i) => {
    if (i === channelAxis) {
      roles.push({size: numGroups, reduced: false, param: true});
      roles.push({size: size / numGroups, reduced: true, param: true});
    } else {
      roles.push({size, reduced: i !== 0, param: false});
    }
  });
  return planFromRoles(roles, shape);
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
  const owner = 'groupNorm';
  checkInput(owner, x, 2);
  const numGroups = checkPositiveInt(owner, args?.numGroups, 'numGroups');
  const axis = resolveChannelAxis(owner, args.axis ?? -1, x.rank);
  const C = x.shape[axis];
  checkGroups(owner, numGroups, C);
  return normalize(x, {owner, plan: groupPlan(x.shape, axis, numGroups), paramShape: [C],
                       epsilon: checkEpsilon(owner, args.epsilon ?? 1e-5), center: true,
                       activation: checkActivation(owner, args.activation)}, args).output;
}
