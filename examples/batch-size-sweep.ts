/**
 * The Group Normalization paper's headline experiment (Wu & He 2018, Figure 1)
 * at small scale (`npm run sweep`): the demo's CNN (`buildModel` from
 * train-node.ts) with BatchNorm, GroupNorm, LayerNorm, InstanceNorm and no
 * norm, trained at batch sizes 2 to 32 on MNIST digits, validation accuracy
 * measured in inference mode (BatchNorm uses its running statistics).
 *
 *   npm run sweep                  # the full grid, about 10 minutes on 2 cores
 *   npm run sweep -- --quick       # CI smoke run: tiny subset, 2 batch sizes, 1 epoch
 *
 * The batch size is the paper's "images per GPU": the images one forward pass
 * normalizes together. As in multi-GPU training, the optimizer averages the
 * gradients of several such batches into one update of --update-batch (32)
 * images, so every cell trains on the same images for the same number of
 * epochs and Adam updates, from the same seed: only the normalization batch
 * differs. (With one update per small batch instead, small batches would also
 * get 16x more updates, which on this budget swamps the normalization.)
 *
 * Flags: --epochs, --train/--test (images per digit), --batch-sizes 2,4,8,16,32,
 * --norms batch,group,layer,instance,none, --update-batch 32, --lr (Adam), --seed,
 * --out (folder for results.json and batch-size-sweep.svg; default examples/results/, with --quick
 * examples/results.quick/, git-ignored).
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as path from 'path';
import {buildModel, loadDigits} from './train-node';

// CommonJS builds (vega 5, vega-lite 5), so this runs under ts-node on Node 18+.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const vega = require('vega');
// eslint-disable-next-line @typescript-eslint/no-var-requires
const vegaLite = require('vega-lite');

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const quick = process.argv.includes('--quick');
const list = (s: string) => s.split(',').map(v => v.trim()).filter(v => v !== '');

/** The sweep's settings; written into results.json. */
export interface SweepConfig {
  norms: string[];
  batchSizes: number[];
  epochs: number;
  trainPerDigit: number;
  testPerDigit: number;
  /** Images per optimizer update; every batch size divides it. */
  updateBatch: number;
  /** Adam's learning rate. */
  lr: number;
  seed: number;
}

/** One cell of the grid. */
export interface SweepCell {
  norm: string;
  batchSize: number;
  /** Validation accuracy in [0, 1], inference mode. */
  accuracy: number;
  loss: number;
  /** Accuracy on the training images in training mode (batch statistics), last epoch's running mean. */
  trainAccuracy: number;
  steps: number;
  seconds: number;
}

const NAMES: Record<string, string> = {
  batch: 'BatchNorm', group: 'GroupNorm', layer: 'LayerNorm', instance: 'InstanceNorm', none: 'no norm',
};

/** mulberry32: a small seeded PRNG; it stands in for Math.random, which tfjs' initializers and shuffling use. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Trains with `normBatch` images per forward pass (what BatchNorm's statistics
 * see: the paper's images per GPU) and one optimizer update per `config.updateBatch`
 * images (the gradients of the updateBatch / normBatch forward passes are
 * averaged, as synchronous data-parallel SGD averages over GPUs). Every cell
 * therefore sees the same images and makes the same number of updates; only
 * the normalization batch differs.
 */
async function train(model: tf.Sequential, xs: tf.Tensor, ys: tf.Tensor, normBatch: number,
                     config: SweepConfig): Promise<{steps: number; trainAccuracy: number}> {
  const optimizer = tf.train.adam(config.lr);
  const vars = model.trainableWeights.map(w => w.read() as tf.Variable);
  const n = xs.shape[0];
  const updates = Math.floor(n / config.updateBatch);  // drop the last partial batch, as data-parallel loaders do
  let steps = 0;
  let correct = 0;
  for (let epoch = 0; epoch < config.epochs; epoch++) {
    const order = Array.from(tf.util.createShuffledIndices(n));
    correct = 0;
    for (let u = 0; u < updates; u++) {
      let sum: tf.NamedTensorMap | null = null;
      for (let m = 0; m < config.updateBatch; m += normBatch) {
        const rows = order.slice(u * config.updateBatch + m, u * config.updateBatch + m + normBatch);
        let hits: tf.Tensor | null = null;
        const {grads} = tf.tidy(() => {
          const idx = tf.tensor1d(rows, 'int32');
          const xb = tf.gather(xs, idx);
          const yb = tf.gather(ys, idx);
          return tf.variableGrads(() => {
            const p = model.apply(xb, {training: true}) as tf.Tensor;
            hits = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(p, 1), tf.argMax(yb, 1)), 'float32')));
            return tf.mean(tf.neg(tf.sum(tf.mul(yb, tf.log(tf.clipByValue(p, 1e-7, 1))), 1))) as tf.Scalar;
          }, vars);
        });
        correct += (hits as unknown as tf.Tensor).dataSync()[0];
        (hits as unknown as tf.Tensor).dispose();
        const previous: tf.NamedTensorMap | null = sum;
        sum = previous == null ? grads : tf.tidy(() => {
          const out: tf.NamedTensorMap = {};
          for (const k of Object.keys(grads)) out[k] = tf.add(previous[k], grads[k]);
          return out;
        });
        if (previous != null) tf.dispose([previous, grads]);
      }
      const total = sum!;
      const mean = tf.tidy(() => Object.keys(total).map(name => ({name, tensor: tf.mul(total[name], normBatch / config.updateBatch)})));
      optimizer.applyGradients(mean);
      tf.dispose([total, ...mean.map(g => g.tensor)]);
      steps++;
    }
  }
  optimizer.dispose();
  return {steps, trainAccuracy: correct / Math.max(1, updates * config.updateBatch)};
}

