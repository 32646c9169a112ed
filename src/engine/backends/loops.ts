/**
 * The fused kernels' arithmetic in plain JavaScript: the fallback where the
 * SIMD module (wasm/norm.ts) cannot run (WebAssembly forbidden or without
 * SIMD, or the `TFJS_NORM_SIMD` flag off). The same passes as the module on
 * the same geometry (geometry.ts), each specialised for the three layouts so
 * that no inner loop branches or recomputes an index:
 *
 *   column mode         statistics along the row (BatchNorm/InstanceNorm/GroupNorm channels-last):
 *                       per-column float64 accumulators, folded when the row's statistic base changes
 *   row, param vector   one statistic per row, parameters along it (LayerNorm, RMSNorm)
 *   row, param scalar   one statistic and one parameter per row (channels-first layouts)
 *
 *   forward   sum -> mean, squared deviations -> variance, apply      3 passes over x
 *   backward  sums of dy and dy * xhat, then dx                        2 passes over dy and x
 *   inference apply with given statistics                              1 pass
 *
 * Everything is float64 (JS numbers): sums, and the elementwise arithmetic on
 * float64 per-column coefficients (mean = hi + lo of the aux rows), folded so
 * each element costs a multiply-add (y = x * a + b). In float64 the folding
 * loses nothing a float32 result can show (the module, in float32, keeps the
 * (x - mean) form instead).
 */
import {Geometry} from './geometry';

/** Per-statistic float64 mean and 1/std. */
export interface Stats64 {
  mean: Float64Array;
  invStd: Float64Array;
}

/** Row r's statistic and parameter bases (computed once per geometry, for these loops). */
function rowBases(g: Geometry): {rowStat: Int32Array; rowParam: Int32Array} {
  const cached = g as Geometry & {rowStat?: Int32Array; rowParam?: Int32Array};
  if (!cached.rowStat) {
    const rowStat = new Int32Array(g.rows);
    const rowParam = new Int32Array(g.rows);
    const [o0, o1, o2] = g.o;
    let r = 0;
    for (let i0 = 0; i0 < o0; i0++) {
      for (let i1 = 0; i1 < o1; i1++) {
        for (let i2 = 0; i2 < o2; i2++, r++) {
          rowStat[r] = i0 * g.rs[0] + i1 * g.rs[1] + i2 * g.rs[2];
          rowParam[r] = i0 * g.rp[0] + i1 * g.rp[1] + i2 * g.rp[2];
        }
      }
    }
    cached.rowStat = rowStat;
    cached.rowParam = rowParam;
  }
  return {rowStat: cached.rowStat, rowParam: cached.rowParam!};
}

