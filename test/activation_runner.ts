/**
 * The activation / add-norm fixture check (issue #17; test/fixtures/activation.py),
 * shared by the Node suite (test/activation.test.ts) and the browser suite
 * (test/browser/page.ts, where `@tensorflow/tfjs` and `../src` are the page's
 * globals `tf` and `tfnorm`): build a case's inputs, run its op (y, the sum,
 * the gradients of sum(y * dy) + sum(sum * dsum) w.r.t. x, residual, gamma,
 * beta) or its layer, and compare with the float64 PyTorch values.
 *
 * Browser-safe: no Node modules, and every read-back is `await data()`
 * (WebGPU has no synchronous download).
 */
import * as tf from '@tensorflow/tfjs';
import * as tfn from '../src';
import {weightByShortName} from '../src/weight_names';
import {layerInfo} from './catalog';
import {Tolerance, compareArrays, minGroupScaleOf, randoms} from './fixture_runner';

export type ActOp = 'groupNorm' | 'batchNorm' | 'instanceNorm' | 'layerNorm' | 'rmsNorm' | 'addLayerNorm' | 'addRMSNorm';

export interface ActCase {
  name: string;
  op: ActOp;
  shape: number[];
  args: Record<string, any>;
  x: number[];
  dy: number[];
  y: number[];
  residual?: number[];
  dsum?: number[];
  sum?: number[];
  gamma?: number[];
  beta?: number[];
  mean?: number[];
  variance?: number[];
  dx: number[];
  dresidual?: number[];
  dgamma?: number[];
  dbeta?: number[];
}

export interface ActFixtures {
  torchVersion: string;
  cases: ActCase[];
}

export interface ActInputs {
  x: tf.Tensor;
  residual?: tf.Tensor;
  gamma?: tf.Tensor;
  beta?: tf.Tensor;
  mean?: tf.Tensor;
  variance?: tf.Tensor;
}

/** The op of a case on its inputs: [y] or [y, sum]. */
export function runOp(op: ActOp, args: Record<string, any>, t: ActInputs): tf.Tensor[] {
  const aff = {gamma: t.gamma ?? null, beta: t.beta ?? null};
  switch (op) {
    case 'groupNorm': return [tfn.ops.groupNorm(t.x, {...args, ...aff} as any)];
    case 'batchNorm': return [tfn.ops.batchNorm(t.x, {...args, ...aff, mean: t.mean ?? null, variance: t.variance ?? null})];
    case 'instanceNorm': return [tfn.ops.instanceNorm(t.x, {...args, ...aff})];
    case 'layerNorm': return [tfn.ops.layerNorm(t.x, {...args, ...aff})];
    case 'rmsNorm': return [tfn.ops.rmsNorm(t.x, {...args, gamma: aff.gamma})];
    case 'addLayerNorm': {
      const r = tfn.ops.addLayerNorm(t.x, t.residual!, {...args, ...aff}) as tf.Tensor | tf.Tensor[];
      return Array.isArray(r) ? r : [r];
    }
    case 'addRMSNorm': {
      const r = tfn.ops.addRMSNorm(t.x, t.residual!, {...args, gamma: aff.gamma}) as tf.Tensor | tf.Tensor[];
      return Array.isArray(r) ? r : [r];
    }
  }
}

/** The layer of a case (its args as layer args). */
export function layerOf(c: ActCase): tf.layers.Layer {
  const {training, ...a} = c.args;
  switch (c.op) {
    case 'groupNorm': return tfn.layers.groupNorm(a as any);
    case 'batchNorm': return tfn.layers.batchNorm(a);
    case 'instanceNorm': return tfn.layers.instanceNorm({...a, affine: true});
    case 'layerNorm': return tfn.layers.layerNorm(a);
    case 'rmsNorm': return tfn.layers.rmsNorm(a);
    case 'addLayerNorm': return tfn.layers.addLayerNorm(a);
    case 'addRMSNorm': return tfn.layers.addRMSNorm(a);
  }
}

