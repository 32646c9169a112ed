/**
 * The in-page browser suite (bundled by test/browser/run.ts, loaded by
 * test/browser/index.html after tf.min.js, the wasm and webgpu backends and
 * dist/tfjs-norm.min.js). `@tensorflow/tfjs` is the page's global `tf` and
 * `../../src` is the `tfnorm` global of the script-tag bundle, so this tests
 * the bundle users load.
 *
 * `window.runSuite({backend, f16})` starts the backend and runs, with a leak
 * check after every test: every PyTorch fixture case (test/fixture_runner.ts,
 * the same check as the Node suite), every activation / add-norm fixture case
 * (test/activation_runner.ts, shared with test/activation.test.ts), the shape grid (test/shape_grid.ts, on
 * the GPU backends), a Sequential `fit` with every catalog layer, and an
 * IndexedDB save/load round trip. Progress goes to console.log with the
 * `[suite]` prefix; the result is a JSON-able SuiteReport.
 */
import * as tf from '@tensorflow/tfjs';
import {CATALOG, FLOAT32_EPSILON, makeLayer} from '../catalog';
import {
  CaseResult, F16_MIN_GROUP_SCALE, FixtureCase, Quantity, Tolerance, compareArrays, minGroupScale, runFixtureCase,
  toleranceFor,
} from '../fixture_runner';
// The set as the source states it (the bundle does not export it; this module's copy is read only).
import {FUSED_EPILOGUE_BACKENDS} from '../../src/engine/kernels';
import {
  ActCase, ActFixtures, ActResult, FORWARD_QUANTITIES, RandomCase, actMinGroupScale, disposeAll, disposeInputs, randomInputs,
  runActLayerCase, runActOpCase, valueAndGradTensors,
} from '../activation_runner';
import {gridCases, runGridCase} from '../shape_grid';
import {deviceName} from './device';

export interface TestReport {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
  /** Worst |actual - expected| per compared quantity (fixture cases: Quantity; grid cells: `y training`, ...). */
  maxAbs?: Partial<Record<Quantity | string, number>>;
  /** Measured-only mismatches (f16 gradients). */
  notes?: string[];
  skipped?: string;
  /** f16 runs: whether the case counts as unit-scale (closeness asserted). */
  unitScale?: boolean;
}

export interface SuiteReport {
  backend: string;
  /** 'webgl-f16' for the float16-texture run. */
  label: string;
  started: boolean;
  reason?: string;
  tolerance?: Tolerance;
  tests: TestReport[];
  ms: number;
  /** Backend facts (WebGL version, float32 textures, ...). */
  env: Record<string, unknown>;
}

export interface SuiteOptions {
  backend: string;
  /** WEBGL_FORCE_F16_TEXTURES (mobile precision). */
  f16?: boolean;
  /** Only fixture cases and grid cells whose name matches. */
  filter?: string;
  /** Run the shape grid (default: on the GPU backends, GRID_BACKENDS). */
  grid?: boolean;
  /** Only the shape grid (no fixtures, fit or IndexedDB tests). */
  gridOnly?: boolean;
  fixturesUrl?: string;
  /** The activation / add-norm fixtures (test/fixtures/activation.json). */
  activationFixturesUrl?: string;
  wasmPath?: string;
}

/** Backends the shape grid runs on in the browser (cpu and wasm run it in jest). */
export const GRID_BACKENDS = ['webgl', 'webgpu'];

/** The flag of GPU backends that runs ops on small CPU-resident inputs on the CPU. */
const CPU_FORWARD_FLAGS: Record<string, string> = {webgl: 'WEBGL_CPU_FORWARD', webgpu: 'WEBGPU_CPU_FORWARD'};

function log(msg: string): void {
  // eslint-disable-next-line no-console
  console.log(`[suite] ${msg}`);
}

/** Starts `backend`, returning null or why it could not start (tfjs reports failures with console.warn). */
async function startBackend(backend: string): Promise<string | null> {
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    warnings.push(args.map(String).join(' '));
    warn.apply(console, args);
  };
  try {
    if (backend === 'webgpu' && !(navigator as unknown as {gpu?: unknown}).gpu) {
      return 'navigator.gpu is undefined (WebGPU not exposed by this browser)';
    }
    const ok = await tf.setBackend(backend);
    await tf.ready();
    if (!ok || tf.getBackend() !== backend) {
      return `tf.setBackend('${backend}') failed (active: ${tf.getBackend()})` +
             (warnings.length ? `: ${warnings.join(' | ')}` : '');
    }
    return null;
  } catch (e) {
    return `tf.setBackend('${backend}') threw: ${(e as Error).message ?? e}`;
  } finally {
    console.warn = warn;
  }
}

/** Runs `fn` as one test, with the tensor leak check after it. */
async function runTest(report: SuiteReport, name: string,
                       fn: () => Promise<Partial<TestReport> | void>): Promise<void> {
  const t0 = performance.now();
  const before = tf.memory().numTensors;
  const entry: TestReport = {name, ok: true, ms: 0};
  try {
    Object.assign(entry, (await fn()) ?? {});
  } catch (e) {
    entry.ok = false;
    entry.error = (e as Error).stack ?? String(e);
  }
  const after = tf.memory().numTensors;
  if (after !== before) {
    entry.ok = false;
    entry.error = `${entry.error ? entry.error + '\n' : ''}leaked ${after - before} tensors (${before} -> ${after})`;
  }
  entry.ms = Math.round(performance.now() - t0);
  report.tests.push(entry);
  log(`${entry.ok ? 'ok  ' : 'FAIL'} ${report.label} ${name} (${entry.ms} ms)${entry.ok ? '' : ': ' + entry.error}`);
  if (entry.notes && !name.startsWith('fixture')) log(`     ${entry.notes.join('; ')}`);
}

