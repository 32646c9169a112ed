/**
 * The in-page part of `npm run bench:browser` (bundled by bench/browser/run.ts,
 * loaded by bench/browser/index.html after the page's tf.min.js, the wasm and
 * webgpu backends and the script-tag bundle dist/tfjs-norm.min.js).
 *
 * `window.runBench({backend, runs, only})` starts the backend and measures,
 * per case (the layers, shapes and anchors of issue 14), a training step
 * (forward + backward with a given dy: `tf.engine().gradients`, every
 * gradient's data() awaited) and an inference call, for:
 *   - ours: the layer as users get it (fused kernels where registered);
 *   - op path: the same layer with the `TFJS_NORM_FUSED` flag off;
 *   - the tfjs layer anchor (batchNormalization / layerNormalization /
 *     localResponseNormalization) and the naive composition with autodiff.
 * Each time is the median of >= `runs` calls after a warm-up; a warm-up over
 * SLOW_MS is the only sample (starred in the table). Each subject's training
 * step is also profiled once: kernels (tf.profile) and GPU programs run
 * (calls of the backend's runWebGLProgram / runWebGPUProgram).
 */
import * as tf from '@tensorflow/tfjs';
import * as tfn from '../../src';
import {deviceName} from '../../test/browser/device';

export interface BenchOptions {
  backend: string;
  /** Samples per median (>= 10 for the committed summary). */
  runs: number;
  /** Only cases whose name contains this. */
  only?: string;
  /** Smaller shapes (batch / 4): a smoke run, never committed. */
  quick?: boolean;
  wasmPath?: string;
  /** Log each GPU program's time in a training step and an inference call (webgl: a one-pixel read after each; webgpu: timestamp queries). */
  profile?: boolean;
  /** Only these subjects (comma-separated keys, e.g. 'ours,naive'). */
  subjects?: string;
  /**
   * Also time the subjects alternately, one call each per round, and log each
   * one's median and the median per-round ratio to ours: on a loaded machine
   * the load then falls on all of them alike.
   */
  interleave?: boolean;
  /**
   * With interleave: also time each subject without the read-back (as inside
   * a model, where nothing is downloaded): the call waits until the GPU has
   * finished its outputs (settle()) instead of awaiting their data().
   */
  noRead?: boolean;
  /**
   * x and dy as a model hands them over on webgl: packed textures (the
   * output of a packed op), not uploads from the CPU (unpacked textures).
   */
  packed?: boolean;
}

export interface Timing {
  ms: number;
  /** Samples behind the median; 0 = one cold call (over SLOW_MS). */
  runs: number;
}

export interface SubjectResult {
  infer?: Timing;
  train?: Timing;
  /** Kernels of one training step (tf.profile). */
  kernels?: number;
  /** GPU programs of one training step (webgl / webgpu). */
  programs?: number;
  /** GPU programs of one inference call. */
  inferPrograms?: number;
  error?: string;
}

export interface BenchRow {
  name: string;
  shape: number[];
  subjects: Record<string, SubjectResult>;
}

export interface BenchReport {
  backend: string;
  started: boolean;
  reason?: string;
  device?: string;
  rows: BenchRow[];
  ms: number;
}

const SLOW_MS = 8000;

function log(msg: string): void {
  // eslint-disable-next-line no-console
  console.log(`[bench] ${msg}`);
}

