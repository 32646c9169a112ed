import * as tf from '@tensorflow/tfjs';
import {ValueError, show} from '../errors';
import {NormPlan} from './plan';

/**
 * Checks an optional per-parameter tensor (gamma, beta, mean, variance) has
 * `expected` shape and returns it reshaped to the plan's paramShape.
 */
export function paramTensor(t: tf.Tensor | null | undefined, expected: number[], plan: NormPlan,
                            name: string, op: string): tf.Tensor | null {
  if (t == null) return null;
  if (!(t instanceof tf.Tensor)) throw new ValueError(`${op}: \`${name}\` must be a tf.Tensor. Received: ${name}=${show(t)}`);
  if (t.size !== expected.reduce((a, b) => a * b, 1) ||
      (t.rank !== expected.length && t.rank !== 1)) {
    throw new ValueError(`${op}: \`${name}\` must have shape ${show(expected)}. Received: ${name}.shape=${show(t.shape)}`);
  }
  if (t.dtype !== 'float32') {
    throw new ValueError(`${op}: \`${name}\` must be float32. Received: ${name}.dtype=${show(t.dtype)}`);
  }
  return tf.reshape(t, plan.paramShape);
}

export function checkInput(x: tf.Tensor, op: string, minRank: number): void {
  if (!(x instanceof tf.Tensor)) throw new ValueError(`${op}: \`x\` must be a tf.Tensor. Received: x=${show(x)}`);
  if (x.dtype !== 'float32') {
    throw new ValueError(`${op}: \`x\` must be float32; cast it with tf.cast(x, 'float32'). Received: x.dtype=${show(x.dtype)}`);
  }
  if (x.rank < minRank) {
    throw new ValueError(`${op}: \`x\` must have rank >= ${minRank}. Received: x.shape=${show(x.shape)}`);
  }
}

/** Resolves the channel axis of an op whose axis 0 is the batch axis. */
export function channelAxisOf(axis: unknown, rank: number, op: string): number {
  if (typeof axis !== 'number' || !Number.isInteger(axis) || axis < -rank || axis >= rank || axis === 0 || axis === -rank) {
    throw new ValueError(
      `${op}: \`axis\` (the channel axis) must be an integer in [${-rank + 1}, ${rank - 1}] other than the batch axis 0 ` +
      `for an input of rank ${rank}. Received: axis=${show(axis)}`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** tf.tidy for functions returning an object of tensors mixed with numbers/nulls. */
export function tidyObject<T extends object>(fn: () => T): T {
  return tf.tidy(() => fn() as unknown as tf.TensorContainer) as unknown as T;
}
