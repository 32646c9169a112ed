/**
 * The fused kernels' computation on plain arrays, shared by every backend
 * that registers them (cpu.ts, wasm.ts): the inputs and outputs as
 * Float32Arrays (the cpu backend's values, or views of the tfjs-backend-wasm
 * heap), run by the SIMD module (simd/runner.ts) or the JavaScript loops
 * (loops.ts, jsNorm here). The steps around the passes (statistics from
 * sums, the aux rows, the running statistics) are here once for both.
 */
import {Activation, activationDerivative, activationScalar} from '../activation';
import {Geometry} from './geometry';
import {Stats64, addRows, applyAffine, backwardDx, backwardSums, statSums} from './loops';

export interface ForwardIO {
  x: Float32Array;
  gamma: Float32Array | null;
  beta: Float32Array | null;
  y: Float32Array;
  /** statSize each: mean (float32 of the float64 mean), biased variance. */
  mean: Float32Array;
  variance: Float32Array;
  /** [3, statSize]: mean hi, mean lo (mean - hi), 1/sqrt(var + eps). */
  aux: Float32Array;
}

export interface BackwardIO {
  dy: Float32Array;
  x: Float32Array;
  aux: Float32Array;
  gamma: Float32Array | null;
  dx: Float32Array;
  dgamma: Float32Array | null;
  dbeta: Float32Array | null;
}

export interface ScaleShiftIO {
  x: Float32Array;
  /** Per parameter (the geometry's statistics are the parameters here). */
  mean: Float32Array;
  variance: Float32Array;
  gamma: Float32Array | null;
  beta: Float32Array | null;
  y: Float32Array;
}

export interface LrnIO {
  x: Float32Array;
  /** Forward: y; backward: dx. */
  out: Float32Array;
  /** Backward only. */
  dy?: Float32Array;
}

/** LocalResponseNorm on a [outer, C, inner] view (ops/local_response_norm.ts). */
export interface LrnGeometry {
  outer: number;
  C: number;
  inner: number;
  before: number;
  after: number;
  /** alpha / size. */
  scale: number;
  k: number;
  beta: number;
}

/** One implementation of the kernels' computation. */
export interface NormImpl {
  forward(g: Geometry, io: ForwardIO, epsilon: number, center: boolean): void;
  backward(g: Geometry, io: BackwardIO, center: boolean): void;
  scaleShift(g: Geometry, io: ScaleShiftIO, epsilon: number): void;
  lrn(l: LrnGeometry, io: LrnIO): void;
}

/**
 * From the sums: mean64 (in place: sums / n, or 0 without centering), and the
 * outputs mean, variance and aux (hi, lo, 1/std).
 */
/** Statistics [from, to) (all by default; the SIMD runner's blocked passes finish a block's at a time). */
export function finishMean(sums: Float64Array | null, mean64: Float64Array, n: number, from = 0,
                           to = mean64.length): void {
  if (!sums) {
    mean64.fill(0, from, to);
    return;
  }
  for (let s = from; s < to; s++) mean64[s] = sums[s] / n;
}

export function finishForward(mean64: Float64Array, squares: Float64Array, n: number, epsilon: number,
                              io: Pick<ForwardIO, 'mean' | 'variance' | 'aux'>, from = 0, to = mean64.length): void {
  const S = mean64.length;
  const {mean, variance, aux} = io;
  for (let s = from; s < to; s++) {
    const v = squares[s] / n;
    const hi = Math.fround(mean64[s]);
    mean[s] = hi;
    variance[s] = v;
    aux[s] = hi;
    aux[S + s] = mean64[s] - hi;
    aux[2 * S + s] = 1 / Math.sqrt(v + epsilon);
  }
}