function median(a: number[]): number {
  const s = [...a].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function time(fn: () => Promise<void>, runs: number): Promise<Timing> {
  const w = performance.now();
  await fn();
  const warm = performance.now() - w;
  if (warm > SLOW_MS) return {ms: warm, runs: 0};
  const times: number[] = [];
  const t0 = performance.now();
  while (times.length < runs || (times.length < 30 && performance.now() - t0 < 1500)) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  return {ms: median(times), runs: times.length};
}

/** Counts the backend's GPU program runs during `fn` (0 on cpu / wasm). */
async function countPrograms(fn: () => Promise<void>): Promise<number> {
  const b = tf.backend() as unknown as Record<string, unknown>;
  let n = 0;
  const saved: [string, unknown][] = [];
  for (const m of ['runWebGLProgram', 'runWebGPUProgram']) {
    const orig = b[m];
    if (typeof orig !== 'function') continue;
    saved.push([m, orig]);
    b[m] = function (this: unknown, ...args: unknown[]) {
      n++;
      return (orig as (...a: unknown[]) => unknown).apply(this, args);
    };
  }
  try {
    await fn();
  } finally {
    for (const [m, orig] of saved) b[m] = orig;
  }
  return n;
}

/**
 * Program times of profiled calls (profilePrograms, profileGpuPrograms): each
 * program keyed by its name numbered by occurrence within its call, summed per
 * call; the report gives the median per key and of the calls' totals.
 */
class ProgramTimes {
  private readonly samples = new Map<string, number[][]>();
  private readonly totals: number[] = [];
  private seen = new Map<string, number>();

  /** Starts a call: the numbering restarts (then wrap the programs and `call`). */
  startCall(): void {
    this.seen = new Map();
  }

  /** `base` numbered by how often it ran so far in this call. */
  key(base: string): string {
    const n = this.seen.get(base) ?? 0;
    this.seen.set(base, n + 1);
    return `${base}#${n}`;
  }

  /** `ms` for program `key` in call `k`. */
  add(key: string, k: number, ms: number): void {
    if (!this.samples.has(key)) this.samples.set(key, []);
    const arr = this.samples.get(key)!;
    while (arr.length <= k) arr.push([]);
    arr[k].push(ms);
  }

  /**
   * One profiled call of `fn` (its programs wrapped by the caller, unwrapped by
   * `restore`), its total recorded; returns its start time.
   */
  async call(fn: () => Promise<void>, restore: () => void): Promise<number> {
    await tf.nextFrame();
    const t0 = performance.now();
    try {
      await fn();
    } finally {
      restore();
    }
    this.totals.push(performance.now() - t0);
    return t0;
  }

  report(head: string[] = []): string {
    const lines = [...head];
    let sum = 0;
    for (const [key, per] of this.samples) {
      const m = median(per.map(a => a.reduce((x, y) => x + y, 0)));
      sum += m;
      if (m >= 0.3) lines.push(`    ${m.toFixed(1).padStart(7)} ms  ${key}`);
    }
    const total = median(this.totals);
    lines.push(`    ${total.toFixed(1).padStart(7)} ms  total (programs ${sum.toFixed(1)}, other ${(total - sum).toFixed(1)})`);
    return lines.join('\n');
  }
}

type WebGLB = {runWebGLProgram: (...a: unknown[]) => unknown; gpgpu?: {gl: WebGL2RenderingContext};
               texData: {get(id: unknown): {texture?: {texture: WebGLTexture} | WebGLTexture}}};

/**
 * webgl: returns a function that blocks until the GPU has written `out` (a
 * one-pixel readPixels of its texture; gl.finish does not wait for
 * SwiftShader), or null off webgl. Pair with the returned cleanup.
 */
function pixelWaiter(): {wait: (out: tf.TensorInfo) => void; dispose: () => void} | null {
  const b = tf.backend() as unknown as WebGLB;
  if (typeof b.runWebGLProgram !== 'function' || !b.gpgpu) return null;
  const gl = b.gpgpu.gl;
  const fb = gl.createFramebuffer();
  const pixel = new Float32Array(4);
  const wait = (out: tf.TensorInfo) => {
    const t = b.texData.get(out.dataId).texture;
    const tex = t && 'texture' in (t as object) ? (t as {texture: WebGLTexture}).texture : t as WebGLTexture;
    if (!tex) return;
    const prev = gl.getParameter(gl.FRAMEBUFFER_BINDING);
    gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, tex, 0);
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.FLOAT, pixel);
    gl.bindFramebuffer(gl.FRAMEBUFFER, prev);
  };
  return {wait, dispose: () => gl.deleteFramebuffer(fb)};
}

/**
 * Waits until the backend has computed `ts` without downloading them:
 * webgl a one-pixel read of each output texture, webgpu the queue's
 * completion; cpu and wasm compute synchronously.
 */
