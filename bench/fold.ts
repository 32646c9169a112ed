/**
 * Inference speed of foldBatchNorm's folded models against the unfolded ones
 * (issue 9). Not a test: run it with
 *
 *   npx ts-node --transpile-only bench/fold.ts                 cpu and wasm, median of 10 runs
 *   npx ts-node --transpile-only bench/fold.ts --quick         3 runs, smaller batches (labelled QUICK)
 *   npx ts-node --transpile-only bench/fold.ts --backends wasm --runs 20
 *
 * Prints a markdown table: median predict() time of each model, unfolded and
 * folded, the speed-up, and the largest difference of their outputs.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import * as tfn from '../src';
import {foldBatchNorm} from '../src/tools';

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const argOf = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const BACKENDS = (argOf('--backends') ?? 'cpu,wasm').split(',');
const RUNS = Number(argOf('--runs') ?? (QUICK ? 3 : 10));
const WARMUP = 2;

interface Bench {
  name: string;
  batch: number;
  build: () => tf.LayersModel;
}

/** conv (no bias) -> BatchNorm -> ReLU, channels-last. */
function convBlock(filters: number, strides = 1): tf.layers.Layer[] {
  return [tf.layers.conv2d({filters, kernelSize: 3, strides, padding: 'same', useBias: false}), tfn.layers.batchNorm(),
          tf.layers.reLU()];
}

const BENCHES: Bench[] = [
  {
    name: 'ConvNet 32x32x3: 4 x (conv3x3 + BatchNorm + ReLU), dense + BatchNorm',
    batch: QUICK ? 2 : 8,
    build: () => tf.sequential({layers: [
      tf.layers.inputLayer({inputShape: [32, 32, 3]}),
      ...convBlock(16), ...convBlock(32, 2), ...convBlock(32), ...convBlock(64, 2),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({units: 64}), tfn.layers.batchNorm(), tf.layers.reLU(),
      tf.layers.dense({units: 10}),
    ]}),
  },
  {
    name: 'MobileNet-style 32x32x16: 3 x (depthwise3x3 + BN + ReLU, conv1x1 + BN + ReLU)',
    batch: QUICK ? 2 : 8,
    build: () => tf.sequential({layers: [
      tf.layers.inputLayer({inputShape: [32, 32, 16]}),
      ...[32, 64, 64].flatMap(filters => [
        tf.layers.depthwiseConv2d({kernelSize: 3, padding: 'same', useBias: false}), tfn.layers.batchNorm(),
        tf.layers.reLU(),
        tf.layers.conv2d({filters, kernelSize: 1, useBias: false}), tfn.layers.batchNorm(), tf.layers.reLU(),
      ]),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({units: 10}),
    ]}),
  },
  {
    name: 'MLP 256: 3 x (dense + BatchNorm + ReLU)',
    batch: QUICK ? 32 : 256,
    build: () => tf.sequential({layers: [
      tf.layers.inputLayer({inputShape: [256]}),
      ...[256, 256, 256].flatMap(units => [tf.layers.dense({units}), tfn.layers.batchNorm(), tf.layers.reLU()]),
      tf.layers.dense({units: 10}),
    ]}),
  },
];

/** Non-trivial running statistics and affine weights, as after training. */
function randomizeNorms(model: tf.LayersModel): void {
  tf.tidy(() => {
    let seed = 1;
    for (const layer of model.layers) {
      for (const w of layer.weights) {
        const short = w.originalName.slice(w.originalName.lastIndexOf('/') + 1);
        const u = (lo: number, hi: number) => tf.randomUniform(w.shape as number[], lo, hi, 'float32', seed++);
        if (short === 'moving_mean' || short === 'beta') w.write(u(-0.5, 0.5));
        else if (short === 'moving_variance') w.write(u(0.5, 2));
        else if (short === 'gamma') w.write(u(0.8, 1.2));
      }
    }
  });
}

function median(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function timeOnce(model: tf.LayersModel, x: tf.Tensor): Promise<number> {
  const t0 = performance.now();
  const y = model.predict(x) as tf.Tensor;
  await y.data();
  const t = performance.now() - t0;
  y.dispose();
  return t;
}

/** Median ms of each model, runs interleaved so that machine load drifts hit both alike. */
async function medianMs(models: tf.LayersModel[], x: tf.Tensor): Promise<number[]> {
  const times = models.map(() => [] as number[]);
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (let m = 0; m < models.length; m++) {
      const t = await timeOnce(models[m], x);
      if (i >= WARMUP) times[m].push(t);
    }
  }
  return times.map(median);
}

async function main(): Promise<void> {
  tf.enableProdMode();
  const rows: string[] = [];
  for (const backend of BACKENDS) {
    await tf.setBackend(backend);
    await tf.ready();
    for (const bench of BENCHES) {
      const model = bench.build();
      randomizeNorms(model);
      const t0 = performance.now();
      const {model: folded, report} = await foldBatchNorm(model);
      const foldMs = performance.now() - t0;
      const inputShape = model.inputs[0].shape.slice(1) as number[];
      const x = tf.randomNormal([bench.batch, ...inputShape], 0, 1, 'float32', 7);
      const diff = tf.tidy(() => {
        const a = model.predict(x) as tf.Tensor;
        const b = folded.predict(x) as tf.Tensor;
        return tf.div(tf.max(tf.abs(tf.sub(a, b))), tf.max(tf.abs(a))).dataSync()[0];
      });
      const [unfoldedMs, foldedMs] = await medianMs([model, folded], x);
      rows.push(`| ${bench.name} | ${bench.batch} | ${backend} | ${report.folded.length} | ${unfoldedMs.toFixed(2)} | ` +
                `${foldedMs.toFixed(2)} | ${(unfoldedMs / foldedMs).toFixed(2)}x | ${diff.toExponential(1)} | ` +
                `${foldMs.toFixed(0)} |`);
      console.error(rows[rows.length - 1]);
      x.dispose();
      folded.dispose();
      model.dispose();
    }
  }
  console.log(`\nfoldBatchNorm: predict() median of ${RUNS} runs (after ${WARMUP} warm-up)` +
              `${QUICK ? ', QUICK (small batches, 3 runs: not for reporting)' : ''}\n`);
  console.log('| model | batch | backend | norms folded | unfolded ms | folded ms | speed-up | ' +
              'max rel. diff | fold ms |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  rows.forEach(r => console.log(r));
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
