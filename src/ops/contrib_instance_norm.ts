import * as tf from '@tensorflow/tfjs';
import {checkEpsilon, checkInput, checkParamTensor, fail, resolveChannelAxis} from '../validate';
import {moments} from './moments';

/** Arguments of {@link contribInstanceNorm}. */
export interface ContribInstanceNormOpArgs {
  /** The channel axis, kept out of the statistics; null: each sample over all its axes. Default null. */
  axis?: number | null;
  /** Scale: [C] along `axis`, or [1] with axis null. */
  gamma?: tf.Tensor | null;
  /** Offset, shaped as gamma. */
  beta?: tf.Tensor | null;
  /** Added to the standard deviation (not the variance). Default 1e-3. */
  epsilon?: number;
}

/**
 * keras-contrib's `InstanceNormalization` math:
 * y = (x - mean) / (std + epsilon) * gamma + beta, with the mean and biased
 * std of each sample over every axis but the batch axis and `axis`. Unlike
 * the other ops, epsilon is added to the standard deviation, so this is not
 * a plan for the shared engine; autodiff gives the gradient. Internal: the
 * Keras-compatible InstanceNormalization calls it. Defaults: axis null,
 * epsilon 1e-3, no gamma/beta.
 */
export function contribInstanceNorm(x: tf.Tensor, args: ContribInstanceNormOpArgs = {},
                                    owner = 'contribInstanceNorm'): tf.Tensor {
  checkInput(owner, x, 2);
  const axis = args.axis == null ? null : resolveChannelAxis(owner, args.axis, x.rank);
  const epsilon = checkEpsilon(owner, args.epsilon ?? 1e-3);
  const reductionAxes = x.shape.map((_, i) => i).filter(i => i !== 0 && i !== axis);
  if (reductionAxes.length === 0) {
    fail(owner, '`axis` leaves no axis to normalize over (the input has rank 2)', 'axis', args.axis);
  }
  const paramShape = axis === null ? [1] : [x.shape[axis]];
  const gamma = checkParamTensor(owner, args.gamma, paramShape, 'gamma');
  const beta = checkParamTensor(owner, args.beta, paramShape, 'beta');
  const broadcast = x.shape.map((d, i) => (i === axis ? d : 1));
  return tf.tidy(() => {
    const {mean, variance} = moments(x, reductionAxes, true);
    let y = tf.div(tf.sub(x, mean), tf.add(tf.sqrt(variance), epsilon));
    if (gamma) y = tf.mul(y, tf.reshape(gamma, broadcast));
    if (beta) y = tf.add(y, tf.reshape(beta, broadcast));
    return y;
  });
}
