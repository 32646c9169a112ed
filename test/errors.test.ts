/**
 * Bad input: each gives a ValueError naming the argument, what was received
 * and what was expected, at construction or build, never a wrong answer.
 */
import * as tf from '@tensorflow/tfjs';
import * as tfn from '../src';
import {CATALOG, describeBackends, expectValueError, makeLayer, noLeak} from './harness';

describe('constructor arguments', () => {
  it.each(CATALOG.flatMap(info => info.badArgs.map(([what, args, fragments]) =>
    [`${info.name}: ${what}`, () => makeLayer(info, args), fragments] as const)))('%s', (_, make, fragments) => {
    expectValueError(make, ...fragments);
  });

  it('accepts momentum null (cumulative average)', () => {
    expect(tfn.layers.batchNorm({momentum: null}).momentum).toBeNull();
  });

  it.each(CATALOG.map(info => [info.name, info] as const))('%s has the documented defaults', (_, info) => {
    const layer = makeLayer(info) as unknown as Record<string, unknown>;
    const keys = Object.keys(info.defaults);
    expect(keys.map(k => layer[k])).toEqual(keys.map(k => info.defaults[k]));
  });
});

describeBackends('input checks', () => {
  const cases = CATALOG.flatMap(info => info.badInputs.map(([what, args, shape, fragments, training, dtype]) =>
    [`${info.name}: ${what}`, info, args, shape, fragments, training, dtype] as const));
  it.each(cases)('%s', async (_, info, args, shape, fragments, training, dtype) => {
    await noLeak(() => {
      const layer = makeLayer(info, args);
      const x = tf.zeros(shape, dtype as tf.DataType);
      expectValueError(() => layer.apply(x, {training}), ...fragments);
      x.dispose();
      (layer as unknown as {disposeWeights(): void}).disposeWeights();
    });
  });

  it('a BatchNorm of one sample works in inference with running statistics', async () => {
    await noLeak(() => {
      const layer = tfn.layers.batchNorm();
      const x = tf.ones([1, 4]);
      const y = layer.apply(x) as tf.Tensor;
      expect(Array.from(y.dataSync()).every(v => Math.abs(v - 1 / Math.sqrt(1 + 1e-5)) < 1e-6)).toBe(true);
      tf.dispose([x, y]);
      (layer as unknown as {disposeWeights(): void}).disposeWeights();
    });
  });

  it('ops name their arguments too', async () => {
    await noLeak(() => {
      const x = tf.ones([2, 3, 4]);
      expectValueError(() => tfn.ops.groupNorm(x, {numGroups: 3}), 'Received: numGroups=3');
      const gamma = tf.ones([3]);
      expectValueError(() => tfn.ops.batchNorm(x, {gamma}), 'gamma', 'Received: gamma.shape=[3]');
      gamma.dispose();
      expectValueError(() => tfn.ops.layerNorm(x, {axis: [1, 1]}), 'Received: axis=[1, 1]');
      expectValueError(() => tfn.ops.moments(x, 5), 'Received: axes=5');
      expectValueError(() => tfn.ops.localResponseNorm(x, {size: 2, k: -1}), 'Received: k=-1');
      x.dispose();
    });
  });
});
