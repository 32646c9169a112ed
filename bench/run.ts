/**
 * Benchmark of every layer against tfjs' own layers, naive op compositions,
 * a plain-JS loop and PyTorch (issue 7). Not a test: run it with
 *
 *   npm run bench                 full run: cpu and wasm, issue shapes, median of >= 10 runs; also our
 *                                 layers alone on cpu-js (cpu with the JavaScript loops: TFJS_NORM_SIMD
 *                                 off) and wasm-copy (the SIMD module copying through its own memory
 *                                 instead of working on the tfjs heap)
 *   npm run bench -- --quick      short run: small shapes, 3 runs (labelled QUICK)
 *   npm run bench -- --backends cpu --only BatchNorm
 *   npm run bench -- --anchors plainJS,naive,torch   only these anchors (skips tfjs' layers, minutes
 *                                 a call on wasm for layerNormalization)
 *   npm run bench -- --merge a.json b.json   one result from runs started separately (e.g. cpu and
 *                                 wasm side by side on two cores; --machine TEXT when they lack it)
 *
 * Prints a markdown table (medians, ratios to each anchor, kernels per call,
 * peak extra memory of a training step). The raw results go to the git-ignored
 * bench/raw/ (results.json, results.quick.json; --out FILE elsewhere). Only a
 * full run (not --quick, no --only, cpu and wasm) or a --merge of full runs
 * rewrites the committed summary bench/RESULTS.md (summaryMarkdown()).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import {execFileSync} from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tfn from '../src';
import {simdOptions} from '../src/engine/backends/simd/select';
import {parseArgs} from './args';

type Mode = 'infer' | 'trainFwd' | 'fwdBwd' | 'vjp' | 'fit';
/**
 * vjp: fwdBwd without reading the gradients back. cpu and wasm run kernels
 * synchronously, so the work is done when gradients() returns; what fwdBwd adds
 * is the read-back (on wasm a copy out of the heap: ~13 ms per 25 MB tensor),
 * which a training loop does not do and PyTorch's time does not contain.
 * Measured for our layers only; the PyTorch column compares with it.
 */
const MODES: Mode[] = ['infer', 'trainFwd', 'fwdBwd', 'vjp', 'fit'];
const ANCHOR_MODES: Mode[] = MODES.filter(m => m !== 'vjp');

const argv = process.argv.slice(2);
const args = parseArgs('bench', argv, {
  flags: ['--quick', '--no-torch'], values: ['--backends', '--only', '--anchors', '--runs', '--out', '--machine'],
  lists: ['--merge'],
});
const QUICK = args.has('--quick');
const argOf = args.value;
/** Backends, and variants of ours on them (`cpu-js`, `wasm-copy`: our layers only, no anchors but plain JS). */
const BACKENDS = (argOf('--backends') ?? 'cpu,wasm,cpu-js,wasm-copy').split(',');
const tfBackend = (b: string) => b.split('-')[0];
const ONLY = argOf('--only');
/** Anchors kept (key prefixes: tfjsBN, tfjsLN, naive, plainJS, torch); all by default. */
const ANCHORS = argOf('--anchors')?.split(',');
const RUNS = Number(argOf('--runs') ?? (QUICK ? 3 : 10));
/** Raw results: git-ignored unless --out says otherwise. */
const OUT = argOf('--out') ?? path.join(__dirname, 'raw', QUICK ? 'results.quick.json' : 'results.json');
/** The committed summary: only full runs write it. */
const SUMMARY = path.join(__dirname, 'RESULTS.md');
const FULL_RUN = !QUICK && !ONLY && !ANCHORS && ['cpu', 'wasm'].every(b => BACKENDS.includes(b));

// ---------------------------------------------------------------- shapes and cases

/** Shapes of the issue; --quick divides the batch axis. */
const q = (s: number[]) => (QUICK ? [Math.max(1, s[0] / 8), ...s.slice(1)] : s);
const S = {
  cl: q([32, 32, 32, 64]),
  cf: q([32, 64, 32, 32]),
  gcl: q([8, 64, 64, 128]),
  gcf: q([8, 128, 64, 64]),
  seq: q([64, 128, 768]),
};

type Layout = 'cl' | 'cf';
interface Case {
  /** Row label. */
  name: string;
  layer: string;
  shape: number[];
  layout: Layout;
  make: () => tf.layers.Layer;
  /** Anchor keys this row is compared with. */
  anchors: string[];
  /** Arguments for bench/torch_bench.py. */
  torch: Record<string, unknown>;
}

