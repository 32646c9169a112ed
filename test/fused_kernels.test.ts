/**
 * The fused cpu kernels (src/engine/backends/cpu.ts) against the op composition
 * (src/engine/op_path.ts, with the TFJS_NORM_FUSED flag off) on the same random inputs:
 * forward, statistics, and every gradient, across plans; plus leak checks.
 */
import * as tf from '@tensorflow/tfjs';
import '../src';
import {FORWARD_KERNEL, SCALE_SHIFT_KERNEL, usesKernel} from '../src/engine/kernels';
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

describe('fused cpu kernels vs op composition [cpu]', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
    await tf.ready();
  });

  for (const c of CASES) {
    it(c.name, async () => {
      for (const seed of [1, 7]) {
        const fused = await noLeak(() => run(c, true, seed), `${c.name} fused`);
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

  it('keeps the op path on other backends', async () => {
    const plan = batchPlan([4, 3], 1);
    await tf.setBackend('wasm').catch(() => undefined);
    if (tf.getBackend() === 'wasm') expect(usesKernel(FORWARD_KERNEL, plan)).toBe(false);
    await tf.setBackend('cpu');
    expect(usesKernel(FORWARD_KERNEL, plan)).toBe(true);
    expect(usesKernel(SCALE_SHIFT_KERNEL, plan)).toBe(true);
  });

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