async function settle(ts: tf.Tensor[], pixels: ReturnType<typeof pixelWaiter>): Promise<void> {
  if (pixels) {
    ts.forEach(t => pixels.wait(t));
    return;
  }
  const b = tf.backend() as unknown as {device?: {queue: {onSubmittedWorkDone(): Promise<void>}}; submitQueue?(): void;
                                       endComputePassEncoder?(): void; commandEncoder?: unknown};
  if (b.device && b.submitQueue && b.endComputePassEncoder) {
    if (b.commandEncoder) { // work still recorded (tfjs batches dispatches): submit it, as data() would
      b.endComputePassEncoder();
      b.submitQueue();
    }
    await b.device.queue.onSubmittedWorkDone();
  }
}

/**
 * Per-program times of `fn` (webgl): each runWebGLProgram is followed by a
 * one-pixel readPixels of its output (gl.finish does not wait for
 * SwiftShader), median over `reps` calls; the rest (downloads, JS) as 'other'.
 */
async function profilePrograms(fn: () => Promise<void>, reps = 5): Promise<string> {
  const b = tf.backend() as unknown as WebGLB;
  const pixels = pixelWaiter();
  if (!pixels) return '';
  const {wait} = pixels;
  const orig = b.runWebGLProgram;
  const times = new ProgramTimes();
  for (let k = 0; k < reps; k++) {
    times.startCall();
    b.runWebGLProgram = function (this: unknown, ...args: unknown[]) {
      const p = args[0] as {constructor: {name: string}; variableNames: string[]; outputShape: number[]; packedOutput?: boolean};
      const t = performance.now();
      const out = orig.apply(this, args) as tf.TensorInfo;
      wait(out);
      const ms = performance.now() - t;
      times.add(times.key(`${p.constructor.name}(${p.variableNames.join(',')})->[${p.outputShape}]${p.packedOutput ? 'P' : ''}`),
                k, ms);
      return out;
    };
    await times.call(fn, () => {
      b.runWebGLProgram = orig;
    });
  }
  pixels.dispose();
  return times.report();
}

/**
 * Per-program times of `fn` (webgpu): each runWebGPUProgram is submitted on
 * its own; with the timestamp-query feature (Chromium with
 * --enable-dawn-features=allow_unsafe_apis, which run.ts passes with
 * --profile) its pass's GPU time, otherwise the gap between the completions
 * (onSubmittedWorkDone) of consecutive programs. Median over `reps` calls,
 * programs named by shader key; buffer copies and downloads fall in 'other'.
 */
async function profileGpuPrograms(fn: () => Promise<void>, reps = 5): Promise<string> {
  type Timer = {name: string; query: Promise<number> | number};
  type B = {runWebGPUProgram: (...a: unknown[]) => unknown; device?: {queue: {onSubmittedWorkDone(): Promise<void>}};
            supportTimestampQuery?: boolean; activeTimers?: Timer[] | null; submitQueue(): void};
  const b = tf.backend() as unknown as B;
  if (typeof b.runWebGPUProgram !== 'function' || !b.device) return '';
  const queue = b.device.queue;
  const stamps = !!b.supportTimestampQuery;
  const orig = b.runWebGPUProgram;
  const times = new ProgramTimes();
  for (let k = 0; k < reps; k++) {
    times.startCall();
    const pending: Array<{key: string; t: Promise<number>}> = [];
    b.runWebGPUProgram = function (this: B, ...args: unknown[]) {
      const p = args[0] as {shaderKey: string; outputShape: number[]};
      let out: unknown;
      let t: Promise<number>;
      if (stamps) {
        const saved = this.activeTimers;
        this.activeTimers = [];
        try {
          out = orig.apply(this, args);
        } finally {
          const timers = this.activeTimers ?? [];
          this.activeTimers = saved;
          t = Promise.resolve(timers[0]?.query ?? 0);
        }
      } else {
        out = orig.apply(this, args);
        this.submitQueue();
        t = queue.onSubmittedWorkDone().then(() => performance.now());
      }
      pending.push({key: times.key(`${p.shaderKey.slice(0, 70)}->[${p.outputShape}]`), t: t!});
      return out;
    };
    const t0 = await times.call(fn, () => {
      b.runWebGPUProgram = orig;
    });
    const done = await Promise.all(pending.map(e => e.t));
    let prev = t0;
    pending.forEach((e, i) => {
      times.add(e.key, k, stamps ? done[i] : done[i] - prev);
      prev = done[i];
    });
  }
  return times.report([`    (${stamps ? 'timestamp queries' : 'completion gaps'})`]);
}

