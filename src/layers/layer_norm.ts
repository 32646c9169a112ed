import * as tf from '@tensorflow/tfjs';
import {ValueError, checkBoolean, checkLayerArgs, show} from '../errors';
import {layerNorm, normalizedShape} from '../ops/layer_norm';
import {resolveAxes} from '../ops/plan';
import {AFFINE_KEYS, AffineArgs, BuildSpec, NormLayer, checkRank, knownDim} from './base';

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
    args = checkLayerArgs(args, ['axis', 'bias', ...AFFINE_KEYS], 'LayerNorm');
    super(args, {affine: true, beta: 'arg'});
    this.axis = checkAxesArg(args.axis ?? -1);
    this.bias = checkBoolean(args.bias ?? true, 'bias');
  }

  protected resolveShape(shape: Array<number | null>): BuildSpec {
    return normalizedAxesSpec(shape, this.axis, 'LayerNorm');
  }

  protected forward(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, {axis: this.axis, gamma: this.gammaTensor(), beta: this.betaTensor(), epsilon: this.epsilon});
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {axis: this.axis, bias: this.bias, ...super.getConfig()};
  }
}
tf.serialization.registerClass(LayerNorm);

/** Constructor check of a normalized-axes argument (range is checked at build). */
export function checkAxesArg(axis: unknown): number | number[] {
  const list = Array.isArray(axis) ? axis : [axis];
  if (list.length === 0 || !list.every(a => Number.isInteger(a))) {
    throw new ValueError(`\`axis\` must be an integer or a non-empty list of integers. Received: axis=${show(axis)}`);
  }
  return Array.isArray(axis) ? [...axis] : (axis as number);
}

/** Build spec of layers whose weights have the normalized dims' shape (LayerNorm, RMSNorm). */
export function normalizedAxesSpec(shape: Array<number | null>, axis: number | number[], layer: string): BuildSpec {
  checkRank(shape, 2, layer, '[batch, ...features]');
  const axes = resolveAxes(axis, shape.length);
  if (axes.includes(0)) {
    throw new ValueError(`${layer} cannot normalize over the batch axis 0 (its weights need a fixed shape); ` +
                         `use the ops function for that. Received: axis=${show(axis)}`);
  }
  const fixedAxes: {[axis: number]: number} = {};
  axes.forEach(a => (fixedAxes[a] = knownDim(shape, a, layer, 'normalized axis')));
  return {paramShape: normalizedShape(shape as number[], axes), fixedAxes};
}
