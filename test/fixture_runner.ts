/**
 * The PyTorch-fixture check, shared by the Node suite (test/torch_fixtures.test.ts)
 * and the browser suite (test/browser/page.ts, where `@tensorflow/tfjs` and
 * `../src` are the page's globals `tf` and `tfnorm`): build the layer from a
 * case, run its training steps, compare y, dx, dgamma, dbeta, the running
 * statistics and the inference output with a per-backend tolerance.
 *
 * Browser-safe: no Node modules, and every read-back is `await data()`
 * (WebGPU has no synchronous download).
 */
import * as tf from '@tensorflow/tfjs';
import type {LayerVariable} from '@tensorflow/tfjs-layers/dist/variables';
import {layerInfo} from './catalog';
import type {FixtureCase} from './harness';
import {RefSpec, layout} from './reference/norm_reference';

export type {FixtureCase, FixtureStep} from './harness';

// ------------------------------------------------------------- tolerances

/** A comparison passes where |actual - expected| <= atol + rtol * |expected| for every element. */
export interface Tolerance {
  atol: number;
  rtol: number;
}

/**
 * Every backend's tolerance against the float64 PyTorch reference, in one place.
 *
 * - cpu, wasm, tensorflow: IEEE float32 arithmetic in JS / WebAssembly / libtensorflow.
 *   The fixtures' outputs are O(1..10) and our kernel's error is a few float32 ulps
 *   amplified by 1/std (< 1e-5 measured), so 1e-4 leaves a 10x margin.
 * - webgl, webgpu: float32 on the GPU, but shader arithmetic is not IEEE: GLSL/WGSL
 *   only require `inversesqrt`/`pow`/`exp` to within a few ulp (real GPUs use
 *   approximate hardware rsqrt), multiply-adds may be fused, reductions run in a
 *   different order, and on WebGL every value round-trips through a texture.
 *   1e-3 is 100 float32 ulps at 1 and absorbs that; measured
 *   worst cases are printed by the browser runner and kept in the README.
 * - webgl with WEBGL_FORCE_F16_TEXTURES (mobile GPUs without float32 render
 *   targets): every intermediate is stored as float16 (11-bit significand,
 *   relative step 2^-11 = 4.9e-4; an input of 4..8 is stored to +-2e-3, and
 *   that error is divided by the group's sqrt(var + eps)). So: every quantity
 *   must stay finite, and forward outputs of unit-scale cases (minGroupScale >=
 *   F16_MIN_GROUP_SCALE) must be within 1e-2. Gradients and running statistics
 *   are measured and printed, not asserted.
 */
export const TOLERANCES: Readonly<Record<string, Tolerance>> = {
  cpu: {atol: 1e-4, rtol: 1e-4},
  wasm: {atol: 1e-4, rtol: 1e-4},
  tensorflow: {atol: 1e-4, rtol: 1e-4},
  webgl: {atol: 1e-3, rtol: 1e-3},
  webgpu: {atol: 1e-3, rtol: 1e-3},
  'webgl-f16': {atol: 1e-2, rtol: 1e-2},
};

/** Float16 runs assert closeness only where every normalized group has sqrt(var + eps) >= this. */
export const F16_MIN_GROUP_SCALE = 0.1;

/** The tolerance of `backend` (a key of TOLERANCES); throws for an unknown one. */
export function toleranceFor(backend: string): Tolerance {
  const t = TOLERANCES[backend];
  if (!t) throw new Error(`no fixture tolerance stated for backend ${backend} (add it to TOLERANCES in test/fixture_runner.ts)`);
  return t;
}

// ------------------------------------------------------------- input scale

/**
 * The smallest sqrt(variance + epsilon) (RMSNorm: sqrt(mean square + epsilon))
 * over the normalization groups of every input of the case: the scale the
 * layer divides by. Null for LocalResponseNorm (no statistics). Float16
 * storage costs |x| * 2^-11 per input value, so results are only close to
 * the reference where this scale is well above that (see TOLERANCES).
 */
export function minGroupScale(c: FixtureCase): number | null {
  return minGroupScaleOf(layerInfo(c.layer).reference(c.args, c.inputShape), [...c.steps.map(s => s.x), c.eval.x]);
}

/** minGroupScale for a reference spec and inputs (flat, in its shape); null for a window (no statistics). */
export function minGroupScaleOf(spec: RefSpec, inputs: Array<ArrayLike<number>>): number | null {
  if (spec.kind === 'window') return null;
  const {group, numGroups} = layout(spec);
  let min = Infinity;
  for (const x of inputs) {
    const count = new Float64Array(numGroups);
    const mean = new Float64Array(numGroups);
    const second = new Float64Array(numGroups);
    for (let i = 0; i < x.length; i++) count[group[i]]++;
    if (spec.center) {
      for (let i = 0; i < x.length; i++) mean[group[i]] += x[i];
      for (let g = 0; g < numGroups; g++) mean[g] /= count[g];
    }
    for (let i = 0; i < x.length; i++) second[group[i]] += (x[i] - mean[group[i]]) ** 2;
    for (let g = 0; g < numGroups; g++) min = Math.min(min, Math.sqrt(second[g] / count[g] + spec.epsilon));
  }
  return min;
}