/** Loss and accuracy in inference mode (BatchNorm uses its running statistics). */
function evaluate(model: tf.Sequential, xs: tf.Tensor, ys: tf.Tensor): {loss: number; accuracy: number} {
  const n = xs.shape[0];
  let loss = 0;
  let hits = 0;
  for (let i = 0; i < n; i += 100) {
    const [l, h] = tf.tidy(() => {
      const size = Math.min(100, n - i);
      const p = model.predict(xs.slice(i, size)) as tf.Tensor;
      const yb = ys.slice(i, size);
      return [tf.sum(tf.neg(tf.sum(tf.mul(yb, tf.log(tf.clipByValue(p, 1e-7, 1))), 1))),
              tf.sum(tf.cast(tf.equal(tf.argMax(p, 1), tf.argMax(yb, 1)), 'float32'))];
    });
    loss += l.dataSync()[0];
    hits += h.dataSync()[0];
    tf.dispose([l, h]);
  }
  return {loss: loss / n, accuracy: hits / n};
}

async function runCell(norm: string, batchSize: number, config: SweepConfig,
                       trainSet: {xs: tf.Tensor; ys: tf.Tensor}, testSet: {xs: tf.Tensor; ys: tf.Tensor}): Promise<SweepCell> {
  const mathRandom = Math.random;
  Math.random = seededRandom(config.seed);  // same initial weights and image order in every cell
  const started = Date.now();
  try {
    const model = buildModel(norm);
    const {steps, trainAccuracy} = await train(model, trainSet.xs, trainSet.ys, batchSize, config);
    const {loss, accuracy} = evaluate(model, testSet.xs, testSet.ys);
    model.dispose();
    return {norm, batchSize, accuracy, loss, trainAccuracy, steps, seconds: (Date.now() - started) / 1000};
  } finally {
    Math.random = mathRandom;
  }
}

/** What results.json holds. */
export interface SweepResults {
  experiment: string;
  tfjs: string;
  backend: string;
  quick: boolean;
  config: SweepConfig;
  trainImages: number;
  testImages: number;
  /** Wall-clock time of the whole sweep. */
  seconds: number;
  cells: SweepCell[];
}

/**
 * Accuracy (%) against batch size, one line per norm, as an SVG string
 * (Vega-Lite compiled to Vega, rendered without a browser). A function of
 * results.json alone, so the committed chart can be checked against it.
 */
export async function chartSvg(results: SweepResults): Promise<string> {
  const {cells, config, trainImages, testImages} = results;
  const order = config.norms.map(n => NAMES[n] ?? n);
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: 'Validation accuracy against batch size',
      subtitle: [`MNIST 14x14, ${trainImages} training / ${testImages} test images, ${config.epochs} epoch${config.epochs === 1 ? '' : 's'},`,
                 `${optimizerText(config)}, same seed; tfjs ${results.tfjs} ${results.backend}`],
    },
    width: 440, height: 300, background: 'white',
    data: {values: cells.map(c => ({norm: NAMES[c.norm] ?? c.norm, batchSize: c.batchSize, accuracy: c.accuracy * 100}))},
    // Lines of batch-independent norms can coincide: distinct point shapes and dashes keep each visible.
    mark: {type: 'line', point: {size: 60, filled: true}, opacity: 0.85},
    encoding: {
      x: {field: 'batchSize', type: 'quantitative', title: 'batch size (images per normalization batch)',
          scale: {type: 'log', base: 2}, axis: {values: config.batchSizes, format: 'd'}},
      y: {field: 'accuracy', type: 'quantitative', title: 'validation accuracy (%)', scale: {zero: false}},
      color: {field: 'norm', type: 'nominal', title: 'normalization', sort: order},
      shape: {field: 'norm', type: 'nominal', sort: order, legend: null},
      strokeDash: {field: 'norm', type: 'nominal', sort: order, legend: null},
    },
  };
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), {renderer: 'none'});
  const svg: string = await view.toSVG();
  view.finalize();
  return svg;
}

