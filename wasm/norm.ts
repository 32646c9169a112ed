/**
 * tfjs-norm's SIMD WebAssembly kernels (AssemblyScript; `npm run build:wasm`
 * compiles this file into src/engine/backends/simd/norm_wasm.ts).
 *
 * The module has no memory of its own, no data segments and no allocator: it
 * imports `env.memory` (and `env.pow`, JavaScript's Math.pow) and works on byte offsets the JavaScript driver
 * (src/engine/backends/simd/runner.ts) passes in. So one binary runs on the
 * tfjs-backend-wasm heap itself (the driver instantiates it with that
 * module's WebAssembly.Memory: no copies) or on a memory of its own (the cpu
 * backend copies chunks of rows in and out).
 *
 * Geometry (src/engine/backends/geometry.ts): the canonical view is a list of
 * rows of K contiguous elements. Row r's statistics start at statBase(r) and
 * its parameters at paramBase(r) (outer sizes O1, O2 and strides RS*, RP*);
 * column k adds COL_STAT[k] and COL_PARAM[k]. "Column mode" (STAT_VARIES):
 * the statistic changes along a row (BatchNorm channels-last), so sums go to
 * per-column float64 accumulators that are folded into the statistics when
 * the row's statistic base changes; "row mode": one statistic per row
 * (LayerNorm, channels-first), summed in registers.
 *
 * Accumulation: every sum is float64 (f32x4 lanes promoted to two f64x2);
 * elementwise results are float32 from float32 coefficients, the mean split
 * into hi + lo float32 halves. Statistics are the two-pass mean, then sum of
 * squared deviations from the float64 mean (no E[x^2] - E[x]^2).
 */

// ------------------------------------------------------------ geometry and buffers (set by the driver)

let K: i32 = 0;
let O1: i32 = 1;
let O2: i32 = 1;
let RS0: i32 = 0;
let RS1: i32 = 0;
let RS2: i32 = 0;
let RP0: i32 = 0;
let RP1: i32 = 0;
let RP2: i32 = 0;
let COL_STAT: usize = 0;
let COL_PARAM: usize = 0;
let STAT_VARIES: bool = false;
let PARAM_VARIES: bool = false;

/** f32[paramSize] or 0 (absent). */
let GAMMA: usize = 0;
let BETA: usize = 0;
/** f64[statSize]: forward sum / sum of squares; backward sum(g) / sum(g * xhat). */
let S64A: usize = 0;
let S64B: usize = 0;
/** f64[statSize]: the mean the squared deviations are taken from. */
let MEAN64: usize = 0;
/** f64[paramSize]: dgamma, dbeta. */
let P64A: usize = 0;
let P64B: usize = 0;
/** f32[statSize]: mean hi, mean lo, 1/sqrt(var + eps), mean(g), mean(g * xhat). */
let HI: usize = 0;
let LO: usize = 0;
let IS: usize = 0;
let C1: usize = 0;
let C2: usize = 0;
/** f64[K] column accumulators and per-column float64 means. */
let COLA: usize = 0;
let COLB: usize = 0;
let COLC: usize = 0;
let COLD: usize = 0;
let COLM: usize = 0;
/** f32[K] per-column coefficient vectors. */
let V0: usize = 0;
let V1: usize = 0;
let V2: usize = 0;
let V3: usize = 0;
let V4: usize = 0;
let V5: usize = 0;

/** The statistic and parameter bases the column accumulators / vectors hold (-1: none). */
let CUR_S: i32 = -1;
let CUR_P: i32 = -1;

export function setGeometry(k: i32, o1: i32, o2: i32, rs0: i32, rs1: i32, rs2: i32, rp0: i32, rp1: i32, rp2: i32,
                            colStat: usize, colParam: usize, statVaries: bool, paramVaries: bool): void {
  K = k; O1 = o1; O2 = o2;
  RS0 = rs0; RS1 = rs1; RS2 = rs2;
  RP0 = rp0; RP1 = rp1; RP2 = rp2;
  COL_STAT = colStat; COL_PARAM = colParam;
  STAT_VARIES = statVaries; PARAM_VARIES = paramVaries;
  CUR_S = -1; CUR_P = -1;
}

/** Forgets the bases the column accumulators and vectors belong to: call before each pass. */
export function resetState(): void {
  CUR_S = -1; CUR_P = -1;
}

export function setParams(gamma: usize, beta: usize): void {
  GAMMA = gamma; BETA = beta;
}

export function setStats(s64a: usize, s64b: usize, mean64: usize, p64a: usize, p64b: usize,
                         hi: usize, lo: usize, is: usize, c1: usize, c2: usize): void {
  S64A = s64a; S64B = s64b; MEAN64 = mean64; P64A = p64a; P64B = p64b;
  HI = hi; LO = lo; IS = is; C1 = c1; C2 = c2;
}

export function setColumns(cola: usize, colb: usize, colc: usize, cold: usize, colm: usize,
                           v0: usize, v1: usize, v2: usize, v3: usize, v4: usize, v5: usize): void {
  COLA = cola; COLB = colb; COLC = colc; COLD = cold; COLM = colm;
  V0 = v0; V1 = v1; V2 = v2; V3 = v3; V4 = v4; V5 = v5;
  CUR_S = -1; CUR_P = -1;
}

// ------------------------------------------------------------ helpers

@inline function statBase(r: i32): i32 {
  const o12 = O1 * O2;
  const i0 = r / o12;
  const rem = r - i0 * o12;
  const i1 = rem / O2;
  return i0 * RS0 + i1 * RS1 + (rem - i1 * O2) * RS2;
}

@inline function paramBase(r: i32): i32 {
  const o12 = O1 * O2;
  const i0 = r / o12;
  const rem = r - i0 * o12;
  const i1 = rem / O2;
  return i0 * RP0 + i1 * RP1 + (rem - i1 * O2) * RP2;
}

@inline function f32At(base: usize, i: i32): f32 {
  return load<f32>(base + (<usize>i << 2));
}

@inline function f64At(base: usize, i: i32): f64 {
  return load<f64>(base + (<usize>i << 3));
}

@inline function addF64(base: usize, i: i32, v: f64): void {
  const p = base + (<usize>i << 3);
  store<f64>(p, load<f64>(p) + v);
}

@inline function colStat(k: i32): i32 {
  return load<i32>(COL_STAT + (<usize>k << 2));
}

@inline function colParam(k: i32): i32 {
  return load<i32>(COL_PARAM + (<usize>k << 2));
}

@inline function gammaAt(p: i32): f32 {
  return GAMMA ? f32At(GAMMA, p) : <f32>1;
}

@inline function betaAt(p: i32): f32 {
  return BETA ? f32At(BETA, p) : <f32>0;
}

/** The high two f32 lanes moved low, for promotion. */
@inline function highHalf(v: v128): v128 {
  return v128.shuffle<f32>(v, v, 2, 3, 0, 1);
}

