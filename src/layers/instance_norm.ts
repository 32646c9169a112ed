import * as tf from '@tensorflow/tfjs';
import {instanceNormWithStats} from '../ops/instance_norm';
import {checkChannelAxisArg, checkLayerArgs, checkRank} from '../validate';
import {AFFINE_KEYS, RUNNING_STATS_KEYS, AffineArgs, BatchNormalized, BuildSpec, NormLayer, RunningStats, RunningStatsArgs, channelSpec} from './base';

export interface InstanceNormArgs extends AffineArgs, RunningStatsArgs {
  /** Channel axis: -1 channels-last (tfjs layout, default), 1 channels-first (PyTorch layout). */
  axis?: number;
}

/**
 * PyTorch's `nn.InstanceNorm1d/2d/3d`: each channel of each sample is
 * normalized over its spatial axes. Inputs of rank >= 3 ([N, ..., C] or
 * [N, C, ...]).
 *
 * Defaults: axis -1, momentum 0.1, epsilon 1e-5, affine false,
 * trackRunningStats false. With trackRunningStats, training updates running
 * statistics with the per-instance statistics averaged over the batch (as
 * PyTorch does) and inference uses them. Unlike PyTorch 1.13, which rejects
 * momentum None and never counts batches for InstanceNorm, `momentum: null`
 * gives a cumulative average and `num_batches_tracked` counts batches.
 *
 * Weights: gamma, beta [C] (affine), moving_mean, moving_variance [C],
 * num_batches_tracked [] int32 (trackRunningStats).
 *
 * ```js
 * const inorm = tfn.layers.instanceNorm({affine: true});   // [N, H, W, C] input
 * ```
 */
export class InstanceNorm extends NormLayer {
  /** The class name used for serialization (model.json's `class_name`). */
  static className = 'InstanceNorm';
  /** The channel axis argument (default -1). */
  readonly axis: number;

  constructor(args: InstanceNormArgs = {}) {
    args = checkLayerArgs('InstanceNorm', args, ['axis', ...AFFINE_KEYS, ...RUNNING_STATS_KEYS]);
    super(args, {affine: false, trackRunningStats: false});
    this.axis = checkChannelAxisArg('InstanceNorm', args.axis ?? -1);
  }

  protected resolveShape(shape: Array<number | null>): BuildSpec {
    checkRank('InstanceNorm', shape, 3, 'batch, channel and at least one spatial axis');
    return channelSpec('InstanceNorm', shape, this.axis);
  }

  protected override runningStatsAxis(): number {
    return this.axis;
  }

  protected normalizeBatch(x: tf.Tensor, running: RunningStats | null): BatchNormalized {
    return instanceNormWithStats(x, {axis: this.axis, ...this.affineTensors(), epsilon: this.epsilon,
                                     activation: this.fusedActivation}, false,
                                 'InstanceNorm', running);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {axis: this.axis, ...this.runningStatsConfig(), ...super.getConfig()};
  }
}