interface Subject {
  forward: (x: tf.Tensor, training: boolean) => tf.Tensor;
  weights: () => tf.Variable[];
  dispose: () => void;
  /** The TFJS_NORM_FUSED value to run with (ours: true, op path: false). */
  fused?: boolean;
}

function layerSubject(layer: tf.layers.Layer, shape: number[], fused?: boolean): Subject {
  layer.build(shape);
  return {
    forward: (x, training) => layer.apply(x, {training}) as tf.Tensor,
    weights: () => layer.trainableWeights.map(w => w.read() as tf.Variable),
    dispose: () => (layer as unknown as {disposeWeights(): void}).disposeWeights(),
    fused,
  };
}

type Layout = 'cl' | 'cf';

/** Naive compositions with autodiff (what a user writes by hand). */
function naiveSubject(kind: 'BN' | 'GN' | 'IN' | 'LN' | 'RMS', shape: number[], layout: Layout, groups = 32): Subject {
  const rank = shape.length;
  const C = kind === 'RMS' || kind === 'LN' || layout === 'cl' ? shape[rank - 1] : shape[1];
  // tf.variable keeps its initial value's handle alive: made and released in a tidy.
  const [gamma, beta] = tf.tidy(() => [tf.variable(tf.ones([C])), tf.variable(tf.zeros([C]))]);
  const pshape = layout === 'cl' || kind === 'RMS' || kind === 'LN' ? [C] : [C, 1, 1];
  const affine = (xn: tf.Tensor) => tf.add(tf.mul(xn, tf.reshape(gamma, pshape)), tf.reshape(beta, pshape));
  const norm = (x: tf.Tensor, axes: number[]) => {
    const {mean, variance} = tf.moments(x, axes, true);
    return tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5)));
  };
  const forward = (x: tf.Tensor): tf.Tensor => {
    switch (kind) {
      case 'RMS':
        return tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1.1920928955078125e-7))), gamma);
      case 'LN':
        return affine(norm(x, [rank - 1]));
      case 'BN':
        return affine(norm(x, layout === 'cl' ? [0, 1, 2] : [0, 2, 3]));
      case 'IN':
        return affine(norm(x, layout === 'cl' ? [1, 2] : [2, 3]));
      case 'GN': {
        const [N] = shape;
        const g = layout === 'cl' ? tf.reshape(x, [N, shape[1], shape[2], groups, C / groups])
                                  : tf.reshape(x, [N, groups, C / groups, shape[2], shape[3]]);
        return affine(tf.reshape(norm(g, layout === 'cl' ? [1, 2, 4] : [2, 3, 4]), shape));
      }
    }
  };
  return {
    forward: x => forward(x),
    weights: () => (kind === 'RMS' ? [gamma] : [gamma, beta]),
    dispose: () => { gamma.dispose(); beta.dispose(); },
  };
}

function lrnSubject(): Subject {
  return {
    forward: x => tf.localResponseNormalization(x as tf.Tensor4D, 2, 1, 1e-4, 0.75),
    weights: () => [],
    dispose: () => undefined,
  };
}

interface Case {
  name: string;
  shape: number[];
  subjects: Record<string, () => Subject>;
}