function optimizerText(config: SweepConfig): string {
  return `Adam lr ${config.lr}, ${config.updateBatch} images per update`;
}

function table(cells: SweepCell[], config: SweepConfig): string {
  const rows = [`| norm | ${config.batchSizes.map(b => `batch ${b}`).join(' | ')} |`,
                `| --- | ${config.batchSizes.map(() => '---:').join(' | ')} |`];
  for (const norm of config.norms) {
    const accs = config.batchSizes.map(b => cells.find(c => c.norm === norm && c.batchSize === b))
                                  .map(c => (c ? `${(c.accuracy * 100).toFixed(1)}%` : '-'));
    rows.push(`| ${NAMES[norm] ?? norm} | ${accs.join(' | ')} |`);
  }
  return rows.join('\n');
}

async function main(): Promise<void> {
  tf.enableProdMode();
  await tf.ready();
  const config: SweepConfig = {
    norms: list(flag('norms', 'batch,group,layer,instance,none')),
    batchSizes: list(flag('batch-sizes', quick ? '2,32' : '2,4,8,16,32')).map(Number),
    epochs: Number(flag('epochs', quick ? '1' : '2')),
    trainPerDigit: Number(flag('train', quick ? '4' : '60')),
    testPerDigit: Number(flag('test', quick ? '4' : '100')),
    updateBatch: Number(flag('update-batch', '32')),
    lr: Number(flag('lr', '0.01')),
    seed: Number(flag('seed', '1')),
  };
  // --quick runs go to the git-ignored examples/results.quick/: only full runs update the committed results/.
  const outDir = path.resolve(flag('out', path.join(__dirname, quick ? 'results.quick' : 'results')));
  const unknown = config.norms.filter(n => !(n in NAMES));
  if (unknown.length > 0) throw new Error(`unknown --norms ${unknown.join(',')}: use ${Object.keys(NAMES).join(',')}`);
  if (config.batchSizes.some(b => !Number.isInteger(b) || b < 2 || config.updateBatch % b !== 0)) {
    throw new Error(`--batch-sizes must be integers >= 2 (BatchNorm needs two images) that divide --update-batch ` +
                    `${config.updateBatch}. Received: ${config.batchSizes}`);
  }

  const train = loadDigits(0, config.trainPerDigit);
  const test = loadDigits(config.trainPerDigit, config.testPerDigit);
  console.log(`tfjs ${tf.version.tfjs} on ${tf.getBackend()}; ${train.labels.length} training / ` +
              `${test.labels.length} test images, ${config.epochs} epoch(s), ${optimizerText(config)}, seed ${config.seed}`);
  const started = Date.now();
  const cells: SweepCell[] = [];
  for (const norm of config.norms) {
    for (const batchSize of config.batchSizes) {
      const cell = await runCell(norm, batchSize, config, train, test);
      cells.push(cell);
      console.log(`${(NAMES[norm] ?? norm).padEnd(12)} batch ${String(batchSize).padStart(2)}: ` +
                  `accuracy ${(cell.accuracy * 100).toFixed(1).padStart(5)}% (train ${(cell.trainAccuracy * 100).toFixed(1)}%), ` +
                  `${cell.steps} steps, ${cell.seconds.toFixed(1)}s`);
    }
  }
  tf.dispose([train.xs, train.ys, test.xs, test.ys]);
  const seconds = (Date.now() - started) / 1000;

  fs.mkdirSync(outDir, {recursive: true});
  const results: SweepResults = {
    experiment: 'batch-size sweep (Group Normalization, Wu & He 2018, Figure 1) on MNIST 14x14',
    tfjs: tf.version.tfjs, backend: tf.getBackend(), quick, config,
    trainImages: train.labels.length, testImages: test.labels.length, seconds, cells,
  };
  fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  fs.writeFileSync(path.join(outDir, 'batch-size-sweep.svg'), await chartSvg(results));
  console.log(`\nvalidation accuracy (inference mode), ${seconds.toFixed(0)}s in all:\n${table(cells, config)}`);
  console.log(`wrote ${path.join(outDir, 'results.json')} and batch-size-sweep.svg`);
}

if (require.main === module) {
  main().catch(e => {
    console.error(e);
    process.exit(1);
  });
}
