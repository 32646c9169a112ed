import * as tf from '@tensorflow/tfjs';
import {NormSpec, RunningStats, UpdatedRunningStats, normalize, normalizeWithStats} from '../engine/normalize';
import {NormPlan, planFromRoles} from '../engine/plan';
import {ActivationArg, checkActivation} from '../engine/activation';
import {checkEpsilon, checkInput, fail, resolveChannelAxis} from '../validate';

/** Arguments of {@link batchNorm}. */
export interface BatchNormOpArgs {
  /** Channel axis: -1 channels-last (default), 1 channels-first. */
  axis?: number;
  /** Per-channel mean [C] used when not training (e.g. running mean); give `variance` with it. */
  mean?: tf.Tensor | null;
  /** Per-channel variance [C] used when not training (e.g. running variance); give `mean` with it. */
  variance?: tf.Tensor | null;
  /** Per-channel scale [C]. */
  gamma?: tf.Tensor | null;
  /** Per-channel offset [C]. */
  beta?: tf.Tensor | null;
  /** Added to the variance. Default 1e-5. */
  epsilon?: number;
  /** Use batch statistics. Default false; batch statistics are also used when neither mean nor variance is given. */
  training?: boolean;
  /** Applied after the affine transform: 'relu', 'silu' (tfjs: 'swish'), 'gelu' (exact erf form) or null (default). */
  activation?: ActivationArg;
}

/** What the ops with running statistics return for the update. */
export interface WithStats {
  output: tf.Tensor;
  /** Batch mean [C] (per instance: [N, C]); null unless asked for. */
  mean: tf.Tensor | null;
  /** Biased batch variance, same shape as mean. */
  variance: tf.Tensor | null;
  /** Number of values each statistic was computed from. */
  count: number;
  /** The running statistics updated from this batch, when given. */
  running?: UpdatedRunningStats | null;
}

/** BatchNorm's plan: statistics over every axis but the channel axis; params along it. */
export function batchPlan(shape: number[], channelAxis: number): NormPlan {
  return planFromRoles(shape.map((size, i) => ({size, reduced: i !== channelAxis, param: i === channelAxis})), shape);
}

function batchSpec(owner: string, x: tf.Tensor, args: BatchNormOpArgs): NormSpec {
  checkInput(owner, x, 2);
  const axis = resolveChannelAxis(owner, args.axis ?? -1, x.rank);
  return {owner, plan: batchPlan(x.shape, axis), paramShape: [x.shape[axis]], epsilon: checkEpsilon(owner, args.epsilon ?? 1e-5),
          center: true, activation: checkActivation(owner, args.activation)};
}

/**
 * BatchNorm forward with batch statistics; also returns them ([C]) when asked,
 * and updates `running` statistics from them (off the gradient tape; layers).
 */
export function batchNormWithStats(x: tf.Tensor, args: BatchNormOpArgs, withStats: boolean, owner = 'batchNorm',
                                   running: RunningStats | null = null): WithStats {
  const spec = batchSpec(owner, x, args);
  const count = spec.plan.reduceSize;
  if (count <= 1 && x.size > 0) {
    fail(owner, 'Expected more than 1 value per channel when training (batch statistics need at least 2 values)',
         'input shape', x.shape);
  }
  const r = normalize(x, spec, args, withStats, running);
  const C = spec.paramShape;
  return {output: r.output, mean: r.mean && tf.reshape(r.mean, C), variance: r.variance && tf.reshape(r.variance, C), count,
          running: r.running};
}

/**
 * PyTorch's `F.batch_norm`: normalizes each channel with batch statistics
 * (training, or neither mean nor variance given) or the given mean/variance.
 * Closed-form gradients w.r.t. x, gamma and beta. Defaults: axis -1,
 * epsilon 1e-5, training false, no gamma/beta/mean/variance. Giving only one
 * of mean and variance is an error (PyTorch: "running_var must be defined").
 *
 * ```js
 * const y = tfn.ops.batchNorm(x, {mean: runningMean, variance: runningVar, gamma, beta});   // inference
 * ```
 */
export function batchNorm(x: tf.Tensor, args: BatchNormOpArgs = {}): tf.Tensor {
  const owner = 'batchNorm';
  const hasMean = args.mean != null;
  const hasVariance = args.variance != null;
  if (args.training !== true && hasMean !== hasVariance) {
    const missing = hasMean ? 'variance' : 'mean';
    fail(owner, `\`${missing}\` must be given with \`${hasMean ? 'mean' : 'variance'}\` when not training ` +
                '(give both for running statistics, neither for batch statistics)', missing, args[missing]);
  }
  if (args.training === true || !hasMean) return batchNormWithStats(x, args, false, owner).output;
  return tf.tidy(() => normalizeWithStats(x, batchSpec(owner, x, args), {mean: args.mean!, variance: args.variance!}, args));
}