/** acc[k .. k+3] += v (f32x4 promoted to float64). */
@inline function accumulate4(acc: usize, k: i32, v: v128): void {
  const p = acc + (<usize>k << 3);
  v128.store(p, f64x2.add(v128.load(p), f64x2.promote_low_f32x4(v)));
  v128.store(p, f64x2.add(v128.load(p, 16), f64x2.promote_low_f32x4(highHalf(v))), 16);
}

@inline function hsum(a: v128): f64 {
  return f64x2.extract_lane(a, 0) + f64x2.extract_lane(a, 1);
}

/** Adds the column accumulator `col` into dst[CUR_S + COL_STAT[k]] and clears it. */
function foldStatColumns(col: usize, dst: usize): void {
  for (let k = 0; k < K; k++) {
    const p = col + (<usize>k << 3);
    addF64(dst, CUR_S + colStat(k), load<f64>(p));
    store<f64>(p, 0);
  }
}

// ------------------------------------------------------------ forward statistics

/** S64A[s] += x over rows [r0, r1) (x points at row r0); `last` folds the column accumulators. */
export function fwdSum(xp: usize, r0: i32, r1: i32, last: bool): void {
  const k4 = K & ~3;
  if (STAT_VARIES) {
    for (let r = r0; r < r1; r++) {
      const sb = statBase(r);
      if (sb != CUR_S) {
        if (CUR_S >= 0) foldStatColumns(COLA, S64A);
        CUR_S = sb;
      }
      const row = xp + (<usize>((r - r0) * K) << 2);
      let k = 0;
      for (; k < k4; k += 4) accumulate4(COLA, k, v128.load(row + (<usize>k << 2)));
      for (; k < K; k++) addF64(COLA, k, <f64>f32At(row, k));
    }
    if (last && CUR_S >= 0) {
      foldStatColumns(COLA, S64A);
      CUR_S = -1;
    }
    return;
  }
  for (let r = r0; r < r1; r++) {
    const row = xp + (<usize>((r - r0) * K) << 2);
    let a = f64x2.splat(0);
    let b = f64x2.splat(0);
    let k = 0;
    for (; k < k4; k += 4) {
      const v = v128.load(row + (<usize>k << 2));
      a = f64x2.add(a, f64x2.promote_low_f32x4(v));
      b = f64x2.add(b, f64x2.promote_low_f32x4(highHalf(v)));
    }
    let s = hsum(f64x2.add(a, b));
    for (; k < K; k++) s += <f64>f32At(row, k);
    addF64(S64A, statBase(r), s);
  }
}

/** S64B[s] += (x - MEAN64[s])^2 over rows [r0, r1). */
export function fwdSquares(xp: usize, r0: i32, r1: i32, last: bool): void {
  const k4 = K & ~3;
  if (STAT_VARIES) {
    for (let r = r0; r < r1; r++) {
      const sb = statBase(r);
      if (sb != CUR_S) {
        if (CUR_S >= 0) foldStatColumns(COLA, S64B);
        CUR_S = sb;
        for (let k = 0; k < K; k++) store<f64>(COLM + (<usize>k << 3), f64At(MEAN64, sb + colStat(k)));
      }
      const row = xp + (<usize>((r - r0) * K) << 2);
      let k = 0;
      for (; k < k4; k += 4) {
        const v = v128.load(row + (<usize>k << 2));
        const m = COLM + (<usize>k << 3);
        const d0 = f64x2.sub(f64x2.promote_low_f32x4(v), v128.load(m));
        const d1 = f64x2.sub(f64x2.promote_low_f32x4(highHalf(v)), v128.load(m, 16));
        const p = COLA + (<usize>k << 3);
        v128.store(p, f64x2.add(v128.load(p), f64x2.mul(d0, d0)));
        v128.store(p, f64x2.add(v128.load(p, 16), f64x2.mul(d1, d1)), 16);
      }
      for (; k < K; k++) {
        const d = <f64>f32At(row, k) - f64At(COLM, k);
        addF64(COLA, k, d * d);
      }
    }
    if (last && CUR_S >= 0) {
      foldStatColumns(COLA, S64B);
      CUR_S = -1;
    }
    return;
  }
  for (let r = r0; r < r1; r++) {
    const row = xp + (<usize>((r - r0) * K) << 2);
    const sb = statBase(r);
    const mean = f64At(MEAN64, sb);
    const m = f64x2.splat(mean);
    let a = f64x2.splat(0);
    let b = f64x2.splat(0);
    let k = 0;
    for (; k < k4; k += 4) {
      const v = v128.load(row + (<usize>k << 2));
      const d0 = f64x2.sub(f64x2.promote_low_f32x4(v), m);
      const d1 = f64x2.sub(f64x2.promote_low_f32x4(highHalf(v)), m);
      a = f64x2.add(a, f64x2.mul(d0, d0));
      b = f64x2.add(b, f64x2.mul(d1, d1));
    }
    let s = hsum(f64x2.add(a, b));
    for (; k < K; k++) {
      const d = <f64>f32At(row, k) - mean;
      s += d * d;
    }
    addF64(S64B, sb, s);
  }
}

// ------------------------------------------------------------ y = ((x - hi) - lo) * is * gamma + beta

/** Per-column stat coefficients of statistic base sb: V0 = hi, V1 = lo, V2 = is. */
function loadStatColumns(sb: i32): void {
  for (let k = 0; k < K; k++) {
    const s = sb + colStat(k);
    const o = <usize>k << 2;
    store<f32>(V0 + o, f32At(HI, s));
    store<f32>(V1 + o, f32At(LO, s));
    store<f32>(V2 + o, f32At(IS, s));
  }
}

