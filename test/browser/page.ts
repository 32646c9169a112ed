/**
 * The in-page browser suite (bundled by test/browser/run.ts, loaded by
 * test/browser/index.html after tf.min.js, the wasm and webgpu backends and
 * dist/tfjs-norm.min.js). `@tensorflow/tfjs` is the page's global `tf` and
 * `../../src` is the `tfnorm` global of the script-tag bundle, so this tests
 * the bundle users load.
 *
 * `window.runSuite({backend, f16})` starts the backend and runs, with a leak
 * check after every test: every PyTorch fixture case (test/fixture_runner.ts,
 * the same check as the Node suite), the shape grid (test/shape_grid.ts, on
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
import {gridCases, runGridCase} from '../shape_grid';

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

/** Shader programs run during `fn`: all, and the package's own (shader key or class name containing `tfjsnorm`). */
interface ProgramCount {
  all: number;
  own: number;
}

/** Runs `fn` counting the active backend's shader programs (webgpu: runWebGPUProgram, webgl: runWebGLProgram); null on cpu/wasm. */
async function countPrograms(fn: () => Promise<void>): Promise<ProgramCount | null> {
  const b = tf.backend() as unknown as Record<string, unknown>;
  const name = ['runWebGPUProgram', 'runWebGLProgram'].find(n => typeof b[n] === 'function');
  if (!name) {
    await fn();
    return null;
  }
  const count = {all: 0, own: 0};
  const original = b[name] as (...args: unknown[]) => unknown;
  b[name] = function(this: unknown, ...args: unknown[]) {
    const program = args[0] as {shaderKey?: string; constructor?: {name?: string}};
    count.all++;
    if (/tfjsnorm/i.test(`${program.shaderKey ?? ''} ${program.constructor?.name ?? ''}`)) count.own++;
    return original.apply(this, args);
  };
  try {
    await fn();
  } finally {
    delete b[name];
    if (b[name] !== original) b[name] = original;
  }
  return count;
}

/** One layer's training step (forward, running statistics, gradients of x and the weights) and inference. */
interface StepResult {
  values: Record<string, number[]>;
  trainKernels: string[];
  inferKernels: string[];
  trainPrograms: ProgramCount | null;
}

async function layerStep(info: (typeof CATALOG)[number], args: Record<string, unknown>, shape: number[],
                         fused: boolean): Promise<StepResult> {
  const previous = tf.env().getBool('TFJS_NORM_FUSED');
  tf.env().set('TFJS_NORM_FUSED', fused);
  const layer = makeLayer(info, args);
  const x = tf.tidy(() => tf.variable(tf.add(tf.mul(tf.randomNormal(shape, 0, 1, 'float32', 7), 2), 3)));
  const dy = tf.randomNormal(shape, 0, 1, 'float32', 8);
  try {
    layer.build(shape);
    // Weights away from their initial ones/zeros, the same for both paths (the same seeds).
    const initial = tf.tidy(() => layer.weights.map((w, i) => {
      const v = w.read();
      if (v.dtype !== 'float32') return tf.clone(v);
      const r = tf.randomNormal(v.shape, 0, 0.5, 'float32', 100 + i);
      return /variance/i.test(w.name) ? tf.add(tf.abs(r), 0.5) : tf.add(r, 1);
    }));
    layer.setWeights(initial);
    tf.dispose(initial);
    const values: Record<string, number[]> = {};
    const vars = [x, ...layer.trainableWeights.map(w => w.read() as tf.Variable)];
    let trainKernels: string[] = [];
    const trainPrograms = await countPrograms(async () => {
      const prof = await tf.profile(() => tf.tidy(() => {
        const {grads} = tf.variableGrads(
            () => tf.sum(tf.mul(layer.apply(x, {training: true}) as tf.Tensor, dy)) as tf.Scalar, vars);
        return tf.concat(vars.map(v => tf.reshape(grads[v.name], [-1])));
      }));
      trainKernels = [...prof.kernelNames];
      // tf.profile keeps the function's result: read it back and free it.
      const out = prof.result as unknown as tf.Tensor;
      values.grads = Array.from(await out.data());
      out.dispose();
    });
    for (const [i, w] of layer.weights.entries()) values[`weight ${i} ${w.originalName.replace(/^.*\//, '')}`] = Array.from(await w.read().data());
    const prof = await tf.profile(() => layer.apply(x, {training: false}) as tf.Tensor);
    const inferKernels = [...prof.kernelNames];
    const y = prof.result as unknown as tf.Tensor;
    values.inference = Array.from(await y.data());
    y.dispose();
    return {values, trainKernels, inferKernels, trainPrograms};
  } finally {
    tf.env().set('TFJS_NORM_FUSED', previous);
    tf.dispose([x, dy]);
    (layer as unknown as {disposeWeights(): void}).disposeWeights();
  }
}