const layerClasses = tfn as unknown as Record<string, new (args: any) => tf.layers.Layer>;
/** Layers of src/layers present in this checkout (RMSNorm/LocalResponseNorm are optional). */
const has = (name: string) => typeof layerClasses[name] === 'function';

function cases(): Case[] {
  const out: Case[] = [];
  const axisOf = (l: Layout) => (l === 'cl' ? -1 : 1);
  for (const layout of ['cl', 'cf'] as Layout[]) {
    const shape = S[layout];
    const axis = axisOf(layout);
    out.push({name: `BatchNorm ${layout}`, layer: 'BatchNorm', shape, layout,
              make: () => new tfn.BatchNorm({axis}), anchors: ['tfjsBN cl', `plainJS ${layout}`, 'torch'],
              torch: {layer: 'BatchNorm', layout}});
    out.push({name: `InstanceNorm ${layout}`, layer: 'InstanceNorm', shape, layout,
              make: () => new tfn.InstanceNorm({axis, affine: true, trackRunningStats: true}),
              anchors: ['tfjsBN cl', `naiveIN ${layout}`, `plainJS ${layout}`, 'torch'],
              torch: {layer: 'InstanceNorm', layout}});
  }
  for (const layout of ['cl', 'cf'] as Layout[]) {
    const shape = layout === 'cl' ? S.gcl : S.gcf;
    const axis = axisOf(layout);
    out.push({name: `GroupNorm(32) ${layout}`, layer: 'GroupNorm', shape, layout,
              make: () => new tfn.GroupNorm({numGroups: 32, axis}),
              anchors: ['tfjsBN gcl', `naiveGN g${layout}`, `plainJS g${layout}`, 'torch'],
              torch: {layer: 'GroupNorm', layout, groups: 32}});
  }
  out.push({name: 'LayerNorm', layer: 'LayerNorm', shape: S.seq, layout: 'cl', make: () => new tfn.LayerNorm({axis: -1}),
            anchors: ['tfjsLN seq', 'plainJS seq', 'torch'], torch: {layer: 'LayerNorm'}});
  if (has('RMSNorm')) {
    out.push({name: 'RMSNorm', layer: 'RMSNorm', shape: S.seq, layout: 'cl',
              make: () => new layerClasses.RMSNorm({axis: -1}),
              anchors: ['tfjsLN seq', 'naiveRMS seq', 'plainJS seq', 'torch'], torch: {layer: 'RMSNorm'}});
  } else {
    console.log('RMSNorm: absent from src/layers, skipped (the case list above is the hook).');
  }
  if (has('LocalResponseNorm')) {
    // tf.localResponseNormalization is channels-last only: the cf row is compared with it on the cl twin.
    for (const layout of ['cl', 'cf'] as Layout[]) {
      out.push({name: `LocalResponseNorm(5) ${layout}`, layer: 'LocalResponseNorm', shape: S[layout], layout,
                make: () => new layerClasses.LocalResponseNorm({size: 5, axis: layout === 'cl' ? -1 : 1}),
                anchors: ['tfjsLRN cl', 'torch'], torch: {layer: 'LocalResponseNorm', layout, size: 5}});
    }
  }
  return out.filter(c => !ONLY || c.name.includes(ONLY));
}

// ---------------------------------------------------------------- anchors
// tfjs' batchNormalization gradient fails for axis 1 (FusedBatchNorm_grad
// reshapes dscale to [1, C, 1, 1]), so channels-first rows are compared with
// it on the channels-last twin of the tensor (same size): key 'tfjsBN cl'.

interface Subject {
  /** Forward in inference (training = false) or training mode. */
  forward: (x: tf.Tensor, training: boolean) => tf.Tensor;
  /** Trainable variables the gradients are taken w.r.t. (besides x). */
  weights: () => tf.Variable[];
  /** A layer for the fit step, or null when the subject is not a layer. */
  layer: tf.layers.Layer | null;
  dispose: () => void;
}

function layerSubject(layer: tf.layers.Layer, shape: number[]): Subject {
  layer.build(shape);
  return {
    forward: (x, training) => layer.apply(x, {training}) as tf.Tensor,
    weights: () => layer.trainableWeights.map(w => w.read() as tf.Variable),
    layer,
    dispose: () => (layer as unknown as {disposeWeights(): void}).disposeWeights(),
  };
}

