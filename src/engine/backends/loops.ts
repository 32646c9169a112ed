/**
 * The fused kernels' arithmetic, in plain JavaScript: the fallback where the
 * SIMD module (wasm/norm.ts) cannot run (WebAssembly forbidden or without
 * SIMD, or the `TFJS_NORM_SIMD` flag off), and the same passes in the same
 * order as the module, on the same geometry (geometry.ts):
 *
 *   forward   sum -> mean, squared deviations -> variance, apply      3 passes over x
 *   backward  sums of dy and dy * xhat, then dx                        2 passes over dy and x
 *   inference apply with given statistics                              1 pass
 *
 * Sums accumulate in float64 (JS numbers), elementwise arithmetic is float64
 * on the module's float32 coefficients (mean as hi + lo, 1/std), so both
 * paths agree to float32 rounding.
 */
import {Geometry} from './geometry';

/** What the passes read and write besides the big tensors. */
export interface StatBuffers {
  /** f32[statSize] each: mean hi and lo halves and 1/sqrt(var + eps) (aux rows). */
  hi: Float32Array;
  lo: Float32Array;
  is: Float32Array;
}

/** Calls fn(row, statBase, paramBase) for every row, in order. */
function forRows(g: Geometry, fn: (r: number, sb: number, pb: number) => void): void {
  const [o0, o1, o2] = g.o;
  const [s0, s1, s2] = g.rs;
  const [p0, p1, p2] = g.rp;
  let r = 0;
  for (let i0 = 0; i0 < o0; i0++) {
    for (let i1 = 0; i1 < o1; i1++) {
      for (let i2 = 0; i2 < o2; i2++, r++) fn(r, i0 * s0 + i1 * s1 + i2 * s2, i0 * p0 + i1 * p1 + i2 * p2);
    }
  }
}

/** sums[s] += x over each statistic (mean = null), or += (x - mean[s])^2. */
export function statSums(g: Geometry, x: Float32Array, mean: Float64Array | null, sums: Float64Array): void {
  const {K, colStat} = g;
  if (g.statVaries) {
    const col = new Float64Array(K);
    const colMean = new Float64Array(K);
    let cur = -1;
    const fold = () => {
      for (let k = 0; k < K; k++) {
        sums[cur + colStat[k]] += col[k];
        col[k] = 0;
      }
    };
    forRows(g, (r, sb) => {
      if (sb !== cur) {
        if (cur >= 0) fold();
        cur = sb;
        if (mean) for (let k = 0; k < K; k++) colMean[k] = mean[sb + colStat[k]];
      }
      const off = r * K;
      if (mean) {
        for (let k = 0; k < K; k++) {
          const d = x[off + k] - colMean[k];
          col[k] += d * d;
        }
      } else {
        for (let k = 0; k < K; k++) col[k] += x[off + k];
      }
    });
    if (cur >= 0) fold();
    return;
  }
  forRows(g, (r, sb) => {
    const off = r * K;
    const end = off + K;
    let acc = 0;
    if (mean) {
      const m = mean[sb];
      for (let i = off; i < end; i++) {
        const d = x[i] - m;
        acc += d * d;
      }
    } else {
      for (let i = off; i < end; i++) acc += x[i];
    }
    sums[sb] += acc;
  });
}

/** y = ((x - hi) - lo) * (is * gamma) + beta, float32 coefficients. */
export function applyAffine(g: Geometry, x: Float32Array, y: Float32Array, b: StatBuffers,
                            gamma: Float32Array | null, beta: Float32Array | null): void {
  const {K, colStat, colParam} = g;
  const {hi, lo, is} = b;
  if (g.statVaries || g.paramVaries) {
    const vhi = new Float32Array(K);
    const vlo = new Float32Array(K);
    const va = new Float32Array(K);
    const vb = new Float32Array(K);
    let curS = -1;
    let curP = -1;
    forRows(g, (r, sb, pb) => {
      if (sb !== curS || pb !== curP) {
        curS = sb;
        curP = pb;
        for (let k = 0; k < K; k++) {
          const s = sb + colStat[k];
          const p = pb + colParam[k];
          vhi[k] = hi[s];
          vlo[k] = lo[s];
          va[k] = gamma ? is[s] * gamma[p] : is[s];
          vb[k] = beta ? beta[p] : 0;
        }
      }
      const off = r * K;
      for (let k = 0; k < K; k++) y[off + k] = (x[off + k] - vhi[k] - vlo[k]) * va[k] + vb[k];
    });
    return;
  }
  forRows(g, (r, sb, pb) => {
    const h = hi[sb];
    const l = lo[sb];
    const a = Math.fround(gamma ? is[sb] * gamma[pb] : is[sb]);
    const c = beta ? beta[pb] : 0;
    const off = r * K;
    const end = off + K;
    for (let i = off; i < end; i++) y[i] = (x[i] - h - l) * a + c;
  });
}

/**
 * The backward's sums: sumG[s] += g, sumGX[s] += g * xhat (g = dy * gamma),
 * dgamma[p] += dy * xhat, dbeta[p] += dy.
 */