/** sums[s] += x over each statistic (mean = null), or += (x - mean[s])^2. */
export function statSums(g: Geometry, x: Float32Array, mean: Float64Array | null, sums: Float64Array): void {
  const {K, colStat, rows} = g;
  const {rowStat} = rowBases(g);
  if (g.statVaries) {
    const col = new Float64Array(K);
    const colMean = new Float64Array(K);
    let cur = -1;
    for (let r = 0; r <= rows; r++) {
      const sb = r < rows ? rowStat[r] : -2;
      if (sb !== cur) {
        if (cur >= 0) {
          for (let k = 0; k < K; k++) {
            sums[cur + colStat[k]] += col[k];
            col[k] = 0;
          }
        }
        if (r === rows) break;
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
    }
    return;
  }
  for (let r = 0; r < rows; r++) {
    const sb = rowStat[r];
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
  }
}

/** y = (x - mean) * invStd * gamma + beta. */
export function applyAffine(g: Geometry, x: Float32Array, y: Float32Array, st: Stats64,
                            gamma: Float32Array | null, beta: Float32Array | null): void {
  const {K, colStat, colParam, rows} = g;
  const {rowStat, rowParam} = rowBases(g);
  const {mean, invStd} = st;
  if (g.statVaries) {
    // y = x * a[k] + b[k], the coefficients refreshed when the row's bases change.
    const a = new Float64Array(K);
    const b = new Float64Array(K);
    let curS = -1;
    let curP = -1;
    for (let r = 0; r < rows; r++) {
      const sb = rowStat[r];
      const pb = rowParam[r];
      if (sb !== curS || pb !== curP) {
        curS = sb;
        curP = pb;
        for (let k = 0; k < K; k++) {
          const s = sb + colStat[k];
          const p = pb + colParam[k];
          const ak = gamma ? invStd[s] * gamma[p] : invStd[s];
          a[k] = ak;
          b[k] = (beta ? beta[p] : 0) - mean[s] * ak;
        }
      }
      const off = r * K;
      for (let k = 0; k < K; k++) y[off + k] = x[off + k] * a[k] + b[k];
    }
    return;
  }
  if (g.paramVaries) {
    // y = (x - m) * is * gamma[k] + beta[k]; gamma/beta columns refreshed when the parameter base changes.
    const gv = new Float64Array(K);
    const bv = new Float64Array(K);
    let curP = -1;
    for (let r = 0; r < rows; r++) {
      const pb = rowParam[r];
      if (pb !== curP) {
        curP = pb;
        for (let k = 0; k < K; k++) {
          gv[k] = gamma ? gamma[pb + colParam[k]] : 1;
          bv[k] = beta ? beta[pb + colParam[k]] : 0;
        }
      }
      const sb = rowStat[r];
      const m = mean[sb];
      const is = invStd[sb];
      const off = r * K;
      for (let k = 0; k < K; k++) y[off + k] = (x[off + k] - m) * is * gv[k] + bv[k];
    }
    return;
  }
  for (let r = 0; r < rows; r++) {
    const sb = rowStat[r];
    const pb = rowParam[r];
    const a = gamma ? invStd[sb] * gamma[pb] : invStd[sb];
    const b = (beta ? beta[pb] : 0) - mean[sb] * a;
    const off = r * K;
    const end = off + K;
    for (let i = off; i < end; i++) y[i] = x[i] * a + b;
  }
}

/**
 * The backward's sums: sumG[s] += g, sumGX[s] += g * xhat (g = dy * gamma),
 * dgamma[p] += dy * xhat, dbeta[p] += dy.
 */
export function backwardSums(g: Geometry, dy: Float32Array, x: Float32Array, st: Stats64, gamma: Float32Array | null,
                             sumG: Float64Array, sumGX: Float64Array, dgamma: Float64Array, dbeta: Float64Array): void {
  const {K, colStat, colParam, rows} = g;
  const {rowStat, rowParam} = rowBases(g);
  const {mean, invStd} = st;
  if (g.statVaries) {
    // Per column: sum of dy and of dy * (x - mean); folded (times 1/std, gamma) when a base changes.
    const colA = new Float64Array(K);
    const colB = new Float64Array(K);
    const m = new Float64Array(K);
    let curS = -1;
    let curP = -1;
    for (let r = 0; r <= rows; r++) {
      const sb = r < rows ? rowStat[r] : -2;
      const pb = r < rows ? rowParam[r] : -2;
      if (sb !== curS || pb !== curP) {
        if (curS >= 0) {
          for (let k = 0; k < K; k++) {
            const s = curS + colStat[k];
            const p = curP + colParam[k];
            const a = colA[k];
            const b = colB[k] * invStd[s];
            const gm = gamma ? gamma[p] : 1;
            sumG[s] += gm * a;
            sumGX[s] += gm * b;
            dgamma[p] += b;
            dbeta[p] += a;
            colA[k] = 0;
            colB[k] = 0;
          }
        }
        if (r === rows) break;
        curS = sb;
        curP = pb;
        for (let k = 0; k < K; k++) m[k] = mean[sb + colStat[k]];
      }
      const off = r * K;
      for (let k = 0; k < K; k++) {
        const d = dy[off + k];
        colA[k] += d;
        colB[k] += d * (x[off + k] - m[k]);
      }
    }
    return;
  }
  if (g.paramVaries) {
    // Row sums of g and g * xhat; per-column dgamma/dbeta, flushed when the parameter base changes.
    const gv = new Float64Array(K);
    const colDG = new Float64Array(K);
    const colDB = new Float64Array(K);
    let curP = -1;
    for (let r = 0; r <= rows; r++) {
      const pb = r < rows ? rowParam[r] : -2;
      if (pb !== curP) {
        if (curP >= 0) {
          for (let k = 0; k < K; k++) {
            dgamma[curP + colParam[k]] += colDG[k];
            dbeta[curP + colParam[k]] += colDB[k];
            colDG[k] = 0;
            colDB[k] = 0;
          }
        }
        if (r === rows) break;
        curP = pb;
        for (let k = 0; k < K; k++) gv[k] = gamma ? gamma[pb + colParam[k]] : 1;
      }
      const sb = rowStat[r];
      const mu = mean[sb];
      const is = invStd[sb];
      const off = r * K;
      let sg = 0;
      let sgx = 0;
      for (let k = 0; k < K; k++) {
        const d = dy[off + k];
        const xhat = (x[off + k] - mu) * is;
        const gk = d * gv[k];
        sg += gk;
        sgx += gk * xhat;
        colDG[k] += d * xhat;
        colDB[k] += d;
      }
      sumG[sb] += sg;
      sumGX[sb] += sgx;
    }
    return;
  }
  for (let r = 0; r < rows; r++) {
    const sb = rowStat[r];
    const pb = rowParam[r];
    const mu = mean[sb];
    const off = r * K;
    const end = off + K;
    let sa = 0;
    let sx = 0;
    for (let i = off; i < end; i++) {
      const d = dy[i];
      sa += d;
      sx += d * (x[i] - mu);
    }
    sx *= invStd[sb];
    const gm = gamma ? gamma[pb] : 1;
    sumG[sb] += gm * sa;
    sumGX[sb] += gm * sx;
    dgamma[pb] += sx;
    dbeta[pb] += sa;
  }
}

/**
 * dx = is * (dy * gamma - c1 - xhat * c2), xhat = (x - mean) * is, with
 * c1 = mean(g), c2 = mean(g * xhat) per statistic: dx = dy * p + x * q + c.
 */
export function backwardDx(g: Geometry, dy: Float32Array, x: Float32Array, dx: Float32Array, st: Stats64,
                           c1: Float64Array, c2: Float64Array, gamma: Float32Array | null): void {
  const {K, colStat, colParam, rows} = g;
  const {rowStat, rowParam} = rowBases(g);
  const {mean, invStd} = st;
  if (g.statVaries) {
    const p = new Float64Array(K);
    const q = new Float64Array(K);
    const c = new Float64Array(K);
    let curS = -1;
    let curP = -1;
    for (let r = 0; r < rows; r++) {
      const sb = rowStat[r];
      const pb = rowParam[r];
      if (sb !== curS || pb !== curP) {
        curS = sb;
        curP = pb;
        for (let k = 0; k < K; k++) {
          const s = sb + colStat[k];
          const is = invStd[s];
          const qk = -is * is * c2[s];
          p[k] = is * (gamma ? gamma[pb + colParam[k]] : 1);
          q[k] = qk;
          c[k] = -is * c1[s] - mean[s] * qk;
        }
      }
      const off = r * K;
      for (let k = 0; k < K; k++) dx[off + k] = dy[off + k] * p[k] + x[off + k] * q[k] + c[k];
    }
    return;
  }
  if (g.paramVaries) {
    const gv = new Float64Array(K);
    let curP = -1;
    for (let r = 0; r < rows; r++) {
      const pb = rowParam[r];
      if (pb !== curP) {
        curP = pb;
        for (let k = 0; k < K; k++) gv[k] = gamma ? gamma[pb + colParam[k]] : 1;
      }
      const sb = rowStat[r];
      const is = invStd[sb];
      const q = -is * is * c2[sb];
      const c = -is * c1[sb] - mean[sb] * q;
      const off = r * K;
      for (let k = 0; k < K; k++) dx[off + k] = dy[off + k] * gv[k] * is + x[off + k] * q + c;
    }
    return;
  }
  for (let r = 0; r < rows; r++) {
    const sb = rowStat[r];
    const is = invStd[sb];
    const pk = is * (gamma ? gamma[rowParam[r]] : 1);
    const q = -is * is * c2[sb];
    const c = -is * c1[sb] - mean[sb] * q;
    const off = r * K;
    const end = off + K;
    for (let i = off; i < end; i++) dx[i] = dy[i] * pk + x[i] * q + c;
  }
}

/**
 * out = x + r (float32, as tf.add), and where each row is one statistic (row
 * mode) the row sums of out (or of its squares) added to sums[s] in the same
 * pass; returns whether it accumulated (column mode only writes the sum).
 */
export function addRows(g: Geometry, x: Float32Array, r: Float32Array, out: Float32Array, sums: Float64Array,
                        square: boolean): boolean {
  if (g.statVaries) {
    for (let i = 0; i < g.size; i++) out[i] = x[i] + r[i];
    return false;
  }
  const {K, rows} = g;
  const {rowStat} = rowBases(g);
  for (let row = 0; row < rows; row++) {
    const off = row * K;
    const end = off + K;
    let acc = 0;
    if (square) {
      for (let i = off; i < end; i++) {
        const v = Math.fround(x[i] + r[i]);
        out[i] = v;
        acc += v * v;
      }
    } else {
      for (let i = off; i < end; i++) {
        const v = Math.fround(x[i] + r[i]);
        out[i] = v;
        acc += v;
      }
    }
    sums[rowStat[row]] += acc;
  }
  return true;
}