/** Naive compositions with autodiff: GroupNorm, InstanceNorm (rank-5/moments), RMSNorm. */
function naiveSubject(kind: 'GN' | 'IN' | 'RMS', shape: number[], layout: Layout, groups = 32): Subject {
  const C = kind === 'RMS' ? shape[shape.length - 1] : (layout === 'cl' ? shape[shape.length - 1] : shape[1]);
  const gamma = tf.variable(tf.ones([C]));
  const beta = tf.variable(tf.zeros([C]));
  const pshape = layout === 'cl' || kind === 'RMS' ? [C] : [C, 1, 1];
  const forward = (x: tf.Tensor) => {
    let xn: tf.Tensor;
    if (kind === 'RMS') {
      xn = tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1.1920928955078125e-7)));
      return tf.mul(xn, gamma);
    }
    const [N] = shape;
    if (kind === 'GN') {
      const g = layout === 'cl' ? tf.reshape(x, [N, shape[1], shape[2], groups, C / groups])
                                : tf.reshape(x, [N, groups, C / groups, shape[2], shape[3]]);
      const axes = layout === 'cl' ? [1, 2, 4] : [2, 3, 4];
      const {mean, variance} = tf.moments(g, axes, true);
      xn = tf.reshape(tf.div(tf.sub(g, mean), tf.sqrt(tf.add(variance, 1e-5))), shape);
    } else {
      const axes = layout === 'cl' ? [1, 2] : [2, 3];
      const {mean, variance} = tf.moments(x, axes, true);
      xn = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5)));
    }
    return tf.add(tf.mul(xn, tf.reshape(gamma, pshape)), tf.reshape(beta, pshape));
  };
  return {
    forward: (x) => forward(x),
    weights: () => (kind === 'RMS' ? [gamma] : [gamma, beta]),
    layer: null,
    dispose: () => { gamma.dispose(); beta.dispose(); },
  };
}

/** tf.localResponseNormalization (depth radius 2 = PyTorch's size 5), autodiff through its LRNGrad kernel. */
function lrnSubject(): Subject {
  return {
    forward: x => tf.localResponseNormalization(x as tf.Tensor4D, 2, 1, 1e-4, 0.75),
    weights: () => [],
    layer: null,
    dispose: () => undefined,
  };
}

/** The tensor an anchor runs on: its key's tag names a shape of S. */
function anchorShape(key: string): number[] {
  return S[key.split(' ')[1] as keyof typeof S];
}

function anchorSubject(key: string, shape: number[]): Subject | null {
  const [kind, layoutTag] = key.split(' ');
  const layout: Layout = layoutTag.endsWith('cf') ? 'cf' : 'cl';
  switch (kind) {
    case 'tfjsBN': return layerSubject(tf.layers.batchNormalization({axis: layout === 'cl' ? -1 : 1}), shape);
    case 'tfjsLN': return layerSubject(tf.layers.layerNormalization({axis: -1}), shape);
    case 'tfjsLRN': return lrnSubject();
    case 'naiveGN': return naiveSubject('GN', shape, layout);
    case 'naiveIN': return naiveSubject('IN', shape, layout);
    case 'naiveRMS': return naiveSubject('RMS', shape, layout);
    default: return null;
  }
}

// ---------------------------------------------------------------- plain JS anchor

/**
 * The practical limit on cpu: BatchNorm-style normalization of the same tensor
 * viewed as [rows, lastDim] (per-column statistics), straight loops, float64
 * accumulators. trainFwd: statistics + output; fwdBwd adds the closed-form backward.
 */
function plainJS(x: Float32Array, dy: Float32Array, cols: number, backward: boolean) {
  const rows = x.length / cols;
  const mean = new Float64Array(cols);
  const vr = new Float64Array(cols);
  for (let r = 0, i = 0; r < rows; r++) for (let c = 0; c < cols; c++, i++) mean[c] += x[i];
  for (let c = 0; c < cols; c++) mean[c] /= rows;
  for (let r = 0, i = 0; r < rows; r++) for (let c = 0; c < cols; c++, i++) { const d = x[i] - mean[c]; vr[c] += d * d; }
  const inv = new Float64Array(cols);
  for (let c = 0; c < cols; c++) inv[c] = 1 / Math.sqrt(vr[c] / rows + 1e-5);
  const y = new Float32Array(x.length);
  for (let r = 0, i = 0; r < rows; r++) for (let c = 0; c < cols; c++, i++) y[i] = (x[i] - mean[c]) * inv[c];
  if (!backward) return y;
  const sg = new Float64Array(cols);
  const sgx = new Float64Array(cols);
  for (let r = 0, i = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++, i++) { sg[c] += dy[i]; sgx[c] += dy[i] * y[i]; }
  }
  const dx = new Float32Array(x.length);
  for (let r = 0, i = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++, i++) dx[i] = inv[c] * (dy[i] - sg[c] / rows - y[i] * sgx[c] / rows);
  }
  return dx;
}

