import * as tf from '@tensorflow/tfjs';
import {layerNorm} from '../ops/layer_norm';
import {checkAxesArg, checkBoolean, checkLayerArgs, checkRank, fail, knownDim, resolveAxes} from '../validate';
import {AFFINE_KEYS, AffineArgs, BatchNormalized, BuildSpec, NormLayer} from './base';

export interface LayerNormArgs extends AffineArgs {
  /**
   * Normalized axes. Default -1. PyTorch's normalized_shape of k dims is
   * [-k, ..., -1]. The batch axis cannot be normalized by the layer (its
   * weights need a fixed shape); ops.layerNorm allows it.
   */
  axis?: number | number[];
  /** Learn `beta` too (when affine). Default true. */
  bias?: boolean;
}

/**
 * PyTorch's `nn.LayerNorm`: each sample is normalized over `axis`; gamma and
 * beta have the normalized dims' shape. Same in training and inference.
 *
 * Defaults: axis -1, epsilon 1e-5 (tf.layers.layerNormalization: 1e-3),
 * affine true, bias true. Weights: gamma, beta (normalized dims' shape).
 *
 * ```js
 * const ln = tfn.layers.layerNorm();                    // [N, T, D]: over D, like nn.LayerNorm(D)
 * const ln2 = tfn.layers.layerNorm({axis: [-3, -2, -1]}); // [N, H, W, C]: over H, W, C
 * ```
 */
export class LayerNorm extends NormLayer {
  /** The class name used for serialization (model.json's `class_name`). */
  static className = 'LayerNorm';
  /** The normalized axes argument (default -1). */
  readonly axis: number | number[];
  /** Whether the layer learns `beta` (when affine). Default true. */
  readonly bias: boolean;

  constructor(args: LayerNormArgs = {}) {
    args = checkLayerArgs('LayerNorm', args, ['axis', 'bias', ...AFFINE_KEYS]);
    super(args, {affine: true, beta: checkBoolean('LayerNorm', args.bias ?? true, 'bias')});
    this.axis = checkAxesArg('LayerNorm', args.axis ?? -1);
    this.bias = args.bias ?? true;
  }

  protected resolveShape(shape: Array<number | null>): BuildSpec {
    return normalizedAxesSpec('LayerNorm', shape, this.axis);
  }

  protected normalizeBatch(x: tf.Tensor): BatchNormalized {
    return {output: layerNorm(x, {axis: this.axis, ...this.affineTensors(), epsilon: this.epsilon,
                                  activation: this.fusedActivation})};
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {axis: this.axis, bias: this.bias, ...super.getConfig()};
  }
}

/** Build spec of layers whose weights have the normalized dims' shape (LayerNorm, RMSNorm). */
export function normalizedAxesSpec(owner: string, shape: Array<number | null>, axis: number | number[]): BuildSpec {
  checkRank(owner, shape, 2, '[batch, ...features]');
  const axes = resolveAxes(owner, axis, shape.length);
  if (axes.includes(0)) {
    fail(owner, 'cannot normalize over the batch axis 0 (its weights need a fixed shape); use the ops function for that',
         'axis', axis);
  }
  const fixedAxes: {[axis: number]: number} = {};
  const paramShape = axes.map(a => (fixedAxes[a] = knownDim(owner, shape, a, 'normalized axis')));
  return {paramShape, fixedAxes};
}
