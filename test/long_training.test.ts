/**
 * Long training: 500 `fit` steps of a small CNN with each layer. After the
 * first steps (optimizer slots and other lazily created state), the number of
 * live tensors and their bytes must not change from step to step. Process RSS
 * is printed, not asserted (V8 heap growth is noisy).
 */
import * as tf from '@tensorflow/tfjs';
import {CATALOG, describeBackends, makeLayer} from './harness';

const STEPS = 500;
const WARMUP = 5;
const BATCH = 4;

/** Each layer as it sits in a small model (the catalog's `inModel` arguments). */
const LAYERS = CATALOG.map(info => [`${info.name} ${JSON.stringify(info.inModel)}`, () => makeLayer(info, info.inModel)] as const);

describeBackends('500 fit steps keep memory constant', backend => {
  it.each(LAYERS)('%s', async (name, make) => {
    // The wasm backend has no Conv2DBackpropFilter kernel: there the convolution is frozen
    // (the first layer: no gradient flows into it) and training reaches our layer and the dense.
    const model = tf.sequential({layers: [
      tf.layers.conv2d({filters: 4, kernelSize: 3, inputShape: [5, 5, 1], padding: 'same', trainable: backend !== 'wasm'}),
      make(),
      tf.layers.flatten(),
      tf.layers.dense({units: 2}),
    ]});
    const optimizer = tf.train.sgd(1e-2);
    model.compile({optimizer, loss: 'meanSquaredError'});
    const x = tf.randomNormal([STEPS * BATCH, 5, 5, 1], 0, 1, 'float32', 1);
    const y = tf.randomNormal([STEPS * BATCH, 2], 0, 1, 'float32', 2);
    const samples: Array<{numTensors: number; numBytes: number}> = [];
    const rss0 = process.memoryUsage().rss;
    const start = Date.now();
    const history = await model.fit(x, y, {
      batchSize: BATCH, epochs: 1, shuffle: false, verbose: 0,
      callbacks: {onBatchEnd: async () => {
        const m = tf.memory();
        samples.push({numTensors: m.numTensors, numBytes: m.numBytes});
      }},
    });
    const ms = Date.now() - start;
    expect(samples.length).toBe(STEPS);
    const steady = samples.slice(WARMUP);
    const tensors = new Set(steady.map(s => s.numTensors));
    const bytes = new Set(steady.map(s => s.numBytes));
    const loss = history.history.loss[0] as number;
    // eslint-disable-next-line no-console
    console.log(`${name} [${backend}]: ${STEPS} steps in ${ms} ms; numTensors ${samples[0].numTensors} -> ` +
                `${[...tensors].join('/')}, numBytes ${[...bytes].join('/')}; loss ${loss.toFixed(3)}; RSS ` +
                `${((process.memoryUsage().rss - rss0) / 2 ** 20).toFixed(1)} MiB growth (not asserted)`);
    expect(Number.isFinite(loss)).toBe(true);
    expect([...tensors]).toHaveLength(1);
    expect([...bytes]).toHaveLength(1);
    for (const w of model.getWeights()) expect(Array.from(w.dataSync()).every(Number.isFinite)).toBe(true);
    tf.dispose([x, y]);
    model.dispose();
    optimizer.dispose();
  });
});
