import * as tf from '@tensorflow/tfjs';
import type {Kwargs} from '@tensorflow/tfjs-layers/dist/types';
import {checkEpsilon, fail, knownDim, resolveChannelAxis} from '../validate';
import {readAffine} from '../layers/affine_weights';
import {contribInstanceNorm} from '../ops/contrib_instance_norm';
import {KerasAffineArgs, KerasAffineLayer, singleInput, singleShape} from './common';

/** Arguments of {@link InstanceNormalization}: keras-contrib's names and defaults. */
export interface InstanceNormalizationArgs extends KerasAffineArgs {
  /** The channel axis, kept out of the statistics; null normalizes each sample over all its axes. Default null. */
  axis?: number | null;
  /** Added to the standard deviation (not the variance). Default 1e-3. */
  epsilon?: number;
}

/**
 * keras-contrib's `InstanceNormalization`:
 * y = (x - mean) / (std + epsilon) * gamma + beta, with mean and biased std of
 * each sample over every axis but the batch axis and `axis`. Note epsilon is
 * added to the standard deviation, unlike PyTorch's and tfa's
 * rsqrt(var + epsilon). With axis null, gamma and beta have shape [1].
 * Defaults: axis null, epsilon 1e-3, center and scale true.
 *
 * ```js
 * const inorm = new tfn.InstanceNormalization({axis: -1});   // per channel, as in CycleGAN's Keras ports
 * ```
 */
export class InstanceNormalization extends KerasAffineLayer {
  /** The class name used for serialization (model.json's `class_name`). */
  static className = 'InstanceNormalization';
  /** Marks the Keras-compatible classes (Keras semantics and names). */
  static readonly kerasCompat = true;
  /** The channel axis (null: normalize over all axes). Default null. */
  readonly axis: number | null;
  /** Added to the standard deviation. Default 1e-3. */
  readonly epsilon: number;

  constructor(args: InstanceNormalizationArgs = {}) {
    super(args);
    const owner = this.getClassName();
    const axis = args?.axis ?? null;
    if (axis !== null && (typeof axis !== 'number' || !Number.isInteger(axis) || axis === 0)) {
      fail(owner, '`axis` must be a non-zero integer or null', 'axis', axis);
    }
    this.axis = axis;
    this.epsilon = checkEpsilon(owner, args?.epsilon ?? 1e-3);
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape);
    const rank = shape.length;
    const owner = this.getClassName();
    if (this.axis !== null && rank === 2) {
      fail(owner, '`axis` cannot be set for a rank-2 input (it would leave nothing to normalize)', 'axis', this.axis);
    }
    const axis = this.axis === null ? null : resolveChannelAxis(owner, this.axis, rank);
    let paramShape = [1];
    const axes: {[axis: number]: number} = {};
    if (axis !== null) {
      const dim = knownDim(owner, shape, axis, 'channel axis');
      paramShape = [dim];
      axes[axis] = dim;
    }
    this.addAffineWeights(paramShape);
    this.inputSpec = [{ndim: rank, axes}];
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => contribInstanceNorm(singleInput(inputs), {axis: this.axis, epsilon: this.epsilon,
                                                                  ...readAffine(this)}, this.getClassName()));
  }

  /** The layer's config: axis, epsilon and Keras' center/scale arguments. */
  override getConfig(): tf.serialization.ConfigDict {
    return {axis: this.axis, epsilon: this.epsilon, ...super.getConfig()};
  }
}
