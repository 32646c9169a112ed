/**
 * Property-based tests (fast-check, fixed seed): for random configurations
 * (rank 2-5, shape, channel axis positive or negative, numGroups among the
 * divisors of C, LayerNorm/RMSNorm axes, affine, trackRunningStats, momentum
 * incl. null, epsilon, input scale and offset), our outputs, gradients w.r.t.
 * x/gamma/beta, running statistics after two steps and the inference output
 * match the independent float64 reference in test/reference/, on cpu and wasm.
 *
 * Tolerance: |ours - reference| <= TOL * M, where M is the magnitude the
 * reference reports for the quantity (largest sum of |terms| a float32
 * computation adds: e.g. max(|xhat gamma| + |beta|) for y, max|dy gamma| /
 * std (2 + max xhat^2) for dx, max over channels of sum |dy xhat| for dgamma).
 * float32 round-off is eps32 = 6e-8 per operation relative to M; TOL = 1e-5
 * allows ~170 such roundings (measured worst: 1.1e-7 M on cpu, 2.2e-7 M on
 * wasm, so a 45x margin), while every bug class these tests target (wrong axis, group, epsilon
 * placement, biased variance, momentum convention, missing gradient term) is
 * an error of order M.
 *
 * A failure prints the shrunk counterexample; add it to REGRESSIONS below so
 * it stays a fixed test.
 */
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import {CATALOG, describeBackends, disposeLayer, layerInfo, trainStep, weight} from './harness';
import type {PropCase} from './catalog';
import {NormalizeSpec, RunningState, referenceEval, referenceTrain, updateRunning} from './reference/norm_reference';

const TOL = 1e-5;
const NUM_RUNS = 40;
const SEED = 20240611;

/** Shrunk counterexamples of past failures, run as fixed tests. */
const REGRESSIONS: Array<[string, PropCase]> = [
  ['GroupNorm on a size-1 spatial axis, negative axis', {layer: 'GroupNorm', shape: [2, 1, 4],
   args: {axis: -1, affine: true, epsilon: 1e-3, numGroups: 2}, scale: 1, offset: 0, seed: 1}],
  ['BatchNorm momentum null, two values per channel', {layer: 'BatchNorm', shape: [2, 3],
   args: {axis: -1, affine: true, epsilon: 1e-5, trackRunningStats: true, momentum: null}, scale: 3, offset: 100, seed: 2}],
  ['LayerNorm over non-adjacent axes', {layer: 'LayerNorm', shape: [2, 3, 2, 4],
   args: {axis: [1, -1], affine: true, epsilon: 0.1, bias: false}, scale: 0.1, offset: 1, seed: 3}],
];

// ------------------------------------------------------------ the check

/** Deterministic float32 values from a seed (mulberry32 + Box-Muller). */
function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

/** Throws, naming the quantity and worst element, unless |a - e| <= TOL * magnitude for all elements. */
function check(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, magnitude: number): number {
  const tol = TOL * Math.max(magnitude, 1e-30);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= tol)) {
      throw new Error(`${what}[${i}] = ${actual[i]}, reference ${expected[i]} (error ${err.toExponential(2)} > ` +
                      `${TOL} * magnitude ${magnitude.toExponential(2)})`);
    }
    worst = Math.max(worst, err / tol);
  }
  return worst;
}