/** Rows [r0, r1) of x into y (both point at row r0). */
// @ts-ignore: decorator
@inline function applyRows(xp: usize, dyp: usize, yp: usize, r0: i32, r1: i32, kind: i32, grad: bool,
                           fyp: usize = 0, withY: bool = false): void {
  const k4 = K & ~3;
  for (let r = r0; r < r1; r++) {
    const off = <usize>((r - r0) * K) << 2;
    const x = xp + off;
    const y = yp + off;
    const dy = dyp + off;
    const fy = fyp + off;
    const sb = statBase(r);
    const pb = paramBase(r);
    if (STAT_VARIES) {
      if (sb != CUR_S || pb != CUR_P) {
        CUR_S = sb;
        CUR_P = pb;
        // V3 = is * gamma (rounded once), V4 = beta.
        for (let k = 0; k < K; k++) {
          const s = sb + colStat(k);
          const p = pb + colParam(k);
          const o = <usize>k << 2;
          store<f32>(V0 + o, f32At(HI, s));
          store<f32>(V1 + o, f32At(LO, s));
          store<f32>(V3 + o, <f32>(<f64>f32At(IS, s) * <f64>gammaAt(p)));
          store<f32>(V4 + o, betaAt(p));
        }
      }
      let k = 0;
      for (; k < k4; k += 4) {
        const o = <usize>k << 2;
        const d = f32x4.sub(f32x4.sub(v128.load(x + o), v128.load(V0 + o)), v128.load(V1 + o));
        v128.store(y + o, epiV(f32x4.add(f32x4.mul(d, v128.load(V3 + o)), v128.load(V4 + o)), dy + o, fy + o, kind, grad, withY));
      }
      for (; k < K; k++) {
        const o = <usize>k << 2;
        store<f32>(y + o, epiS((load<f32>(x + o) - load<f32>(V0 + o) - load<f32>(V1 + o)) * load<f32>(V3 + o) +
                          load<f32>(V4 + o), dy + o, fy + o, kind, grad, withY));
      }
    } else if (PARAM_VARIES) {
      if (pb != CUR_P) {
        CUR_P = pb;
        for (let k = 0; k < K; k++) {
          const p = pb + colParam(k);
          store<f32>(V3 + (<usize>k << 2), gammaAt(p));
          store<f32>(V4 + (<usize>k << 2), betaAt(p));
        }
      }
      const hi = f32At(HI, sb);
      const lo = f32At(LO, sb);
      const is = f32At(IS, sb);
      const vhi = f32x4.splat(hi);
      const vlo = f32x4.splat(lo);
      const vis = f32x4.splat(is);
      let k = 0;
      for (; k < k4; k += 4) {
        const o = <usize>k << 2;
        const d = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(x + o), vhi), vlo), vis);
        v128.store(y + o, epiV(f32x4.add(f32x4.mul(d, v128.load(V3 + o)), v128.load(V4 + o)), dy + o, fy + o, kind, grad, withY));
      }
      for (; k < K; k++) {
        const o = <usize>k << 2;
        store<f32>(y + o, epiS((load<f32>(x + o) - hi - lo) * is * load<f32>(V3 + o) + load<f32>(V4 + o), dy + o, fy + o, kind, grad, withY));
      }
    } else {
      const hi = f32At(HI, sb);
      const lo = f32At(LO, sb);
      const a = <f32>(<f64>f32At(IS, sb) * <f64>gammaAt(pb));
      const b = betaAt(pb);
      const vhi = f32x4.splat(hi);
      const vlo = f32x4.splat(lo);
      const va = f32x4.splat(a);
      const vb = f32x4.splat(b);
      let k = 0;
      for (; k < k4; k += 4) {
        const o = <usize>k << 2;
        const d = f32x4.sub(f32x4.sub(v128.load(x + o), vhi), vlo);
        v128.store(y + o, epiV(f32x4.add(f32x4.mul(d, va), vb), dy + o, fy + o, kind, grad, withY));
      }
      for (; k < K; k++) {
        const o = <usize>k << 2;
        store<f32>(y + o, epiS((load<f32>(x + o) - hi - lo) * a + b, dy + o, fy + o, kind, grad, withY));
      }
    }
  }
}

/**
 * The epilogue of an apply pass (issue #17): z as is (kind 0), act(z), or with
 * `grad` dy * act'(z) (dz of the backward, z recomputed). kind and grad are
 * constants in each specialised copy of applyRows, so these branches fold away.
 */
// @ts-ignore: decorator
@inline function epiV(z: v128, dyo: usize, fyo: usize, kind: i32, grad: bool, withY: bool): v128 {
  if (kind == 0) return z;
  if (grad && withY) return f32x4.mul(v128.load(dyo), actGradFromY(z, v128.load(fyo), kind));
  if (grad) return f32x4.mul(v128.load(dyo), actGradV(z, kind));
  return actV(z, kind);
}

// @ts-ignore: decorator
@inline function epiS(z: f32, dyo: usize, fyo: usize, kind: i32, grad: bool, withY: bool): f32 {
  if (kind == 0) return z;
  if (grad && withY) {
    return load<f32>(dyo) * f32x4.extract_lane(actGradFromY(f32x4.splat(z), f32x4.splat(load<f32>(fyo)), kind), 0);
  }
  if (grad) return load<f32>(dyo) * f32x4.extract_lane(actGradV(f32x4.splat(z), kind), 0);
  return f32x4.extract_lane(actV(f32x4.splat(z), kind), 0);
}

/** y = xhat * gamma + beta over rows [r0, r1). */
export function apply(xp: usize, yp: usize, r0: i32, r1: i32): void {
  applyRows(xp, 0, yp, r0, r1, 0, false);
}

/** y = act(xhat * gamma + beta): the forward with its activation in the same pass. */
export function applyAct(xp: usize, yp: usize, r0: i32, r1: i32, kind: i32): void {
  if (kind == 1) applyRows(xp, 0, yp, r0, r1, 1, false);
  else if (kind == 2) applyRows(xp, 0, yp, r0, r1, 2, false);
  else applyRows(xp, 0, yp, r0, r1, 3, false);
}

/** out = dy * act'(xhat * gamma + beta): dz for the backward, in one pass (out may be dy). */
export function applyActGrad(xp: usize, dyp: usize, outp: usize, r0: i32, r1: i32, kind: i32): void {
  if (kind == 1) applyRows(xp, dyp, outp, r0, r1, 1, true);
  else if (kind == 2) applyRows(xp, dyp, outp, r0, r1, 2, true);
  else applyRows(xp, dyp, outp, r0, r1, 3, true);
}

/**
 * applyActGrad given also the forward's output y = act(z) (silu, gelu): act'(z)
 * then costs a division instead of an exp and a division (silu) or an erfc
 * (gelu); see actGradFromY.
 */
export function applyActGradY(xp: usize, dyp: usize, fyp: usize, outp: usize, r0: i32, r1: i32, kind: i32): void {
  if (kind == 2) applyRows(xp, dyp, outp, r0, r1, 2, true, fyp, true);
  else if (kind == 3) applyRows(xp, dyp, outp, r0, r1, 3, true, fyp, true);
  else applyRows(xp, dyp, outp, r0, r1, 1, true);
}

// ------------------------------------------------------------ backward

/** Column mode: adds the column sums of dy (COLA) and dy * xhat (COLB) into the stat and param sums. */
function foldBackwardColumns(): void {
  for (let k = 0; k < K; k++) {
    const s = CUR_S + colStat(k);
    const p = CUR_P + colParam(k);
    const o = <usize>k << 3;
    const a = load<f64>(COLA + o);
    const b = load<f64>(COLB + o);
    const g = <f64>gammaAt(p);
    addF64(S64A, s, g * a);
    addF64(S64B, s, g * b);
    addF64(P64A, p, b);
    addF64(P64B, p, a);
    store<f64>(COLA + o, 0);
    store<f64>(COLB + o, 0);
  }
}

/** Row mode with parameters along the row: adds COLC (dy * xhat) and COLD (dy) into dgamma/dbeta. */
function foldParamColumns(): void {
  for (let k = 0; k < K; k++) {
    const p = CUR_P + colParam(k);
    const o = <usize>k << 3;
    addF64(P64A, p, load<f64>(COLC + o));
    addF64(P64B, p, load<f64>(COLD + o));
    store<f64>(COLC + o, 0);
    store<f64>(COLD + o, 0);
  }
}