// ------------------------------------------------------------- comparison

/** Quantities compared per case. */
export type Quantity = 'y' | 'dx' | 'dgamma' | 'dbeta' | 'runningMean' | 'runningVar' | 'numBatchesTracked' | 'eval';
export const ALL_QUANTITIES: readonly Quantity[] =
  ['y', 'dx', 'dgamma', 'dbeta', 'runningMean', 'runningVar', 'numBatchesTracked', 'eval'];

// Module-level bindings: in jest's vm sandbox every global lookup (`Math`) in a hot loop costs ~50x.
const {abs} = Math;
const {isNaN} = Number;

/** Max |a - e| and the max of |a - e| / (atol + rtol |e|) (<= 1 passes) over elements, with the worst index. */
export function compareArrays(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance) {
  if (actual.length !== expected.length) {
    return {maxAbs: Infinity, ratio: Infinity, worstIndex: -1, why: `length ${actual.length} != expected ${expected.length}`};
  }
  let maxAbs = 0;
  let ratio = 0;
  let worstIndex = -1;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i];
    const a = actual[i];
    if (isNaN(e) && isNaN(a)) continue;
    const d = abs(a - e);
    const r = d / (tol.atol + tol.rtol * abs(e));
    if (!(d <= maxAbs)) maxAbs = isNaN(d) ? Infinity : d;
    if (!(r <= ratio)) {
      ratio = isNaN(r) ? Infinity : r;
      worstIndex = i;
    }
  }
  return {maxAbs, ratio, worstIndex, why: ''};
}

/** Result of one fixture case: worst absolute error and tolerance ratio per quantity. */
export interface CaseResult {
  name: string;
  layer: string;
  maxAbs: Partial<Record<Quantity, number>>;
  worstRatio: number;
  /** Mismatches of asserted quantities (empty: passed). */
  failures: string[];
  /** Mismatches of quantities only measured (see `assert`). */
  notes: string[];
}

export interface RunOptions {
  /** Quantities whose mismatch fails the case; the others are measured only. Default all. */
  assert?: readonly Quantity[];
  /** Fail on a non-finite value in any quantity, asserted or measured. Default false. */
  assertFinite?: boolean;
  /** Stop at the first asserted mismatch (the Node suite) or collect all (default false). */
  failFast?: boolean;
}

/**
 * PyTorch 1.13 never increments InstanceNorm's num_batches_tracked (and rejects
 * momentum None for it); ours counts batches like BatchNorm so that
 * `momentum: null` can average cumulatively (README, "Semantics").
 */
export function expectedBatchCount(c: FixtureCase, stepIndex: number, torchValue: number | null): number | null {
  if (layerInfo(c.layer).countsBatchesUnlikeTorch && torchValue != null) return stepIndex + 1;
  return torchValue;
}

type Weights = {
  gamma: LayerVariable | null; beta: LayerVariable | null; movingMean: LayerVariable | null;
  movingVariance: LayerVariable | null; numBatchesTracked: LayerVariable | null;
};

/** The layer's weight variables by role (LocalResponseNorm has none; its `beta` is an exponent). */
function weightsOf(layer: tf.layers.Layer): Weights {
  const l = layer as unknown as Record<string, unknown>;
  const v = (name: string) => {
    const w = l[name] as LayerVariable | undefined;
    return w != null && typeof w.read === 'function' ? w : null;
  };
  return {gamma: v('gamma'), beta: v('beta'), movingMean: v('movingMean'), movingVariance: v('movingVariance'),
          numBatchesTracked: v('numBatchesTracked')};
}

/** Builds the case's layer on its input shape with the case's gamma/beta. */
export function layerFromCase(c: FixtureCase): tf.layers.Layer {
  const layer = new (layerInfo(c.layer).cls)({...c.args});
  layer.build(c.inputShape);
  const w = weightsOf(layer);
  tf.tidy(() => {
    if (w.gamma && c.gamma) w.gamma.write(tf.tensor(c.gamma, w.gamma.shape as number[]));
    if (w.beta && c.beta) w.beta.write(tf.tensor(c.beta, w.beta.shape as number[]));
  });
  return layer;
}

/** Disposes a layer's weights whether or not it was ever connected in a model. */
export function disposeLayer(layer: tf.layers.Layer): void {
  (layer as unknown as {disposeWeights(): number}).disposeWeights();
}

/**
 * One training step as the fixtures define it: y = layer(x, training), loss =
 * sum(y * dy); returns y and the gradients w.r.t. x, gamma and beta (caller disposes).
 */