/** Runs one case: two training steps (gradients on the first), then inference. Returns the worst error / tolerance. */
function runCase(c: PropCase): number {
  const n = c.shape.reduce((a, b) => a * b, 1);
  const inputs = [0, 1, 2].map(k => randn(n, c.seed * 3 + k).map(v => c.offset * c.scale + c.scale * v));
  const dy = randn(n, c.seed * 7 + 11);
  const info = layerInfo(c.layer);
  const layer = new info.cls({...c.args});
  layer.build(c.shape);
  const gw = weight(layer, 'gamma');
  const bw = weight(layer, 'beta');
  const gamma = gw ? randn(gw.shape.reduce((a, b) => a! * b!, 1)!, c.seed + 5).map(v => 0.5 + v) : null;
  const beta = bw ? randn(bw.shape.reduce((a, b) => a! * b!, 1)!, c.seed + 6) : null;
  const before = tf.memory().numTensors;
  let worst = 0;
  try {
    tf.tidy(() => {
      if (gw) gw.write(tf.tensor(gamma!, gw.shape as number[]));
      if (bw) bw.write(tf.tensor(beta!, bw.shape as number[]));
    });
    const spec = info.reference(c.args, c.shape);
    const ref = referenceTrain(spec, inputs[0], dy, gamma, beta);
    tf.tidy(() => {
      const r = trainStep(layer, tf.tensor(inputs[0], c.shape), tf.tensor(dy, c.shape));
      worst = Math.max(worst, check('y', r.y.dataSync(), ref.y, ref.scale.y));
      worst = Math.max(worst, check('dx', r.dx.dataSync(), ref.dx!, ref.scale.dx));
      expect(r.dgamma == null).toBe(ref.dgamma == null);
      expect(r.dbeta == null).toBe(ref.dbeta == null);
      if (ref.dgamma) worst = Math.max(worst, check('dgamma', r.dgamma!.dataSync(), ref.dgamma, ref.scale.dgamma));
      if (ref.dbeta) worst = Math.max(worst, check('dbeta', r.dbeta!.dataSync(), ref.dbeta, ref.scale.dbeta));
      r.y.dispose(); // kept by trainStep
    });
    const tracks = info.tracksRunningStats(c.args);
    const momentum = (c.args.momentum === undefined ? info.defaults.momentum : c.args.momentum) as number | null;
    expect(weight(layer, 'moving_mean') != null).toBe(tracks);
    if (tracks) {
      const C = ref.batchMean!.length;
      let state: RunningState = {mean: new Array(C).fill(0), variance: new Array(C).fill(1), numBatchesTracked: 0};
      state = updateRunning(state, ref, momentum);
      const ref2 = referenceTrain(spec, inputs[1], null, gamma, beta);
      state = updateRunning(state, ref2, momentum);
      tf.tidy(() => {
        const y2 = layer.apply(tf.tensor(inputs[1], c.shape), {training: true}) as tf.Tensor;
        worst = Math.max(worst, check('step 2 y', y2.dataSync(), ref2.y, ref2.scale.y));
      });
      const xMag = Math.abs(c.offset * c.scale) + 4 * c.scale;
      worst = Math.max(worst, check('running mean', weight(layer, 'moving_mean')!.read().dataSync(), state.mean, xMag));
      worst = Math.max(worst, check('running var', weight(layer, 'moving_variance')!.read().dataSync(), state.variance,
                                    Math.max(1, ...state.variance)));
      expect(weight(layer, 'num_batches_tracked')!.read().dataSync()[0]).toBe(2);
      // Inference with the running statistics.
      const ev = referenceEval(spec as NormalizeSpec, inputs[2], {
        mean: Array.from(weight(layer, 'moving_mean')!.read().dataSync()),
        variance: Array.from(weight(layer, 'moving_variance')!.read().dataSync()), numBatchesTracked: 2,
      }, gamma, beta);
      tf.tidy(() => {
        const y3 = layer.apply(tf.tensor(inputs[2], c.shape)) as tf.Tensor;
        worst = Math.max(worst, check('inference y', y3.dataSync(), ev.y, ev.scale));
      });
    } else {
      // Without running statistics inference uses the batch's own statistics (same as training).
      const ref3 = referenceTrain(spec, inputs[2], null, gamma, beta);
      tf.tidy(() => {
        const y3 = layer.apply(tf.tensor(inputs[2], c.shape)) as tf.Tensor;
        worst = Math.max(worst, check('inference y', y3.dataSync(), ref3.y, ref3.scale.y));
      });
    }
    expect(tf.memory().numTensors).toBe(before);
  } finally {
    disposeLayer(layer);
  }
  return worst;
}

describeBackends('properties against the float64 reference', backend => {
  for (const info of CATALOG) {
    const name = info.name;
    const arb = info.arbitrary(fc);
    it(`${name}: outputs, gradients, running statistics and inference match the reference`, () => {
      let worst = 0;
      fc.assert(fc.property(arb, c => {
        worst = Math.max(worst, runCase(c));
      }), {seed: SEED, numRuns: NUM_RUNS, endOnFailure: false,
           reporter: out => {
             if (out.failed) {
               throw new Error(`${name} [${backend}] property failed; add this shrunk case to REGRESSIONS in ` +
                               `test/properties.test.ts:\n${JSON.stringify(out.counterexample?.[0])}\n` +
                               `${out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance)}`);
             }
           }});
      // eslint-disable-next-line no-console
      console.log(`${name} [${backend}]: ${NUM_RUNS} random cases, worst error ${(worst * TOL).toExponential(2)} x magnitude`);
    });
  }

  describe('regressions (shrunk counterexamples)', () => {
    it.each(REGRESSIONS)('%s', (_, c) => {
      runCase(c);
    });
  });
});
