/**
 * BatchNorm's edge cases against PyTorch's behaviour: only one of
 * mean/variance given is an error (PyTorch: "running_var must be defined in
 * evaluation mode"), and an empty batch gives an empty output with no
 * statistic update (PyTorch returns an empty tensor).
 */
import * as tf from '@tensorflow/tfjs';
import * as tfn from '../src';
import {describeBackends, noLeak, weight} from './harness';

describeBackends('BatchNorm edge cases', () => {
  it('ops.batchNorm with mean but no variance (or the reverse) names the missing argument', async () => {
    await noLeak(() => {
      const x = tf.ones([4, 3]);
      const s = tf.ones([3]);
      expect(() => tfn.ops.batchNorm(x, {mean: s})).toThrow(/batchNorm: `variance` must be given with `mean`.*Received: variance=/);
      expect(() => tfn.ops.batchNorm(x, {variance: s})).toThrow(/batchNorm: `mean` must be given with `variance`.*Received: mean=/);
      expect(() => tfn.ops.batchNorm(x, {mean: s, variance: null})).toThrow(tfn.ValueError);
      // training: true uses batch statistics and ignores them, as PyTorch's F.batch_norm(training=True).
      tf.dispose(tfn.ops.batchNorm(x, {mean: s, training: true}));
      tf.dispose([x, s]);
    });
  });

  it('an empty batch gives an empty output, gradients of the right shapes, and no statistic update', async () => {
    await noLeak(() => {
      const bn = tfn.layers.batchNorm();
      const x = tf.zeros([0, 4, 4, 3]);
      const y = bn.apply(x, {training: true}) as tf.Tensor;
      expect(y.shape).toEqual([0, 4, 4, 3]);
      expect(Array.from(weight(bn, 'num_batches_tracked')!.read().dataSync())).toEqual([0]);
      expect(Array.from(weight(bn, 'moving_mean')!.read().dataSync())).toEqual([0, 0, 0]);
      const {value, grads} = tf.variableGrads(() => tf.sum(bn.apply(x, {training: true}) as tf.Tensor) as tf.Scalar,
                                       bn.trainableWeights.map(w => (w as unknown as {val: tf.Variable}).val));
      for (const g of Object.values(grads)) expect(Array.from(g.dataSync())).toEqual([0, 0, 0]);
      const dx = tf.grad(t => tfn.ops.batchNorm(t, {training: true}))(x);
      expect(dx.shape).toEqual([0, 4, 4, 3]);
      tf.dispose([x, y, dx, value, ...Object.values(grads)]);
      bn.dispose();
    });
  });
});
