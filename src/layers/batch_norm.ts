import * as tf from '@tensorflow/tfjs';
import {batchNormWithStats} from '../ops/batch_norm';
import {checkChannelAxisArg, checkLayerArgs, checkRank} from '../validate';
import {AFFINE_KEYS, RUNNING_STATS_KEYS, AffineArgs, BatchNormalized, BuildSpec, NormLayer, RunningStats, RunningStatsArgs, channelSpec} from './base';

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

  constructor(args: BatchNormArgs = {}) {
    args = checkLayerArgs('BatchNorm', args, ['axis', ...AFFINE_KEYS, ...RUNNING_STATS_KEYS]);
    super(args, {affine: true, trackRunningStats: true});
    this.axis = checkChannelAxisArg('BatchNorm', args.axis ?? -1);
  }

  protected resolveShape(shape: Array<number | null>): BuildSpec {
    checkRank('BatchNorm', shape, 2, '[batch, ..., channels] or [batch, channels, ...]');
    return channelSpec('BatchNorm', shape, this.axis);
  }

  protected override runningStatsAxis(): number {
    return this.axis;
  }

  protected normalizeBatch(x: tf.Tensor, running: RunningStats | null): BatchNormalized {
    return batchNormWithStats(x, {axis: this.axis, ...this.affineTensors(), epsilon: this.epsilon,
                                  activation: this.fusedActivation}, false, 'BatchNorm',
                              running);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {axis: this.axis, ...this.runningStatsConfig(), ...super.getConfig()};
  }
}
