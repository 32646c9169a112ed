/**
 * The fused kernels (src/engine/kernels.ts) against the op composition
 * (src/engine/op_path.ts, with the TFJS_NORM_FUSED flag off) on the same random
 * inputs, on every implementation the kernels have: forward, statistics,
 * running statistics and every gradient, across plans; LocalResponseNorm;
 * kernel counts of a training step; leak checks.
 *
 * Implementations: on cpu the SIMD module streamed through its own memory and
 * the JavaScript loops (TFJS_NORM_SIMD off); on wasm the SIMD module on the
 * tfjs heap, the same module copying through its own memory (simdOptions, an
 * internal switch), and the JavaScript loops on heap views. Each describe
 * asserts (implUsage) that its implementation is the one that ran.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import * as tfn from '../src';
import {implUsage, simdOptions} from '../src/engine/backends/simd/select';
import {FORWARD_KERNEL, LRN_FORWARD_KERNEL, SCALE_SHIFT_KERNEL, usesKernel} from '../src/engine/kernels';
import {normalize, normalizeWithStats} from '../src/engine/normalize';
import {NormPlan, axesPlan} from '../src/engine/plan';
import {batchPlan} from '../src/ops/batch_norm';
import {groupPlan} from '../src/ops/group_norm';
import {instancePlan} from '../src/ops/instance_norm';
import {expectClose, noLeak} from './harness';

interface PlanCase {
  name: string;
  shape: number[];
  plan: (shape: number[]) => NormPlan;
  center?: boolean;
  gamma?: boolean;
  beta?: boolean;
}

const CASES: PlanCase[] = [
  {name: 'BatchNorm channels-last', shape: [4, 5, 3, 6], plan: s => batchPlan(s, 3)},
  {name: 'BatchNorm channels-first', shape: [4, 6, 5, 3], plan: s => batchPlan(s, 1)},
  {name: 'BatchNorm rank 2, no affine', shape: [7, 5], plan: s => batchPlan(s, 1), gamma: false, beta: false},
  {name: 'InstanceNorm channels-last', shape: [3, 4, 5, 6], plan: s => instancePlan(s, 3)},
  {name: 'InstanceNorm channels-first rank 3', shape: [3, 6, 7], plan: s => instancePlan(s, 1)},
  {name: 'GroupNorm channels-last', shape: [2, 4, 3, 8], plan: s => groupPlan(s, 3, 4)},
  {name: 'GroupNorm channels-first', shape: [2, 8, 4, 3], plan: s => groupPlan(s, 1, 2)},
  {name: 'GroupNorm gamma only', shape: [2, 6, 5], plan: s => groupPlan(s, 1, 3), beta: false},
  {name: 'LayerNorm last axis', shape: [3, 4, 10], plan: s => axesPlan(s, [2])},
  {name: 'LayerNorm multi-axis', shape: [3, 4, 5, 6], plan: s => axesPlan(s, [2, 3])},
  {name: 'LayerNorm non-trailing axes', shape: [3, 4, 5, 6], plan: s => axesPlan(s, [1, 3])},
  {name: 'RMS (center=false) last axis', shape: [4, 12], plan: s => axesPlan(s, [1]), center: false, beta: false},
  {name: 'RMS (center=false) multi-axis', shape: [2, 3, 4, 5], plan: s => axesPlan(s, [2, 3]), center: false},
  {name: 'RMS (center=false) no affine', shape: [3, 4, 5], plan: s => axesPlan(s, [1, 2]), center: false,
   gamma: false, beta: false},
  {name: 'LayerNorm over axis 0 (statistics along the row, params across rows)', shape: [6, 40],
   plan: s => axesPlan(s, [0])},
  // Larger than one streamed chunk (16384 elements), rows not a multiple of 4, partial last chunk.
  {name: 'BatchNorm channels-last, several chunks, odd channels', shape: [64, 33, 35], plan: s => batchPlan(s, 2)},
  {name: 'InstanceNorm channels-last, 5 channels (short rows merged)', shape: [3, 70, 50, 5],
   plan: s => instancePlan(s, 3)},
  {name: 'GroupNorm channels-last, 3 channels per group', shape: [2, 40, 40, 12], plan: s => groupPlan(s, 3, 4)},
  {name: 'GroupNorm channels-first, odd spatial size', shape: [3, 12, 17, 19], plan: s => groupPlan(s, 1, 3)},
  {name: 'LayerNorm long rows', shape: [5, 3001], plan: s => axesPlan(s, [1])},
  {name: 'RMS long rows', shape: [7, 2999], plan: s => axesPlan(s, [1]), center: false, beta: false},
  // Several blocks of the SIMD module's blocked passes (32768 elements on the wasm heap, 16384 streamed).
  {name: 'LayerNorm, several blocks', shape: [48, 1030], plan: s => axesPlan(s, [1])},
  {name: 'RMS, several blocks', shape: [40, 1000], plan: s => axesPlan(s, [1]), center: false},
  {name: 'GroupNorm channels-first, several blocks', shape: [2, 16, 40, 40], plan: s => groupPlan(s, 1, 8)},
  {name: 'InstanceNorm channels-first, several blocks', shape: [4, 12, 30, 30], plan: s => instancePlan(s, 1)},
];

interface RunResult {
  y: number[];
  mean: number[] | null;
  variance: number[];
  grads: number[][];
  statShape: number[];
}

/** Sets the TFJS_NORM_FUSED flag; returns the previous value. */
function setFused(fused: boolean): boolean {
  const previous = tf.env().getBool('TFJS_NORM_FUSED');
  tf.env().set('TFJS_NORM_FUSED', fused);
  return previous;
}