/** mean(g) (0 without centering) and mean(g * xhat) per statistic, from the backward's sums. */
export function finishBackward(sumG: Float64Array, sumGX: Float64Array, n: number, center: boolean,
                               c1: Float32Array | Float64Array, c2: Float32Array | Float64Array, from = 0,
                               to = sumG.length): void {
  for (let s = from; s < to; s++) {
    c1[s] = center ? sumG[s] / n : 0;
    c2[s] = sumGX[s] / n;
  }
}

/** float64 mean (hi + lo) and 1/std of the aux rows; zero means without centering. */
function stats64(aux: Float32Array, S: number, center: boolean): Stats64 {
  const mean = new Float64Array(S);
  const invStd = new Float64Array(S);
  for (let s = 0; s < S; s++) {
    if (center) mean[s] = aux[s] + aux[S + s];
    invStd[s] = aux[2 * S + s];
  }
  return {mean, invStd};
}

/** The JavaScript loops (loops.ts) as a NormImpl. */
export const jsNorm: NormImpl = {
  forward(g, io, epsilon, center) {
    const S = g.statSize;
    const mean64 = new Float64Array(S);
    if (center) {
      const sums = new Float64Array(S);
      statSums(g, io.x, null, sums);
      finishMean(sums, mean64, g.count);
    }
    const squares = new Float64Array(S);
    statSums(g, io.x, mean64, squares);
    finishForward(mean64, squares, g.count, epsilon, io);
    applyAffine(g, io.x, io.y, stats64(io.aux, S, center), io.gamma, io.beta);
  },
  backward(g, io, center) {
    const S = g.statSize;
    const P = g.paramSize;
    const st = stats64(io.aux, S, center);
    const sumG = new Float64Array(S);
    const sumGX = new Float64Array(S);
    const dgamma = new Float64Array(P);
    const dbeta = new Float64Array(P);
    backwardSums(g, io.dy, io.x, st, io.gamma, sumG, sumGX, dgamma, dbeta);
    const c1 = new Float64Array(S);
    const c2 = new Float64Array(S);
    finishBackward(sumG, sumGX, g.count, center, c1, c2);
    backwardDx(g, io.dy, io.x, io.dx, st, c1, c2, io.gamma);
    if (io.dgamma) io.dgamma.set(dgamma);
    if (io.dbeta) io.dbeta.set(dbeta);
  },
  scaleShift(g, io, epsilon) {
    const P = io.mean.length;
    const invStd = new Float64Array(P);
    for (let p = 0; p < P; p++) invStd[p] = 1 / Math.sqrt(io.variance[p] + epsilon);
    applyAffine(g, io.x, io.y, {mean: Float64Array.from(io.mean), invStd}, io.gamma, io.beta);
  },
  lrn(l, io) {
    if (io.dy) lrnBackwardJs(l, io.x, io.dy, io.out);
    else lrnForwardJs(l, io.x, io.out);
  },
};

/** y = act(y) in place. */
function activateInPlace(y: Float32Array, act: Activation): void {
  const f = activationScalar(act);
  for (let i = 0; i < y.length; i++) y[i] = f(y[i]);
}

/**
 * The epilogues of issue #17 (kernels.ts: `activation`, `residual`) on the
 * JavaScript loops, where the SIMD module does not run (its counterpart:
 * SimdRunner.forwardEpilogue / backwardEpilogue / activate).
 *
 *   forward    [sum = x + residual, written with the first statistics pass], the
 *              normalization of the sum, then y = act(z) in place
 *   backward   z recomputed from x, aux, gamma, beta into dx; dz = dy * act'(z) in place;
 *              the plain backward reading dy = dx (its dx pass is elementwise: in place is exact)
 *   inference  scale and shift, then act in place
 */