/**
 * Sums of the backward over rows [r0, r1): S64A[s] += g, S64B[s] += g * xhat
 * (g = dy * gamma), P64A[p] += dy * xhat, P64B[p] += dy.
 */
export function bwdSums(dyp: usize, xp: usize, r0: i32, r1: i32, last: bool): void {
  const k4 = K & ~3;
  for (let r = r0; r < r1; r++) {
    const off = <usize>((r - r0) * K) << 2;
    const dy = dyp + off;
    const x = xp + off;
    const sb = statBase(r);
    const pb = paramBase(r);
    if (STAT_VARIES) {
      if (sb != CUR_S || pb != CUR_P) {
        if (CUR_S >= 0) foldBackwardColumns();
        if (sb != CUR_S) loadStatColumns(sb);
        CUR_S = sb;
        CUR_P = pb;
      }
      let k = 0;
      for (; k < k4; k += 4) {
        const o = <usize>k << 2;
        const d = v128.load(dy + o);
        const xhat = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(x + o), v128.load(V0 + o)), v128.load(V1 + o)),
                               v128.load(V2 + o));
        accumulate4(COLA, k, d);
        accumulate4(COLB, k, f32x4.mul(d, xhat));
      }
      for (; k < K; k++) {
        const o = <usize>k << 2;
        const d = load<f32>(dy + o);
        const xhat = (load<f32>(x + o) - load<f32>(V0 + o) - load<f32>(V1 + o)) * load<f32>(V2 + o);
        addF64(COLA, k, <f64>d);
        addF64(COLB, k, <f64>(d * xhat));
      }
      continue;
    }
    const hi = f32At(HI, sb);
    const lo = f32At(LO, sb);
    const is = f32At(IS, sb);
    const vhi = f32x4.splat(hi);
    const vlo = f32x4.splat(lo);
    const vis = f32x4.splat(is);
    if (PARAM_VARIES) {
      if (pb != CUR_P) {
        if (CUR_P >= 0) foldParamColumns();
        CUR_P = pb;
        for (let k = 0; k < K; k++) store<f32>(V5 + (<usize>k << 2), gammaAt(pb + colParam(k)));
      }
      let a0 = f64x2.splat(0);
      let b0 = f64x2.splat(0);
      let k = 0;
      for (; k < k4; k += 4) {
        const o = <usize>k << 2;
        const d = v128.load(dy + o);
        const xhat = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(x + o), vhi), vlo), vis);
        const g = f32x4.mul(d, v128.load(V5 + o));
        const gx = f32x4.mul(g, xhat);
        a0 = f64x2.add(a0, f64x2.add(f64x2.promote_low_f32x4(g), f64x2.promote_low_f32x4(highHalf(g))));
        b0 = f64x2.add(b0, f64x2.add(f64x2.promote_low_f32x4(gx), f64x2.promote_low_f32x4(highHalf(gx))));
        accumulate4(COLC, k, f32x4.mul(d, xhat));
        accumulate4(COLD, k, d);
      }
      let sa = hsum(a0);
      let sbx = hsum(b0);
      for (; k < K; k++) {
        const o = <usize>k << 2;
        const d = load<f32>(dy + o);
        const xhat = (load<f32>(x + o) - hi - lo) * is;
        const g = d * load<f32>(V5 + o);
        sa += <f64>g;
        sbx += <f64>(g * xhat);
        addF64(COLC, k, <f64>(d * xhat));
        addF64(COLD, k, <f64>d);
      }
      addF64(S64A, sb, sa);
      addF64(S64B, sb, sbx);
      continue;
    }
    let a0 = f64x2.splat(0);
    let b0 = f64x2.splat(0);
    let k = 0;
    for (; k < k4; k += 4) {
      const o = <usize>k << 2;
      const d = v128.load(dy + o);
      const dx = f32x4.mul(d, f32x4.mul(f32x4.sub(f32x4.sub(v128.load(x + o), vhi), vlo), vis));
      a0 = f64x2.add(a0, f64x2.add(f64x2.promote_low_f32x4(d), f64x2.promote_low_f32x4(highHalf(d))));
      b0 = f64x2.add(b0, f64x2.add(f64x2.promote_low_f32x4(dx), f64x2.promote_low_f32x4(highHalf(dx))));
    }
    let sa = hsum(a0);
    let sbx = hsum(b0);
    for (; k < K; k++) {
      const o = <usize>k << 2;
      const d = load<f32>(dy + o);
      sa += <f64>d;
      sbx += <f64>(d * ((load<f32>(x + o) - hi - lo) * is));
    }
    const g = <f64>gammaAt(pb);
    addF64(S64A, sb, g * sa);
    addF64(S64B, sb, g * sbx);
    addF64(P64A, pb, sbx);
    addF64(P64B, pb, sa);
  }
  if (last) {
    if (STAT_VARIES && CUR_S >= 0) foldBackwardColumns();
    else if (!STAT_VARIES && PARAM_VARIES && CUR_P >= 0) foldParamColumns();
    CUR_S = -1;
    CUR_P = -1;
  }
}

