import * as tf from '@tensorflow/tfjs';
import type {Kwargs} from '@tensorflow/tfjs-layers/dist/types';
import {addRMSNorm} from '../ops/add_norm';
import {checkBoolean, checkLayerArgs} from '../validate';
import {pairInputs, pairOutputShape, pairShapes} from './add_layer_norm';
import {RMSNorm, RMSNormArgs} from './rms_norm';

export interface AddRMSNormArgs extends RMSNormArgs {
  /** Also output x + residual: the layer returns `[norm(x + residual), x + residual]`. Default false. */
  returnSum?: boolean;
}

/**
 * `RMSNorm(x + residual)` in one layer: see {@link AddLayerNorm}. Same
 * arguments and weight (gamma) as {@link RMSNorm}.
 *
 * ```js
 * const y = tfn.layers.addRMSNorm({epsilon: 1e-6}).apply([x, residual]);
 * ```
 */
export class AddRMSNorm extends RMSNorm {
  /** The class name used for serialization (model.json's `class_name`). */
  static override className = 'AddRMSNorm';
  /** Whether the layer also returns the sum. */
  readonly returnSum: boolean;

  constructor(args: AddRMSNormArgs = {}) {
    args = checkLayerArgs('AddRMSNorm', args, ['axis', 'epsilon', 'affine', 'gammaInitializer', 'gammaRegularizer',
                                               'gammaConstraint', 'activation', 'returnSum']);
    const {returnSum, ...rest} = args;
    super(rest);
    this.returnSum = checkBoolean('AddRMSNorm', returnSum ?? false, 'returnSum');
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    super.build(pairShapes('AddRMSNorm', inputShape));
    this.inputSpec = [this.inputSpec[0], this.inputSpec[0]];
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return pairOutputShape(inputShape, this.returnSum);
  }

  override computeMask(inputs: tf.Tensor | tf.Tensor[], mask?: tf.Tensor | tf.Tensor[]): tf.Tensor | tf.Tensor[] {
    const m = (Array.isArray(mask) ? mask[0] : mask) ?? null;
    return (this.returnSum ? [m, m] : m) as tf.Tensor | tf.Tensor[];
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    return tf.tidy(() => {
      const [x, residual] = pairInputs('AddRMSNorm', inputs);
      const args = {axis: this.axis, gamma: this.affineTensors().gamma, epsilon: this.epsilon,
                    activation: this.fusedActivation};
      return this.returnSum ? addRMSNorm(x, residual, {...args, returnSum: true}) : addRMSNorm(x, residual, args);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {...super.getConfig(), returnSum: this.returnSum};
  }
}