/** A spec on the canonical view itself (gamma/beta already in plan.paramShape). */
function specOf(plan: NormPlan, center: boolean, epsilon = 1e-5) {
  return {owner: 'test', plan, paramShape: plan.paramShape, epsilon, center};
}

/** Runs forward + all gradients with the fused kernels on or off; returns plain arrays. */
function run(c: PlanCase, fused: boolean, seed: number): RunResult {
  const previous = setFused(fused);
  let out!: RunResult;
  try {
    tf.tidy(() => {
      const plan = c.plan(c.shape);
      expect(usesKernel(FORWARD_KERNEL, plan)).toBe(fused);
      // A common offset, so the statistics' precision is exercised too.
      const x = tf.add(tf.randomNormal(plan.shape, 0, 2, 'float32', seed), 3);
      const dy = tf.randomNormal(plan.shape, 0, 1, 'float32', seed + 1);
      const gamma = c.gamma === false ? null : tf.randomNormal(plan.paramShape, 1, 0.5, 'float32', seed + 2);
      const beta = c.beta === false ? null : tf.randomNormal(plan.paramShape, 0, 0.5, 'float32', seed + 3);
      const center = c.center ?? true;
      const spec = specOf(plan, center);
      const stats = normalize(x, spec, {gamma, beta}, true);
      const inputs = [x, gamma, beta].filter((t): t is tf.Tensor => t != null);
      const grads = tf.grads((...args: tf.Tensor[]) => {
        const g = gamma ? args[1] : null;
        const b = beta ? args[gamma ? 2 : 1] : null;
        return normalize(args[0], spec, {gamma: g, beta: b}).output;
      })(inputs, dy);
      out = {
        y: Array.from(stats.output.dataSync()),
        mean: stats.mean ? Array.from(stats.mean.dataSync()) : null,
        variance: Array.from(stats.variance!.dataSync()),
        grads: grads.map(g => Array.from(g.dataSync())),
        statShape: stats.variance!.shape,
      };
    });
  } finally {
    setFused(previous);
  }
  return out;
}

interface Variant {
  backend: string;
  name: string;
  simd: boolean;
  heap: 'direct' | 'copy';
  usage: keyof typeof implUsage;
}