/** dx = is * (dy * gamma - c1 - xhat * c2), xhat = ((x - hi) - lo) * is, over rows [r0, r1). */
export function bwdDx(dyp: usize, xp: usize, dxp: usize, r0: i32, r1: i32): void {
  const k4 = K & ~3;
  for (let r = r0; r < r1; r++) {
    const off = <usize>((r - r0) * K) << 2;
    const dy = dyp + off;
    const x = xp + off;
    const dx = dxp + off;
    const sb = statBase(r);
    const pb = paramBase(r);
    if (STAT_VARIES) {
      if (sb != CUR_S || pb != CUR_P) {
        CUR_S = sb;
        CUR_P = pb;
        for (let k = 0; k < K; k++) {
          const s = sb + colStat(k);
          const o = <usize>k << 2;
          store<f32>(V0 + o, f32At(HI, s));
          store<f32>(V1 + o, f32At(LO, s));
          store<f32>(V2 + o, f32At(IS, s));
          store<f32>(V3 + o, f32At(C1, s));
          store<f32>(V4 + o, f32At(C2, s));
          store<f32>(V5 + o, gammaAt(pb + colParam(k)));
        }
      }
      let k = 0;
      for (; k < k4; k += 4) {
        const o = <usize>k << 2;
        const is = v128.load(V2 + o);
        const xhat = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(x + o), v128.load(V0 + o)), v128.load(V1 + o)), is);
        const t = f32x4.sub(f32x4.sub(f32x4.mul(v128.load(dy + o), v128.load(V5 + o)), v128.load(V3 + o)),
                            f32x4.mul(xhat, v128.load(V4 + o)));
        v128.store(dx + o, f32x4.mul(t, is));
      }
      for (; k < K; k++) {
        const o = <usize>k << 2;
        const is = load<f32>(V2 + o);
        const xhat = (load<f32>(x + o) - load<f32>(V0 + o) - load<f32>(V1 + o)) * is;
        store<f32>(dx + o, (load<f32>(dy + o) * load<f32>(V5 + o) - load<f32>(V3 + o) - xhat * load<f32>(V4 + o)) * is);
      }
      continue;
    }
    const hi = f32At(HI, sb);
    const lo = f32At(LO, sb);
    const is = f32At(IS, sb);
    const c1 = f32At(C1, sb);
    const c2 = f32At(C2, sb);
    const vhi = f32x4.splat(hi);
    const vlo = f32x4.splat(lo);
    const vis = f32x4.splat(is);
    const vc1 = f32x4.splat(c1);
    const vc2 = f32x4.splat(c2);
    if (PARAM_VARIES) {
      if (pb != CUR_P) {
        CUR_P = pb;
        for (let k = 0; k < K; k++) store<f32>(V5 + (<usize>k << 2), gammaAt(pb + colParam(k)));
      }
      let k = 0;
      for (; k < k4; k += 4) {
        const o = <usize>k << 2;
        const xhat = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(x + o), vhi), vlo), vis);
        const t = f32x4.sub(f32x4.sub(f32x4.mul(v128.load(dy + o), v128.load(V5 + o)), vc1), f32x4.mul(xhat, vc2));
        v128.store(dx + o, f32x4.mul(t, vis));
      }
      for (; k < K; k++) {
        const o = <usize>k << 2;
        const xhat = (load<f32>(x + o) - hi - lo) * is;
        store<f32>(dx + o, (load<f32>(dy + o) * load<f32>(V5 + o) - c1 - xhat * c2) * is);
      }
      continue;
    }
    const gm = gammaAt(pb);
    const vg = f32x4.splat(gm);
    let k = 0;
    for (; k < k4; k += 4) {
      const o = <usize>k << 2;
      const xhat = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(x + o), vhi), vlo), vis);
      const t = f32x4.sub(f32x4.sub(f32x4.mul(v128.load(dy + o), vg), vc1), f32x4.mul(xhat, vc2));
      v128.store(dx + o, f32x4.mul(t, vis));
    }
    for (; k < K; k++) {
      const o = <usize>k << 2;
      const xhat = (load<f32>(x + o) - hi - lo) * is;
      store<f32>(dx + o, (load<f32>(dy + o) * gm - c1 - xhat * c2) * is);
    }
  }
}

// ------------------------------------------------------------ LocalResponseNorm
//
// On a [outer, C, inner] view: d_c = k + scale * sum_{c' = c - before}^{c + after} a_c'^2 (zero outside),
// y_c = a_c * d_c^-beta; backward dx_j = g_j p_j - 2 scale beta a_j sum_{c = j - after}^{j + before} t_c
// with p = d^-beta and t_c = g_c a_c p_c / d_c. Window sums slide (add the entering plane, subtract the
// leaving one) in float64: squares of float32 are exact in float64, so the sliding sum does not drift.
// Channels-last rows with windows of at most 16 channels sum each window directly instead, in float32
// four channels at a time (the window's squares are positive: a relative error of a few ulp).
// Channels-last (inner = 1) slides along each row; otherwise plane by plane, SIMD across the inner axis.
// A sum that is not finite (a NaN or Inf entered the window; Inf - Inf when it leaves) is recomputed
// directly over its window, so NaN and Inf stay local to the windows holding them, as in PyTorch.

/**
 * JavaScript's Math.pow for exponents without a fast path: AssemblyScript's own
 * pow brings lookup tables as data segments, which would be written into the
 * imported memory (the tfjs heap) on instantiation. The module has none.
 */
@external("env", "pow")
declare function jsPow(x: f64, y: f64): f64;

/** Windows up to this size are summed directly in the channels-last path (longer ones slide). */
const SHORT_WINDOW: i32 = 16;

/** f64[inner] window sums (channels-last: f32[C + window + 4]); f32[C * inner] d or p, and t, of one block. */
let LRN_ACC: usize = 0;
let LRN_P: usize = 0;
let LRN_T: usize = 0;
/** How d^-beta is computed: 1 beta = 0.75, 2 beta = 0.5, 3 beta = 1, 4 beta = 0, 0 any (Math.pow). */
let BETA_MODE: i32 = 0;

export function setLrnScratch(acc: usize, p: usize, t: usize): void {
  LRN_ACC = acc; LRN_P = p; LRN_T = t;
}

function betaMode(beta: f64): i32 {
  return beta == 0.75 ? 1 : beta == 0.5 ? 2 : beta == 1 ? 3 : beta == 0 ? 4 : 0;
}

@inline function powScalar(d: f32, beta: f64): f32 {
  if (BETA_MODE == 1) {
    const r = <f32>1 / Mathf.sqrt(d);
    return r * Mathf.sqrt(r);
  }
  if (BETA_MODE == 2) return <f32>1 / Mathf.sqrt(d);
  if (BETA_MODE == 3) return <f32>1 / d;
  if (BETA_MODE == 4) return <f32>1;
  return <f32>jsPow(<f64>d, -beta);
}

@inline function powVec(d: v128, beta: f64): v128 {
  if (BETA_MODE == 1) {
    const r = f32x4.div(f32x4.splat(1), f32x4.sqrt(d));
    return f32x4.mul(r, f32x4.sqrt(r));
  }
  if (BETA_MODE == 2) return f32x4.div(f32x4.splat(1), f32x4.sqrt(d));
  if (BETA_MODE == 3) return f32x4.div(f32x4.splat(1), d);
  if (BETA_MODE == 4) return f32x4.splat(1);
  return f32x4(powScalar(f32x4.extract_lane(d, 0), beta), powScalar(f32x4.extract_lane(d, 1), beta),
               powScalar(f32x4.extract_lane(d, 2), beta), powScalar(f32x4.extract_lane(d, 3), beta));
}

/** Two f64x2 to one f32x4 (lanes lo0 lo1 hi0 hi1). */
@inline function demote2(lo: v128, hi: v128): v128 {
  return v128.shuffle<f32>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
}

/** acc[i] += sign * plane[i]^2 (or plane[i] itself when square = false), float64. */
function slidePlane(acc: usize, plane: usize, inner: i32, sign: f64, square: bool): void {
  const s = f64x2.splat(sign);
  const i4 = inner & ~3;
  let i = 0;
  for (; i < i4; i += 4) {
    const v = v128.load(plane + (<usize>i << 2));
    let lo = f64x2.promote_low_f32x4(v);
    let hi = f64x2.promote_low_f32x4(highHalf(v));
    if (square) {
      lo = f64x2.mul(lo, lo);
      hi = f64x2.mul(hi, hi);
    }
    const p = acc + (<usize>i << 3);
    v128.store(p, f64x2.add(v128.load(p), f64x2.mul(lo, s)));
    v128.store(p, f64x2.add(v128.load(p, 16), f64x2.mul(hi, s)), 16);
  }
  for (; i < inner; i++) {
    const v = <f64>load<f32>(plane + (<usize>i << 2));
    addF64(acc, i, (square ? v * v : v) * sign);
  }
}