export interface ValueAndGradTensors {
  /** [y] or [y, sum]. */
  outs: tf.Tensor[];
  /** Gradient per present input of x, residual, gamma, beta. */
  grads: Partial<Record<'x' | 'residual' | 'gamma' | 'beta', tf.Tensor>>;
}

/**
 * y (and sum) and the gradients of sum(y * dy) (+ sum(sum * dsum)) w.r.t. x,
 * residual, gamma, beta, as tensors (the caller disposes them: disposeAll).
 */
export function valueAndGradTensors(op: ActOp, args: Record<string, any>, t: ActInputs, dy: tf.Tensor,
                                    dsum: tf.Tensor | null): ValueAndGradTensors {
  const names = (['x', 'residual', 'gamma', 'beta'] as const).filter(n => t[n] != null);
  const ins = names.map(n => t[n]!);
  let outs: tf.Tensor[] = [];
  const grads = tf.tidy(() => tf.grads((...vars: tf.Tensor[]) => {
    const tt: ActInputs = {...t};
    names.forEach((n, i) => { tt[n] = vars[i]; });
    const r = runOp(op, args, tt);
    outs = r.map(o => tf.keep(o));
    let loss = tf.sum(tf.mul(r[0], dy));
    if (dsum) loss = tf.add(loss, tf.sum(tf.mul(r[1], dsum)));
    return loss;
  })(ins));
  const g: ValueAndGradTensors['grads'] = {};
  names.forEach((n, i) => { g[n] = grads[i]; });
  return {outs, grads: g};
}

export function disposeAll(r: ValueAndGradTensors): void {
  tf.dispose([...r.outs, ...Object.values(r.grads) as tf.Tensor[]]);
}

export type ActTensors = ActInputs & {dy: tf.Tensor; dsum: tf.Tensor | null};

export function tensorsOf(c: ActCase): ActTensors {
  const p = (v?: number[], shape?: number[]) => (v ? tf.tensor(v, shape) : undefined);
  const pshape = c.op === 'layerNorm' && Array.isArray(c.args.axis) ? c.shape.slice(c.shape.length - c.args.axis.length)
      : undefined;
  return {
    x: tf.tensor(c.x, c.shape), residual: p(c.residual, c.shape), gamma: p(c.gamma, pshape), beta: p(c.beta, pshape),
    mean: p(c.mean), variance: p(c.variance), dy: tf.tensor(c.dy, c.shape), dsum: c.dsum ? tf.tensor(c.dsum, c.shape) : null,
  };
}

export function disposeInputs(t: ActTensors): void {
  tf.dispose(Object.values(t).filter((v): v is tf.Tensor => v instanceof tf.Tensor));
}

/** Quantities compared per case: op outputs and gradients, layer outputs. */
export type ActQuantity = 'y' | 'sum' | 'dx' | 'dresidual' | 'dgamma' | 'dbeta' | 'layer y' | 'layer sum';
export const FORWARD_QUANTITIES: readonly ActQuantity[] = ['y', 'sum', 'layer y', 'layer sum'];

export interface ActResult {
  maxAbs: Partial<Record<ActQuantity, number>>;
  /** Mismatches of asserted quantities (empty: passed). */
  failures: string[];
  /** Mismatches of measured-only quantities. */
  notes: string[];
  /** The op's values as read back (op runs), for fused-vs-op comparisons. */
  values: Partial<Record<ActQuantity, Float32Array>>;
}

export interface ActRunOptions {
  /** Quantities whose mismatch fails the case; the others are measured only. Default all. */
  assert?: readonly ActQuantity[];
  /** Fail on a non-finite value in any quantity. Default false. */
  assertFinite?: boolean;
}

