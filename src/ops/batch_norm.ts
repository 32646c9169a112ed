import * as tf from '@tensorflow/tfjs';
import {ValueError, checkEpsilon, show} from '../errors';
import {channelAxisOf, checkInput, paramTensor, tidyObject} from './common';
import {normalizeCanonical, normalizeWithStats} from './normalize';
import {batchPlan} from './plan';

/** Arguments of {@link batchNorm}. */
export interface BatchNormOpArgs {
  /** Channel axis: -1 channels-last (default), 1 channels-first. */
  axis?: number;
  /** Per-channel mean [C] used when not training (e.g. running mean). */
  mean?: tf.Tensor | null;
  /** Per-channel variance [C] used when not training (e.g. running variance). */
  variance?: tf.Tensor | null;
  /** Per-channel scale [C]. */
  gamma?: tf.Tensor | null;
  /** Per-channel offset [C]. */
  beta?: tf.Tensor | null;
  /** Added to the variance. Default 1e-5. */
  epsilon?: number;
  /** Use batch statistics. Default false; batch statistics are also used when mean/variance are not given. */
  training?: boolean;
}

export interface BatchStats {
  output: tf.Tensor;
  /** Batch mean per channel [C], when batch statistics were used and asked for. */
  mean: tf.Tensor | null;
  /** Biased batch variance per channel [C]. */
  variance: tf.Tensor | null;
  /** Number of values each statistic was computed from. */
  count: number;
}

/** BatchNorm forward that also returns the batch statistics (for running-stat updates). */
export function batchNormWithStats(x: tf.Tensor, args: BatchNormOpArgs, withStats: boolean): BatchStats {
  const op = 'batchNorm';
  checkInput(x, op, 2);
  const axis = channelAxisOf(args.axis ?? -1, x.rank, op);
  const epsilon = checkEpsilon(args.epsilon ?? 1e-5);
  const C = x.shape[axis];
  const plan = batchPlan(x.shape, axis);
  return tidyObject(() => {
    const gamma = paramTensor(args.gamma, [C], plan, 'gamma', op);
    const beta = paramTensor(args.beta, [C], plan, 'beta', op);
    const useBatchStats = args.training === true || args.mean == null || args.variance == null;
    if (!useBatchStats) {
      const mean = paramTensor(args.mean, [C], plan, 'mean', op)!;
      const variance = paramTensor(args.variance, [C], plan, 'variance', op)!;
      const y = normalizeWithStats(tf.reshape(x, plan.shape), plan, mean, variance, gamma, beta, epsilon);
      return {output: tf.reshape(y, x.shape), mean: null, variance: null,
              count: plan.reduceSize};
    }
    if (plan.reduceSize <= 1) {
      throw new ValueError(
        `Expected more than 1 value per channel when training (batch statistics need at least 2 values). ` +
        `Received: input shape=${show(x.shape)}`);
    }
    const r = normalizeCanonical(tf.reshape(x, plan.shape), plan, {epsilon, center: true, gamma, beta, withStats});
    return {
      output: tf.reshape(r.output, x.shape),
      mean: r.mean ? tf.reshape(r.mean, [C]) : null,
      variance: r.variance ? tf.reshape(r.variance, [C]) : null,
      count: plan.reduceSize,
    };
  });
}

/**
 * PyTorch's `F.batch_norm`: normalizes each channel with batch statistics
 * (training, or no mean/variance given) or the given mean/variance.
 * Closed-form gradients w.r.t. x, gamma and beta. Defaults: axis -1,
 * epsilon 1e-5, training false, no gamma/beta/mean/variance.
 *
 * ```js
 * const y = tfn.ops.batchNorm(x, {mean: runningMean, variance: runningVar, gamma, beta});   // inference
 * ```
 */
export function batchNorm(x: tf.Tensor, args: BatchNormOpArgs = {}): tf.Tensor {
  return batchNormWithStats(x, args, false).output;
}
