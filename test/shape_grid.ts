/**
 * The shape grid: every catalog layer on a deterministic sample of shapes
 * (batch 1..16, spatial sizes 1..128x128, channels 1..256 and the typical
 * shapes of real models, ranks 2..5, channels first and last), forward and
 * input gradient (tf.grad with a random dy) in training mode and, with running
 * statistics, in inference mode (without them inference is the same
 * computation), each backend against the cpu op path (cpu backend,
 * TFJS_NORM_FUSED off). It exists because backends fail on shapes the small
 * fixtures never reach: tfjs-backend-webgl's BatchMatMul broke InstanceNorm
 * on [8, 32, 32, 64] (a broadcast operand with a shared dimension over 1000;
 * see reduceOver in src/engine/op_path.ts), and wasm lost accuracy on
 * reductions over 10^5 values.
 *
 * Not a cartesian product (that is ~10^5 cells): for each layer, the TYPICAL
 * shapes, a cycle through the lists (cell i takes the i-th spatial size, a
 * stride through the channels and batches, alternating layouts, shrunk to
 * SAMPLED_MAX_ELEMENTS), then one extra cell for any listed value still
 * missing. `gridCoverage` proves each layer sees every value it can take.
 *
 * Shared by test/shape_grid.test.ts (cpu: fused kernels vs op path; wasm) and
 * the browser suite (webgl, webgpu, webgl with float16 textures). Browser-safe.
 */
import * as tf from '@tensorflow/tfjs';
import {CATALOG, GridCell, LayerArgs, LayerInfo, makeLayer} from './catalog';
import {F16_MIN_GROUP_SCALE, Tolerance, compareArrays, disposeLayer, minGroupScaleOf} from './fixture_runner';
import {groupSize} from './reference/norm_reference';

export const BATCHES = [1, 2, 3, 8, 16];
/** Spatial dims (rank = 2 + length): 1 to 128x128, and the sequence lengths of transformers. */
export const SPATIAL: number[][] = [
  [], [1], [7], [128], [512], [1, 1], [3, 5], [7, 7], [28, 28], [32, 32], [64, 64], [128, 128], [1, 1, 1], [2, 3, 4],
  [4, 16, 16],
];
export const CHANNELS = [1, 2, 3, 8, 16, 32, 64, 128, 256];
export type Layout = 'first' | 'last';
export const LAYOUTS: Layout[] = ['first', 'last'];

interface CellDims {
  batch: number;
  spatial: number[];
  channels: number;
  layout: Layout;
}

/** Shapes of real models, run for every layer that takes them. */
export const TYPICAL: CellDims[] = [
  {batch: 16, spatial: [], channels: 256, layout: 'last'},          // a dense layer's output
  {batch: 8, spatial: [28, 28], channels: 32, layout: 'last'},      // MNIST-sized feature maps
  {batch: 8, spatial: [32, 32], channels: 64, layout: 'last'},      // the webgl BatchMatMul shape
  {batch: 8, spatial: [32, 32], channels: 64, layout: 'first'},
  {batch: 4, spatial: [64, 64], channels: 16, layout: 'last'},
  {batch: 2, spatial: [7, 7], channels: 512, layout: 'first'},      // a ResNet/VGG last block
  {batch: 2, spatial: [128], channels: 768, layout: 'last'},        // transformers: [batch, tokens, 768]
  {batch: 1, spatial: [512], channels: 768, layout: 'last'},
];

/** Largest input of a cell (elements): 8x32x32x64, the typical shape above. */
export const MAX_ELEMENTS = 8 * 32 * 32 * 64;
/** Largest input of the other cells: batch, then channels, shrink to fit (run time). */
export const SAMPLED_MAX_ELEMENTS = 2 ** 17;

export type Mode = 'training' | 'inference';

