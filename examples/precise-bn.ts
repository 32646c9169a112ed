/**
 * Precise BatchNorm: running statistics tracked with a small momentum lag
 * behind data whose distribution drifted during training, so inference (which
 * uses them) is poor although the weights are fine. recomputeBatchNormStats
 * replaces them with the average over batches of the current data, like
 * PyTorch's torch.optim.swa_utils.update_bn; no weight changes.
 *
 *   npx ts-node --transpile-only examples/precise-bn.ts           (cpu, ~10 s)
 *   npx ts-node --transpile-only examples/precise-bn.ts --quick   (fewer steps, ~3 s)
 *   ... --backend wasm
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import * as tfn from '../src';
import {recomputeBatchNormStats} from '../src/tools';

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const BACKEND = argv.includes('--backend') ? argv[argv.indexOf('--backend') + 1] : 'cpu';
const F = 8;
const BATCH = 64;
const STEPS = QUICK ? 120 : 400;

/**
 * Samples at training progress t in [0, 1]: the class is the sign of a fixed
 * projection of z ~ N(0, 1), and the features seen are z * scale(t) + offset(t)
 * with the offset drifting from 0 to 4 and the scale from 1 to 3 (a sensor
 * whose calibration moved while data was collected).
 */
function sample(n: number, t: number, seed: number): {xs: tf.Tensor2D; ys: tf.Tensor2D} {
  return tf.tidy(() => {
    const z = tf.randomNormal([n, F], 0, 1, 'float32', seed);
    const w = tf.linspace(-1, 1.5, F).reshape([F, 1]);
    const label = tf.cast(tf.greater(tf.matMul(z, w), 0), 'int32').reshape([n]);
    const xs = tf.add(tf.mul(z, 1 + 2 * t), 4 * t) as tf.Tensor2D;
    return {xs, ys: tf.oneHot(label, 2) as tf.Tensor2D};
  });
}

function accuracy(model: tf.LayersModel, data: {xs: tf.Tensor2D; ys: tf.Tensor2D}): number {
  return tf.tidy(() => {
    const predicted = (model.predict(data.xs) as tf.Tensor).argMax(1);
    return tf.mean(tf.cast(tf.equal(predicted, data.ys.argMax(1)), 'float32')).dataSync()[0];
  });
}

async function main(): Promise<void> {
  tf.enableProdMode();
  await tf.setBackend(BACKEND);
  await tf.ready();
  const start = Date.now();
  const model = tf.sequential({layers: [
    tf.layers.dense({units: 32, inputShape: [F], useBias: false}),
    tfn.layers.batchNorm({momentum: 0.002}),
    tf.layers.reLU(),
    tf.layers.dense({units: 32, useBias: false}),
    tfn.layers.batchNorm({momentum: 0.002}),
    tf.layers.reLU(),
    tf.layers.dense({units: 2, activation: 'softmax'}),
  ]});
  model.compile({optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy'});

  // Training on the drifting stream, one batch per step.
  for (let step = 0; step < STEPS; step++) {
    const {xs, ys} = sample(BATCH, step / (STEPS - 1), step);
    await model.trainOnBatch(xs, ys);
    tf.dispose([xs, ys]);
  }

  // Held-back split and calibration batches, both from the current (final) distribution.
  const heldBack = sample(2000, 1, 100000);
  const calibration = Array.from({length: 20}, (_, i) => sample(BATCH, 1, 200000 + i));
  const before = accuracy(model, heldBack);
  const result = await recomputeBatchNormStats(model, calibration, {
    onProgress: (done, total) => { if (done % 10 === 0) console.log(`  recomputed over ${done}/${total} batches`); },
  });
  const after = accuracy(model, heldBack);

  console.log(`backend ${BACKEND}${QUICK ? ' (--quick)' : ''}: ${STEPS} training steps on drifting data, ` +
              `BatchNorm momentum 0.002`);
  console.log(`held-back accuracy with the tracked running statistics:    ${(100 * before).toFixed(1)}%`);
  console.log(`held-back accuracy after recomputeBatchNormStats (${result.batches} batches, ` +
              `${result.layers.length} layers): ${(100 * after).toFixed(1)}%`);
  console.log(`(${((Date.now() - start) / 1000).toFixed(1)} s)`);
  tf.dispose([heldBack.xs, heldBack.ys, ...calibration.flatMap(b => [b.xs, b.ys])]);
  model.dispose();
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