function caseTest(c: FixtureCase, tol: Tolerance, f16: boolean) {
  return async (): Promise<Partial<TestReport>> => {
    // float16 textures: everything finite; forward outputs of unit-scale cases
    // within the tolerance; the rest measured (see TOLERANCES).
    const scale = minGroupScale(c);
    const unitScale = scale === null || scale >= F16_MIN_GROUP_SCALE;
    const r: CaseResult = await runFixtureCase(c, tol, f16 ? {assert: unitScale ? ['y', 'eval'] : [], assertFinite: true} : {});
    if (r.failures.length) throw new Error(r.failures.join('\n'));
    const notes = [...r.notes];
    if (f16 && !unitScale) notes.unshift(`not unit-scale (min sqrt(var + eps) ${scale!.toExponential(2)}): closeness measured only`);
    return {maxAbs: r.maxAbs, notes: notes.length ? notes : undefined, unitScale: f16 ? unitScale : undefined};
  };
}

/** A small regression model through every catalog layer (its `inModel` arguments), trained with `fit`. */
function buildModel(): tf.Sequential {
  const model = tf.sequential();
  model.add(tf.layers.dense({inputShape: [6], units: 12}));
  model.add(tf.layers.reshape({targetShape: [3, 4]}));
  for (const info of CATALOG) model.add(makeLayer(info, info.inModel));
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({units: 1}));
  return model;
}

/** Deterministic data: y = sum of a fixed mix of x plus a nonlinearity. */
function regressionData(n: number): {x: tf.Tensor2D; y: tf.Tensor2D} {
  return tf.tidy(() => {
    const xs: number[] = [];
    const ys: number[] = [];
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    for (let i = 0; i < n; i++) {
      const row = Array.from({length: 6}, rand);
      xs.push(...row);
      ys.push(row[0] - 2 * row[1] + row[2] * row[3] + 0.5 * Math.sin(3 * row[4]) + 0.1 * row[5]);
    }
    return {x: tf.tensor2d(xs, [n, 6]), y: tf.tensor2d(ys, [n, 1])};
  });
}

async function fitTest(): Promise<Partial<TestReport>> {
  const model = buildModel();
  const {x, y} = regressionData(128);
  try {
    model.compile({optimizer: tf.train.adam(0.02), loss: 'meanSquaredError'});
    const h = await model.fit(x, y, {epochs: 15, batchSize: 32, shuffle: false, verbose: 0});
    const loss = h.history.loss as number[];
    const first = loss[0];
    const last = loss[loss.length - 1];
    if (!loss.every(Number.isFinite)) throw new Error(`non-finite loss: ${loss.join(', ')}`);
    if (!(last < 0.5 * first)) throw new Error(`loss did not halve in 15 epochs: ${first} -> ${last}`);
    return {notes: [`loss ${first.toFixed(4)} -> ${last.toFixed(4)}`]};
  } finally {
    model.dispose();
    x.dispose();
    y.dispose();
    (model.optimizer as tf.Optimizer | undefined)?.dispose();
  }
}