/** The window sum of element i over planes [lo, hi] of a block (squared or not), directly. */
function windowSum(base: usize, inner: i32, i: i32, lo: i32, hi: i32, square: bool): f64 {
  let s: f64 = 0;
  for (let j = lo; j <= hi; j++) {
    const v = <f64>load<f32>(base + ((<usize>j * <usize>inner + <usize>i) << 2));
    s += square ? v * v : v;
  }
  return s;
}

/** Whether any of the four float64 lanes at acc is not finite. */
@inline function anyNonFinite(acc: usize): bool {
  const a = v128.load(acc);
  const b = v128.load(acc, 16);
  const zero = f64x2.splat(0);
  return v128.any_true(v128.or(f64x2.ne(f64x2.sub(a, a), zero), f64x2.ne(f64x2.sub(b, b), zero)));
}

/** Recomputes the non-finite window sums of lanes [i, i + n) for plane j directly. */
function fixLanes(acc: usize, base: usize, inner: i32, i: i32, n: i32, lo: i32, hi: i32, square: bool): void {
  for (let l = i; l < i + n; l++) {
    const v = f64At(acc, l);
    if (!isFinite<f64>(v)) store<f64>(acc + (<usize>l << 3), windowSum(base, inner, l, lo, hi, square));
  }
}

/**
 * One block's p = d^-beta (into LRN_P when `keep`) and either y = a * p or, with dy,
 * t = dy * a * p / d (into LRN_T).
 */
function lrnSweep(x: usize, dy: usize, y: usize, c: i32, inner: i32, before: i32, after: i32, scale: f64, k: f64,
                  beta: f64, keep: bool): void {
  const plane = <usize>inner << 2;
  if (inner == 1 && before + after < SHORT_WINDOW) {
    // Channels-last, short window: squares into a zero-padded row, then each d is a direct sum
    // of the window's (at most 16) squares, four channels at a time (float32: positive terms).
    const pad = LRN_ACC;
    const w = before + after + 1;
    memory.fill(pad, 0, <usize>(c + w + 4) << 2);
    const c4 = c & ~3;
    let j = 0;
    for (; j < c4; j += 4) {
      const v = v128.load(x + (<usize>j << 2));
      v128.store(pad + (<usize>(j + before) << 2), f32x4.mul(v, v));
    }
    for (; j < c; j++) {
      const v = f32At(x, j);
      store<f32>(pad + (<usize>(j + before) << 2), v * v);
    }
    const vk = f32x4.splat(<f32>k);
    const vs = f32x4.splat(<f32>scale);
    for (j = 0; j < c; j += 4) {
      let sum = f32x4.splat(0);
      for (let o = 0; o < w; o++) sum = f32x4.add(sum, v128.load(pad + (<usize>(j + o) << 2)));
      const d = f32x4.add(vk, f32x4.mul(vs, sum));
      const p = powVec(d, beta);
      const o = <usize>j << 2;
      if (j + 4 <= c) {
        const a = v128.load(x + o);
        if (dy) {
          v128.store(LRN_P + o, p);
          v128.store(LRN_T + o, f32x4.div(f32x4.mul(f32x4.mul(v128.load(dy + o), a), p), d));
        } else {
          v128.store(y + o, f32x4.mul(a, p));
        }
      } else {
        for (let l = 0; l < c - j; l++) {
          const ol = o + (<usize>l << 2);
          const dl = k + scale * <f64>windowSum(pad, 1, 0, j + l, j + l + w - 1, false);
          const pl = powScalar(<f32>dl, beta);
          const al = load<f32>(x + ol);
          if (dy) {
            store<f32>(LRN_P + ol, pl);
            store<f32>(LRN_T + ol, load<f32>(dy + ol) * al * pl / <f32>dl);
          } else {
            store<f32>(y + ol, al * pl);
          }
        }
      }
    }
    return;
  }
  if (inner == 1) {
    // Channels-last: the window sums slide along the row (scalar, cheap), into LRN_P as d;
    // then d^-beta and the products four channels at a time.
    let s: f64 = 0;
    for (let j = 0; j <= after && j < c; j++) {
      const v = <f64>f32At(x, j);
      s += v * v;
    }
    for (let j = 0; j < c; j++) {
      if (!isFinite<f64>(s)) s = windowSum(x, 1, 0, max(0, j - before), min(c - 1, j + after), true);
      store<f32>(LRN_P + (<usize>j << 2), <f32>(k + scale * s));
      const enter = j + after + 1;
      const leave = j - before;
      if (enter < c) {
        const v = <f64>f32At(x, enter);
        s += v * v;
      }
      if (leave >= 0) {
        const v = <f64>f32At(x, leave);
        s -= v * v;
      }
    }
    const c4 = c & ~3;
    let j = 0;
    if (dy) {
      for (; j < c4; j += 4) {
        const o = <usize>j << 2;
        const d = v128.load(LRN_P + o);
        const p = powVec(d, beta);
        v128.store(LRN_P + o, p);
        v128.store(LRN_T + o, f32x4.div(f32x4.mul(f32x4.mul(v128.load(dy + o), v128.load(x + o)), p), d));
      }
      for (; j < c; j++) {
        const o = <usize>j << 2;
        const d = load<f32>(LRN_P + o);
        const p = powScalar(d, beta);
        store<f32>(LRN_P + o, p);
        store<f32>(LRN_T + o, load<f32>(dy + o) * load<f32>(x + o) * p / d);
      }
    } else {
      for (; j < c4; j += 4) {
        const o = <usize>j << 2;
        v128.store(y + o, f32x4.mul(v128.load(x + o), powVec(v128.load(LRN_P + o), beta)));
      }
      for (; j < c; j++) {
        const o = <usize>j << 2;
        store<f32>(y + o, load<f32>(x + o) * powScalar(load<f32>(LRN_P + o), beta));
      }
    }
    return;
  }
  memory.fill(LRN_ACC, 0, <usize>inner << 3);
  for (let j = 0; j <= after && j < c; j++) slidePlane(LRN_ACC, x + <usize>j * plane, inner, 1, true);
  const vk = f64x2.splat(k);
  const vs = f64x2.splat(scale);
  const i4 = inner & ~3;
  for (let j = 0; j < c; j++) {
    const off = <usize>j * plane;
    let i = 0;
    const lo = max(0, j - before);
    const hi = min(c - 1, j + after);
    for (; i < i4; i += 4) {
      const o = <usize>i << 2;
      const acc = LRN_ACC + (<usize>i << 3);
      if (anyNonFinite(acc)) fixLanes(LRN_ACC, x, inner, i, 4, lo, hi, true);
      const d = demote2(f64x2.add(vk, f64x2.mul(vs, v128.load(acc))), f64x2.add(vk, f64x2.mul(vs, v128.load(acc, 16))));
      const p = powVec(d, beta);
      const a = v128.load(x + off + o);
      if (keep) v128.store(LRN_P + off + o, p);
      if (dy) v128.store(LRN_T + off + o, f32x4.div(f32x4.mul(f32x4.mul(v128.load(dy + off + o), a), p), d));
      else v128.store(y + off + o, f32x4.mul(a, p));
    }
    if (i < inner) fixLanes(LRN_ACC, x, inner, i, inner - i, lo, hi, true);
    for (; i < inner; i++) {
      const o = <usize>i << 2;
      const d = <f32>(k + scale * f64At(LRN_ACC, i));
      const p = powScalar(d, beta);
      const a = load<f32>(x + off + o);
      if (keep) store<f32>(LRN_P + off + o, p);
      if (dy) store<f32>(LRN_T + off + o, load<f32>(dy + off + o) * a * p / d);
      else store<f32>(y + off + o, a * p);
    }
    const enter = j + after + 1;
    const leave = j - before;
    if (enter < c) slidePlane(LRN_ACC, x + <usize>enter * plane, inner, 1, true);
    if (leave >= 0) slidePlane(LRN_ACC, x + <usize>leave * plane, inner, -1, true);
  }
}

