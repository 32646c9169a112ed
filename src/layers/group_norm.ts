import * as tf from '@tensorflow/tfjs';
import {checkLayerArgs, checkPositiveInt} from '../errors';
import {channelAxisOf} from '../ops/common';
import {checkGroups, groupNorm} from '../ops/group_norm';
import {AFFINE_KEYS, AffineArgs, BuildSpec, NormLayer, checkChannelAxisArg, checkRank, knownDim} from './base';

export interface GroupNormArgs extends AffineArgs {
  /** Number of channel groups (required); must divide the channel count. */
  numGroups: number;
  /** Channel axis: -1 channels-last (tfjs layout, default), 1 channels-first (PyTorch layout). */
  axis?: number;
}

/**
 * PyTorch's `nn.GroupNorm`: channels are split into `numGroups` groups and
 * each group of each sample is normalized over its channels and spatial axes;
 * gamma/beta are per channel. Same in training and inference; no running
 * statistics. numGroups = 1 is LayerNorm over (C, spatial), numGroups = C is
 * InstanceNorm.
 *
 * Defaults: axis -1, epsilon 1e-5, affine true. Weights: gamma, beta [C].
 *
 * ```js
 * model.add(tf.layers.conv2d({filters: 16, kernelSize: 3}));
 * model.add(tfn.layers.groupNorm({numGroups: 4}));   // 4 groups of 4 channels
 * ```
 */
export class GroupNorm extends NormLayer {
  /** The class name used for serialization (model.json's `class_name`). */
  static className = 'GroupNorm';
  /** Number of channel groups (required). */
  readonly numGroups: number;
  /** The channel axis argument (default -1). */
  readonly axis: number;
  private channelAxis = -1;

  constructor(args: GroupNormArgs) {
    args = checkLayerArgs(args, ['numGroups', 'axis', ...AFFINE_KEYS], 'GroupNorm');
    super(args, {affine: true});
    this.numGroups = checkPositiveInt(args?.numGroups, 'numGroups');
    this.axis = checkChannelAxisArg(args.axis ?? -1, 'GroupNorm');
  }

  protected resolveShape(shape: Array<number | null>): BuildSpec {
    checkRank(shape, 2, 'GroupNorm', '[batch, ..., channels] or [batch, channels, ...]');
    this.channelAxis = channelAxisOf(this.axis, shape.length, 'GroupNorm');
    const C = knownDim(shape, this.channelAxis, 'GroupNorm', 'channel axis');
    checkGroups(this.numGroups, C);
    return {paramShape: [C], fixedAxes: {[this.channelAxis]: C}};
  }

  protected forward(x: tf.Tensor): tf.Tensor {
    return groupNorm(x, {numGroups: this.numGroups, axis: this.axis, gamma: this.gammaTensor(),
                         beta: this.betaTensor(), epsilon: this.epsilon});
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {numGroups: this.numGroups, axis: this.axis, ...super.getConfig()};
  }
}
tf.serialization.registerClass(GroupNorm);