const VARIANTS: Variant[] = [
  {backend: 'cpu', name: 'SIMD module, streamed', simd: true, heap: 'direct', usage: 'simdStreamed'},
  {backend: 'cpu', name: 'JavaScript loops', simd: false, heap: 'direct', usage: 'js'},
  {backend: 'wasm', name: 'SIMD module on the tfjs heap', simd: true, heap: 'direct', usage: 'simdDirect'},
  {backend: 'wasm', name: 'SIMD module, copying', simd: true, heap: 'copy', usage: 'simdStreamed'},
  {backend: 'wasm', name: 'JavaScript loops', simd: false, heap: 'direct', usage: 'js'},
];

/** Runs fn with the fused kernels on or off; returns its result. */
function withFused<T>(fused: boolean, fn: () => T): T {
  const previous = setFused(fused);
  try {
    return fn();
  } finally {
    setFused(previous);
  }
}

/** LocalResponseNorm forward and gradient as arrays. */
function runLrn(shape: number[], args: tfn.ops.LocalResponseNormOpArgs, seed: number, poison = false): number[][] {
  return tf.tidy(() => {
    let x = tf.randomNormal(shape, 0, 2, 'float32', seed);
    if (poison) {
      // NaN and +-Inf must stay within the windows that hold them (sliding sums recompute there).
      const v = x.dataSync().slice();
      [[5, NaN], [17, Infinity], [40, -Infinity], [41, NaN]].forEach(([i, e]) => { v[i] = e; });
      x = tf.tensor(v, shape);
    }
    const dy = tf.randomNormal(shape, 0, 1, 'float32', seed + 1);
    const f = (a: tf.Tensor) => tfn.ops.localResponseNorm(a, args);
    return [f(x), tf.grad(f)(x, dy)].map(t => Array.from(t.dataSync()));
  });
}

/** Running statistics of a BatchNorm/InstanceNorm layer after three training steps. */
function runningAfterSteps(make: () => tf.layers.Layer, shape: number[]): number[][] {
  const layer = make();
  layer.build(shape);
  const out = tf.tidy(() => {
    for (let i = 0; i < 3; i++) {
      const x = tf.add(tf.randomNormal(shape, 0, 2, 'float32', 20 + i), 3);
      tf.engine().gradients(() => layer.apply(x, {training: true}) as tf.Tensor, [x], tf.onesLike(x));
    }
    return layer.getWeights().map(w => Array.from(w.dataSync()));
  });
  (layer as unknown as {disposeWeights(): void}).disposeWeights();
  return out;
}

