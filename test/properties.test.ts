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
import {LAYERS, describeBackends, disposeLayer, trainStep, weight} from './harness';
import {RefLayer, RefSpec, RunningState, referenceEval, referenceTrain, updateRunning} from './reference/norm_reference';

const TOL = 1e-5;
const NUM_RUNS = 40;
const SEED = 20240611;

interface PropCase {
  layer: RefLayer;
  shape: number[];
  /** As given to the layer (may be negative). */
  axis: number | number[];
  numGroups?: number;
  affine: boolean;
  /** LayerNorm's bias. */
  bias?: boolean;
  trackRunningStats?: boolean;
  momentum?: number | null;
  epsilon: number | null;
  size?: number;
  alpha?: number;
  beta?: number;
  k?: number;
  scale: number;
  offset: number;
  seed: number;
}

/** Shrunk counterexamples of past failures, run as fixed tests. */
const REGRESSIONS: Array<[string, PropCase]> = [
  ['GroupNorm on a size-1 spatial axis, negative axis', {layer: 'GroupNorm', shape: [2, 1, 4], axis: -1, numGroups: 2,
   affine: true, epsilon: 1e-3, scale: 1, offset: 0, seed: 1}],
  ['BatchNorm momentum null, two values per channel', {layer: 'BatchNorm', shape: [2, 3], axis: -1, affine: true,
   trackRunningStats: true, momentum: null, epsilon: 1e-5, scale: 3, offset: 100, seed: 2}],
  ['LayerNorm over non-adjacent axes', {layer: 'LayerNorm', shape: [2, 3, 2, 4], axis: [1, -1], affine: true, bias: false,
   epsilon: 0.1, scale: 0.1, offset: 1, seed: 3}],
];

// ------------------------------------------------------------ arbitraries

const dim = fc.integer({min: 1, max: 4});
const scaleArb = fc.constantFrom(1e-2, 0.3, 1, 5, 100);
/** offset in units of scale: up to 1e3 standard deviations. */
const offsetArb = fc.constantFrom(0, 1, -30, 1e3);
const epsArb = fc.constantFrom(1e-5, 1e-3, 0.1, 1);
const momentumArb = fc.oneof(fc.constant(null), fc.constantFrom(0, 0.1, 0.5, 1), fc.double({min: 0, max: 1, noNaN: true}));
const seedArb = fc.integer({min: 0, max: 1e6});

function channelAxisArb(rank: number): fc.Arbitrary<{axis: number; ch: number}> {
  return fc.tuple(fc.integer({min: 1, max: rank - 1}), fc.boolean()).map(([ch, neg]) => ({axis: neg ? ch - rank : ch, ch}));
}

function shapeArb(minRank: number): fc.Arbitrary<number[]> {
  return fc.integer({min: minRank, max: 5}).chain(rank => fc.array(dim, {minLength: rank, maxLength: rank}));
}

function channelLayerArb(layer: 'BatchNorm' | 'InstanceNorm' | 'GroupNorm'): fc.Arbitrary<PropCase> {
  return shapeArb(layer === 'InstanceNorm' ? 3 : 2).chain(shape0 => fc.record({
    ax: channelAxisArb(shape0.length),
    C: fc.integer({min: 1, max: 6}),
    groupPick: fc.nat(),
    affine: fc.boolean(),
    trackRunningStats: fc.boolean(),
    momentum: momentumArb,
    epsilon: epsArb,
    scale: scaleArb,
    offset: offsetArb,
    seed: seedArb,
  }).map(r => {
    const shape = [...shape0];
    shape[r.ax.ch] = r.C;
    // Batch statistics need more than one value per statistic (PyTorch raises otherwise).
    const per = layer === 'BatchNorm' ? shape.reduce((a, b) => a * b, 1) / r.C
        : shape.filter((_, i) => i !== 0 && i !== r.ax.ch).reduce((a, b) => a * b, 1);
    if (per < 2) {
      const grow = layer === 'BatchNorm' ? 0 : shape.findIndex((_, i) => i !== 0 && i !== r.ax.ch);
      shape[grow] = 2;
    }
    const divisors = Array.from({length: r.C}, (_, i) => i + 1).filter(g => r.C % g === 0);
    const c: PropCase = {layer, shape, axis: r.ax.axis, affine: r.affine, epsilon: r.epsilon, scale: r.scale,
                         offset: r.offset, seed: r.seed};
    if (layer === 'GroupNorm') c.numGroups = divisors[r.groupPick % divisors.length];
    else Object.assign(c, {trackRunningStats: r.trackRunningStats, momentum: r.momentum});
    return c;
  }));
}

