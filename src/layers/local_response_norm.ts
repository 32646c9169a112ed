import * as tf from '@tensorflow/tfjs';
import type {LayerArgs} from '@tensorflow/tfjs-layers/dist/engine/topology';
import type {Kwargs} from '@tensorflow/tfjs-layers/dist/types';
import {ValueError, checkFinite, checkPositiveInt, checkPositiveNumber, show} from '../errors';
import {channelAxisOf} from '../ops/common';
import {localResponseNorm} from '../ops/local_response_norm';
import {checkChannelAxisArg, checkRank} from './base';

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
 */
export class LocalResponseNorm extends tf.layers.Layer {
  static className = 'LocalResponseNorm';
  readonly size: number;
  readonly alpha: number;
  readonly beta: number;
  readonly k: number;
  readonly axis: number;

  constructor(args: LocalResponseNormArgs) {
    super(args ?? ({} as LayerArgs));
    this.size = checkPositiveInt(args?.size, 'size');
    this.alpha = checkFinite(args.alpha ?? 1e-4, 'alpha');
    this.beta = checkFinite(args.beta ?? 0.75, 'beta');
    this.k = checkPositiveNumber(args.k ?? 1, 'k', true);
    this.axis = checkChannelAxisArg(args.axis ?? -1, 'LocalResponseNorm');
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Array<number | null>;
    checkRank(shape, 3, 'LocalResponseNorm', 'batch, channel and at least one more axis');
    channelAxisOf(this.axis, shape.length, 'LocalResponseNorm');
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      if (x.dtype !== 'float32') {
        throw new ValueError(`LocalResponseNorm expects a float32 input; cast it with tf.cast(x, 'float32'). ` +
                             `Received: dtype=${show(x.dtype)}`);
      }
      return localResponseNorm(x, {size: this.size, alpha: this.alpha, beta: this.beta, k: this.k, axis: this.axis});
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {size: this.size, alpha: this.alpha, beta: this.beta, k: this.k, axis: this.axis, ...super.getConfig()};
  }
}
tf.serialization.registerClass(LocalResponseNorm);