for (const v of VARIANTS) {
  describe(`fused kernels vs op composition [${v.backend}, ${v.name}]`, () => {
    let used = 0;
    beforeAll(async () => {
      await tf.setBackend(v.backend);
      await tf.ready();
      if (tf.getBackend() !== v.backend) throw new Error(`backend ${v.backend} did not start`);
      tf.env().set('TFJS_NORM_SIMD', v.simd);
      simdOptions.wasmHeap = v.heap;
      used = implUsage[v.usage];
    });
    afterAll(() => {
      tf.env().set('TFJS_NORM_SIMD', true);
      simdOptions.wasmHeap = 'direct';
      // Every kernel call of this block ran on the implementation it names.
      const total = implUsage.js + implUsage.simdDirect + implUsage.simdStreamed;
      expect(implUsage[v.usage] - used).toBeGreaterThan(0);
      expect(total).toBeGreaterThan(0);
    });

    for (const c of CASES) {
      it(c.name, async () => {
        for (const seed of [1, 7]) {
          const before = {...implUsage};
          const fused = await noLeak(() => run(c, true, seed), `${c.name} fused`);
          const others = Object.keys(implUsage).filter(k => k !== v.usage) as Array<keyof typeof implUsage>;
          others.forEach(k => expect(`${k}: ${implUsage[k] - before[k]}`).toBe(`${k}: 0`));
          const ops = await noLeak(() => run(c, false, seed), `${c.name} ops`);
          expectClose(fused.y, ops.y, 'output', 1e-5, 1e-4);
          expect(fused.statShape).toEqual(ops.statShape);
          expectClose(fused.variance, ops.variance, 'variance', 1e-5, 1e-4);
          if (c.center ?? true) expectClose(fused.mean!, ops.mean!, 'mean', 1e-5, 1e-5);
          else expect(fused.mean).toBeNull();
          expect(fused.grads.length).toBe(ops.grads.length);
          fused.grads.forEach((g, i) => expectClose(g, ops.grads[i], `gradient ${['x', 'gamma/beta', 'beta'][i]}`,
                                                    1e-4, 1e-3));
        }
      });
    }

    it('LocalResponseNorm: channels-last and -first, fast and general exponents', async () => {
      expect(usesKernel(LRN_FORWARD_KERNEL, null)).toBe(true);
      for (const [shape, args] of [
        [[3, 4, 5, 13], {size: 5, alpha: 0.3, k: 2}],
        [[3, 13, 4, 5], {size: 4, alpha: 0.3, k: 1.5, axis: 1}],
        [[2, 7, 11], {size: 3, alpha: 0.2, beta: 0.6, k: 1, axis: 1}],
        [[4, 6, 9], {size: 9, alpha: 1, beta: 1, k: 0.5}],
        [[5, 3, 8], {size: 2, alpha: 0.5, beta: 0.5}],
      ] as Array<[number[], tfn.ops.LocalResponseNormOpArgs]>) {
        const fused = await noLeak(() => withFused(true, () => runLrn(shape, args, 3)), 'lrn fused');
        const ops = withFused(false, () => runLrn(shape, args, 3));
        expectClose(fused[0], ops[0], `LRN ${shape} ${JSON.stringify(args)} output`, 1e-5, 1e-4);
        expectClose(fused[1], ops[1], `LRN ${shape} ${JSON.stringify(args)} gradient`, 1e-5, 1e-4);
        const bad = withFused(true, () => runLrn(shape, args, 3, true));
        const badOps = withFused(false, () => runLrn(shape, args, 3, true));
        const nanAt = (a: number[]) => a.map((e, i) => (Number.isNaN(e) ? i : -1)).filter(i => i >= 0).join(',');
        expect(nanAt(bad[0])).toBe(nanAt(badOps[0]));
        expect(nanAt(bad[1])).toBe(nanAt(badOps[1]));
        const finite = (a: number[], b: number[]) => [a.filter((e, i) => Number.isFinite(b[i])),
                                                      b.filter(e => Number.isFinite(e))];
        expectClose(...finite(bad[0], badOps[0]) as [number[], number[]], `LRN ${shape} with NaN/Inf output`, 1e-5, 1e-4);
        expectClose(...finite(bad[1], badOps[1]) as [number[], number[]], `LRN ${shape} with NaN/Inf gradient`, 1e-5,
                    1e-4);
      }
    });

    it('running statistics updated inside the forward kernel: the op path\'s numbers', async () => {
      for (const [name, make, shape] of [
        ['BatchNorm momentum 0.1', () => new tfn.BatchNorm({axis: -1}), [6, 5, 7]],
        ['BatchNorm cumulative', () => new tfn.BatchNorm({axis: 1, momentum: null}), [4, 6, 5, 3]],
        ['InstanceNorm', () => new tfn.InstanceNorm({axis: -1, trackRunningStats: true, momentum: 0.3}), [3, 9, 4]],
        ['InstanceNorm channels-first', () => new tfn.InstanceNorm({axis: 1, affine: true, trackRunningStats: true}),
         [3, 4, 6, 5]],
      ] as Array<[string, () => tf.layers.Layer, number[]]>) {
        const fused = await noLeak(() => withFused(true, () => runningAfterSteps(make, shape)), name);
        const ops = withFused(false, () => runningAfterSteps(make, shape));
        fused.forEach((w, i) => expectClose(w, ops[i], `${name} weight ${i}`, 1e-6, 1e-5));
      }
    });
  });
}

