import * as tf from '@tensorflow/tfjs';
import {groupNorm} from '../ops/group_norm';
import {checkChannelAxisArg, checkGroups, checkLayerArgs, checkPositiveInt, checkRank} from '../validate';
import {AFFINE_KEYS, AffineArgs, BatchNormalized, BuildSpec, NormLayer, channelSpec} from './base';

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

  constructor(args: GroupNormArgs) {
    args = checkLayerArgs('GroupNorm', args, ['numGroups', 'axis', ...AFFINE_KEYS]);
    super(args, {affine: true});
    this.numGroups = checkPositiveInt('GroupNorm', args?.numGroups, 'numGroups');
    this.axis = checkChannelAxisArg('GroupNorm', args.axis ?? -1);
  }

  protected resolveShape(shape: Array<number | null>): BuildSpec {
    checkRank('GroupNorm', shape, 2, '[batch, ..., channels] or [batch, channels, ...]');
    const spec = channelSpec('GroupNorm', shape, this.axis);
    checkGroups('GroupNorm', this.numGroups, spec.channels);
    return spec;
  }

  protected normalizeBatch(x: tf.Tensor): BatchNormalized {
    return {output: groupNorm(x, {numGroups: this.numGroups, axis: this.axis, ...this.affineTensors(), epsilon: this.epsilon,
                                  activation: this.fusedActivation})};
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {numGroups: this.numGroups, axis: this.axis, ...super.getConfig()};
  }
}