async function indexedDbTest(backend: string): Promise<Partial<TestReport>> {
  const url = `indexeddb://tfjs-norm-${backend}`;
  const model = buildModel();
  const {x, y} = regressionData(64);
  let loaded: tf.LayersModel | null = null;
  try {
    model.compile({optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError'});
    // Train a little so the running statistics and weights are not their initial values.
    await model.fit(x, y, {epochs: 2, batchSize: 16, shuffle: false, verbose: 0});
    await model.save(url);
    loaded = await tf.loadLayersModel(url);
    const names = loaded.layers.map(l => l.getClassName());
    for (const want of CATALOG.map(info => info.name)) {
      if (!names.includes(want)) throw new Error(`loaded model lacks ${want}: ${names.join(', ')}`);
    }
    // Every weight, running statistics and num_batches_tracked included, comes back bit for bit.
    const [w1, w2] = [model.weights, loaded.weights];
    if (w1.length !== w2.length) throw new Error(`${w2.length} weights loaded, ${w1.length} saved`);
    for (let i = 0; i < w1.length; i++) {
      const [a, b] = [await w1[i].read().data(), await w2[i].read().data()];
      if (compareArrays(b, a, {atol: 0, rtol: 0}).maxAbs !== 0) throw new Error(`weight ${w1[i].originalName} differs after loading`);
    }
    const predictBoth = async () => {
      const [p1, p2] = [model.predict(x) as tf.Tensor, loaded!.predict(x) as tf.Tensor];
      const [a, b] = [await p1.data(), await p2.data()];
      tf.dispose([p1, p2]);
      return compareArrays(b, a, {atol: 0, rtol: 0}).maxAbs;
    };
    const notes = [`layers: ${names.join(', ')}`];
    const forwardFlag = CPU_FORWARD_FLAGS[backend];
    if (!forwardFlag) {
      const d = await predictBoth();
      if (d !== 0) throw new Error(`loaded predictions differ (max |diff| ${d})`);
      return {notes};
    }
    // GPU backends run ops whose inputs are all small CPU-resident tensors on the
    // CPU (*_CPU_FORWARD). The loaded weights start on the CPU, the trained ones
    // on the GPU, so folding gamma/sqrt(var + eps) differs by an ulp. Same
    // placement (forwarding off): bit-identical; default flags: float32 rounding.
    const dDefault = await predictBoth();
    const saved = tf.env().get(forwardFlag);
    tf.env().set(forwardFlag, false);
    let dSame: number;
    try {
      dSame = await predictBoth();
    } finally {
      tf.env().set(forwardFlag, saved);
    }
    if (dSame !== 0) throw new Error(`loaded predictions differ with every op on the GPU (max |diff| ${dSame})`);
    // CPU/GPU rounding of the folded per-channel scale, through six normalization layers: float32 noise.
    if (!(dDefault <= 1e-5)) throw new Error(`loaded predictions differ by ${dDefault} with CPU forwarding`);
    notes.push(`max |diff| ${dDefault} with ${forwardFlag} (default), 0 without`);
    return {notes};
  } finally {
    model.dispose();
    loaded?.dispose();
    x.dispose();
    y.dispose();
    (model.optimizer as tf.Optimizer | undefined)?.dispose();
    await tf.io.removeModel(url).catch(() => undefined);
  }
}

/**
 * float16 storage must not lose epsilon: a zero-variance input gives
 * 0 * rsqrt(0 + epsilon), NaN if epsilon flushed to 0 (it is a float16
 * subnormal: 1e-5 and RMSNorm's 1.19e-7 are below float16's smallest normal
 * 6.1e-5). Every catalog layer with statistics, with its default arguments:
 * centered layers get a constant input (output beta = 0, or 0.75 / sqrt(1 +
 * eps) with running statistics in inference), uncentered ones (RMSNorm) an
 * all-zero one (output 0).
 */
async function zeroVarianceTest(): Promise<Partial<TestReport>> {
  const shape = [2, 3, 4];
  const bad: string[] = [];
  for (const info of CATALOG) {
    const args = {...info.requiredArgs};
    const ref = info.reference(args, shape);
    if (ref.kind !== 'normalize') continue;
    for (const training of [true, false]) {
      const layer = makeLayer(info, args);
      const name = info.name;
      const value = ref.center ? 0.75 : 0;
      const expected = info.tracksRunningStats(args) && !training ? value / Math.sqrt(1 + ref.epsilon) : 0;
      const x = tf.fill(shape, value);
      const y = layer.apply(x, {training}) as tf.Tensor;
      const v = await y.data();
      if (!v.every(Number.isFinite)) bad.push(`${name} (training ${training}) gave non-finite output ${v[0]}`);
      else if (!Array.from(v).every(e => Math.abs(e - expected) <= 1e-2)) {
        bad.push(`${name} (training ${training}) gave ${v[0]}, expected ${expected}`);
      }
      x.dispose();
      y.dispose();
      (layer as unknown as {disposeWeights(): void}).disposeWeights();
    }
  }
  if (bad.length) throw new Error(bad.join('\n'));
  // What the textures keep of small epsilons (SwiftShader keeps float16 subnormals; some mobile GPUs flush them).
  const kept = tf.tidy(() => tf.add(tf.zeros([4]), tf.tensor1d([1e-3, 1e-5, FLOAT32_EPSILON, 1e-8])));
  const k = Array.from(await kept.data());
  kept.dispose();
  return {notes: [`0 + [1e-3, 1e-5, 1.19e-7, 1e-8] reads back as [${k.map(e => e.toPrecision(4)).join(', ')}]`]};
}

function backendEnv(backend: string): Record<string, unknown> {
  const env: Record<string, unknown> = {};
  const flags: Record<string, string[]> = {
    webgl: ['WEBGL_VERSION', 'WEBGL_RENDER_FLOAT32_ENABLED', 'WEBGL_FORCE_F16_TEXTURES', 'WEBGL_PACK'],
    wasm: ['WASM_HAS_SIMD_SUPPORT', 'WASM_HAS_MULTITHREAD_SUPPORT'],
  };
  for (const f of flags[backend] ?? []) {
    try {
      env[f] = tf.env().get(f);
    } catch (e) { /* flag not registered */ }
  }
  return env;
}

/** Every catalog layer's shape grid against the cpu op path; prints each layer's cell count and time. */
async function runGrid(report: SuiteReport, tol: Tolerance, f16: boolean, filter: RegExp | null): Promise<void> {
  for (const info of CATALOG) {
    const cases = gridCases(info).filter(c => !filter || filter.test(c.name));
    const t0 = performance.now();
    let [referenceMs, targetMs] = [0, 0];
    for (const c of cases) {
      await runTest(report, `grid ${c.name}`, async () => {
        const r = await runGridCase(c, {tol, f16});
        referenceMs += r.referenceMs;
        targetMs += r.targetMs;
        if (r.failures.length) throw new Error(r.failures.join('\n'));
        return {maxAbs: r.maxAbs, notes: r.notes.length ? r.notes : undefined};
      });
    }
    log(`grid ${report.label} ${info.name}: ${cases.length} cells in ${((performance.now() - t0) / 1000).toFixed(1)} s ` +
        `(cpu op path ${(referenceMs / 1000).toFixed(1)} s, ${report.label} ${(targetMs / 1000).toFixed(1)} s)`);
  }
}

/** The fused kernels' names (src/engine/kernels.ts), as tf.profile reports them. */
const FUSED_KERNELS = {
  forward: 'TfjsNormForward', backward: 'TfjsNormBackward', scaleShift: 'TfjsNormScaleShift',
  lrnForward: 'TfjsNormLrnForward', lrnBackward: 'TfjsNormLrnBackward',
};
const ALL_FUSED = Object.values(FUSED_KERNELS);
/** Most programs a training step (forward with running update + backward) may run per layer on a GPU backend (issue #14). */
const MAX_TRAIN_PROGRAMS = 6;

/** Deterministic values in [-1, 1) (LCG), the same for both paths. */
function lcg(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out[i] = (s / 2147483648) * 2 - 1;
  }
  return out;
}

interface PathRun {
  /** Named float arrays: y, dx, d<weight>, running weights, inference output. */
  values: Record<string, Float32Array | Int32Array>;
  /** Fused kernels called in the training step / inference. */
  trainKernels: string[];
  evalKernels: string[];
  /** GPU programs they ran (by kernel; tfjs' uploads and unpacking as `Class in kernel`), where countable. */
  trainPrograms: Record<string, number>;
  evalPrograms: Record<string, number>;
}

/**
 * Records the fused kernels called while `fn` runs, and the GPU programs
 * each runs: the registered kernel functions are wrapped (tfjs looks the
 * kernel up on each call, so this sees every call, gradients included, which
 * tf.profile's top-level kernel list does not), and the backend's program
 * runner is wrapped to count while one of them is active.
 */
function watchKernels<T>(backend: string, fn: () => T): {result: T; called: string[]; counts: Record<string, number>} {
  const w = installWatch(backend);
  try {
    return {result: fn(), called: w.called, counts: w.counts};
  } finally {
    w.restore();
  }
}

/** watchKernels for an async `fn` (the wrappers stay until it settles; nothing else runs on the page meanwhile). */
async function watchKernelsAsync<T>(backend: string, fn: () => Promise<T>): Promise<{result: T; called: string[]; counts: Record<string, number>}> {
  const w = installWatch(backend);
  try {
    return {result: await fn(), called: w.called, counts: w.counts};
  } finally {
    w.restore();
  }
}

function installWatch(backend: string): {called: string[]; counts: Record<string, number>; restore: () => void} {
  const b = tf.backend() as unknown as Record<string, unknown>;
  const runner = ['runWebGLProgram', 'runWebGPUProgram'].find(m => typeof b[m] === 'function');
  const counts: Record<string, number> = {};
  const called: string[] = [];
  let active: string | null = null;
  const restore: Array<() => void> = [];
  for (const name of ALL_FUSED) {
    const k = tf.getKernel(name, backend) as {kernelFunc: (...a: unknown[]) => unknown} | undefined;
    if (!k) continue;
    const original = k.kernelFunc;
    k.kernelFunc = (...a: unknown[]) => {
      const outer = active;
      active = name;
      called.push(name);
      try {
        return original(...a);
      } finally {
        active = outer;
      }
    };
    restore.push(() => { k.kernelFunc = original; });
  }
  if (runner) {
    const original = b[runner] as (...a: unknown[]) => unknown;
    b[runner] = function(this: unknown, ...a: unknown[]) {
      // The kernels' own programs: plain objects (webgl) or NormProgram with a `tfjsnorm_` shader key (webgpu);
      // tfjs' program classes run inside them are conversions (upload, unpack).
      const program = a[0] as {shaderKey?: string};
      const own = program.constructor === Object || /^tfjsnorm/.test(program.shaderKey ?? '');
      const key = active && (own ? active : `conversion in ${active}`);
      if (key) counts[key] = (counts[key] ?? 0) + 1;
      return original.apply(this, a);
    };
    restore.push(() => { b[runner] = original; });
  }
  return {called, counts, restore: () => restore.reverse().forEach(r => r())};
}

/**
 * On webgl, uploads `t` from the CPU to an unpacked texture, as an unpacked
 * program's first use leaves it (a CPU tensor whose first consumer is one of
 * the fused kernels is uploaded packed, like the "x from an op" inputs), so
 * that the kernels' unpacked-input paths are held to the op path too.
 */
function uploadUnpacked(t: tf.Tensor): void {
  if (tf.getBackend() !== 'webgl') return;
  const b = tf.backend() as unknown as {uploadToGPU(id: tf.DataId): void; texData: {get(id: tf.DataId): {isPacked?: boolean}}};
  b.uploadToGPU(t.dataId);
  if (b.texData.get(t.dataId).isPacked) throw new Error('uploadUnpacked: the upload came out packed');
}

/**
 * One training step (forward in training mode, gradients w.r.t. x and every
 * trainable weight, running statistics updated) and one inference on a fresh
 * layer with deterministic non-trivial weights, with TFJS_NORM_FUSED on or off.
 */
async function runPath(info: (typeof CATALOG)[number], shape: number[], fused: boolean, backend: string,
                       extra: Record<string, unknown> = {}): Promise<PathRun> {
  const saved = tf.env().getBool('TFJS_NORM_FUSED');
  tf.env().set('TFJS_NORM_FUSED', fused);
  const size = shape.reduce((a, b) => a * b, 1);
  const x = tf.tensor(Array.from(lcg(size, 7), v => 3 + 2 * v), shape);
  uploadUnpacked(x);
  const w = tf.tensor(lcg(size, 11), shape);
  // LocalResponseNorm with alpha 0.5 (not the default 1e-4, whose window sums move y by about 1e-4 relative:
  // under the tolerance, so a wrong window would pass).
  const layer = makeLayer(info, {...(info.name === 'LocalResponseNorm' ? {...info.inModel, alpha: 0.5, k: 2} : info.inModel), ...extra});
  const xVar = tf.variable(x, true, `fused_vs_op_x_${Date.now()}`);
  try {
    tf.dispose(layer.apply(x, {training: false}) as tf.Tensor);
    const init = layer.weights.map((v, i) => {
      const t = v.read();
      return t.dtype === 'float32' ? tf.tensor(Array.from(lcg(t.size, 100 + i), e => 1 + 0.5 * e), t.shape) : tf.clone(t);
    });
    layer.setWeights(init);
    tf.dispose(init);
    const values: PathRun['values'] = {};
    const vars = [xVar, ...layer.trainableWeights.map(v => v.read() as tf.Variable)];
    const names = ['dx', ...layer.trainableWeights.map(v => `d${v.originalName.split('/').pop()}`)];
    const train = watchKernels(backend, () => {
      let y: tf.Tensor | null = null;
      const {value, grads} = tf.variableGrads(() => {
        y = tf.keep(layer.apply(xVar, {training: true}) as tf.Tensor);
        return tf.sum(tf.mul(y, w)) as tf.Scalar;
      }, vars);
      value.dispose();
      return [y!, ...vars.map(v => grads[v.name])];
    });
    const trainOut = train.result;
    values.y = await trainOut[0].data() as Float32Array;
    for (let i = 1; i < trainOut.length; i++) values[names[i - 1]] = await trainOut[i].data() as Float32Array;
    tf.dispose(trainOut);
    for (const v of layer.nonTrainableWeights) values[v.originalName.split('/').pop()!] = await v.read().data() as Float32Array;
    const evalRun = watchKernels(backend, () => layer.apply(x, {training: false}) as tf.Tensor);
    const yEval = evalRun.result;
    values['y inference'] = await yEval.data() as Float32Array;
    yEval.dispose();
    // x as a model hands it over on webgl: a packed op's output (webgl's scale-and-shift reads it packed).
    const yPacked = tf.tidy(() => layer.apply(tf.mul(x, tf.scalar(1)), {training: false}) as tf.Tensor);
    values['y inference (x from an op)'] = await yPacked.data() as Float32Array;
    yPacked.dispose();
    // A second training step on that packed x (the webgl kernels read packed inputs in place).
    let yOp: tf.Tensor | null = null;
    const second = tf.variableGrads(() => {
      yOp = tf.keep(layer.apply(tf.mul(xVar, tf.scalar(1)), {training: true}) as tf.Tensor);
      return tf.sum(tf.mul(yOp, w)) as tf.Scalar;
    }, vars);
    values['y training (x from an op)'] = await yOp!.data() as Float32Array;
    for (let i = 0; i < vars.length; i++) values[`${names[i]} (x from an op)`] = await second.grads[vars[i].name].data() as Float32Array;
    tf.dispose([yOp!, second.value, ...Object.values(second.grads)]);
    return {values, trainKernels: train.called, evalKernels: evalRun.called,
            trainPrograms: train.counts, evalPrograms: evalRun.counts};
  } finally {
    tf.env().set('TFJS_NORM_FUSED', saved);
    (layer as unknown as {dispose(): void}).dispose();
    tf.dispose([x, w, xVar]);
  }
}

/**
 * Every catalog layer (its `inModel` arguments) on a small input and on one
 * whose statistics or parameter gradients gather over a thousand values (the
 * GPU kernels' two-level reductions; LayerNorm and RMSNorm also on 15 rows of
 * 161, webgl's row-layout backward), with the fused kernels on and off on
 * this backend: the same training-step outputs, gradients, running
 * statistics and inference output within the suite's tolerance, and, where
 * the backend registers the kernels, proof that the fused path called them
 * (and the op path none of them). On webgl and webgpu, the programs the
 * kernels run per training step are counted and held to MAX_TRAIN_PROGRAMS,
 * and inference with running statistics to one.
 */
async function fusedVsOpTest(backend: string, tol: Tolerance): Promise<Partial<TestReport>> {
  const failures: string[] = [];
  const notes: string[] = [];
  const maxAbs: Record<string, number> = {};
  const registered = tf.getKernel(FUSED_KERNELS.forward, backend) != null;
  if (!registered) notes.push(`no fused kernels registered on ${backend}: both paths are the op composition`);
  for (const info of CATALOG) {
    // LayerNorm and RMSNorm also on long rows (webgl's row-layout backward): an odd number of odd-length rows,
    // and even-length rows whose packed texture webgl walks in place (x from an op): [4,6,300] (two rows per
    // texel row; chunks rounded to even lengths) and [7,258] (an odd row count: the last texel row's padding).
    // BatchNorm, InstanceNorm and GroupNorm also channels-first (axis 1: 160 channels of 4 values), and as an
    // image batch [2,8,6,10] axis 1, whose packed x is no view of the canonical [2,8,60] (webgl's
    // scale-and-shift then reads x's texels in its own shape).
    const rowShapes = [[2, 3, 4], [8, 160, 4], [3, 5, 161], [4, 6, 300], [7, 258]];
    const shapes = info.name === 'LayerNorm' || info.name === 'RMSNorm' ? rowShapes : [[2, 3, 4], [8, 160, 4]];
    const runs: Array<[number[], Record<string, unknown>]> = shapes.map(s => [s, {}]);
    if (['BatchNorm', 'InstanceNorm', 'GroupNorm'].includes(info.name)) runs.push([[8, 160, 4], {axis: 1}], [[2, 8, 6, 10], {axis: 1}]);
    for (const [shape, extra] of runs) {
      const what = `${info.name} [${shape}]${extra.axis != null ? ` axis ${extra.axis}` : ''}`;
      const op = await runPath(info, shape, false, backend, extra);
      const fused = await runPath(info, shape, true, backend, extra);
      for (const [q, want] of Object.entries(op.values)) {
        const got = fused.values[q];
        if (!got) {
          failures.push(`${what}: fused path lacks ${q}`);
          continue;
        }
        const c = compareArrays(got, want, tol);
        maxAbs[q] = Math.max(maxAbs[q] ?? 0, c.maxAbs);
        if (c.why || !(c.ratio <= 1)) {
          failures.push(`${what} ${q}: fused differs from the op path beyond ${tol.atol} + ${tol.rtol}|e|; ` +
                        `Received: ${c.why || `${got[c.worstIndex]} at ${c.worstIndex}, op path ${want[c.worstIndex]}`}`);
        }
      }
      const leaked = op.trainKernels.concat(op.evalKernels).filter(k => ALL_FUSED.includes(k));
      if (leaked.length) failures.push(`${what}: the op path ran fused kernels ${[...new Set(leaked)]}`);
      if (!registered) continue;
      const lrn = info.name === 'LocalResponseNorm';
      const wantTrain = lrn ? [FUSED_KERNELS.lrnForward, FUSED_KERNELS.lrnBackward] : [FUSED_KERNELS.forward, FUSED_KERNELS.backward];
      const wantEval = lrn ? FUSED_KERNELS.lrnForward : info.tracksRunningStats(info.inModel) ? FUSED_KERNELS.scaleShift : FUSED_KERNELS.forward;
      for (const k of wantTrain) {
        if (!fused.trainKernels.includes(k)) failures.push(`${what}: the fused training step did not run ${k}; Received kernels: ${fused.trainKernels.join(', ')}`);
      }
      if (!fused.evalKernels.includes(wantEval)) failures.push(`${what}: fused inference did not run ${wantEval}; Received kernels: ${fused.evalKernels.join(', ')}`);
      // The kernels' own programs (conversions of the test's fresh inputs, uploads and unpacking, listed apart).
      const own = (r: Record<string, number>) => Object.entries(r).filter(([k]) => !k.includes(' in ')).reduce((a, [, n]) => a + n, 0);
      const list = (r: Record<string, number>) => Object.entries(r).map(([k, n]) => `${k} ${n}`).join(', ');
      if (Object.keys(fused.trainPrograms).length) {
        const train = own(fused.trainPrograms);
        const inference = own(fused.evalPrograms);
        notes.push(`${what}: ${train} programs per training step (${list(fused.trainPrograms)}); inference ${inference} (${list(fused.evalPrograms)})`);
        if (!lrn && train > MAX_TRAIN_PROGRAMS) failures.push(`${what}: ${train} programs per training step, more than ${MAX_TRAIN_PROGRAMS}`);
        if (wantEval === FUSED_KERNELS.scaleShift && inference !== 1) failures.push(`${what}: inference with running statistics ran ${inference} programs, not 1`);
      }
    }
  }
  if (failures.length) throw new Error([...failures, ...notes].join('\n'));
  return {maxAbs, notes};
}

/**
 * One activation / add-norm fixture case (issue #17, test/fixtures/activation.json)
 * through its op: y, the sum, and the gradients w.r.t. x, residual, gamma and
 * beta against PyTorch (test/activation_runner.ts, the same check as the Node
 * suite), with TFJS_NORM_FUSED off (the op composition: no fused kernel may
 * run) and on. With it on, backends in FUSED_EPILOGUE_BACKENDS that register
 * the kernels must run TfjsNormForward and TfjsNormBackward (BatchNorm in
 * inference: TfjsNormScaleShift) (proved by
 * wrapping the kernel functions) and agree with the op path; the others must
 * run the op path (no fused kernel). float16 textures: every value finite,
 * forward outputs (y, sum) asserted for unit-scale cases, gradients measured.
 */
function activationOpTest(c: ActCase, tol: Tolerance, f16: boolean, backend: string) {
  return async (): Promise<Partial<TestReport>> => {
    const scale = actMinGroupScale(c);
    const unitScale = scale >= F16_MIN_GROUP_SCALE;
    const opts = f16 ? {assert: unitScale ? FORWARD_QUANTITIES : [], assertFinite: true} : {};
    const asserted = new Set<string>(opts.assert ?? ['y', 'sum', 'dx', 'dresidual', 'dgamma', 'dbeta']);
    const saved = tf.env().getBool('TFJS_NORM_FUSED');
    const failures: string[] = [];
    const notes: string[] = [];
    const maxAbs: Record<string, number> = {};
    const runs: Record<string, ActResult> = {};
    try {
      for (const fused of [false, true]) {
        const path = fused ? 'fused' : 'op path';
        tf.env().set('TFJS_NORM_FUSED', fused);
        const w = await watchKernelsAsync(backend, () => runActOpCase(c, tol, opts));
        const r = w.result;
        runs[path] = r;
        failures.push(...r.failures.map(f => `${path}: ${f}`));
        notes.push(...r.notes.map(f => `${path}: ${f}`));
        for (const [q, v] of Object.entries(r.maxAbs)) maxAbs[`${q} (${path})`] = v as number;
        const ran = [...new Set(w.called)];
        const registered = tf.getKernel(FUSED_KERNELS.forward, backend) != null;
        if (fused && registered && FUSED_EPILOGUE_BACKENDS.has(backend)) {
          // BatchNorm in inference with running statistics: one scale-and-shift kernel (its gradient is ops).
          const inference = c.op === 'batchNorm' && c.args.training !== true && c.mean != null;
          for (const k of inference ? [FUSED_KERNELS.scaleShift] : [FUSED_KERNELS.forward, FUSED_KERNELS.backward]) {
            if (!ran.includes(k)) failures.push(`fused: ${k} did not run on ${backend} (in FUSED_EPILOGUE_BACKENDS); Received kernels: ${ran.join(', ') || 'none'}`);
          }
        } else if (ran.length) {
          failures.push(`${path}: fused kernels ran on ${backend}, where this call must take the op path; Received kernels: ${ran.join(', ')}`);
        }
        if (fused) notes.push(`fused kernels that ran: ${ran.join(', ') || 'none (op path)'}`);
      }
      // fused == op path, on every asserted quantity.
      for (const [q, want] of Object.entries(runs['op path'].values)) {
        if (!asserted.has(q)) continue;
        const got = runs.fused.values[q as keyof ActResult['values']];
        if (!got) continue;
        const d = compareArrays(got, want!, tol);
        if (d.why || !(d.ratio <= 1)) {
          failures.push(`${q}: fused differs from the op path beyond ${tol.atol} + ${tol.rtol}|e|; ` +
                        `Received: ${d.why || `${got[d.worstIndex]} at ${d.worstIndex}, op path ${want![d.worstIndex]}`}`);
        }
      }
    } finally {
      tf.env().set('TFJS_NORM_FUSED', saved);
    }
    if (f16 && !unitScale) notes.unshift(`not unit-scale (min sqrt(var + eps) ${scale.toExponential(2)}): closeness measured only`);
    if (failures.length) throw new Error(failures.join('\n'));
    return {maxAbs, notes: notes.length ? notes : undefined, unitScale: f16 ? unitScale : undefined};
  };
}

/** The layer of an activation fixture case (AddLayerNorm, ..., with the case's weights and running statistics). */
function activationLayerTest(c: ActCase, tol: Tolerance, f16: boolean) {
  return async (): Promise<Partial<TestReport>> => {
    const scale = actMinGroupScale(c);
    const unitScale = scale >= F16_MIN_GROUP_SCALE;
    const r = await runActLayerCase(c, tol, f16 ? {assert: unitScale ? FORWARD_QUANTITIES : [], assertFinite: true} : {});
    if (r.failures.length) throw new Error(r.failures.join('\n'));
    const notes = [...r.notes];
    if (f16 && !unitScale) notes.unshift(`not unit-scale (min sqrt(var + eps) ${scale.toExponential(2)}): closeness measured only`);
    return {maxAbs: r.maxAbs, notes: notes.length ? notes : undefined, unitScale: f16 ? unitScale : undefined};
  };
}

/**
 * GPU-sized epilogue calls (the kernels' chunked, workgroup-per-statistic,
 * thread-per-statistic and vec4 / scalar paths; activations' tails with
 * |z| up to 300): every activation and the residual sum.
 */
const EPILOGUE_CASES: RandomCase[] = [
  {name: 'GroupNorm(8) channels-last silu', op: 'groupNorm', shape: [4, 16, 16, 32], args: {numGroups: 8, axis: -1, activation: 'silu'}, param: [32]},
  // [N, HW, 32, 2]: two channels a group (webgpu: vec4 lanes over two rows of 2; the backward's per-channel sums).
  {name: 'GroupNorm(32) channels-last silu, 2 channels a group', op: 'groupNorm', shape: [2, 16, 16, 64], args: {numGroups: 32, axis: -1, activation: 'silu'}, param: [64]},
  {name: 'GroupNorm(2) channels-first gelu', op: 'groupNorm', shape: [2, 8, 15, 7], args: {numGroups: 2, axis: 1, activation: 'gelu'}, param: [8]},
  {name: 'BatchNorm chunked relu', op: 'batchNorm', shape: [64, 128, 8], args: {axis: -1, training: true, activation: 'relu'}, param: [8]},
  {name: 'BatchNorm inference gelu', op: 'batchNorm', shape: [64, 12], args: {axis: -1, activation: 'gelu'}, param: [12], stats: true},
  {name: 'InstanceNorm channels-first silu', op: 'instanceNorm', shape: [2, 4, 301], args: {axis: 1, activation: 'silu'}, param: [4]},
  {name: 'LayerNorm long rows gelu', op: 'layerNorm', shape: [4, 3001], args: {activation: 'gelu'}, param: [3001]},
  {name: 'LayerNorm gelu, |z| up to 300', op: 'layerNorm', shape: [8, 64], args: {activation: 'gelu'}, param: [64], gammaScale: 100},
  {name: 'LayerNorm silu, |z| up to 300', op: 'layerNorm', shape: [8, 64], args: {activation: 'silu'}, param: [64], gammaScale: 100},
  {name: 'RMSNorm relu no beta', op: 'rmsNorm', shape: [33, 96], args: {activation: 'relu'}, param: [96], beta: false},
  {name: 'AddLayerNorm gelu returnSum', op: 'addLayerNorm', shape: [16, 512], args: {activation: 'gelu', returnSum: true}, param: [512]},
  {name: 'AddLayerNorm no activation, two axes', op: 'addLayerNorm', shape: [3, 5, 6, 7], args: {axis: [-2, -1]}, param: [6, 7]},
  {name: 'AddRMSNorm silu returnSum', op: 'addRMSNorm', shape: [32, 258], args: {activation: 'silu', returnSum: true}, param: [258], beta: false},
  {name: 'AddRMSNorm no affine', op: 'addRMSNorm', shape: [4, 50], args: {}, param: null},
  // Inputs from ops (packed on webgl): x and dy read in place, four values per fetch (GroupNorm: texel
  // rectangles forward, texel columns of fine groups backward, with the activation's dz); the Add layers' sum
  // written packed and its rows walked in place.
  {name: 'GroupNorm(8) channels-last silu, inputs from ops', op: 'groupNorm', shape: [2, 16, 16, 32], args: {numGroups: 8, axis: -1, activation: 'silu'}, param: [32], fromOps: true},
  {name: 'AddLayerNorm gelu, inputs from ops', op: 'addLayerNorm', shape: [4, 6, 300], args: {activation: 'gelu'}, param: [300], fromOps: true},
  {name: 'AddRMSNorm returnSum, inputs from ops', op: 'addRMSNorm', shape: [7, 258], args: {returnSum: true}, param: [258], beta: false, fromOps: true},
];

/**
 * EPILOGUE_CASES with TFJS_NORM_FUSED on and off: on backends in
 * FUSED_EPILOGUE_BACKENDS registering the kernels, the fused kernels must run
 * (kernel functions wrapped) and give the op path's y, sum and gradients
 * (ulps of z, amplified by 1/std in the gradients: the suite's tolerance
 * scaled by |z|'s range); elsewhere both are the op path (no fused kernel).
 */
async function epilogueFusedVsOpTest(backend: string, tol: Tolerance): Promise<Partial<TestReport>> {
  const failures: string[] = [];
  const notes: string[] = [];
  const maxAbs: Record<string, number> = {};
  const saved = tf.env().getBool('TFJS_NORM_FUSED');
  const fusedHere = FUSED_EPILOGUE_BACKENDS.has(backend) && tf.getKernel(FUSED_KERNELS.forward, backend) != null;
  try {
    for (const [i, c] of EPILOGUE_CASES.entries()) {
      const values: Array<Record<string, Float32Array>> = [];
      for (const fused of [false, true]) {
        tf.env().set('TFJS_NORM_FUSED', fused);
        const t = randomInputs(c, 500 + 31 * i);
        try {
          const w = await watchKernelsAsync(backend, async () => {
            const r = valueAndGradTensors(c.op, c.args, t, t.dy, t.dsum);
            try {
              const v: Record<string, Float32Array> = {y: await r.outs[0].data() as Float32Array};
              if (r.outs[1]) v.sum = await r.outs[1].data() as Float32Array;
              for (const [n, g] of Object.entries(r.grads)) v[`d${n}`] = await g!.data() as Float32Array;
              return v;
            } finally {
              disposeAll(r);
            }
          });
          values.push(w.result);
          const ran = [...new Set(w.called)];
          const inference = c.stats === true;
          const want = inference ? [FUSED_KERNELS.scaleShift] : [FUSED_KERNELS.forward, FUSED_KERNELS.backward];
          if (fused && fusedHere) {
            for (const k of want) if (!ran.includes(k)) failures.push(`${c.name}: fused did not run ${k}; Received kernels: ${ran.join(', ') || 'none'}`);
            if (i === 0) notes.push(`${c.name}: ${Object.entries(w.counts).map(([k, n]) => `${k} ${n}`).join(', ')} programs`);
          } else if (ran.length) {
            failures.push(`${c.name} (${fused ? 'fused' : 'op path'}): fused kernels ran where the op path must; Received kernels: ${ran.join(', ')}`);
          }
        } finally {
          disposeInputs(t);
        }
      }
      const [op, fused] = values;
      const zScale = Math.max(1, 3 * (c.gammaScale ?? 1));
      for (const [q, want] of Object.entries(op)) {
        const got = fused[q];
        const d = compareArrays(got, want, {atol: tol.atol * zScale, rtol: tol.rtol});
        maxAbs[q] = Math.max(maxAbs[q] ?? 0, d.maxAbs);
        if (d.why || !(d.ratio <= 1)) {
          failures.push(`${c.name} ${q}: fused differs from the op path beyond ${tol.atol * zScale} + ${tol.rtol}|e|; ` +
                        `Received: ${d.why || `${got[d.worstIndex]} at ${d.worstIndex}, op path ${want[d.worstIndex]}`}`);
        }
      }
    }
  } finally {
    tf.env().set('TFJS_NORM_FUSED', saved);
  }
  if (!fusedHere) notes.push(`${backend}: epilogues take the op path (not in FUSED_EPILOGUE_BACKENDS or no kernels)`);
  if (failures.length) throw new Error([...failures, ...notes].join('\n'));
  return {maxAbs, notes};
}

export async function runSuite(opts: SuiteOptions): Promise<SuiteReport> {
  const t0 = performance.now();
  const {backend} = opts;
  const f16 = opts.f16 === true;
  const label = f16 ? `${backend}-f16` : backend;
  const report: SuiteReport = {backend, label, started: false, tests: [], ms: 0, env: {}};
  if (f16) tf.env().set('WEBGL_FORCE_F16_TEXTURES', true);
  if (backend === 'wasm') {
    const wasm = (tf as unknown as {wasm?: {setWasmPaths(p: string): void}}).wasm;
    wasm?.setWasmPaths(opts.wasmPath ?? '/node_modules/@tensorflow/tfjs-backend-wasm/dist/');
  }
  const reason = await startBackend(backend);
  if (reason) {
    report.reason = reason;
    log(`backend ${label} did not start: ${reason}`);
    report.ms = Math.round(performance.now() - t0);
    return report;
  }
  report.started = true;
  report.env = {...backendEnv(backend), device: await deviceName(backend)};
  const tol = toleranceFor(label);
  report.tolerance = tol;
  log(`backend ${tf.getBackend()} started ${JSON.stringify(report.env)}; tolerance ${JSON.stringify(tol)}`);

  const fixtures: {torchVersion: string; cases: FixtureCase[]} =
    await (await fetch(opts.fixturesUrl ?? '/test/fixtures/torch_reference.json')).json();
  const filter = opts.filter ? new RegExp(opts.filter) : null;
  // GPU backends run an op on the CPU when all its inputs are small CPU-resident
  // tensors (*_CPU_FORWARD): the fixtures are small, so forwarding is turned off
  // for them to make every op a shader, as with real-sized inputs.
  const forwardFlag = CPU_FORWARD_FLAGS[backend];
  const forwardDefault = forwardFlag ? tf.env().get(forwardFlag) : null;
  if (forwardFlag) tf.env().set(forwardFlag, false);
  for (const c of opts.gridOnly ? [] : fixtures.cases) {
    if (filter && !filter.test(c.name)) continue;
    await runTest(report, `fixture ${c.name}`, caseTest(c, tol, f16));
    if (tf.getBackend() !== backend) throw new Error(`backend changed to ${tf.getBackend()}`);
  }
  const actFixtures: ActFixtures = opts.gridOnly ? {torchVersion: '', cases: []} :
    await (await fetch(opts.activationFixturesUrl ?? '/test/fixtures/activation.json')).json();
  for (const c of actFixtures.cases) {
    if (filter && !filter.test(`activation ${c.name}`)) continue;
    await runTest(report, `activation ${c.name} (op, fused and op path)`, activationOpTest(c, tol, f16, backend));
    await runTest(report, `activation ${c.name} (layer)`, activationLayerTest(c, tol, f16));
  }
  if (!opts.gridOnly && !f16 && (!filter || filter.test('activation fused vs op'))) {
    await runTest(report, 'activation fused vs op (GPU-sized epilogue calls)', () => epilogueFusedVsOpTest(backend, tol));
  }
  if (!opts.gridOnly && !filter && actFixtures.cases.length < 15) {
    await runTest(report, 'activation fixtures present', async () => {
      throw new Error(`activation.json has ${actFixtures.cases.length} cases; Received fewer than 15`);
    });
  }
  if (f16 && !opts.gridOnly) {
    await runTest(report, 'zero-variance input stays finite (epsilon survives float16)', zeroVarianceTest);
  }
  if (opts.grid ?? GRID_BACKENDS.includes(backend)) await runGrid(report, tol, f16, filter);
  if (!opts.gridOnly && (!filter || filter.test('fused vs op'))) {
    await runTest(report, 'fused kernels vs op path (every catalog layer, training step and inference)', () => fusedVsOpTest(backend, tol));
  }
  if (forwardFlag) tf.env().set(forwardFlag, forwardDefault!);
  if (!f16 && !opts.gridOnly) {
    await runTest(report, 'Sequential fit with every layer', fitTest);
    await runTest(report, 'IndexedDB save/load gives identical predictions', () => indexedDbTest(backend));
  }
  report.ms = Math.round(performance.now() - t0);
  return report;
}

(window as unknown as {runSuite: typeof runSuite}).runSuite = runSuite;
