import * as tf from '@tensorflow/tfjs';
import type {Kwargs} from '@tensorflow/tfjs-layers/dist/types';
import {checkEpsilon, fail, knownDim, resolveChannelAxis} from '../validate';
import {readAffine} from '../layers/affine_weights';
import {groupNorm} from '../ops/group_norm';
import {KerasAffineArgs, KerasAffineLayer, singleInput, singleShape} from './common';

/** Arguments of {@link GroupNormalization}: Keras' names and defaults. */
export interface GroupNormalizationArgs extends KerasAffineArgs {
  /** Number of groups; must divide the channel count. -1: one group per channel (instance normalization). Default 32. */
  groups?: number;
  /** The channel axis. Default -1. */
  axis?: number;
  /** Added to the variance. Default 1e-3 (Keras'). */
  epsilon?: number;
}

/**
 * Keras' `GroupNormalization` (Keras 3 and tf-keras):
 * y = (x - mean) / sqrt(var + epsilon) * gamma + beta, with mean and biased
 * variance per sample and group of channels. Same math as
 * {@link GroupNorm}, with Keras' argument names and defaults: groups 32,
 * axis -1, epsilon 1e-3, center and scale true. Weights `gamma`, `beta` [C].
 * Registered so that `tf.loadLayersModel` loads converted Keras models.
 *
 * ```js
 * const gn = new tfn.GroupNormalization({groups: 8});   // keras.layers.GroupNormalization(groups=8)
 * ```
 */
export class GroupNormalization extends KerasAffineLayer {
  /** The class name used for serialization (model.json's `class_name`). */
  static className = 'GroupNormalization';
  /** Marks the Keras-compatible classes (Keras semantics and names). */
  static readonly kerasCompat = true;
  /** The groups argument (-1: one group per channel). Default 32. */
  readonly groups: number;
  /** The channel axis. Default -1. */
  readonly axis: number;
  /** Added to the variance. Default 1e-3. */
  readonly epsilon: number;
  /** Groups resolved at build (groups -1 = channel count); the config keeps the argument. */
  private numGroups = 0;

  constructor(args: GroupNormalizationArgs = {}) {
    super(args);
    const owner = this.getClassName();
    const groups = args?.groups ?? 32;
    if (typeof groups !== 'number' || !Number.isInteger(groups) || (groups < 1 && groups !== -1)) {
      fail(owner, '`groups` must be a positive integer, or -1 for one group per channel', 'groups', groups);
    }
    this.groups = groups;
    const axis = args?.axis ?? -1;
    if (typeof axis !== 'number' || !Number.isInteger(axis)) fail(owner, '`axis` must be an integer', 'axis', axis);
    this.axis = axis;
    this.epsilon = checkEpsilon(owner, args?.epsilon ?? 1e-3);
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape);
    const owner = this.getClassName();
    const axis = resolveChannelAxis(owner, this.axis, shape.length);
    const dim = knownDim(owner, shape, axis, 'channel axis');
    const groups = this.groups === -1 ? dim : this.groups;
    if (dim < groups) {
      fail(owner, `the number of groups (${groups}) cannot be more than the number of channels (${dim})`,
           'groups', this.groups);
    }
    if (dim % groups !== 0) {
      fail(owner, `the number of groups (${groups}) must divide the number of channels (${dim})`, 'groups', this.groups);
    }
    this.numGroups = groups;
    this.addAffineWeights([dim]);
    this.inputSpec = [{ndim: shape.length, axes: {[axis]: dim}}];
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = singleInput(inputs);
      return groupNorm(x, {numGroups: this.numGroups, axis: this.axis, epsilon: this.epsilon, ...readAffine(this)});
    });
  }

  /** The layer's config: groups, axis, epsilon and Keras' center/scale arguments. */
  override getConfig(): tf.serialization.ConfigDict {
    return {groups: this.groups, axis: this.axis, epsilon: this.epsilon, ...super.getConfig()};
  }
}

/**
 * tfjs names a layer given no name from its class name and a per-class
 * counter of its own (`dense_Dense1`); for the `Addons>` classes that name
 * holds '>', which weight names may not, so the '>' is dropped
 * (`addons_group_normalization_AddonsGroupNormalization1`). tfjs' counter
 * keeps the names unique.
 */
function dropAngleFromDefaultName(layer: tf.layers.Layer, args: {name?: string} | undefined): void {
  if (args?.name == null) (layer as {name: string}).name = layer.name.replace(/>/g, '');
}

/**
 * tensorflow_addons' `tfa.layers.GroupNormalization`: the same layer (groups 32, epsilon 1e-3).
 *
 * ```js
 * const gn = new tfn.AddonsGroupNormalization({groups: 4});   // tfa.layers.GroupNormalization(groups=4)
 * ```
 */
export class AddonsGroupNormalization extends GroupNormalization {
  /** The class name used for serialization (model.json's `class_name`). */
  static override className = 'Addons>GroupNormalization';

  constructor(args: GroupNormalizationArgs = {}) {
    super(args);
    dropAngleFromDefaultName(this, args);
  }
}

/**
 * tensorflow_addons' `tfa.layers.InstanceNormalization`: GroupNormalization
 * with one group per channel. Like tfa, any `groups` argument is ignored
 * (tfa saves the resolved channel count there). Defaults: axis -1, epsilon 1e-3,
 * center and scale true.
 *
 * ```js
 * const inorm = new tfn.AddonsInstanceNormalization();   // tfa.layers.InstanceNormalization()
 * ```
 */
export class AddonsInstanceNormalization extends GroupNormalization {
  /** The class name used for serialization (model.json's `class_name`). */
  static override className = 'Addons>InstanceNormalization';

  constructor(args: Omit<GroupNormalizationArgs, 'groups'> & {groups?: number} = {}) {
    super({...args, groups: -1});
    dropAngleFromDefaultName(this, args);
  }
}
