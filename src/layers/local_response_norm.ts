import * as tf from '@tensorflow/tfjs';
import type {LayerArgs} from '@tensorflow/tfjs-layers/dist/engine/topology';
import type {Kwargs} from '@tensorflow/tfjs-layers/dist/types';
import {localResponseNorm} from '../ops/local_response_norm';
import {
  checkChannelAxisArg, checkFinite, checkLayerArgs, checkPositiveInt, checkPositiveNumber, checkRank, resolveChannelAxis,
} from '../validate';
import {singleFloatInput, singleShape} from './base';

/** Arguments of {@link LocalResponseNorm}, PyTorch's names and defaults. */
export interface LocalResponseNormArgs extends LayerArgs {
  /** Number of neighbouring channels summed over (required). */
  size: number;
  /** Scale of the sum of squares (divided by size). Default 1e-4. */
  alpha?: number;
  /** Exponent. Default 0.75. */
  beta?: number;
  /** Additive constant. Default 1. */
  k?: number;
  /** Channel axis: -1 channels-last (tfjs layout, default), 1 channels-first (PyTorch layout). */
  axis?: number;
}

/**
 * PyTorch's `nn.LocalResponseNorm`: b_c = a_c * (k + alpha/size * sum of a^2
 * over the window of `size` channels around c)^(-beta); the window spans
 * size//2 channels before and (size-1)//2 after, zero-padded, and is divided
 * by `size` at the borders too. Any input rank >= 3. No weights.
 *
 * Defaults: alpha 1e-4, beta 0.75, k 1, axis -1; `size` is required.
 *
 * ```js
 * const lrn = tfn.layers.localResponseNorm({size: 5, alpha: 1e-4, beta: 0.75, k: 2});   // AlexNet's
 * ```
 */
export class LocalResponseNorm extends tf.layers.Layer {
  /** The class name used for serialization (model.json's `class_name`). */
  static className = 'LocalResponseNorm';
  /** Number of neighbouring channels summed over. */
  readonly size: number;
  /** Scale of the sum of squares. Default 1e-4. */
  readonly alpha: number;
  /** Exponent. Default 0.75. */
  readonly beta: number;
  /** Additive constant. Default 1. */
  readonly k: number;
  /** The channel axis argument (default -1). */
  readonly axis: number;

  constructor(args: LocalResponseNormArgs) {
    const owner = 'LocalResponseNorm';
    args = checkLayerArgs(owner, args, ['size', 'alpha', 'beta', 'k', 'axis']);
    super(args);
    this.size = checkPositiveInt(owner, args?.size, 'size');
    this.alpha = checkFinite(owner, args.alpha ?? 1e-4, 'alpha');
    this.beta = checkFinite(owner, args.beta ?? 0.75, 'beta');
    this.k = checkPositiveNumber(owner, args.k ?? 1, 'k', true);
    this.axis = checkChannelAxisArg(owner, args.axis ?? -1);
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape);
    checkRank('LocalResponseNorm', shape, 3, 'batch, channel and at least one more axis');
    resolveChannelAxis('LocalResponseNorm', this.axis, shape.length);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = singleFloatInput(inputs, this.getClassName());
      return localResponseNorm(x, {size: this.size, alpha: this.alpha, beta: this.beta, k: this.k, axis: this.axis});
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {size: this.size, alpha: this.alpha, beta: this.beta, k: this.k, axis: this.axis, ...super.getConfig()};
  }
}