// ---------------------------------------------------------------- measurement

interface Measure {
  medianMs: number;
  runs: number;
  kernels: number | null;
  /** Peak tf.memory().numBytes during the call minus before, over the input's bytes. */
  peakX: number | null;
  /** Same for unique data buffers (views counted once). */
  bufX?: number | null;
}

function median(a: number[]): number {
  const s = [...a].sort((p, q2) => p - q2);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Above this a warm-up call counts as the only sample (tfjs' layerNormalization on wasm: ~5 min a call). */
const SLOW_MS = 30000;

async function time(fn: () => Promise<void>, runs = RUNS): Promise<{medianMs: number; runs: number}> {
  const w = performance.now();
  await fn(); // warm-up
  const warmMs = performance.now() - w;
  if (warmMs > SLOW_MS) return {medianMs: warmMs, runs: 0}; // 0 runs: one cold call, labelled in the table
  const times: number[] = [];
  const t0 = performance.now();
  // At least `runs`; fast calls run more (up to 50 or 2 s).
  while (times.length < runs || (times.length < 50 && performance.now() - t0 < 2000)) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  return {medianMs: median(times), runs: times.length};
}

/**
 * Unique data buffers' bytes. tf.memory().numBytes counts every tensor handle,
 * so free views (Reshape, Identity clones saved for the tape) count again;
 * this counts each buffer once: the memory actually held.
 */
const buffers = {bytes: 0, peak: 0};
{
  const engine = tf.engine() as unknown as {
    state: {tensorInfo: Map<unknown, {bytes: number}>};
    trackTensor(a: tf.Tensor, backend: unknown): void;
    removeDataId(dataId: unknown, backend: unknown): void;
  };
  const track = engine.trackTensor.bind(engine);
  const remove = engine.removeDataId.bind(engine);
  engine.trackTensor = (a, backend) => {
    const fresh = !engine.state.tensorInfo.has(a.dataId);
    track(a, backend);
    if (fresh) {
      buffers.bytes += engine.state.tensorInfo.get(a.dataId)!.bytes;
      buffers.peak = Math.max(buffers.peak, buffers.bytes);
    }
  };
  engine.removeDataId = (dataId, backend) => {
    const info = engine.state.tensorInfo.get(dataId);
    remove(dataId, backend);
    if (info && !engine.state.tensorInfo.has(dataId)) buffers.bytes -= info.bytes;
  };
}

/** Kernels of one call, its peak extra tf.memory().numBytes and peak extra unique-buffer bytes (tf.profile). */
async function profile(fn: () => Promise<void>, inputBytes: number) {
  const before = tf.memory().numBytes;
  const bufBefore = buffers.bytes;
  buffers.peak = buffers.bytes;
  const info = await tf.profile(fn);
  return {kernels: info.kernels.length, peakX: Math.max(0, info.peakBytes - before) / inputBytes,
          bufX: Math.max(0, buffers.peak - bufBefore) / inputBytes};
}

/** The four modes on one subject. `fit` builds a small model: norm -> global average pool -> dense(1). */
async function measureSubject(sub: Subject, shape: number[], layout: Layout, modes: Mode[]): Promise<Partial<Record<Mode, Measure>>> {
  const out: Partial<Record<Mode, Measure>> = {};
  const x = tf.randomNormal(shape, 1, 2, 'float32', 1);
  const dy = tf.randomNormal(shape, 0, 1, 'float32', 2);
  const xVar = tf.variable(x, true);
  const inputBytes = x.size * 4;
  const calls: Record<Mode, (() => Promise<void>) | null> = {
    infer: async () => {
      const y = tf.tidy(() => sub.forward(x, false));
      await y.data();
      y.dispose();
    },
    trainFwd: async () => {
      const y = tf.tidy(() => sub.forward(x, true));
      await y.data();
      y.dispose();
    },
    // Vector-Jacobian product with a given dy (no loss ops): gradients w.r.t. x, gamma, beta.
    fwdBwd: async () => {
      const {value, grads} = tf.engine().gradients(() => sub.forward(xVar, true), [xVar, ...sub.weights()], dy);
      await Promise.all(grads.map(g => g.data()));
      value.dispose();
      tf.dispose(grads);
    },
    vjp: async () => {
      const {value, grads} = tf.engine().gradients(() => sub.forward(xVar, true), [xVar, ...sub.weights()], dy);
      value.dispose();
      tf.dispose(grads);
    },
    fit: null,
  };
  let model: tf.Sequential | null = null;
  let target: tf.Tensor | null = null;
  if (sub.layer && modes.includes('fit')) {
    model = tf.sequential();
    const fresh = sub.layer.constructor as new (cfg: any) => tf.layers.Layer;
    const layerConfig = sub.layer.getConfig();
    delete layerConfig.name;
    model.add(new fresh({...layerConfig, inputShape: shape.slice(1)}));
    model.add(shape.length === 3 ? tf.layers.globalAveragePooling1d()
                                 : tf.layers.globalAveragePooling2d({dataFormat: layout === 'cl' ? 'channelsLast' : 'channelsFirst'}));
    model.add(tf.layers.dense({units: 1}));
    model.compile({optimizer: tf.train.sgd(1e-3), loss: 'meanSquaredError'});
    target = tf.zeros([shape[0], 1]);
    calls.fit = async () => { await model!.trainOnBatch(x, target!); };
  }
  for (const mode of modes) {
    const fn = calls[mode];
    if (!fn) continue;
    const t = await time(fn);
    // Profiling runs the call once more: skipped for calls over SLOW_MS.
    const p = t.runs > 0 ? await profile(fn, inputBytes) : {kernels: null, peakX: null, bufX: null};
    out[mode] = {...t, ...p};
  }
  model?.dispose();
  tf.dispose([x, dy, xVar, target!].filter(Boolean));
  return out;
}

async function measurePlainJS(shape: number[]): Promise<Partial<Record<Mode, Measure>>> {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n).map(() => Math.random() * 2 + 1);
  const dy = new Float32Array(n).map(() => Math.random() - 0.5);
  const cols = shape[shape.length - 1];
  const f = (b: boolean) => async () => { plainJS(x, dy, cols, b); };
  return {
    trainFwd: {...await time(f(false)), kernels: null, peakX: null},
    fwdBwd: {...await time(f(true)), kernels: null, peakX: null},
  };
}

// ---------------------------------------------------------------- PyTorch

function torchResults(list: Case[]): {version: string | null; results: Record<string, Partial<Record<Mode, number>>>; why?: string} {
  const py = '/usr/bin/python3';
  try {
    execFileSync(py, ['-c', 'import torch'], {stdio: 'ignore'});
  } catch (e) {
    return {version: null, results: {}, why: `${py} cannot import torch`};
  }
  const spec = list.map(c => ({name: c.name, shape: c.shape, runs: RUNS, ...c.torch}));
  // glibc serves big tensors by mmap and unmaps them on free, so each call page-faults its outputs in afresh:
  // PyTorch's times then vary 2-6x from one process to the next (IN cl fwd+bwd 4.4 or 27 ms). Thresholds above
  // any tensor here keep freed blocks for reuse, PyTorch's steady state (as in a training loop with its caching
  // allocator); a fair anchor is PyTorch at its best.
  const env = {...process.env, MALLOC_MMAP_THRESHOLD_: String(2 ** 32), MALLOC_TRIM_THRESHOLD_: String(2 ** 32)};
  const out = execFileSync(py, [path.join(__dirname, 'torch_bench.py')],
                           {input: JSON.stringify(spec), maxBuffer: 1 << 24, env});
  return JSON.parse(out.toString());
}

// ---------------------------------------------------------------- main

interface Row {
  backend: string;
  name: string;
  shape: number[];
  ours: Partial<Record<Mode, Measure>>;
  anchors: Record<string, Partial<Record<Mode, Measure>>>;
}

const T0 = performance.now();
const fmt = (ms: number | undefined) => (ms == null ? '' : ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));
/** A time, starred when it is one cold call (over SLOW_MS). */
const fmtM = (m: Measure | undefined) => (m == null ? '' : `${fmt(m.medianMs)}${m.runs === 0 ? '*' : ''}`);
const ratio = (a: number | undefined, ours: number | undefined) =>
  (a == null || ours == null ? '' : `${(a / ours).toFixed(a / ours >= 10 ? 0 : 1)}x`);

