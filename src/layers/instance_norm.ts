import * as tf from '@tensorflow/tfjs';
import {checkLayerArgs} from '../errors';
import {batchNorm} from '../ops/batch_norm';
import {channelAxisOf} from '../ops/common';
import {instanceNormWithStats} from '../ops/instance_norm';
import {AFFINE_KEYS, RUNNING_STATS_KEYS, AffineArgs, BuildSpec, NormLayer, checkChannelAxisArg, RunningStatsArgs, checkRank, knownDim} from './base';

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
  private channelAxis = -1;

  constructor(args: InstanceNormArgs = {}) {
    args = checkLayerArgs(args, ['axis', ...AFFINE_KEYS, ...RUNNING_STATS_KEYS], 'InstanceNorm');
    super(args, {affine: false, trackRunningStats: false});
    this.axis = checkChannelAxisArg(args.axis ?? -1, 'InstanceNorm');
  }

  protected resolveShape(shape: Array<number | null>): BuildSpec {
    checkRank(shape, 3, 'InstanceNorm', 'batch, channel and at least one spatial axis');
    this.channelAxis = channelAxisOf(this.axis, shape.length, 'InstanceNorm');
    const C = knownDim(shape, this.channelAxis, 'InstanceNorm', 'channel axis');
    return {paramShape: [C], fixedAxes: {[this.channelAxis]: C}};
  }

  protected forward(x: tf.Tensor, training: boolean): tf.Tensor {
    const common = {axis: this.axis, gamma: this.gammaTensor(), beta: this.betaTensor(), epsilon: this.epsilon};
    if (!training && this.trackRunningStats) {
      return batchNorm(x, {...common, mean: this.movingMean!.read(), variance: this.movingVariance!.read()});
    }
    const update = training && this.trackRunningStats;
    const r = instanceNormWithStats(x, common, update);
    if (update) {
      this.updateRunningStats(tf.mean(r.mean!, 0), tf.mean(tf.mul(r.variance!, r.count / (r.count - 1)), 0));
    }
    return r.output;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {axis: this.axis, ...this.runningStatsConfig(), ...super.getConfig()};
  }
}
tf.serialization.registerClass(InstanceNorm);