function axesLayerArb(layer: 'LayerNorm' | 'RMSNorm'): fc.Arbitrary<PropCase> {
  return shapeArb(2).chain(shape => fc.record({
    axes: fc.subarray(shape.map((_, i) => i).slice(1), {minLength: 1}),
    negs: fc.array(fc.boolean(), {minLength: shape.length, maxLength: shape.length}),
    single: fc.boolean(),
    affine: fc.boolean(),
    bias: fc.boolean(),
    epsilon: layer === 'RMSNorm' ? fc.oneof(fc.constant(null), epsArb) : epsArb,
    scale: scaleArb,
    offset: offsetArb,
    seed: seedArb,
  }).map(r => {
    const axes = r.axes.map(a => (r.negs[a] ? a - shape.length : a));
    const c: PropCase = {layer, shape, axis: r.single && axes.length === 1 ? axes[0] : axes, affine: r.affine,
                         epsilon: r.epsilon, scale: r.scale, offset: r.offset, seed: r.seed};
    if (layer === 'LayerNorm') c.bias = r.bias;
    return c;
  }));
}

const lrnArb: fc.Arbitrary<PropCase> = shapeArb(3).chain(shape0 => fc.record({
  ax: channelAxisArb(shape0.length),
  C: fc.integer({min: 1, max: 7}),
  size: fc.integer({min: 1, max: 9}),
  alpha: fc.constantFrom(1e-4, 1e-2, 0.5),
  beta: fc.constantFrom(0.5, 0.75, 1, 2),
  k: fc.constantFrom(0.5, 1, 2),
  scale: fc.constantFrom(0.1, 1, 5),
  seed: seedArb,
}).map(r => {
  const shape = [...shape0];
  shape[r.ax.ch] = r.C;
  return {layer: 'LocalResponseNorm' as RefLayer, shape, axis: r.ax.axis, affine: false, epsilon: null, size: r.size,
          alpha: r.alpha, beta: r.beta, k: r.k, scale: r.scale, offset: 0, seed: r.seed};
}));

const ARBITRARIES: Array<[RefLayer, fc.Arbitrary<PropCase>]> = [
  ['BatchNorm', channelLayerArb('BatchNorm')],
  ['InstanceNorm', channelLayerArb('InstanceNorm')],
  ['GroupNorm', channelLayerArb('GroupNorm')],
  ['LayerNorm', axesLayerArb('LayerNorm')],
  ['RMSNorm', axesLayerArb('RMSNorm')],
  ['LocalResponseNorm', lrnArb],
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

function layerArgs(c: PropCase): Record<string, unknown> {
  const a: Record<string, unknown> = {axis: c.axis};
  if (c.layer === 'LocalResponseNorm') return {...a, size: c.size, alpha: c.alpha, beta: c.beta, k: c.k};
  a.affine = c.affine;
  a.epsilon = c.epsilon;
  if (c.numGroups !== undefined) a.numGroups = c.numGroups;
  if (c.bias !== undefined) a.bias = c.bias;
  if (c.trackRunningStats !== undefined) Object.assign(a, {trackRunningStats: c.trackRunningStats, momentum: c.momentum});
  return a;
}

function refSpec(c: PropCase): RefSpec {
  return {layer: c.layer, shape: c.shape, axis: c.axis, numGroups: c.numGroups, size: c.size, alpha: c.alpha,
          beta: c.beta, k: c.k, epsilon: c.epsilon ?? (c.layer === 'RMSNorm' ? 1.1920928955078125e-7 : 1e-5)};
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
  const layer = new LAYERS[c.layer](layerArgs(c));
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
    const spec = refSpec(c);
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
    const tracks = c.trackRunningStats === true;
    expect(weight(layer, 'moving_mean') != null).toBe(tracks);
    if (tracks) {
      const C = ref.batchMean!.length;
      let state: RunningState = {mean: new Array(C).fill(0), variance: new Array(C).fill(1), numBatchesTracked: 0};
      state = updateRunning(state, ref, c.momentum ?? null);
      const ref2 = referenceTrain(spec, inputs[1], null, gamma, beta);
      state = updateRunning(state, ref2, c.momentum ?? null);
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
      const ev = referenceEval(spec, inputs[2], {
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
  for (const [name, arb] of ARBITRARIES) {
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