export const jsEpilogue = {
  forward(g: Geometry, io: ForwardIO, epsilon: number, center: boolean, act: Activation | null,
          residual: Float32Array | null, sum: Float32Array | null): void {
    const S = g.statSize;
    const mean64 = new Float64Array(S);
    const squares = new Float64Array(S);
    let x = io.x;
    // The add pass also accumulates the first statistics pass (sums, or RMSNorm's squares) where rows are statistics.
    let accumulated = false;
    const first = center ? new Float64Array(S) : squares;
    if (residual && sum) {
      accumulated = addRows(g, io.x, residual, sum, first, !center);
      x = sum;
    }
    if (center) {
      if (!accumulated) statSums(g, x, null, first);
      finishMean(first, mean64, g.count);
      statSums(g, x, mean64, squares);
    } else if (!accumulated) {
      statSums(g, x, mean64, squares);
    }
    finishForward(mean64, squares, g.count, epsilon, io);
    applyAffine(g, x, io.y, stats64(io.aux, S, center), io.gamma, io.beta);
    if (act) activateInPlace(io.y, act);
  },
  backward(g: Geometry, io: BackwardIO, center: boolean, act: Activation | null, beta: Float32Array | null): void {
    if (!act) {
      jsNorm.backward(g, io, center);
      return;
    }
    const dz = io.dx;
    applyAffine(g, io.x, dz, stats64(io.aux, g.statSize, center), io.gamma, beta);
    const d = activationDerivative(act);
    const dy = io.dy;
    for (let i = 0; i < dz.length; i++) dz[i] = dy[i] * d(dz[i]);
    jsNorm.backward(g, {...io, dy: dz}, center);
  },
  scaleShift(g: Geometry, io: ScaleShiftIO, epsilon: number, act: Activation | null): void {
    jsNorm.scaleShift(g, io, epsilon);
    if (act) activateInPlace(io.y, act);
  },
};

/** Sum over planes [lo, hi] of v[base + c * inner + i] (squared), directly. */
function directSum(v: ArrayLike<number>, base: number, inner: number, i: number, lo: number, hi: number,
                   square: boolean): number {
  let s = 0;
  for (let c = lo; c <= hi; c++) {
    const e = v[base + c * inner + i];
    s += square ? e * e : e;
  }
  return s;
}

/**
 * d = k + scale * window sum of squares, for one [C, inner] block starting at
 * `base`. The window sums slide; one that is not finite (NaN or Inf in the
 * window, or Inf - Inf as it leaves) is recomputed directly, so non-finite
 * values stay local to their windows as in PyTorch.
 */
function lrnDenominators(l: LrnGeometry, x: Float32Array, base: number, d: Float64Array): void {
  const {C, inner, before, after, scale, k} = l;
  const acc = new Float64Array(inner);
  for (let c = 0; c <= after && c < C; c++) {
    const o = base + c * inner;
    for (let i = 0; i < inner; i++) acc[i] += x[o + i] * x[o + i];
  }
  for (let c = 0; c < C; c++) {
    const o = c * inner;
    for (let i = 0; i < inner; i++) {
      if (!Number.isFinite(acc[i])) acc[i] = directSum(x, base, inner, i, Math.max(0, c - before), Math.min(C - 1, c + after), true);
      d[o + i] = k + scale * acc[i];
    }
    const enter = c + after + 1;
    const leave = c - before;
    if (enter < C) {
      const e = base + enter * inner;
      for (let i = 0; i < inner; i++) acc[i] += x[e + i] * x[e + i];
    }
    if (leave >= 0) {
      const e = base + leave * inner;
      for (let i = 0; i < inner; i++) acc[i] -= x[e + i] * x[e + i];
    }
  }
}

/** d => d^-beta, with the common exponents without Math.pow (as the SIMD module). */
function negPow(beta: number): (d: number) => number {
  if (beta === 0.75) return d => 1 / (Math.sqrt(d) * Math.sqrt(Math.sqrt(d)));
  if (beta === 0.5) return d => 1 / Math.sqrt(d);
  if (beta === 1) return d => 1 / d;
  return d => Math.pow(d, -beta);
}

