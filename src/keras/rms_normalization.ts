import * as tf from '@tensorflow/tfjs';
import type {LayerArgs} from '@tensorflow/tfjs-layers/dist/engine/topology';
import type {Kwargs} from '@tensorflow/tfjs-layers/dist/types';
import type {LayerVariable} from '@tensorflow/tfjs-layers/dist/variables';
import {checkAxesArg, checkEpsilon, fail, resolveAxes} from '../validate';
import {rmsNorm} from '../ops/rms_norm';
import {layerArgs, singleInput, singleShape} from './common';

/** Arguments of {@link RMSNormalization}: Keras' names and defaults. */
export interface RMSNormalizationArgs extends LayerArgs {
  /** Normalized axis or axes. Default -1. */
  axis?: number | number[];
  /** Added to the mean square. Default 1e-6 (Keras'). */
  epsilon?: number;
}

/**
 * Keras 3's `RMSNormalization`: y = x * rsqrt(mean(x^2 over axis) + epsilon) * scale.
 * Same math as {@link RMSNorm} (ops.rmsNorm), with Keras' defaults (axis -1,
 * epsilon 1e-6) and weight name: `scale`, ones-initialized, with the
 * normalized dims' shape.
 *
 * ```js
 * const rms = new tfn.RMSNormalization({epsilon: 1e-5});   // keras.layers.RMSNormalization(epsilon=1e-5)
 * ```
 */
export class RMSNormalization extends tf.layers.Layer {
  /** The class name used for serialization (model.json's `class_name`). */
  static className = 'RMSNormalization';
  /** Marks the Keras-compatible classes (Keras semantics and names). */
  static readonly kerasCompat = true;
  /** The normalized axis or axes. Default -1. */
  readonly axis: number | number[];
  /** Added to the mean square. Default 1e-6. */
  readonly epsilon: number;
  /** The scale weight `scale` once built. */
  scale: LayerVariable | null = null;

  constructor(args: RMSNormalizationArgs = {}) {
    super(layerArgs(new.target, args));
    this.axis = checkAxesArg(this.getClassName(), args?.axis ?? -1);
    this.epsilon = checkEpsilon(this.getClassName(), args?.epsilon ?? 1e-6);
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape);
    const owner = this.getClassName();
    const axes = resolveAxes(owner, this.axis, shape.length);
    const dims = axes.map(a => shape[a]);
    if (dims.some(d => d == null)) fail(owner, 'the normalized axes must have known sizes', 'input shape', shape);
    this.scale = this.addWeight('scale', dims as number[], 'float32', tf.initializers.ones());
    const fixed: {[axis: number]: number} = {};
    axes.forEach(a => (fixed[a] = shape[a] as number));
    this.inputSpec = [{ndim: shape.length, axes: fixed}];
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => rmsNorm(singleInput(inputs), {axis: this.axis, epsilon: this.epsilon, gamma: this.scale!.read()}));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {axis: this.axis, epsilon: this.epsilon, ...super.getConfig()};
  }
}