async function main() {
  const list = cases();
  const rows: Row[] = [];
  let torch: ReturnType<typeof torchResults> = {version: null, results: {}};
  if (!argv.includes('--no-torch')) {
    console.log('PyTorch...');
    torch = torchResults(list);
    console.log(torch.version ? `PyTorch ${torch.version} (1 thread)` : `PyTorch: absent (${torch.why})`);
  }
  for (const backend of BACKENDS) {
    await tf.setBackend(tfBackend(backend));
    await tf.ready();
    tf.enableProdMode();
    tf.env().set('TFJS_NORM_SIMD', !backend.endsWith('-js'));
    simdOptions.wasmHeap = backend.endsWith('-copy') ? 'copy' : 'direct';
    const variant = backend !== tfBackend(backend);
    const anchorCache = new Map<string, Partial<Record<Mode, Measure>>>();
    for (const c of list) {
      console.log(`[${backend}] ${c.name} ${JSON.stringify(c.shape)} ${((performance.now() - T0) / 1000).toFixed(0)} s`);
      const sub = layerSubject(c.make(), c.shape);
      const ours = await measureSubject(sub, c.shape, c.layout, MODES);
      sub.dispose();
      const anchors: Row['anchors'] = {};
      for (const key of c.anchors) {
        if (key === 'torch' || (variant && !key.startsWith('plainJS'))) continue;
        if (ANCHORS && !ANCHORS.some(a => key.startsWith(a))) continue;
        if (!anchorCache.has(key)) {
          if (key.startsWith('plainJS')) {
            anchorCache.set(key, tfBackend(backend) === 'cpu' ? await measurePlainJS(anchorShape(key)) : {});
          } else {
            const shape = anchorShape(key);
            const a = anchorSubject(key, shape)!;
            const modes: Mode[] = key.startsWith('naive') ? ['trainFwd', 'fwdBwd'] : ANCHOR_MODES;
            anchorCache.set(key, await measureSubject(a, shape, key.endsWith('cf') ? 'cf' : 'cl', modes));
            a.dispose();
          }
          console.log(`  anchor ${key} done`);
        }
        anchors[key] = anchorCache.get(key)!;
      }
      const t = torch.results[c.name];
      if (t) {
        anchors.torch = Object.fromEntries(Object.entries(t).map(([m, ms]) =>
          [m, {medianMs: ms as number, runs: RUNS, kernels: null, peakX: null}]));
      }
      rows.push({backend, name: c.name, shape: c.shape, ours, anchors});
      write(rows, torch.version, false);
    }
  }
  const raw = write(rows, torch.version, true);
  if (FULL_RUN) writeSummary(raw);
  else console.log(`${SUMMARY} not updated: only a full run (no --quick or --only, cpu and wasm) rewrites it.`);
}