function lrnForwardJs(l: LrnGeometry, x: Float32Array, y: Float32Array): void {
  const block = l.C * l.inner;
  const d = new Float64Array(block);
  const pow = negPow(l.beta);
  for (let b = 0; b < l.outer; b++) {
    const base = b * block;
    lrnDenominators(l, x, base, d);
    for (let i = 0; i < block; i++) y[base + i] = x[base + i] * pow(d[i]);
  }
}

function lrnBackwardJs(l: LrnGeometry, x: Float32Array, dy: Float32Array, dx: Float32Array): void {
  const {C, inner, before, after, beta} = l;
  const block = C * inner;
  const d = new Float64Array(block);
  const p = new Float64Array(block);
  const t = new Float64Array(block);
  const acc = new Float64Array(inner);
  const coef = 2 * l.scale * beta;
  const pow = negPow(beta);
  for (let b = 0; b < l.outer; b++) {
    const base = b * block;
    lrnDenominators(l, x, base, d);
    for (let i = 0; i < block; i++) {
      p[i] = pow(d[i]);
      t[i] = dy[base + i] * x[base + i] * p[i] / d[i];
    }
    // Transposed window: sum of t over c in [j - after, j + before].
    acc.fill(0);
    for (let c = 0; c <= before && c < C; c++) for (let i = 0; i < inner; i++) acc[i] += t[c * inner + i];
    for (let j = 0; j < C; j++) {
      const o = j * inner;
      for (let i = 0; i < inner; i++) {
        if (!Number.isFinite(acc[i])) acc[i] = directSum(t, 0, inner, i, Math.max(0, j - after), Math.min(C - 1, j + before), false);
        dx[base + o + i] = dy[base + o + i] * p[o + i] - coef * x[base + o + i] * acc[i];
      }
      const enter = j + before + 1;
      const leave = j - after;
      if (enter < C) for (let i = 0; i < inner; i++) acc[i] += t[enter * inner + i];
      if (leave >= 0) for (let i = 0; i < inner; i++) acc[i] -= t[leave * inner + i];
    }
  }
}

/** What the forward kernels take to update running statistics (attrs + inputs), PyTorch's rule. */
export interface RunningUpdate {
  /** Per parameter, the current running mean / variance; updated values go to newMean / newVariance. */
  mean: Float32Array;
  variance: Float32Array;
  /** num_batches_tracked before this batch. */
  batches: number;
  /** PyTorch's momentum, or null for the cumulative average (1 / num_batches_tracked). */
  momentum: number | null;
  /** Each statistic's parameter (geometry.ts statToParam). */
  statToParam: Int32Array;
  newMean: Float32Array;
  newVariance: Float32Array;
}

/**
 * running = running + (batch - running) * factor per parameter, where batch is
 * the average over the statistics of that parameter (InstanceNorm: over the
 * batch) of the mean and of the unbiased variance var * n / (n - 1);
 * factor = momentum, or 1 / (batches + 1).
 */
export function updateRunning(u: RunningUpdate, mean: Float32Array, variance: Float32Array, n: number): void {
  const P = u.mean.length;
  const sumM = new Float64Array(P);
  const sumV = new Float64Array(P);
  const per = new Float64Array(P);
  const unbias = n / (n - 1);
  for (let s = 0; s < mean.length; s++) {
    const p = u.statToParam[s];
    sumM[p] += mean[s];
    sumV[p] += Math.fround(variance[s] * unbias);
    per[p]++;
  }
  const factor = Math.fround(u.momentum == null ? 1 / (u.batches + 1) : u.momentum);
  for (let p = 0; p < P; p++) {
    const bm = Math.fround(sumM[p] / per[p]);
    const bv = Math.fround(sumV[p] / per[p]);
    u.newMean[p] = u.mean[p] + Math.fround(Math.fround(bm - u.mean[p]) * factor);
    u.newVariance[p] = u.variance[p] + Math.fround(Math.fround(bv - u.variance[p]) * factor);
  }
}