export function trainStep(layer: tf.layers.Layer, x: tf.Tensor, dy: tf.Tensor, training = true) {
  const w = weightsOf(layer);
  const xVar = tf.variable(x, true);
  const vars: tf.Variable[] = [xVar];
  const gammaVar = w.gamma ? (w.gamma.read() as tf.Variable) : null;
  const betaVar = w.beta ? (w.beta.read() as tf.Variable) : null;
  if (gammaVar) vars.push(gammaVar);
  if (betaVar) vars.push(betaVar);
  let y: tf.Tensor | null = null;
  const {value, grads} = tf.variableGrads(() => {
    const out = layer.apply(xVar, {training}) as tf.Tensor;
    y = tf.keep(out);
    return tf.sum(tf.mul(out, dy)) as tf.Scalar;
  }, vars);
  value.dispose();
  const result = {
    y: y! as tf.Tensor,
    dx: grads[xVar.name],
    dgamma: gammaVar ? grads[gammaVar.name] : null,
    dbeta: betaVar ? grads[betaVar.name] : null,
  };
  xVar.dispose();
  return result;
}

/**
 * Runs one fixture case: NUM_STEPS training steps (output, dx, dgamma, dbeta,
 * running statistics, num_batches_tracked), then one inference forward.
 * Leaves no tensors behind. Never throws for a mismatch: see `failures`.
 */
export async function runFixtureCase(c: FixtureCase, tol: Tolerance, opts: RunOptions = {}): Promise<CaseResult> {
  const asserted = new Set<Quantity>(opts.assert ?? ALL_QUANTITIES);
  const result: CaseResult = {name: c.name, layer: c.layer, maxAbs: {}, worstRatio: 0, failures: [], notes: []};
  const record = (q: Quantity, what: string, actual: ArrayLike<number> | null, expected: ArrayLike<number> | null) => {
    if (expected == null || actual == null) {
      if ((expected == null) !== (actual == null)) {
        const msg = `${what}: ${actual == null ? 'missing' : 'present'}, PyTorch has ${expected == null ? 'none' : 'one'}`;
        (asserted.has(q) ? result.failures : result.notes).push(msg);
      }
      return;
    }
    if (opts.assertFinite && !Array.from(actual).every(Number.isFinite)) {
      result.failures.push(`${what}: non-finite values (${Array.from(actual).filter(v => !Number.isFinite(v)).length})`);
    }
    const r = compareArrays(actual, expected, tol);
    result.maxAbs[q] = Math.max(result.maxAbs[q] ?? 0, r.maxAbs);
    if (asserted.has(q)) result.worstRatio = Math.max(result.worstRatio, r.ratio);
    if (!(r.ratio <= 1)) {
      const i = r.worstIndex;
      const msg = r.why ? `${what}: ${r.why}` :
        `${what}: element ${i} is ${actual[i]}, expected ${expected[i]} (error ${Math.abs(actual[i] - expected[i]).toExponential(2)}, ` +
        `tolerance ${tol.atol} + ${tol.rtol}*|expected|)`;
      (asserted.has(q) ? result.failures : result.notes).push(msg);
    }
  };
  const read = async (t: tf.Tensor | null | undefined) => (t ? Array.from(await t.data()) as number[] : null);
  const stop = () => opts.failFast === true && result.failures.length > 0;

  const layer = layerFromCase(c);
  const w = weightsOf(layer);
  try {
    for (let i = 0; i < c.steps.length && !stop(); i++) {
      const s = c.steps[i];
      const x = tf.tensor(s.x, c.inputShape);
      const dy = tf.tensor(s.dy, c.inputShape);
      const r = trainStep(layer, x, dy);
      try {
        record('y', `step ${i} output`, await read(r.y), s.y);
        record('dx', `step ${i} dx`, await read(r.dx), s.dx);
        record('dgamma', `step ${i} dgamma`, await read(r.dgamma), s.dgamma);
        record('dbeta', `step ${i} dbeta`, await read(r.dbeta), s.dbeta);
        record('runningMean', `step ${i} running mean`, await read(w.movingMean?.read()), s.runningMean);
        record('runningVar', `step ${i} running var`, await read(w.movingVariance?.read()), s.runningVar);
        const count = await read(w.numBatchesTracked?.read());
        const expected = expectedBatchCount(c, i, s.numBatchesTracked);
        if ((count?.[0] ?? null) !== expected) {
          const msg = `step ${i} num_batches_tracked: ${count?.[0] ?? 'none'}, expected ${expected ?? 'none'}`;
          (asserted.has('numBatchesTracked') ? result.failures : result.notes).push(msg);
        }
      } finally {
        for (const t of [x, dy, r.y, r.dx, r.dgamma, r.dbeta]) t?.dispose();
      }
    }
    if (!stop()) {
      const x = tf.tensor(c.eval.x, c.inputShape);
      const y = layer.apply(x) as tf.Tensor;
      try {
        record('eval', 'inference output', await read(y), c.eval.y);
      } finally {
        x.dispose();
        y.dispose();
      }
    }
  } finally {
    disposeLayer(layer);
  }
  return result;
}

/** Deterministic pseudo-random values (xorshift) so failures reproduce (gradient checks, random cases). */
export function randoms(n: number, seed: number, scale = 1, offset = 0): number[] {
  let s = seed >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out.push(offset + scale * ((s / 4294967296) * 2 - 1));
  }
  return out;
}