/** The machine, as the raw results record it. */
function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
         `${os.platform()} ${os.arch()}`;
}

/** What a run writes to OUT. */
interface RawResults {
  date: string;
  complete: boolean;
  quick: boolean;
  node: string;
  tfjs: string;
  torch: string | null;
  machine?: string;
  runsAtLeast: number;
  rows: Row[];
  markdown: string;
}

/** Writes OUT (after every row, so a long run leaves partial results). */
function write(rows: Row[], torchVersion: string | null, done: boolean,
               fields: Partial<RawResults> = {}): RawResults {
  const md = table(rows, torchVersion);
  if (done) console.log(md);
  const raw: RawResults = {
    date: new Date().toISOString(), complete: done, quick: QUICK, node: process.version, tfjs: tf.version.tfjs,
    torch: torchVersion, machine: machine(), runsAtLeast: RUNS, rows, markdown: md, ...fields,
  };
  fs.mkdirSync(path.dirname(OUT), {recursive: true});
  fs.writeFileSync(OUT, JSON.stringify(raw, null, 1));
  if (done) console.log(`wrote ${OUT}`);
  return raw;
}

/**
 * `--merge a.json b.json`: one result from runs started separately per backend
 * (e.g. cpu and wasm side by side on two cores): the merged raw file, and
 * RESULTS.md when every part is a complete full run. `--machine TEXT` names the
 * machine for parts that did not record it.
 */