describe('fused kernels: dispatch and kernel counts', () => {
  it('uses the kernels on cpu and wasm', async () => {
    const plan = batchPlan([4, 3], 1);
    for (const backend of ['wasm', 'cpu']) {
      await tf.setBackend(backend);
      expect(usesKernel(FORWARD_KERNEL, plan)).toBe(true);
      expect(usesKernel(SCALE_SHIFT_KERNEL, plan)).toBe(true);
      expect(usesKernel(LRN_FORWARD_KERNEL, null)).toBe(true);
    }
  });

  for (const backend of ['cpu', 'wasm']) {
    it(`a BatchNorm/InstanceNorm training step is at most 12 kernels, running statistics included [${backend}]`,
       async () => {
         await tf.setBackend(backend);
         for (const make of [() => new tfn.BatchNorm({axis: -1}),
                             () => new tfn.InstanceNorm({axis: 1, affine: true, trackRunningStats: true})]) {
           const layer = make();
           const shape = [4, 3, 5, 6];
           layer.build(shape);
           const x = tf.variable(tf.randomNormal(shape), true);
           const dy = tf.randomNormal(shape);
           const weights = layer.trainableWeights.map(w => w.read() as tf.Variable);
           const info = await tf.profile(() => {
             const {value, grads} = tf.engine().gradients(() => layer.apply(x, {training: true}) as tf.Tensor,
                                                          [x, ...weights], dy);
             return [value, ...grads];
           });
           const names = info.kernels.map(k => k.name);
           expect(names.length).toBeLessThanOrEqual(12);
           expect(names.filter(n => n.startsWith('TfjsNorm'))).toEqual(['TfjsNormForward', 'TfjsNormBackward']);
           tf.dispose([x, dy, ...(info.result as tf.Tensor[])]);
           (layer as unknown as {disposeWeights(): void}).disposeWeights();
         }
       });
  }
  it('inference scale-and-shift: one kernel, same numbers and gradients as the ops', async () => {
    for (const [shape, plan] of [
      [[4, 5, 6], batchPlan([4, 5, 6], 2)],
      [[4, 6, 5, 3], batchPlan([4, 6, 5, 3], 1)],
    ] as Array<[number[], NormPlan]>) {
      const C = plan.paramShape.reduce((a, b) => a * b, 1);
      const results = [true, false].map(fused => {
        const previous = setFused(fused);
        let arrays: number[][] = [];
        try {
          tf.tidy(() => {
            const x = tf.randomNormal(plan.shape, 1, 2, 'float32', 3);
            const dy = tf.randomNormal(plan.shape, 0, 1, 'float32', 4);
            const mean = tf.randomNormal([C], 0, 1, 'float32', 5);
            const variance = tf.add(tf.randomUniform([C], 0, 2, 'float32', 6), 0.1);
            const gamma = tf.reshape(tf.randomNormal([C], 1, 0.5, 'float32', 7), plan.paramShape);
            const beta = tf.reshape(tf.randomNormal([C], 0, 0.5, 'float32', 8), plan.paramShape);
            const f = (a: tf.Tensor, m: tf.Tensor, v: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
              normalizeWithStats(a, specOf(plan, true, 1e-3), {mean: m, variance: v}, {gamma: g, beta: b});
            const y = f(x, mean, variance, gamma, beta);
            const grads = tf.grads(f as (...t: tf.Tensor[]) => tf.Tensor)([x, mean, variance, gamma, beta], dy);
            arrays = [y, ...grads].map(t => Array.from(t.dataSync()));
          });
        } finally {
          setFused(previous);
        }
        return arrays;
      });
      results[0].forEach((a, i) => expectClose(a, results[1][i], `inference ${shape} output/gradient ${i}`, 1e-5, 1e-4));
    }
    // Kernel count of the fused inference forward: the reshapes of mean/variance plus one kernel.
    const plan = batchPlan([8, 4], 1);
    const x = tf.randomNormal(plan.shape);
    const m = tf.zeros(plan.paramShape);
    const v = tf.ones(plan.paramShape);
    const info = await tf.profile(() => normalizeWithStats(x, specOf(plan, true), {mean: m, variance: v}));
    expect(info.kernels.filter(k => !['Reshape', 'Identity'].includes(k.name)).map(k => k.name))
      .toEqual(['TfjsNormScaleShift']);
    tf.dispose([x, m, v, info.result as tf.Tensor]);
  });
});