/** y for `outer` blocks of [c, inner] elements. */
export function lrnForward(x: usize, y: usize, outer: i32, c: i32, inner: i32, before: i32, after: i32, scale: f64,
                           k: f64, beta: f64): void {
  BETA_MODE = betaMode(beta);
  const block = <usize>(c * inner) << 2;
  for (let b = 0; b < outer; b++) {
    const off = <usize>b * block;
    lrnSweep(x + off, 0, y + off, c, inner, before, after, scale, k, beta, false);
  }
}

/** dx for `outer` blocks: dx_j = dy_j p_j - 2 scale beta a_j sum_{c = j - after}^{j + before} t_c. */
export function lrnBackward(dy: usize, x: usize, dx: usize, outer: i32, c: i32, inner: i32, before: i32, after: i32,
                            scale: f64, k: f64, beta: f64): void {
  BETA_MODE = betaMode(beta);
  const block = <usize>(c * inner) << 2;
  const plane = <usize>inner << 2;
  const coef = <f32>(2 * scale * beta);
  const vcoef = f32x4.splat(coef);
  const i4 = inner & ~3;
  for (let b = 0; b < outer; b++) {
    const off = <usize>b * block;
    const xb = x + off;
    const dyb = dy + off;
    const dxb = dx + off;
    lrnSweep(xb, dyb, 0, c, inner, before, after, scale, k, beta, true);
    // Transposed window: U_j = sum of t over c in [j - after, j + before].
    if (inner == 1 && before + after < SHORT_WINDOW) {
      // Short window: t zero-padded (after in front), each transposed sum direct, four channels at a time.
      const pad = LRN_ACC;
      const w = before + after + 1;
      memory.fill(pad, 0, <usize>(c + w + 4) << 2);
      memory.copy(pad + (<usize>after << 2), LRN_T, <usize>c << 2);
      let j = 0;
      const c4 = c & ~3;
      for (; j < c4; j += 4) {
        let u = f32x4.splat(0);
        for (let o = 0; o < w; o++) u = f32x4.add(u, v128.load(pad + (<usize>(j + o) << 2)));
        const o = <usize>j << 2;
        const gp = f32x4.mul(v128.load(dyb + o), v128.load(LRN_P + o));
        v128.store(dxb + o, f32x4.sub(gp, f32x4.mul(vcoef, f32x4.mul(v128.load(xb + o), u))));
      }
      for (; j < c; j++) {
        const u = <f32>windowSum(pad, 1, 0, j, j + w - 1, false);
        const o = <usize>j << 2;
        store<f32>(dxb + o, load<f32>(dyb + o) * load<f32>(LRN_P + o) - coef * (load<f32>(xb + o) * u));
      }
      continue;
    }
    if (inner == 1) {
      // The transposed window sums of t slide into LRN_ACC (float32 per channel), then dx four at a time.
      let s: f64 = 0;
      for (let j = 0; j <= before && j < c; j++) s += <f64>f32At(LRN_T, j);
      for (let j = 0; j < c; j++) {
        if (!isFinite<f64>(s)) s = windowSum(LRN_T, 1, 0, max(0, j - after), min(c - 1, j + before), false);
        store<f32>(LRN_ACC + (<usize>j << 2), <f32>s);
        const enter = j + before + 1;
        const leave = j - after;
        if (enter < c) s += <f64>f32At(LRN_T, enter);
        if (leave >= 0) s -= <f64>f32At(LRN_T, leave);
      }
      const c4 = c & ~3;
      let j = 0;
      for (; j < c4; j += 4) {
        const o = <usize>j << 2;
        const gp = f32x4.mul(v128.load(dyb + o), v128.load(LRN_P + o));
        v128.store(dxb + o, f32x4.sub(gp, f32x4.mul(vcoef, f32x4.mul(v128.load(xb + o), v128.load(LRN_ACC + o)))));
      }
      for (; j < c; j++) {
        const o = <usize>j << 2;
        store<f32>(dxb + o, load<f32>(dyb + o) * load<f32>(LRN_P + o) - coef * (load<f32>(xb + o) * load<f32>(LRN_ACC + o)));
      }
      continue;
    }
    memory.fill(LRN_ACC, 0, <usize>inner << 3);
    for (let j = 0; j <= before && j < c; j++) slidePlane(LRN_ACC, LRN_T + <usize>j * plane, inner, 1, false);
    for (let j = 0; j < c; j++) {
      const po = <usize>j * plane;
      const lo = max(0, j - after);
      const hi = min(c - 1, j + before);
      let i = 0;
      for (; i < i4; i += 4) {
        const o = po + (<usize>i << 2);
        const acc = LRN_ACC + (<usize>i << 3);
        if (anyNonFinite(acc)) fixLanes(LRN_ACC, LRN_T, inner, i, 4, lo, hi, false);
        const u = demote2(v128.load(acc), v128.load(acc, 16));
        const gp = f32x4.mul(v128.load(dyb + o), v128.load(LRN_P + o));
        v128.store(dxb + o, f32x4.sub(gp, f32x4.mul(vcoef, f32x4.mul(v128.load(xb + o), u))));
      }
      if (i < inner) fixLanes(LRN_ACC, LRN_T, inner, i, inner - i, lo, hi, false);
      for (; i < inner; i++) {
        const o = po + (<usize>i << 2);
        const u = <f32>f64At(LRN_ACC, i);
        store<f32>(dxb + o, load<f32>(dyb + o) * load<f32>(LRN_P + o) - coef * (load<f32>(xb + o) * u));
      }
      const enter = j + before + 1;
      const leave = j - after;
      if (enter < c) slidePlane(LRN_ACC, LRN_T + <usize>enter * plane, inner, 1, false);
      if (leave >= 0) slidePlane(LRN_ACC, LRN_T + <usize>leave * plane, inner, -1, false);
    }
  }
}

// ------------------------------------------------------------ epilogues (issue #17)
//
// The residual sum before the forward (addInto, in the first statistics
// pass), the activation inside the apply pass (applyAct), and in the
// backward dz = dy * act'(z) with z recomputed (applyActGrad). Activation kinds:
// 1 relu, 2 silu, 3 gelu (exact erf form). float32 arithmetic: exp by
// Cephes' expf (range reduction by ln 2, degree-5 polynomial, about 1 ulp),
// erfc by Numerical Recipes' erfcc (fractional error < 1.2e-7).

