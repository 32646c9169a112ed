import * as tf from '@tensorflow/tfjs';
import {RunningStats, normalize} from '../engine/normalize';
import {NormPlan, planFromRoles} from '../engine/plan';
import {ActivationArg, checkActivation} from '../engine/activation';
import {checkEpsilon, checkInput, fail, resolveChannelAxis} from '../validate';
import {WithStats} from './batch_norm';

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
  /** Applied after the affine transform: 'relu', 'silu' (tfjs: 'swish'), 'gelu' (exact erf form) or null (default). */
  activation?: ActivationArg;
}

/** InstanceNorm's plan: statistics per sample and channel over the other axes; params along the channel. */
export function instancePlan(shape: number[], channelAxis: number): NormPlan {
  return planFromRoles(shape.map((size, i) => ({size, reduced: i !== 0 && i !== channelAxis, param: i === channelAxis})),
                       shape);
}

/**
 * InstanceNorm forward with instance statistics; also returns them ([N, C])
 * when asked, and updates `running` statistics ([C], averaged over the batch).
 */
export function instanceNormWithStats(x: tf.Tensor, args: InstanceNormOpArgs, withStats: boolean,
                                      owner = 'instanceNorm', running: RunningStats | null = null): WithStats {
  checkInput(owner, x, 3);
  const axis = resolveChannelAxis(owner, args.axis ?? -1, x.rank);
  const plan = instancePlan(x.shape, axis);
  if (plan.reduceSize <= 1) {
    fail(owner, 'Expected more than 1 spatial element when training (instance statistics need at least 2 values)',
         'input shape', x.shape);
  }
  const C = x.shape[axis];
  const r = normalize(x, {owner, plan, paramShape: [C], epsilon: checkEpsilon(owner, args.epsilon ?? 1e-5), center: true,
                          activation: checkActivation(owner, args.activation)},
                      args, withStats, running);
  const NC = [x.shape[0], C];
  return {output: r.output, mean: r.mean && tf.reshape(r.mean, NC), variance: r.variance && tf.reshape(r.variance, NC),
          count: plan.reduceSize, running: r.running};
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
