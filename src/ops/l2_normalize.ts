import * as tf from '@tensorflow/tfjs';
import {checkInput, resolveAxes} from '../validate';

/** The floor of the sum of squares, tf.math.l2_normalize's epsilon. */
const L2_EPSILON = 1e-12;

/**
 * `tf.math.l2_normalize`: y = x / sqrt(max(sum(x^2 over axis), 1e-12)), so
 * each slice along `axis` gets L2 norm 1. Autodiff gives the gradient.
 * Internal: the Keras-compatible UnitNormalization calls it. Default axis -1.
 */
export function l2Normalize(x: tf.Tensor, axis: number | number[] = -1, owner = 'l2Normalize'): tf.Tensor {
  checkInput(owner, x, 1);
  const axes = resolveAxes(owner, axis, x.rank);
  return tf.tidy(() => tf.mul(x, tf.rsqrt(tf.maximum(tf.sum(tf.square(x), axes, true), L2_EPSILON))));
}