// @ts-ignore: decorator
@inline const LOG2E: f32 = 1.44269504088896341;
// @ts-ignore: decorator
@inline const EXP_MAGIC: f32 = 12583039.0; // 1.5 * 2^23 + 127
// @ts-ignore: decorator
@inline const LN2_HI: f32 = 0.693359375;
// @ts-ignore: decorator
@inline const LN2_LO: f32 = -2.12194440e-4;
// @ts-ignore: decorator
@inline const SQRT1_2: f32 = 0.70710678118654752;
// @ts-ignore: decorator
@inline const INV_SQRT_2PI: f32 = 0.39894228040143268;

/**
 * exp(x) on four lanes (x clamped to [-87.3, 88]: the exponent 2^n stays a normal float). The clamp uses
 * pmin/pmax (one instruction each; NaN passes through: a NaN x gives NaN), and n = round(x * log2 e) comes
 * from adding 1.5 * 2^23 + 127: the sum's low mantissa bits are then n + 127, which shifted by 23 are the
 * exponent field of 2^n (no float-to-int conversion, whose saturating form costs several instructions).
 */
// @ts-ignore: decorator
@inline function expV(x0: v128): v128 {
  const x1 = f32x4.pmin(f32x4.pmax(x0, f32x4.splat(-87.3)), f32x4.splat(88.0));
  const vn = f32x4.add(f32x4.mul(x1, f32x4.splat(LOG2E)), f32x4.splat(EXP_MAGIC));
  const pow2 = i32x4.shl(vn, 23);
  const fx = f32x4.sub(vn, f32x4.splat(EXP_MAGIC));
  const x = f32x4.sub(f32x4.sub(x1, f32x4.mul(fx, f32x4.splat(LN2_HI))), f32x4.mul(fx, f32x4.splat(LN2_LO)));
  const z = f32x4.mul(x, x);
  let y = f32x4.splat(1.9875691500e-4);
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(1.3981999507e-3));
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(8.3334519073e-3));
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(4.1665795894e-2));
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(1.6666665459e-1));
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(5.0000001201e-1));
  y = f32x4.add(f32x4.add(f32x4.mul(y, z), x), f32x4.splat(1.0));
  return f32x4.mul(y, pow2);
}

/** erfc(x) on four lanes. */
// @ts-ignore: decorator
@inline function erfcV(x: v128): v128 {
  const a = f32x4.abs(x);
  const t = f32x4.div(f32x4.splat(1.0), f32x4.add(f32x4.splat(1.0), f32x4.mul(f32x4.splat(0.5), a)));
  let p = f32x4.splat(0.17087277);
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(-0.82215223));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(1.48851587));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(-1.13520398));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(0.27886807));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(-0.18628806));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(0.09678418));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(0.37409196));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(1.00002368));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(-1.26551223));
  const r = f32x4.mul(t, expV(f32x4.sub(p, f32x4.mul(a, a))));
  // x < 0: 2 - r.
  return v128.bitselect(f32x4.sub(f32x4.splat(2.0), r), r, f32x4.lt(x, f32x4.splat(0.0)));
}

/** act(z) on four lanes. */
// @ts-ignore: decorator
@inline function actV(z: v128, kind: i32): v128 {
  if (kind == 1) {
    // max(z, 0), NaN kept (f32x4.max propagates it).
    return f32x4.max(z, f32x4.splat(0.0));
  }
  if (kind == 2) {
    return f32x4.div(z, f32x4.add(f32x4.splat(1.0), expV(f32x4.neg(z))));
  }
  return f32x4.mul(f32x4.mul(f32x4.splat(0.5), z), erfcV(f32x4.mul(f32x4.neg(z), f32x4.splat(SQRT1_2))));
}

/** act'(z) on four lanes. */
// @ts-ignore: decorator
@inline function actGradV(z: v128, kind: i32): v128 {
  if (kind == 1) {
    return v128.and(f32x4.splat(1.0), f32x4.gt(z, f32x4.splat(0.0)));
  }
  if (kind == 2) {
    const s = f32x4.div(f32x4.splat(1.0), f32x4.add(f32x4.splat(1.0), expV(f32x4.neg(z))));
    return f32x4.mul(s, f32x4.add(f32x4.splat(1.0), f32x4.mul(z, f32x4.sub(f32x4.splat(1.0), s))));
  }
  const cdf = f32x4.mul(f32x4.splat(0.5), erfcV(f32x4.mul(f32x4.neg(z), f32x4.splat(SQRT1_2))));
  const pdf = f32x4.mul(f32x4.splat(INV_SQRT_2PI), expV(f32x4.mul(f32x4.splat(-0.5), f32x4.mul(z, z))));
  return f32x4.add(cdf, f32x4.mul(z, pdf));
}

/** |z| below this: sigmoid(z) and Phi(z) by their series (error < 1e-10) instead of y / z. */
// @ts-ignore: decorator
@inline const SMALL_Z: f32 = 9.765625e-4; // 2^-10

/**
 * act'(z) on four lanes from z and y = act(z) as the forward computed it:
 * silu: sigmoid(z) = y / z, act' = s + y * (1 - s); gelu: Phi(z) = y / z,
 * act' = Phi(z) + z * pdf(z). y / z carries the forward's rounding (about
 * 2 ulp of s); near z = 0, where y / z loses it, the series 1/2 + z/4 and
 * 1/2 + z / sqrt(2 pi) (next terms z^3/48, z^3/(6 sqrt(2 pi)): below 1e-10
 * for |z| < 2^-10).
 */
// @ts-ignore: decorator
@inline function actGradFromY(z: v128, y: v128, kind: i32): v128 {
  const small = f32x4.lt(f32x4.abs(z), f32x4.splat(SMALL_Z));
  const half = f32x4.splat(0.5);
  if (kind == 2) {
    const s = v128.bitselect(f32x4.add(half, f32x4.mul(z, f32x4.splat(0.25))), f32x4.div(y, z), small);
    return f32x4.add(s, f32x4.mul(y, f32x4.sub(f32x4.splat(1.0), s)));
  }
  const cdf = v128.bitselect(f32x4.add(half, f32x4.mul(z, f32x4.splat(INV_SQRT_2PI))), f32x4.div(y, z), small);
  const pdf = f32x4.mul(f32x4.splat(INV_SQRT_2PI), expV(f32x4.mul(f32x4.splat(-0.5), f32x4.mul(z, z))));
  return f32x4.add(cdf, f32x4.mul(z, pdf));
}

/** out[i] = x[i] + r[i] for n floats. */
export function addInto(xp: usize, rp: usize, outp: usize, n: i32): void {
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const o = <usize>i << 2;
    v128.store(outp + o, f32x4.add(v128.load(xp + o), v128.load(rp + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(outp + o, load<f32>(xp + o) + load<f32>(rp + o));
  }
}