function recorder(tol: Tolerance, opts: ActRunOptions) {
  const asserted = new Set<ActQuantity>(opts.assert ?? ['y', 'sum', 'dx', 'dresidual', 'dgamma', 'dbeta', 'layer y', 'layer sum']);
  const result: ActResult = {maxAbs: {}, failures: [], notes: [], values: {}};
  const record = async (q: ActQuantity, t: tf.Tensor | undefined, expected: number[] | undefined) => {
    if (expected == null && t == null) return;
    if (expected == null || t == null) {
      const msg = `${q}: ${t == null ? 'missing' : 'present'}, PyTorch has ${expected == null ? 'none' : 'one'}`;
      (asserted.has(q) ? result.failures : result.notes).push(msg);
      return;
    }
    const actual = await t.data() as Float32Array;
    result.values[q] = actual;
    if (opts.assertFinite && !actual.every(Number.isFinite)) {
      result.failures.push(`${q}: non-finite values (${actual.filter(v => !Number.isFinite(v)).length}); Received: ${actual.find(v => !Number.isFinite(v))}`);
    }
    const r = compareArrays(actual, expected, tol);
    result.maxAbs[q] = r.maxAbs;
    if (!(r.ratio <= 1)) {
      const i = r.worstIndex;
      const msg = r.why ? `${q}: ${r.why}` :
        `${q}: element ${i} is ${actual[i]}, expected ${expected[i]} (error ${Math.abs(actual[i] - expected[i]).toExponential(2)}, ` +
        `tolerance ${tol.atol} + ${tol.rtol}*|expected|)`;
      (asserted.has(q) ? result.failures : result.notes).push(msg);
    }
  };
  return {result, record};
}

/**
 * The op of a case with its gradients against PyTorch's values (on whatever
 * path TFJS_NORM_FUSED and the backend select). Leaves no tensors behind;
 * never throws for a mismatch: see `failures`.
 */
export async function runActOpCase(c: ActCase, tol: Tolerance, opts: ActRunOptions = {}): Promise<ActResult> {
  const {result, record} = recorder(tol, opts);
  const t = tensorsOf(c);
  try {
    const r = valueAndGradTensors(c.op, c.args, t, t.dy, t.dsum);
    try {
      await record('y', r.outs[0], c.y);
      await record('sum', r.outs[1], c.sum);
      await record('dx', r.grads.x, c.dx);
      await record('dresidual', r.grads.residual, c.dresidual);
      await record('dgamma', r.grads.gamma, c.dgamma);
      await record('dbeta', r.grads.beta, c.dbeta);
    } finally {
      disposeAll(r);
    }
  } finally {
    disposeInputs(t);
  }
  return result;
}

/**
 * The layer of a case (weights and running statistics from the case; training
 * mode as the case's op: BatchNorm's `training` arg, batch statistics for the
 * others) against PyTorch's y and sum. Leaves no tensors behind.
 */
export async function runActLayerCase(c: ActCase, tol: Tolerance, opts: ActRunOptions = {}): Promise<ActResult> {
  const {result, record} = recorder(tol, opts);
  const layer = layerOf(c);
  const t = tensorsOf(c);
  try {
    layer.build(c.residual ? [c.shape, c.shape] : c.shape);
    const byName = (n: string) => weightByShortName(layer, n)!;
    tf.tidy(() => {
      if (c.gamma) byName('gamma').write(tf.reshape(t.gamma!, byName('gamma').shape as number[]));
      if (c.beta) byName('beta').write(tf.reshape(t.beta!, byName('beta').shape as number[]));
      if (c.mean) byName('moving_mean').write(t.mean!);
      if (c.variance) byName('moving_variance').write(t.variance!);
    });
    const input = t.residual ? [t.x, t.residual] : t.x;
    const training = c.args.training === true || c.op !== 'batchNorm';
    const out = layer.apply(input, {training}) as tf.Tensor | tf.Tensor[];
    const outs = Array.isArray(out) ? out : [out];
    try {
      if (outs.length !== (c.sum ? 2 : 1)) result.failures.push(`layer outputs: Received: ${outs.length}, expected ${c.sum ? 2 : 1}`);
      await record('layer y', outs[0], c.y);
      await record('layer sum', outs[1], c.sum);
    } finally {
      tf.dispose(outs);
    }
  } finally {
    disposeInputs(t);
    (layer as unknown as {disposeWeights(): number}).disposeWeights();
  }
  return result;
}

