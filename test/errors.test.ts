/**
 * Bad input: each gives a ValueError naming the argument, what was received
 * and what was expected, at construction or build, never a wrong answer.
 */
import * as tf from '@tensorflow/tfjs';
import * as tfn from '../src';
import {describeBackends, noLeak} from './harness';

function expectValueError(fn: () => unknown, ...fragments: Array<string | RegExp>): void {
  let error: unknown = null;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(tfn.ValueError);
  const message = (error as Error).message;
  for (const f of fragments) {
    if (typeof f === 'string') expect(message).toContain(f);
    else expect(message).toMatch(f);
  }
}

describe('constructor arguments', () => {
  it.each<[string, () => unknown, ...string[]]>([
    ['GroupNorm without numGroups', () => new tfn.GroupNorm({} as tfn.GroupNormArgs), 'numGroups', 'Received: numGroups=undefined'],
    ['numGroups 0', () => tfn.layers.groupNorm({numGroups: 0}), 'positive integer', 'Received: numGroups=0'],
    ['numGroups 2.5', () => tfn.layers.groupNorm({numGroups: 2.5}), 'Received: numGroups=2.5'],
    ['epsilon 0', () => tfn.layers.batchNorm({epsilon: 0}), '`epsilon` must be a finite number > 0', 'Received: epsilon=0'],
    ['epsilon -1', () => tfn.layers.layerNorm({epsilon: -1}), 'Received: epsilon=-1'],
    ['epsilon NaN', () => tfn.layers.instanceNorm({epsilon: NaN}), 'Received: epsilon=NaN'],
    ['momentum 1.5', () => tfn.layers.batchNorm({momentum: 1.5}), '[0, 1]', 'Received: momentum=1.5'],
    ['momentum -0.1', () => tfn.layers.instanceNorm({momentum: -0.1}), 'Received: momentum=-0.1'],
    ['momentum string', () => tfn.layers.batchNorm({momentum: '0.1' as unknown as number}), 'Received: momentum="0.1"'],
    ['axis 0 (batch)', () => tfn.layers.batchNorm({axis: 0}), 'channel axis', 'Received: axis=0'],
    ['axis 1.5', () => tfn.layers.groupNorm({numGroups: 1, axis: 1.5}), 'Received: axis=1.5'],
    ['LayerNorm axis []', () => tfn.layers.layerNorm({axis: []}), 'Received: axis=[]'],
    ['affine not boolean', () => tfn.layers.batchNorm({affine: 'yes' as unknown as boolean}), 'Received: affine="yes"'],
    ['unknown initializer', () => tfn.layers.batchNorm({gammaInitializer: 'sparkly' as never}),
     'gammaInitializer', 'Received: gammaInitializer="sparkly"'],
    ['LRN without size', () => new tfn.LocalResponseNorm({} as tfn.LocalResponseNormArgs), 'Received: size=undefined'],
    ['LRN size 0', () => tfn.layers.localResponseNorm({size: 0}), 'Received: size=0'],
    ['RMSNorm epsilon 0', () => tfn.layers.rmsNorm({epsilon: 0}), 'Received: epsilon=0'],
  ])('%s', (_, fn, ...fragments) => expectValueError(fn, ...fragments));

  it('accepts momentum null (cumulative average) and the documented defaults', () => {
    const bn = tfn.layers.batchNorm({momentum: null});
    expect(bn.momentum).toBeNull();
    const d = tfn.layers.batchNorm();
    expect([d.momentum, d.epsilon, d.affine, d.trackRunningStats, d.axis]).toEqual([0.1, 1e-5, true, true, -1]);
    const i = tfn.layers.instanceNorm();
    expect([i.momentum, i.epsilon, i.affine, i.trackRunningStats]).toEqual([0.1, 1e-5, false, false]);
  });
});

describeBackends('input checks', () => {
  const cases: Array<[string, () => tf.layers.Layer, number[], Array<string | RegExp>, boolean?, string?]> = [
    ['numGroups not dividing C', () => tfn.layers.groupNorm({numGroups: 4}), [2, 3, 6], ['divide', '(6)', 'Received: numGroups=4']],
    ['axis out of range', () => tfn.layers.batchNorm({axis: 3}), [2, 3, 4], ['[-2, 2]', 'Received: axis=3']],
    ['negative axis reaching the batch axis', () => tfn.layers.batchNorm({axis: -3}), [2, 3, 4], ['Received: axis=-3']],
    ['BatchNorm rank 1', () => tfn.layers.batchNorm(), [5], ['rank >= 2', 'Received: input shape=[5]']],
    ['InstanceNorm rank 2', () => tfn.layers.instanceNorm(), [2, 5], ['rank >= 3', 'Received: input shape=[2, 5]']],
    ['LayerNorm over the batch axis', () => tfn.layers.layerNorm({axis: [0, 1]}), [2, 5], ['batch axis', 'Received: axis=[0, 1]']],
    ['LayerNorm axis out of range', () => tfn.layers.layerNorm({axis: -3}), [2, 5], ['Received: axis=-3']],
    ['BatchNorm one value per channel', () => tfn.layers.batchNorm(), [1, 4],
     ['Expected more than 1 value per channel when training', 'Received: input shape=[1, 4]'], true],
    ['InstanceNorm one spatial element', () => tfn.layers.instanceNorm({axis: 1}), [3, 4, 1],
     ['Expected more than 1 spatial element', 'Received: input shape=[3, 4, 1]'], true],
    ['int32 input', () => tfn.layers.layerNorm(), [2, 4], ['float32', 'Received: dtype="int32"'], false, 'int32'],
    ['bool input', () => tfn.layers.batchNorm(), [2, 4], ['float32', 'Received: dtype="bool"'], true, 'bool'],
  ];
  it.each(cases)('%s', async (_, make, shape, fragments, training = false, dtype = 'float32') => {
    await noLeak(() => {
      const layer = make();
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