function cases(quick: boolean): Case[] {
  const b = quick ? 2 : 8;
  const cl = [b, 32, 32, 64];
  const cf = [b, 64, 32, 32];
  const seq = [b, 128, 768];
  const ours = (make: () => tf.layers.Layer, shape: number[]) => ({
    ours: () => layerSubject(make(), shape, true),
    'op path': () => layerSubject(make(), shape, false),
  });
  const out: Case[] = [];
  for (const layout of ['cl', 'cf'] as Layout[]) {
    const shape = layout === 'cl' ? cl : cf;
    const axis = layout === 'cl' ? -1 : 1;
    out.push({name: `BatchNorm ${layout}`, shape, subjects: {
      ...ours(() => new tfn.BatchNorm({axis}), shape),
      // tfjs' batchNormalization gradient fails for axis 1: compared on the channels-last twin.
      'tfjs layer': () => layerSubject(tf.layers.batchNormalization({axis: -1}), cl),
      naive: () => naiveSubject('BN', shape, layout),
    }});
    out.push({name: `InstanceNorm ${layout}`, shape, subjects: {
      ...ours(() => new tfn.InstanceNorm({axis, affine: true, trackRunningStats: true}), shape),
      naive: () => naiveSubject('IN', shape, layout),
    }});
    out.push({name: `GroupNorm(32) ${layout}`, shape, subjects: {
      ...ours(() => new tfn.GroupNorm({numGroups: 32, axis}), shape),
      naive: () => naiveSubject('GN', shape, layout),
    }});
  }
  // Issue #17's fused activation: GroupNorm with activation 'silu' (one layer) vs GroupNorm then SiLU as tfjs ops.
  out.push({name: 'GroupNorm(32)+SiLU cl', shape: cl, subjects: {
    ...ours(() => new tfn.GroupNorm({numGroups: 32, axis: -1, activation: 'silu'}), cl),
    'GroupNorm + tf SiLU': () => {
      const sub = layerSubject(new tfn.GroupNorm({numGroups: 32, axis: -1}), cl, true);
      return {...sub, forward: (x, training) => {
        const y = sub.forward(x, training);
        return tf.mul(y, tf.sigmoid(y));
      }};
    },
  }});
  // AddLayerNorm with GELU (the residual and activation epilogues) vs tf.add, our LayerNorm, then GELU as tfjs ops.
  const residual = () => tf.randomNormal(seq, 0, 1, 'float32', 3);
  const addSubject = (fused: boolean): Subject => {
    const layer = new tfn.AddLayerNorm({activation: 'gelu'});
    layer.build([seq, seq]);
    const r = residual();
    return {
      forward: (x, training) => layer.apply([x, r], {training}) as tf.Tensor,
      weights: () => layer.trainableWeights.map(w => w.read() as tf.Variable),
      dispose: () => { (layer as unknown as {disposeWeights(): void}).disposeWeights(); r.dispose(); },
      fused,
    };
  };
  out.push({name: 'AddLayerNorm+GELU', shape: seq, subjects: {
    ours: () => addSubject(true),
    'op path': () => addSubject(false),
    'add + LayerNorm + tf GELU': () => {
      const sub = layerSubject(new tfn.LayerNorm({axis: -1}), seq, true);
      const r = residual();
      return {...sub, dispose: () => { sub.dispose(); r.dispose(); }, forward: (x, training) => {
        const z = sub.forward(tf.add(x, r), training);
        return tf.mul(tf.mul(z, 0.5), tf.add(tf.erf(tf.mul(z, Math.SQRT1_2)), 1));
      }};
    },
  }});
  out.push({name: 'LayerNorm', shape: seq, subjects: {
    ...ours(() => new tfn.LayerNorm({axis: -1}), seq),
    'tfjs layer': () => layerSubject(tf.layers.layerNormalization({axis: -1}), seq),
    naive: () => naiveSubject('LN', seq, 'cl'),
  }});
  out.push({name: 'RMSNorm', shape: seq, subjects: {
    ...ours(() => new tfn.RMSNorm({axis: -1}), seq),
    'tfjs layer': () => layerSubject(tf.layers.layerNormalization({axis: -1}), seq),
    naive: () => naiveSubject('RMS', seq, 'cl'),
  }});
  out.push({name: 'LocalResponseNorm(5) cl', shape: cl, subjects: {
    ...ours(() => new tfn.LocalResponseNorm({size: 5, axis: -1}), cl),
    'tfjs op': () => lrnSubject(),
  }});
  return out;
}

/** The shape a subject runs on (the tfjs BatchNorm anchor runs on the channels-last twin). */
function subjectShape(c: Case, key: string): number[] {
  return key === 'tfjs layer' && c.name.startsWith('BatchNorm') ? [c.shape[0], 32, 32, 64] : c.shape;
}