/** The catalog layer whose statistics a case's op computes. */
const LAYER_OF_OP: Record<ActOp, string> = {
  groupNorm: 'GroupNorm', batchNorm: 'BatchNorm', instanceNorm: 'InstanceNorm', layerNorm: 'LayerNorm',
  rmsNorm: 'RMSNorm', addLayerNorm: 'LayerNorm', addRMSNorm: 'RMSNorm',
};

/**
 * The smallest sqrt(variance + epsilon) the case divides by (fixture_runner's
 * minGroupScale): over the batch statistics of x (or x + residual), or the
 * running variance where BatchNorm runs in inference.
 */
export function actMinGroupScale(c: ActCase): number {
  const eps = (c.args.epsilon ?? (c.op.toLowerCase().includes('rms') ? 1.1920928955078125e-7 : 1e-5)) as number;
  if (c.op === 'batchNorm' && c.args.training !== true && c.variance) {
    return Math.min(...c.variance.map(v => Math.sqrt(v + eps)));
  }
  const {training, activation, returnSum, ...args} = c.args;
  const spec = layerInfo(LAYER_OF_OP[c.op]).reference({...args, epsilon: eps}, c.shape);
  const input = c.residual ? c.x.map((v, i) => v + c.residual![i]) : c.x;
  return minGroupScaleOf(spec, [input]) ?? Infinity;
}

/** A case of random inputs (fused == op composition, finite differences). */
export interface RandomCase {
  name: string;
  op: ActOp;
  shape: number[];
  args: Record<string, any>;
  /** Parameter shape; null: no affine. */
  param: number[] | null;
  beta?: boolean;
  stats?: boolean;
  /** gamma = gammaScale * (1 + U(-0.5, 0.5)): large values reach the activations' tails. Default 1. */
  gammaScale?: number;
  /** x, residual, dy and dsum as the outputs of an op (packed textures on webgl, as inside a model). */
  fromOps?: boolean;
}

/** Deterministic random inputs of a RandomCase (x around 0.5, unit-scale gamma times gammaScale). */
export function randomInputs(c: RandomCase, seed: number): ActTensors {
  const n = c.shape.reduce((a, b) => a * b, 1);
  const add = c.op.startsWith('add');
  const p = c.param;
  const pn = p ? p.reduce((a, b) => a * b, 1) : 0;
  const fromOp = <T extends tf.Tensor>(t: T): T => {
    if (!c.fromOps) return t;
    const out = tf.mul(t, 1) as T;
    t.dispose();
    return out;
  };
  return {
    x: fromOp(tf.tensor(randoms(n, seed, 2, 0.5), c.shape)),
    residual: add ? fromOp(tf.tensor(randoms(n, seed + 1, 1), c.shape)) : undefined,
    gamma: p ? tf.tensor(randoms(pn, seed + 2, 0.5 * (c.gammaScale ?? 1), c.gammaScale ?? 1), p) : undefined,
    beta: p && c.beta !== false ? tf.tensor(randoms(pn, seed + 3, 0.5), p) : undefined,
    mean: c.stats ? tf.tensor(randoms(pn, seed + 4, 0.3), p!) : undefined,
    variance: c.stats ? tf.tensor(randoms(pn, seed + 5, 0.4, 1), p!) : undefined,
    dy: fromOp(tf.tensor(randoms(n, seed + 6), c.shape)),
    dsum: c.args.returnSum ? fromOp(tf.tensor(randoms(n, seed + 7), c.shape)) : null,
  };
}

