/**
 * Keras' fine-tuning rule however a layer is frozen: directly, through an
 * enclosing Sequential or functional model, at any depth, and after
 * unfreezing again. A frozen BatchNorm/InstanceNorm runs in inference mode
 * inside fit: running statistics and num_batches_tracked stay, and the loss
 * fit reports equals evaluate's.
 */
import * as tf from '@tensorflow/tfjs';
import * as tfn from '../src';
import {describeBackends, noLeak, weight} from './harness';

const values = (layer: tf.layers.Layer, name: string) => Array.from(weight(layer, name)!.read().dataSync());

/** A small base model with our norms (BatchNorm with running stats, InstanceNorm with running stats). */
function makeBase(kind: 'sequential' | 'functional'): {base: tf.LayersModel; norms: tfn.NormLayer[]} {
  const bn = tfn.layers.batchNorm();
  const inorm = tfn.layers.instanceNorm({trackRunningStats: true, affine: true});
  if (kind === 'sequential') {
    const base = tf.sequential({layers: [tf.layers.dense({units: 4, inputShape: [3, 2]}), bn, inorm]});
    return {base, norms: [bn, inorm]};
  }
  const input = tf.input({shape: [3, 2]});
  const h = tf.layers.dense({units: 4}).apply(input) as tf.SymbolicTensor;
  const out = inorm.apply(bn.apply(h)) as tf.SymbolicTensor;
  return {base: tf.model({inputs: input, outputs: out}), norms: [bn, inorm]};
}

/** Wraps `inner` in `depth` more Sequential models, then a head; returns the top model. */
function wrap(inner: tf.LayersModel, depth: number): tf.Sequential {
  let model: tf.LayersModel = inner;
  for (let i = 0; i < depth; i++) model = tf.sequential({layers: [model]});
  return tf.sequential({layers: [model, tf.layers.flatten(), tf.layers.dense({units: 1})]});
}

/** One epoch of fit with learning rate 0; returns fit's loss and evaluate's loss on the same data. */
async function fitOnce(model: tf.Sequential): Promise<{fitLoss: number; evalLoss: number}> {
  const optimizer = tf.train.sgd(0);
  model.compile({optimizer, loss: 'meanSquaredError'});
  const x = tf.randomNormal([8, 3, 2], 2, 3, 'float32', 11);
  const y = tf.randomNormal([8, 1], 0, 1, 'float32', 12);
  const h = await model.fit(x, y, {epochs: 1, batchSize: 8, verbose: 0, shuffle: false});
  const e = model.evaluate(x, y, {batchSize: 8}) as tf.Scalar;
  const evalLoss = (await e.data())[0];
  tf.dispose([x, y, e]);
  optimizer.dispose();
  return {fitLoss: h.history.loss[0] as number, evalLoss};
}

describeBackends('freezing through enclosing models', () => {
  for (const kind of ['sequential', 'functional'] as const) {
    for (const depth of [0, 2]) {
      it(`${kind} base frozen inside ${depth} more model(s): inference mode in fit; unfrozen: training again`, async () => {
        await noLeak(async () => {
          const {base, norms} = makeBase(kind);
          const model = wrap(base, depth);
          const before = norms.map(n => values(n, 'moving_mean'));
          base.trainable = false;
          const frozen = await fitOnce(model);
          for (const [i, n] of norms.entries()) {
            expect(values(n, 'num_batches_tracked')).toEqual([0]);
            expect(values(n, 'moving_mean')).toEqual(before[i]);
            expect(n.trainable).toBe(true); // the layer's own flag is untouched
          }
          // Inference mode in fit: the same loss as evaluate (running statistics both times).
          expect(Math.abs(frozen.fitLoss - frozen.evalLoss)).toBeLessThan(1e-5 * Math.max(1, frozen.evalLoss));

          base.trainable = true;
          const unfrozen = await fitOnce(model);
          for (const n of norms) expect(values(n, 'num_batches_tracked')).toEqual([1]);
          // Batch statistics in fit now: the loss differs from inference's.
          expect(Math.abs(unfrozen.fitLoss - frozen.evalLoss)).toBeGreaterThan(1e-3);
          model.dispose();
        });
      });
    }
  }

  it('a middle model frozen freezes the norms below it, not an unfrozen sibling', async () => {
    await noLeak(async () => {
      const {base, norms} = makeBase('sequential');
      const middle = tf.sequential({layers: [base]});
      const sibling = tfn.layers.batchNorm();
      const model = tf.sequential({layers: [middle, sibling, tf.layers.flatten(), tf.layers.dense({units: 1})]});
      middle.trainable = false;
      await fitOnce(model);
      for (const n of norms) expect(values(n, 'num_batches_tracked')).toEqual([0]);
      expect(values(sibling, 'num_batches_tracked')).toEqual([1]);
      // Unfreezing an inner model does not override the frozen outer one.
      base.trainable = true;
      await fitOnce(model);
      for (const n of norms) expect(values(n, 'num_batches_tracked')).toEqual([0]);
      middle.trainable = true;
      await fitOnce(model);
      for (const n of norms) expect(values(n, 'num_batches_tracked')).toEqual([1]);
      model.dispose();
    });
  });
});