function merge(files: string[]) {
  if (files.length === 0) throw new Error('--merge needs the raw result files to merge (e.g. bench/raw/*.json)');
  const parts = files.map(f => JSON.parse(fs.readFileSync(f, 'utf8')) as RawResults);
  const rows: Row[] = parts.flatMap(p => p.rows);
  const machines = [...new Set(parts.map(p => p.machine ?? argOf('--machine') ?? 'not recorded'))];
  const raw = write(rows, parts.find(p => p.torch)?.torch ?? null, true, {
    // The date of the measurements (the last part to finish), not of the merge.
    date: parts.map(p => p.date).sort().pop()!, quick: parts.some(p => p.quick),
    complete: parts.every(p => p.complete), node: parts[0].node, tfjs: parts[0].tfjs,
    runsAtLeast: Math.min(...parts.map(p => p.runsAtLeast)), machine: machines.join('; '),
  });
  if (!raw.quick && raw.complete) writeSummary(raw);
  else console.log(`${SUMMARY} not updated: a part is a quick or incomplete run.`);
}

function writeSummary(raw: RawResults) {
  fs.writeFileSync(SUMMARY, summaryMarkdown(raw));
  console.log(`wrote ${SUMMARY}`);
}

/** Milliseconds for the summary: 3 significant digits, thousands separated; * = one cold call. */
function ms(m: Measure | undefined): string {
  if (m == null) return '-';
  const v = m.medianMs;
  const text = v >= 10000 ? Math.round(v).toLocaleString('en-US') : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1)
                                                                                                 : v.toFixed(2);
  return `${text}${m.runs === 0 ? '*' : ''}`;
}

/**
 * bench/RESULTS.md: one short table of a full run (what the README quotes) with
 * its date, versions and machine. The raw results (every mode and anchor) stay
 * in the git-ignored raw file.
 */
function summaryMarkdown(raw: RawResults): string {
  const anchor = (r: Row, prefix: string, withRatio: boolean) => {
    const key = Object.keys(r.anchors).find(k => k.startsWith(prefix));
    const a = key ? r.anchors[key].fwdBwd : undefined;
    if (!a) return '-';
    const ours = (prefix === 'torch' ? r.ours.vjp : undefined) ?? r.ours.fwdBwd;
    return withRatio ? `${ms(a)} (${ratio(a.medianMs, ours?.medianMs)})` : ms(a);
  };
  const lines = [
    '# Benchmark results',
    '',
    'Written by `npm run bench` (bench/run.ts, `summaryMarkdown`) at the end of a full run, or by `--merge` of full ' +
    'runs; `--quick` runs never change it. The raw results (every mode and anchor) go to the git-ignored bench/raw/.',
    '',
    `- Date: ${raw.date.slice(0, 10)}`,
    `- Versions: tfjs ${raw.tfjs}, Node ${raw.node}, PyTorch ${raw.torch ?? 'absent'} (1 thread)`,
    `- Machine: ${raw.machine ?? 'not recorded'}`,
    `- Median of >= ${raw.runsAtLeast} runs after a warm-up (* = one cold call: a call over ${SLOW_MS / 1000} s ` +
    'is not repeated)',
    '',
    'Times in ms. fwd+bwd: a training step, the vector-Jacobian product with a given dy (gradients w.r.t. x, ' +
    'gamma, beta), the gradients read back (`data()`); no read: the same without reading them back (the work is ' +
    "done when the call returns on cpu and wasm; a training loop does not read gradients back, and PyTorch's time " +
    'has no read-back: the PyTorch ratio compares with this one). k: kernels per fwd+bwd call (`tf.profile`). mem: peak extra bytes of that step over the ' +
    "input's, as `tf.memory().numBytes` (counts views) / unique buffers. Anchors are fwd+bwd times; " +
    '(Nx) = anchor time / ours, higher is better (plain JS 0.8x: ours takes 1.25x as long). tfjs layer: ' +
    '`batchNormalization` for BatchNorm, InstanceNorm and GroupNorm rows, `layerNormalization` for LayerNorm and ' +
    'RMSNorm, `localResponseNormalization` (channels-last) for LocalResponseNorm. cpu-js: cpu with the ' +
    'JavaScript loops (`TFJS_NORM_SIMD` off); wasm-copy: the SIMD module copying through its own memory instead ' +
    'of working on the tfjs heap in place.',
    '',
    '| backend | layer | shape | infer | train fwd | fwd+bwd | no read | k | mem | fit | tfjs layer | naive ops | plain JS | PyTorch |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of raw.rows) {
    const o = r.ours;
    const fb = o.fwdBwd;
    const mem = fb?.peakX != null ? `${fb.peakX.toFixed(1)}x / ${fb.bufX?.toFixed(1)}x` : '-';
    lines.push(`| ${r.backend} | ${r.name} | [${r.shape.join(',')}] | ${ms(o.infer)} | ${ms(o.trainFwd)} | ${ms(fb)} | ` +
               `${ms(o.vjp)} | ` +
               `${fb?.kernels ?? '-'} | ${mem} | ${ms(o.fit)} | ${anchor(r, 'tfjs', true)} | ${anchor(r, 'naive', true)} | ` +
               `${anchor(r, 'plainJS', true)} | ${anchor(r, 'torch', true)} |`);
  }
  return lines.join('\n') + '\n';
}