/**
 * Every catalog layer on the page's backend with TFJS_NORM_FUSED on and off:
 * a training step (gradients of x and the weights, running statistics) and
 * inference give the same numbers, and the fused run really ran the fused
 * kernels registered for this backend (tf.profile's kernel names), so a silent
 * fallback to the op composition fails. Notes: shader programs per training step.
 */
async function fusedVsOpTest(backend: string): Promise<Partial<TestReport>> {
  const registered = (name: string) => tf.getKernel(name, backend) != null;
  const tol = {atol: 1e-4, rtol: 1e-4};
  const bad: string[] = [];
  const notes: string[] = [];
  let checked = 0;
  for (const info of CATALOG) {
    // Small, and large enough for split reductions (BatchNorm: 5120 values per channel).
    for (const shape of [[3, 5, 6, 8], [16, 16, 20, 8]]) {
      const args = {...info.inModel};
      const kind = info.reference(args, shape).kind;
      const want = kind === 'normalize' ? ['TfjsNormForward', 'TfjsNormBackward'] : ['TfjsNormLrnForward', 'TfjsNormLrnBackward'];
      const expectFused = want.every(registered);
      const wantInfer = kind === 'normalize' && info.tracksRunningStats(args) ? ['TfjsNormScaleShift'] : [];
      const what = `${info.name} [${shape}]`;
      const f = await layerStep(info, args, shape, true);
      const o = await layerStep(info, args, shape, false);
      for (const k of want) {
        if (expectFused && !f.trainKernels.includes(k)) bad.push(`${what}: the fused training step did not run ${k} (ran ${f.trainKernels.join(', ')})`);
        if (o.trainKernels.includes(k)) bad.push(`${what}: ${k} ran with TFJS_NORM_FUSED off`);
      }
      for (const k of wantInfer) {
        if (registered(k) && !f.inferKernels.includes(k)) bad.push(`${what}: fused inference did not run ${k} (ran ${f.inferKernels.join(', ')})`);
      }
      for (const [q, expected] of Object.entries(o.values)) {
        const r = compareArrays(f.values[q] ?? [], expected, tol);
        if (r.ratio > 1) bad.push(`${what} ${q}: fused ${f.values[q]?.[r.worstIndex]} vs op path ${expected[r.worstIndex]} at ${r.worstIndex} ${r.why}`);
        checked++;
      }
      if (f.trainPrograms && o.trainPrograms && shape[0] === 16) {
        notes.push(`${info.name}: ${f.trainPrograms.all} programs per training step fused (${f.trainPrograms.own} the ` +
                   `fused kernels'), ${o.trainPrograms.all} op path (the loss and its gradient included)`);
      }
    }
  }
  if (bad.length) throw new Error(bad.join('\n'));
  notes.unshift(`${checked} quantities equal within ${tol.atol} + ${tol.rtol}|e|`);
  return {notes};
}

/** The GPU the backend runs on (SwiftShader here), or the CPU backends' name. */
async function deviceName(backend: string): Promise<string> {
  try {
    const b = tf.backend() as unknown as {
      gpgpu?: {gl: WebGL2RenderingContext};
      adapterInfo?: {vendor?: string; architecture?: string; description?: string};
    };
    if (backend === 'webgl' && b.gpgpu) {
      const gl = b.gpgpu.gl;
      const ext = gl.getExtension('WEBGL_debug_renderer_info');
      return String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    }
    if (backend === 'webgpu' && b.adapterInfo) {
      const i = b.adapterInfo;
      return [i.vendor, i.architecture, i.description].filter(Boolean).join(' ') || 'unknown adapter';
    }
  } catch (e) {
    return `unknown (${(e as Error).message})`;
  }
  return backend === 'wasm' ? 'WebAssembly' : 'JavaScript';
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
  if (f16 && !opts.gridOnly) {
    await runTest(report, 'zero-variance input stays finite (epsilon survives float16)', zeroVarianceTest);
  }
  if (opts.grid ?? GRID_BACKENDS.includes(backend)) await runGrid(report, tol, f16, filter);
  if (!f16 && !opts.gridOnly) {
    // Every op a shader (forwarding off), so the program counts are those of real-sized inputs.
    await runTest(report, 'fused kernels and op path give the same training step', () => fusedVsOpTest(backend));
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
