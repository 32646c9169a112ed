import * as tf from '@tensorflow/tfjs';
import type {LayerArgs} from '@tensorflow/tfjs-layers/dist/engine/topology';
import type {Kwargs} from '@tensorflow/tfjs-layers/dist/types';
import {checkAxesArg, resolveAxes} from '../validate';
import {l2Normalize} from '../ops/l2_normalize';
import {layerArgs, singleInput, singleShape} from './common';

/** Arguments of {@link UnitNormalization}: Keras' names and defaults. */
export interface UnitNormalizationArgs extends LayerArgs {
  /** Axis or axes whose L2 norm becomes 1. Default -1. */
  axis?: number | number[];
}

/**
 * Keras' `UnitNormalization`: y = x / sqrt(max(sum(x^2 over axis), 1e-12)),
 * tf.math.l2_normalize. No weights. Default axis -1.
 *
 * ```js
 * const unit = new tfn.UnitNormalization();   // rows of [N, D] get L2 norm 1
 * ```
 */
export class UnitNormalization extends tf.layers.Layer {
  /** The class name used for serialization (model.json's `class_name`). */
  static className = 'UnitNormalization';
  /** Marks the Keras-compatible classes (Keras semantics and names). */
  static readonly kerasCompat = true;
  /** Axis or axes whose L2 norm becomes 1. Default -1. */
  readonly axis: number | number[];

  constructor(args: UnitNormalizationArgs = {}) {
    super(layerArgs(new.target, args));
    this.axis = checkAxesArg(this.getClassName(), args?.axis ?? -1);
    this.supportsMasking = true;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    resolveAxes(this.getClassName(), this.axis, singleShape(inputShape).length);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => l2Normalize(singleInput(inputs), this.axis, this.getClassName()));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {axis: this.axis, ...super.getConfig()};
  }
}
