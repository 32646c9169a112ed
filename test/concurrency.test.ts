/**
 * Async use: two models with our layers, trained and run interleaved at every
 * `await`, end exactly where each ends when run alone: no shared or corrupted
 * running statistics, counters or weights.
 */
import * as tf from '@tensorflow/tfjs';
import * as tfn from '../src';
import {describeBackends, weight} from './harness';

const STEPS = 12;

function makeModel(seed: number): tf.Sequential {
  const model = tf.sequential({layers: [
    tf.layers.dense({units: 6, inputShape: [5], kernelInitializer: tf.initializers.glorotUniform({seed})}),
    tfn.layers.batchNorm({momentum: seed === 1 ? 0.1 : null}),
    tf.layers.reshape({targetShape: [3, 2]}), // InstanceNorm needs a spatial axis
    tfn.layers.instanceNorm({axis: -1, affine: true, trackRunningStats: true}),
    tf.layers.flatten(),
    tf.layers.dense({units: 1, kernelInitializer: tf.initializers.glorotUniform({seed: seed + 10})}),
  ]});
  model.compile({optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError'});
  return model;
}

/** Deterministic data per model: different offsets so the running statistics differ. */
function data(model: number, step: number): {x: tf.Tensor; y: tf.Tensor} {
  return {
    x: tf.add(tf.randomNormal([8, 5], 0, 1 + model, 'float32', 100 * model + step), model * 10),
    y: tf.randomNormal([8, 1], 0, 1, 'float32', 1000 * model + step),
  };
}

async function snapshot(model: tf.LayersModel): Promise<number[][]> {
  return Promise.all(model.weights.map(async w => Array.from(await w.read().data())));
}

/** One model's schedule: fit a batch, predict, yield to the event loop (the other model runs there). */
async function run(model: tf.LayersModel, which: number, yieldEach: boolean): Promise<number[]> {
  const predictions: number[] = [];
  for (let s = 0; s < STEPS; s++) {
    const {x, y} = data(which, s);
    await model.fit(x, y, {epochs: 1, batchSize: 8, verbose: 0, shuffle: false});
    if (yieldEach) await new Promise(r => setTimeout(r, 0));
    const p = model.predict(x) as tf.Tensor;
    predictions.push(...(await p.data()));
    tf.dispose([x, y, p]);
    if (yieldEach) await tf.nextFrame();
  }
  return predictions;
}

describeBackends('two models interleaved with await', () => {
  it('train and predict exactly as when run alone', async () => {
    // Alone, one after the other.
    const a1 = makeModel(1);
    const b1 = makeModel(2);
    const predA1 = await run(a1, 1, false);
    const predB1 = await run(b1, 2, false);
    const [wA1, wB1] = [await snapshot(a1), await snapshot(b1)];

    // Interleaved: both schedules in flight, switching at every await.
    const a2 = makeModel(1);
    const b2 = makeModel(2);
    const [predA2, predB2] = await Promise.all([run(a2, 1, true), run(b2, 2, true)]);
    const [wA2, wB2] = [await snapshot(a2), await snapshot(b2)];

    expect(predA2).toEqual(predA1);
    expect(predB2).toEqual(predB1);
    expect(wA2).toEqual(wA1);
    expect(wB2).toEqual(wB1);
    // The statistics really differ between the models (so sharing would have shown).
    const bnA = tfn.BatchNorm.className;
    const statsOf = (m: tf.LayersModel) => weight(m.layers.find(l => l.getClassName() === bnA)!, 'moving_mean')!
        .read().dataSync()[0];
    expect(Math.abs(statsOf(a2) - statsOf(b2))).toBeGreaterThan(1);
    const count = (m: tf.LayersModel) => weight(m.layers.find(l => l.getClassName() === bnA)!, 'num_batches_tracked')!
        .read().dataSync()[0];
    expect([count(a2), count(b2)]).toEqual([STEPS, STEPS]);
    for (const m of [a1, b1, a2, b2]) {
      m.optimizer.dispose();
      m.dispose();
    }
  });
});
