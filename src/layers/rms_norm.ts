import * as tf from '@tensorflow/tfjs';
import {FLOAT32_EPS, rmsNorm} from '../ops/rms_norm';
import {checkAxesArg, checkLayerArgs} from '../validate';
import {AffineArgs, BatchNormalized, BuildSpec, NormLayer} from './base';
import {normalizedAxesSpec} from './layer_norm';

/** Arguments of {@link RMSNorm}: the affine arguments for `gamma` (RMSNorm has no `beta`), axis and epsilon. */
export interface RMSNormArgs extends Omit<AffineArgs, 'epsilon' | 'betaInitializer' | 'betaRegularizer' | 'betaConstraint'> {
  /** Normalized axes. Default -1 (PyTorch's normalized_shape of k dims is [-k, ..., -1]). */
  axis?: number | number[];
  /** Added to the mean square. Default null = float32 machine epsilon (1.19e-7), as PyTorch's eps=None. */
  epsilon?: number | null;
}

/**
 * PyTorch 2.4's `nn.RMSNorm`: y = x / sqrt(mean(x^2 over axis) + epsilon) * gamma.
 * Defaults: axis -1, epsilon null (float32 eps), affine true. Weight: gamma
 * (normalized dims' shape). Same in training and inference.
 *
 * ```js
 * const rms = tfn.layers.rmsNorm({epsilon: 1e-6});   // [N, T, D]: over D, like nn.RMSNorm(D, eps=1e-6)
 * ```
 */
export class RMSNorm extends NormLayer {
  /** The class name used for serialization (model.json's `class_name`). */
  static className = 'RMSNorm';
  /** The normalized axes argument (default -1). */
  readonly axis: number | number[];
  /** The epsilon argument as given (null = float32 machine epsilon). */
  private readonly epsilonArg: number | null;

  constructor(args: RMSNormArgs = {}) {
    args = checkLayerArgs('RMSNorm', args, ['axis', 'epsilon', 'affine', 'gammaInitializer', 'gammaRegularizer', 'gammaConstraint',
                                            'activation']);
    super({...args, epsilon: args.epsilon ?? FLOAT32_EPS}, {affine: true, beta: false, betaArgs: false});
    this.epsilonArg = args.epsilon ?? null;
    this.axis = checkAxesArg('RMSNorm', args.axis ?? -1);
  }

  protected resolveShape(shape: Array<number | null>): BuildSpec {
    return normalizedAxesSpec('RMSNorm', shape, this.axis);
  }

  protected normalizeBatch(x: tf.Tensor): BatchNormalized {
    return {output: rmsNorm(x, {axis: this.axis, gamma: this.affineTensors().gamma, epsilon: this.epsilon,
                                activation: this.fusedActivation})};
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {axis: this.axis, ...super.getConfig(), epsilon: this.epsilonArg};
  }
}