export interface GridCase {
  layer: string;
  name: string;
  batch: number;
  spatial: number[];
  channels: number;
  layout: Layout;
  shape: number[];
  args: LayerArgs;
  /**
   * Modes run: training where the layer accepts the shape (some need two values
   * per statistic), inference where it differs from training (running statistics).
   */
  modes: Mode[];
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function shapeOf(d: CellDims): number[] {
  return d.layout === 'first' ? [d.batch, d.channels, ...d.spatial] : [d.batch, ...d.spatial, d.channels];
}

/** The case for `d` as the `index`-th cell of `info`'s grid, or null when the layer cannot run it. */
function makeCase(info: LayerInfo, d: CellDims, index: number): GridCase | null {
  const shape = shapeOf(d);
  if (shape.length < info.minRank || size(shape) > MAX_ELEMENTS) return null;
  const cell: GridCell = {shape, channelAxis: d.layout === 'first' ? 1 : -1, channels: d.channels, index};
  const args = info.gridArgs(cell);
  if (args === null) return null;
  const ref = info.reference(args, shape);
  const trains = !info.needsTwoValues || ref.kind !== 'normalize' || groupSize(ref) >= 2;
  // Without running statistics inference runs the same computation as training: one mode suffices.
  const modes: Mode[] = [];
  if (info.tracksRunningStats(args)) modes.push('inference');
  if (trains) modes.push('training');
  if (modes.length === 0) return null;
  return {layer: info.name, name: `${info.name} [${shape.join(', ')}] ${JSON.stringify(args)}`, ...d, shape, args, modes};
}

/** Shrinks the batch, then the channels, until the cell fits SAMPLED_MAX_ELEMENTS. */
function fit(d: CellDims): CellDims {
  const out = {...d};
  const big = () => size(shapeOf(out)) > SAMPLED_MAX_ELEMENTS;
  while (big() && out.batch > 1) out.batch = BATCHES[BATCHES.indexOf(out.batch) - 1];
  while (big() && out.channels > 1) out.channels = CHANNELS[CHANNELS.indexOf(out.channels) - 1];
  return out;
}

type Feature = 'batch' | 'spatial' | 'channels' | 'rank' | 'layout';

/** The values of each listed dimension a layer can take. */
function wanted(info: LayerInfo): Record<Feature, string[]> {
  const spatial = SPATIAL.filter(s => s.length + 2 >= info.minRank);
  return {
    batch: BATCHES.map(String),
    spatial: spatial.map(s => `[${s}]`),
    channels: CHANNELS.map(String),
    rank: [...new Set(spatial.map(s => String(s.length + 2)))],
    layout: LAYOUTS,
  };
}

function featuresOf(c: GridCase): Record<Feature, string> {
  return {batch: String(c.batch), spatial: `[${c.spatial}]`, channels: String(c.channels), rank: String(c.shape.length),
          layout: c.layout};
}

/** Listed values no case of `cases` has, per dimension (empty lists: full coverage). */
export function gridCoverage(info: LayerInfo, cases: GridCase[]): Record<Feature, string[]> {
  const w = wanted(info);
  const missing = {} as Record<Feature, string[]>;
  for (const f of Object.keys(w) as Feature[]) {
    const seen = new Set(cases.map(c => featuresOf(c)[f]));
    missing[f] = w[f].filter(v => !seen.has(v));
  }
  return missing;
}

/** The grid of one layer (deterministic). */
export function gridCases(info: LayerInfo): GridCase[] {
  const cases: GridCase[] = [];
  const add = (d: CellDims) => {
    const c = makeCase(info, d, cases.length);
    if (c && !cases.some(o => o.name === c.name)) cases.push(c);
    return c !== null;
  };
  TYPICAL.forEach(add);
  const offset = CATALOG.indexOf(info);
  SPATIAL.forEach((spatial, i) => add(fit({
    batch: BATCHES[(2 * i + offset) % BATCHES.length],
    spatial,
    channels: CHANNELS[(4 * i + offset) % CHANNELS.length],
    layout: LAYOUTS[(i + offset) % 2],
  })));
  // Any listed value still missing gets a cell of its own, the other dimensions small.
  const w = wanted(info);
  for (const f of Object.keys(w) as Feature[]) {
    for (const v of gridCoverage(info, cases)[f]) {
      const base: CellDims = {batch: 2, spatial: [5], channels: 4, layout: cases.length % 2 ? 'first' : 'last'};
      const tries: CellDims[] = f === 'batch' ? [{...base, batch: Number(v)}, {...base, batch: Number(v), spatial: [1, 1]}]
          : f === 'channels' ? [fit({...base, channels: Number(v)})]
          : f === 'layout' ? [fit({...base, layout: v as Layout})]
          : f === 'spatial' ? SPATIAL.filter(s => `[${s}]` === v).map(s => fit({...base, spatial: s}))
          : SPATIAL.filter(s => String(s.length + 2) === v).map(s => fit({...base, spatial: s}));
      for (const t of tries) if (add(t)) break;
    }
  }
  return cases;
}

/** Why `info`'s grid does not run on `backend`, or null when it does. */
export function gridSkipReason(info: LayerInfo, backend: string): string | null {
  return backend === 'cpu' && !info.fused ? 'no fused kernel: on cpu the op path would be compared with itself' : null;
}

// ------------------------------------------------------------ running a case

// Module-level bindings: in jest's vm sandbox every global lookup (`Math`) in a hot loop costs ~50x.
const {abs, cos, imul, log, sqrt, PI} = Math;

/** Deterministic float32 normals (mulberry32 + Box-Muller), `scale * N(0, 1) + offset`. */
function randn(n: number, seed: number, scale = 1, offset = 0): Float32Array {
  let s = seed >>> 0;
  const u = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = offset + scale * sqrt(-2 * log(u())) * cos(2 * PI * u());
  return out;
}

/** Initial values of a weight by its short name: gamma ~ 1, beta ~ 0, non-trivial running statistics. */
function weightValues(name: string, n: number, seed: number): Float32Array {
  if (name === 'gamma') return randn(n, seed, 0.5, 1);
  if (name === 'beta' || name === 'moving_mean') return randn(n, seed + 1, 0.5, 0);
  if (name === 'moving_variance') return randn(n, seed + 2).map(v => 0.5 + abs(v));
  return new Float32Array(n);
}

type Outputs = Record<Mode, {y: Float32Array; dx: Float32Array}>;

/** The case's outputs on the active backend (inference first: training updates the running statistics). */
async function outputs(c: GridCase, x0: Float32Array, dy0: Float32Array, seed: number): Promise<Outputs> {
  const layer = makeLayer(layerInfoOf(c), c.args);
  const out = {} as Outputs;
  try {
    layer.build(c.shape);
    tf.tidy(() => {
      for (const w of layer.weights) {
        if (w.dtype !== 'float32') continue;
        const short = w.originalName.split('/').pop()!;
        w.write(tf.tensor(weightValues(short, size(w.shape as number[]), seed), w.shape as number[]));
      }
    });
    const x = tf.tensor(x0, c.shape);
    const dy = tf.tensor(dy0, c.shape);
    try {
      for (const mode of (['inference', 'training'] as Mode[]).filter(m => c.modes.includes(m))) {
        const training = mode === 'training';
        const y = layer.apply(x, {training}) as tf.Tensor;
        const dx = tf.grad(t => layer.apply(t, {training}) as tf.Tensor)(x, dy);
        try {
          out[mode] = {y: await y.data() as Float32Array, dx: await dx.data() as Float32Array};
        } finally {
          tf.dispose([y, dx]);
        }
      }
    } finally {
      tf.dispose([x, dy]);
    }
  } finally {
    disposeLayer(layer);
  }
  return out;
}

function layerInfoOf(c: GridCase): LayerInfo {
  return CATALOG.find(i => i.name === c.layer)!;
}

async function onBackend<T>(backend: string, fused: boolean, fn: () => Promise<T>): Promise<T> {
  const previousBackend = tf.getBackend();
  const previousFused = tf.env().getBool('TFJS_NORM_FUSED');
  try {
    if (backend !== previousBackend && !(await tf.setBackend(backend))) throw new Error(`backend ${backend} did not start`);
    tf.env().set('TFJS_NORM_FUSED', fused);
    return await fn();
  } finally {
    tf.env().set('TFJS_NORM_FUSED', previousFused);
    if (tf.getBackend() !== previousBackend) await tf.setBackend(previousBackend);
  }
}

export interface GridResult {
  name: string;
  /** Worst |actual - reference| per quantity (`y training`, `dx inference`, ...). */
  maxAbs: Record<string, number>;
  /** Worst error / tolerance over the asserted quantities (<= 1 passes). */
  worstRatio: number;
  failures: string[];
  /** Measured-only mismatches (float16 gradients, non-unit-scale forwards). */
  notes: string[];
  /** Time on the cpu op path and on the backend under test. */
  referenceMs: number;
  targetMs: number;
}

export interface GridOptions {
  tol: Tolerance;
  /**
   * Float16 textures (see TOLERANCES in fixture_runner.ts): every value must be
   * finite; forward outputs are asserted where every group has sqrt(var + eps)
   * >= F16_MIN_GROUP_SCALE; gradients are measured only.
   */
  f16?: boolean;
}

/**
 * Runs one case on the active backend (fused kernels as the flag says) and on
 * the cpu op path, and compares. Never throws for a mismatch: see `failures`.
 * Leaves the active backend and the TFJS_NORM_FUSED flag as it found them.
 */
export async function runGridCase(c: GridCase, opts: GridOptions, seed = 1): Promise<GridResult> {
  const result: GridResult = {name: c.name, maxAbs: {}, worstRatio: 0, failures: [], notes: [], referenceMs: 0, targetMs: 0};
  const n = size(c.shape);
  const x = randn(n, seed * 7 + 1, 1, 0.5);
  const dy = randn(n, seed * 7 + 2);
  const target = tf.getBackend();
  const t0 = Date.now();
  const reference = await onBackend('cpu', false, () => outputs(c, x, dy, seed));
  const t1 = Date.now();
  result.referenceMs = t1 - t0;
  let actual: Outputs;
  try {
    actual = await outputs(c, x, dy, seed);
  } catch (e) {
    result.failures.push(`threw on ${target}: ${(e as Error).message}`);
    return result;
  } finally {
    result.targetMs = Date.now() - t1;
  }
  const info = layerInfoOf(c);
  for (const mode of c.modes) {
    // Inference with running statistics divides by sqrt(running var + eps) >= sqrt(0.5).
    const usesBatch = mode === 'training' || !info.tracksRunningStats(c.args);
    const scale = opts.f16 && usesBatch ? minGroupScaleOf(info.reference(c.args, c.shape), [x]) : null;
    const unitScale = scale === null || scale >= F16_MIN_GROUP_SCALE;
    for (const q of ['y', 'dx'] as const) {
      const what = `${q} ${mode}`;
      const a = actual[mode][q];
      const e = reference[mode][q];
      const asserted = !opts.f16 || (q === 'y' && unitScale);
      if (opts.f16 && !a.every(Number.isFinite)) {
        result.failures.push(`${what} on ${target}: ${a.filter(v => !Number.isFinite(v)).length} non-finite values`);
      }
      const r = compareArrays(a, e, opts.tol);
      result.maxAbs[what] = r.maxAbs;
      if (asserted) result.worstRatio = Math.max(result.worstRatio, r.ratio);
      if (!(r.ratio <= 1)) {
        const i = r.worstIndex;
        const msg = r.why ? `${what}: ${r.why}` :
          `${what} on ${target}: element ${i} is ${a[i]}, cpu op path ${e[i]} (error ${abs(a[i] - e[i]).toExponential(2)}, ` +
          `tolerance ${opts.tol.atol} + ${opts.tol.rtol}*|expected|)`;
        (asserted ? result.failures : result.notes).push(msg);
      }
    }
  }
  return result;
}