/** BenchOptions.packed for this run. */
let packedInputs = false;

/** x and dy of `shape` (packedInputs: each the output of a packed op, as inside a model on webgl). */
function benchInputs(shape: number[]): {x: tf.Tensor; dy: tf.Tensor} {
  const asGiven = (t: tf.Tensor) => {
    if (!packedInputs) return t;
    const p = tf.tidy(() => tf.mul(t, tf.scalar(1)));
    t.dispose();
    return p;
  };
  return {x: asGiven(tf.randomNormal(shape, 1, 2, 'float32', 1)), dy: asGiven(tf.randomNormal(shape, 0, 1, 'float32', 2))};
}

interface Inputs {
  x: tf.Tensor;
  dy: tf.Tensor;
  xVar: tf.Variable;
}

/**
 * One call of `sub`: an inference (forward, training false) or a training
 * step (forward + backward with the given dy); the outputs read back, or with
 * `settled` (no read) only waited for (settle()).
 */
async function callOnce(sub: Subject, {x, dy, xVar}: Inputs, train: boolean,
                        settled: ReturnType<typeof pixelWaiter> | false = false): Promise<void> {
  const wait = (ts: tf.Tensor[]) => (settled === false ? Promise.all(ts.map(t => t.data())) : settle(ts, settled));
  if (!train) {
    const y = tf.tidy(() => sub.forward(x, false));
    await wait([y]);
    y.dispose();
    return;
  }
  const {value, grads} = tf.engine().gradients(() => sub.forward(xVar, true), [xVar, ...sub.weights()], dy);
  await wait(grads);
  value.dispose();
  tf.dispose(grads);
}

async function measure(sub: Subject, shape: number[], runs: number, profile = false, label = ''): Promise<SubjectResult> {
  const {x, dy} = benchInputs(shape);
  const xVar = tf.variable(x, true);
  const flagBefore = tf.env().getBool('TFJS_NORM_FUSED');
  if (sub.fused != null) tf.env().set('TFJS_NORM_FUSED', sub.fused);
  try {
    const infer = () => callOnce(sub, {x, dy, xVar}, false);
    const train = () => callOnce(sub, {x, dy, xVar}, true);
    const r: SubjectResult = {};
    r.infer = await time(infer, runs);
    r.inferPrograms = await countPrograms(infer);
    r.train = await time(train, runs);
    r.programs = await countPrograms(train);
    if (r.train.runs > 0) r.kernels = (await tf.profile(train)).kernels.length;
    if (profile) {
      const prof = tf.getBackend() === 'webgpu' ? profileGpuPrograms : profilePrograms;
      log(`profile ${label} train:\n${await prof(train)}`);
      log(`profile ${label} infer:\n${await prof(infer)}`);
    }
    return r;
  } finally {
    tf.env().set('TFJS_NORM_FUSED', flagBefore);
    tf.dispose([x, dy, xVar]);
  }
}

/** The subjects of `c` timed alternately (BenchOptions.interleave); logs medians and per-round ratios to ours. */
async function interleaved(c: Case, keys: string[], runs: number, noRead = false): Promise<void> {
  // Each subject on its own shape (subjectShape: tfjs' batchNormalization is channels-last), inputs per shape.
  const inputs = new Map<string, Inputs>();
  for (const k of keys) {
    const shape = subjectShape(c, k);
    if (inputs.has(String(shape))) continue;
    const {x, dy} = benchInputs(shape);
    inputs.set(String(shape), {x, dy, xVar: tf.variable(x, true)});
  }
  const subs = keys.map(k => c.subjects[k]());
  const ins = keys.map(k => inputs.get(String(subjectShape(c, k)))!);
  const flagBefore = tf.env().getBool('TFJS_NORM_FUSED');
  type Mode = 'train' | 'infer' | 'train, no read' | 'infer, no read';
  const pixels = pixelWaiter();
  const call = async (i: number, mode: Mode) => {
    const sub = subs[i];
    if (sub.fused != null) tf.env().set('TFJS_NORM_FUSED', sub.fused);
    const t = performance.now();
    await callOnce(sub, ins[i], mode.startsWith('train'), mode.endsWith('no read') ? pixels : false);
    tf.env().set('TFJS_NORM_FUSED', flagBefore);
    return performance.now() - t;
  };
  try {
    const modes: Mode[] = noRead ? ['train', 'infer', 'train, no read', 'infer, no read'] : ['train', 'infer'];
    for (const mode of modes) {
      const times = subs.map(() => [] as number[]);
      for (let i = 0; i < subs.length; i++) await call(i, mode);
      for (let r = 0; r < runs; r++) {
        for (let i = 0; i < subs.length; i++) times[i].push(await call(i, mode));
      }
      const ours = keys.indexOf('ours');
      log(`interleaved ${c.name} ${mode} (${runs} rounds): ` + keys.map((k, i) => {
        const ratio = ours >= 0 && i !== ours ? `, ${median(times[i].map((t, r) => t / times[ours][r])).toFixed(2)}x ours` : '';
        return `${k} ${median(times[i]).toFixed(1)} ms${ratio}`;
      }).join('; '));
    }
  } finally {
    tf.env().set('TFJS_NORM_FUSED', flagBefore);
    pixels?.dispose();
    subs.forEach(s => s.dispose());
    inputs.forEach(t => tf.dispose([t.x, t.dy, t.xVar]));
  }
}

