import * as tf from '@tensorflow/tfjs';
import type {Kwargs} from '@tensorflow/tfjs-layers/dist/types';
import {addLayerNorm} from '../ops/add_norm';
import {checkBoolean, checkLayerArgs, fail, show} from '../validate';
import {AFFINE_KEYS} from './base';
import {LayerNorm, LayerNormArgs} from './layer_norm';

export interface AddLayerNormArgs extends LayerNormArgs {
  /** Also output x + residual: the layer returns `[norm(x + residual), x + residual]`. Default false. */
  returnSum?: boolean;
}

/** The two input shapes of an Add* layer, checked to be equal. */
export function pairShapes(owner: string, inputShape: tf.Shape | tf.Shape[]): Array<number | null> {
  if (!Array.isArray(inputShape[0]) || inputShape.length !== 2) {
    fail(owner, 'expects two inputs [x, residual]', 'input shape', inputShape);
  }
  const [a, b] = inputShape as tf.Shape[];
  if (a.length !== b.length || a.some((d, i) => d != null && b[i] != null && d !== b[i])) {
    fail(owner, `expects x and residual of the same shape (x: ${show(a)})`, 'residual shape', b);
  }
  return a.map((d, i) => d ?? b[i]);
}

/** The [x, residual] inputs of an Add* layer's call. */
export function pairInputs(owner: string, inputs: tf.Tensor | tf.Tensor[]): [tf.Tensor, tf.Tensor] {
  if (!Array.isArray(inputs) || inputs.length !== 2) {
    fail(owner, 'expects two inputs [x, residual]', 'inputs', Array.isArray(inputs) ? `${inputs.length} tensors` : 'one tensor');
  }
  return [inputs[0], inputs[1]];
}

/** The Add* layers' outputs' shape (two with returnSum) and mask. */
export function pairOutputShape(shape: tf.Shape | tf.Shape[], returnSum: boolean): tf.Shape | tf.Shape[] {
  const s = (Array.isArray(shape[0]) ? shape[0] : shape) as tf.Shape;
  return returnSum ? [s, s] : s;
}

/**
 * `LayerNorm(x + residual)`: a pre-norm transformer's residual add and
 * LayerNorm in one layer (one kernel where fused kernels run: the sum and its
 * statistics in one pass). Takes `[x, residual]` of the same shape; with
 * `returnSum: true` returns `[norm(x + residual), x + residual]`. Same
 * arguments and weights (gamma, beta) as {@link LayerNorm}.
 *
 * ```js
 * const [h, stream] = tfn.layers.addLayerNorm({returnSum: true}).apply([x, attnOut]);
 * ```
 */
export class AddLayerNorm extends LayerNorm {
  /** The class name used for serialization (model.json's `class_name`). */
  static override className = 'AddLayerNorm';
  /** Whether the layer also returns the sum. */
  readonly returnSum: boolean;

  constructor(args: AddLayerNormArgs = {}) {
    args = checkLayerArgs('AddLayerNorm', args, ['axis', 'bias', 'returnSum', ...AFFINE_KEYS]);
    const {returnSum, ...rest} = args;
    super(rest);
    this.returnSum = checkBoolean('AddLayerNorm', returnSum ?? false, 'returnSum');
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    super.build(pairShapes('AddLayerNorm', inputShape));
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
      const [x, residual] = pairInputs('AddLayerNorm', inputs);
      const {gamma, beta} = this.affineTensors();
      const args = {axis: this.axis, gamma, beta, epsilon: this.epsilon, activation: this.fusedActivation};
      return this.returnSum ? addLayerNorm(x, residual, {...args, returnSum: true}) : addLayerNorm(x, residual, args);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {...super.getConfig(), returnSum: this.returnSum};
  }
}