export function backwardSums(g: Geometry, dy: Float32Array, x: Float32Array, b: StatBuffers,
                             gamma: Float32Array | null, sumG: Float64Array, sumGX: Float64Array,
                             dgamma: Float64Array, dbeta: Float64Array): void {
  const {K, colStat, colParam} = g;
  const {hi, lo, is} = b;
  if (g.statVaries || g.paramVaries) {
    // Per-column sums of dy and dy * xhat, folded when the row's statistic or parameter base changes.
    const colA = new Float64Array(K);
    const colB = new Float64Array(K);
    const vhi = new Float32Array(K);
    const vlo = new Float32Array(K);
    const vis = new Float32Array(K);
    let curS = -1;
    let curP = -1;
    const fold = () => {
      for (let k = 0; k < K; k++) {
        const s = curS + colStat[k];
        const p = curP + colParam[k];
        const gm = gamma ? gamma[p] : 1;
        sumG[s] += gm * colA[k];
        sumGX[s] += gm * colB[k];
        dgamma[p] += colB[k];
        dbeta[p] += colA[k];
        colA[k] = 0;
        colB[k] = 0;
      }
    };
    // Row mode with parameters along the row (LayerNorm): per-row sums of g and g * xhat.
    const rowMode = !g.statVaries;
    const colG = new Float32Array(K);
    forRows(g, (r, sb, pb) => {
      if (sb !== curS || pb !== curP) {
        if (!rowMode && curS >= 0) fold();
        if (rowMode && pb !== curP) {
          if (curP >= 0) foldParams(g, colA, colB, curP, dgamma, dbeta);
          for (let k = 0; k < K; k++) colG[k] = gamma ? gamma[pb + colParam[k]] : 1;
        }
        curS = sb;
        curP = pb;
        for (let k = 0; k < K; k++) {
          const s = sb + colStat[k];
          vhi[k] = hi[s];
          vlo[k] = lo[s];
          vis[k] = is[s];
        }
      }
      const off = r * K;
      if (rowMode) {
        let sg = 0;
        let sgx = 0;
        const h = hi[sb];
        const l = lo[sb];
        const v = is[sb];
        for (let k = 0; k < K; k++) {
          const d = dy[off + k];
          const xhat = (x[off + k] - h - l) * v;
          const gk = d * colG[k];
          sg += gk;
          sgx += gk * xhat;
          colB[k] += d * xhat;
          colA[k] += d;
        }
        sumG[sb] += sg;
        sumGX[sb] += sgx;
        return;
      }
      for (let k = 0; k < K; k++) {
        const d = dy[off + k];
        colA[k] += d;
        colB[k] += d * ((x[off + k] - vhi[k] - vlo[k]) * vis[k]);
      }
    });
    if (rowMode) {
      if (curP >= 0) foldParams(g, colA, colB, curP, dgamma, dbeta);
    } else if (curS >= 0) {
      fold();
    }
    return;
  }
  forRows(g, (r, sb, pb) => {
    const h = hi[sb];
    const l = lo[sb];
    const v = is[sb];
    const off = r * K;
    const end = off + K;
    let sa = 0;
    let sb2 = 0;
    for (let i = off; i < end; i++) {
      const d = dy[i];
      sa += d;
      sb2 += d * ((x[i] - h - l) * v);
    }
    const gm = gamma ? gamma[pb] : 1;
    sumG[sb] += gm * sa;
    sumGX[sb] += gm * sb2;
    dgamma[pb] += sb2;
    dbeta[pb] += sa;
  });
}

function foldParams(g: Geometry, colA: Float64Array, colB: Float64Array, pb: number, dgamma: Float64Array,
                    dbeta: Float64Array): void {
  for (let k = 0; k < g.K; k++) {
    const p = pb + g.colParam[k];
    dgamma[p] += colB[k];
    dbeta[p] += colA[k];
    colA[k] = 0;
    colB[k] = 0;
  }
}

/** dx = is * (dy * gamma - c1 - xhat * c2), xhat = ((x - hi) - lo) * is. */
export function backwardDx(g: Geometry, dy: Float32Array, x: Float32Array, dx: Float32Array, b: StatBuffers,
                           c1: Float32Array, c2: Float32Array, gamma: Float32Array | null): void {
  const {K, colStat, colParam} = g;
  const {hi, lo, is} = b;
  if (g.statVaries || g.paramVaries) {
    const vhi = new Float32Array(K);
    const vlo = new Float32Array(K);
    const vis = new Float32Array(K);
    const vc1 = new Float32Array(K);
    const vc2 = new Float32Array(K);
    const vg = new Float32Array(K);
    let curS = -1;
    let curP = -1;
    forRows(g, (r, sb, pb) => {
      if (sb !== curS || pb !== curP) {
        curS = sb;
        curP = pb;
        for (let k = 0; k < K; k++) {
          const s = sb + colStat[k];
          vhi[k] = hi[s];
          vlo[k] = lo[s];
          vis[k] = is[s];
          vc1[k] = c1[s];
          vc2[k] = c2[s];
          vg[k] = gamma ? gamma[pb + colParam[k]] : 1;
        }
      }
      const off = r * K;
      for (let k = 0; k < K; k++) {
        const v = vis[k];
        const xhat = (x[off + k] - vhi[k] - vlo[k]) * v;
        dx[off + k] = (dy[off + k] * vg[k] - vc1[k] - xhat * vc2[k]) * v;
      }
    });
    return;
  }
  forRows(g, (r, sb, pb) => {
    const h = hi[sb];
    const l = lo[sb];
    const v = is[sb];
    const a = c1[sb];
    const c = c2[sb];
    const gm = gamma ? gamma[pb] : 1;
    const off = r * K;
    const end = off + K;
    for (let i = off; i < end; i++) {
      const xhat = (x[i] - h - l) * v;
      dx[i] = (dy[i] * gm - a - xhat * c) * v;
    }
  });
}