async function startBackend(backend: string): Promise<string | null> {
  try {
    if (backend === 'webgpu' && !(navigator as unknown as {gpu?: unknown}).gpu) return 'navigator.gpu is absent';
    const ok = await tf.setBackend(backend);
    await tf.ready();
    if (!ok || tf.getBackend() !== backend) return `tf.setBackend('${backend}') failed (active: ${tf.getBackend()})`;
    return null;
  } catch (e) {
    return `tf.setBackend('${backend}') threw: ${(e as Error).message ?? e}`;
  }
}

export async function runBench(opts: BenchOptions): Promise<BenchReport> {
  const t0 = performance.now();
  const report: BenchReport = {backend: opts.backend, started: false, rows: [], ms: 0};
  if (opts.backend === 'wasm') {
    (tf as unknown as {wasm?: {setWasmPaths(p: string): void}}).wasm
      ?.setWasmPaths(opts.wasmPath ?? '/node_modules/@tensorflow/tfjs-backend-wasm/dist/');
  }
  const reason = await startBackend(opts.backend);
  if (reason) {
    report.reason = reason;
    return report;
  }
  report.started = true;
  packedInputs = !!opts.packed;
  report.device = await deviceName(opts.backend);
  tf.enableProdMode();
  log(`${opts.backend} on ${report.device}`);
  for (const c of cases(!!opts.quick).filter(k => !opts.only || k.name.includes(opts.only))) {
    const row: BenchRow = {name: c.name, shape: c.shape, subjects: {}};
    for (const [key, make] of Object.entries(c.subjects)) {
      if (opts.subjects && !opts.subjects.split(',').includes(key)) continue;
      const before = tf.memory().numTensors;
      let sub: Subject | null = null;
      try {
        sub = make();
        row.subjects[key] = await measure(sub, subjectShape(c, key), opts.runs, opts.profile, `${c.name} ${key}`);
      } catch (e) {
        row.subjects[key] = {error: String((e as Error).message ?? e).slice(0, 300)};
      } finally {
        sub?.dispose();
      }
      const r = row.subjects[key];
      log(`${opts.backend} ${c.name} ${key}: train ${r.train?.ms.toFixed(1)} ms (${r.programs} programs, ` +
          `${r.kernels} kernels), infer ${r.infer?.ms.toFixed(1)} ms${r.error ? ` ERROR ${r.error}` : ''}` +
          `${tf.memory().numTensors !== before ? ` (tensors ${before} -> ${tf.memory().numTensors})` : ''}`);
    }
    report.rows.push(row);
    if (opts.interleave) {
      const keys = Object.keys(c.subjects).filter(k => !opts.subjects || opts.subjects.split(',').includes(k));
      await interleaved(c, keys, opts.runs, opts.noRead);
    }
  }
  report.ms = Math.round(performance.now() - t0);
  return report;
}

(window as unknown as {runBench: typeof runBench}).runBench = runBench;