function table(rows: Row[], torchVersion: string | null): string {
  const lines: string[] = [];
  lines.push(`${QUICK ? '**QUICK RUN (small shapes, 3 runs): not the issue\'s numbers**\n\n' : ''}` +
             `tfjs ${tf.version.tfjs}, Node ${process.version}, median ms of >= ${RUNS} runs after warm-up; ` +
             `PyTorch: ${torchVersion ?? 'absent'} (1 thread). Ratios = anchor time / ours (higher is better). ` +
             `k = kernels per call (tf.profile), mem = peak extra bytes of a training step (fwd+bwd) / input bytes: ` +
             `tf.memory().numBytes (counts views) / unique buffers. fwd+bwd = vector-Jacobian product with a given dy ` +
             `(tf.engine().gradients), gradients w.r.t. x, gamma, beta; layers with running stats update them too. ` +
             `* = one cold call (a call over ${SLOW_MS / 1000} s is not repeated).`);
  lines.push('');
  lines.push('| backend | layer | shape | infer ms (k) | train fwd ms (k) | fwd+bwd ms (k, mem) | no read ms | fit ms | fwd+bwd vs anchors (torch: vs no read) | infer / fit vs tfjs layer |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const o = r.ours;
    const fb = o.fwdBwd!;
    const vs = Object.entries(r.anchors)
      .filter(([, a]) => a.fwdBwd)
      .map(([k, a]) => `${k.split(' ')[0]} ${fmtM(a.fwdBwd)} (${ratio(a.fwdBwd!.medianMs,
                                                                     (k === 'torch' ? o.vjp : undefined)?.medianMs ?? fb.medianMs)})`)
      .join('; ');
    const tfjsKey = Object.keys(r.anchors).find(k => k.startsWith('tfjs'));
    const ta = tfjsKey ? r.anchors[tfjsKey] : undefined;
    const inferFit = ta ? `${ratio(ta.infer?.medianMs, o.infer?.medianMs)} / ${ratio(ta.fit?.medianMs, o.fit?.medianMs)}` : '';
    lines.push(`| ${r.backend} | ${r.name} | ${JSON.stringify(r.shape)} | ${fmt(o.infer?.medianMs)} (${o.infer?.kernels}) | ` +
               `${fmt(o.trainFwd?.medianMs)} (${o.trainFwd?.kernels}) | ${fmt(fb.medianMs)} (${fb.kernels}, ${fb.peakX?.toFixed(1)}x/${fb.bufX?.toFixed(1)}x) | ` +
               `${fmt(o.vjp?.medianMs)} | ` +
               `${fmt(o.fit?.medianMs)} | ${vs} | ${inferFit} |`);
  }
  lines.push('');
  lines.push('Anchors (fwd+bwd ms, kernels, mem): ');
  const seen = new Set<string>();
  for (const r of rows) {
    for (const [k, a] of Object.entries(r.anchors)) {
      const id = `${r.backend} ${k} ${k === 'torch' ? r.name : ''}`;
      if (seen.has(id) || k === 'torch' || Object.keys(a).length === 0) continue;
      seen.add(id);
      const m = (mode: Mode) => (a[mode] ? `${mode} ${fmtM(a[mode])}${a[mode]!.kernels != null ? ` (${a[mode]!.kernels}k)` : ''}` : '');
      lines.push(`- ${r.backend} ${k} ${JSON.stringify(r.shape)}: ${MODES.map(m).filter(Boolean).join(', ')}` +
                 `${a.fwdBwd?.peakX != null ? `, mem ${a.fwdBwd.peakX.toFixed(1)}x/${a.fwdBwd.bufX?.toFixed(1)}x` : ''}`);
    }
  }
  return lines.join('\n');
}

/** The file arguments after --merge, up to the next flag. */
function mergeFiles(): string[] {
  const rest = argv.slice(argv.indexOf('--merge') + 1);
  const end = rest.findIndex(a => a.startsWith('--'));
  return end < 0 ? rest : rest.slice(0, end);
}

(argv.includes('--merge') ? async () => merge(mergeFiles())
                          : main)().catch(e => {
  console.error(e);
  process.exit(1);
});
