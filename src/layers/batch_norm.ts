import * as tf from '@tensorflow/tfjs';
import {checkLayerArgs} from '../errors';
import {batchNorm, batchNormWithStats} from '../ops/batch_norm';
import {channelAxisOf} from '../ops/common';
import {AFFINE_KEYS, RUNNING_STATS_KEYS, AffineArgs, BuildSpec, NormLayer, checkChannelAxisArg, RunningStatsArgs, checkRank, knownDim} from './base';

export interface BatchNormArgs extends AffineArgs, RunningStatsArgs {
  /** Channel axis: -1 channels-last (tfjs layout, default), 1 channels-first (PyTorch layout). */
  axis?: number;
}

/**
 * PyTorch's `nn.BatchNorm1d/2d/3d` for inputs of rank 2 to 5 (and more):
 * y = (x - mean) / sqrt(var + epsilon) * gamma + beta, per channel, with batch
 * statistics in training and running statistics in inference.
 *
 * Defaults: axis -1, momentum 0.1 (weight of the new batch), epsilon 1e-5,
 * affine true, trackRunningStats true. Running variance is updated with the
 * unbiased batch variance. `trainable = false` runs in inference mode (Keras'
 * fine-tuning rule) and stops statistic updates.
 *
 * Weights: gamma, beta [C] (affine), moving_mean, moving_variance [C],
 * num_batches_tracked [] int32 (trackRunningStats).
 *
 * ```js
 * const bn = tfn.layers.batchNorm({axis: 1});   // [N, C, H, W] input
 * const y = bn.apply(x, {training: true});       // batch statistics; updates the running ones
 * ```
 */
export class BatchNorm extends NormLayer {
  /** The class name used for serialization (model.json's `class_name`). */
  static className = 'BatchNorm';
  /** The channel axis argument (default -1). */
  readonly axis: number;
  private channelAxis = -1;

  constructor(args: BatchNormArgs = {}) {
    args = checkLayerArgs(args, ['axis', ...AFFINE_KEYS, ...RUNNING_STATS_KEYS], 'BatchNorm');
    super(args, {affine: true, trackRunningStats: true});
    this.axis = checkChannelAxisArg(args.axis ?? -1, 'BatchNorm');
  }

  protected resolveShape(shape: Array<number | null>): BuildSpec {
    checkRank(shape, 2, 'BatchNorm', '[batch, ..., channels] or [batch, channels, ...]');
    this.channelAxis = channelAxisOf(this.axis, shape.length, 'BatchNorm');
    const C = knownDim(shape, this.channelAxis, 'BatchNorm', 'channel axis');
    return {paramShape: [C], fixedAxes: {[this.channelAxis]: C}};
  }

  protected forward(x: tf.Tensor, training: boolean): tf.Tensor {
    const common = {axis: this.axis, gamma: this.gammaTensor(), beta: this.betaTensor(), epsilon: this.epsilon};
    if (!training && this.trackRunningStats) {
      return batchNorm(x, {...common, mean: this.movingMean!.read(), variance: this.movingVariance!.read()});
    }
    const update = training && this.trackRunningStats;
    const r = batchNormWithStats(x, {...common, training: true}, update);
    if (update) this.updateRunningStats(r.mean!, tf.mul(r.variance!, r.count / (r.count - 1)));
    return r.output;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {axis: this.axis, ...this.runningStatsConfig(), ...super.getConfig()};
  }
}
tf.serialization.registerClass(BatchNorm);
