import * as tf from '@tensorflow/tfjs';
import {momentsOps} from '../engine/op_path';
import {axesPlan} from '../engine/plan';
import {checkInput, resolveAxes} from '../validate';

/**
 * Mean and biased variance of `x` over `axes`, computed with the shifted
 * two-pass algorithm (accurate for data with a large common offset, unlike
 * E[x^2] - E[x]^2). Differentiable by autodiff. Default keepDims false.
 *
 * ```js
 * const {mean, variance} = tfn.ops.moments(x, [0, 1, 2]);   // per channel of [N, H, W, C]
 * ```
 */
export function moments(x: tf.Tensor, axes: number | number[], keepDims = false): {
  /** Mean over `axes`. */
  mean: tf.Tensor;
  /** Biased (population) variance over `axes`. */
  variance: tf.Tensor;
} {
  const owner = 'moments';
  checkInput(owner, x, 1);
  const resolved = resolveAxes(owner, axes, x.rank, 'axes');
  return tf.tidy(() => {
    const plan = axesPlan(x.shape, resolved);
    const {mean, variance} = momentsOps(tf.reshape(x, plan.shape), plan);
    const outShape = keepDims ? x.shape.map((d, i) => (resolved.includes(i) ? 1 : d))
                              : x.shape.filter((_, i) => !resolved.includes(i));
    return {mean: tf.reshape(mean, outShape), variance: tf.reshape(variance, outShape)};
  });
}
