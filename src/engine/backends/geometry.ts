/**
 * How the fused kernels walk the canonical view (plan.ts), shared by the
 * JavaScript loops (loops.ts) and the SIMD module (wasm/norm.ts):
 *
 * The view, padded to rank 4, is a list of `rows` rows of `K` contiguous
 * elements. K is the last axis, merged with the axes before it while it is
 * shorter than MIN_ROW (GroupNorm channels-last [N, HW, G, C/G] with C/G = 4
 * walks rows of G * C/G = C elements, not a million rows of 4). Row r's
 * statistics start at statBase(r) and its parameters at paramBase(r)
 * (strides rs/rp over the outer sizes o); element k of a row adds
 * colStat[k] / colParam[k].
 *
 * Two modes: when colStat is all 0 ("row mode": LayerNorm, channels-first
 * layouts) each row reduces into one statistic in registers; otherwise
 * ("column mode": BatchNorm/InstanceNorm channels-last, GroupNorm
 * channels-last) each column accumulates on its own and the columns are
 * folded into the statistics when the row's statistic base changes. The
 * inner loops are straight loops over K with no per-element index arithmetic.
 */
import {LayoutAttrs} from '../kernels';

/** Rows shorter than this are merged with the axis before (fewer, longer rows). */
const MIN_ROW = 32;

export interface Geometry {
  /** Elements. */
  size: number;
  /** Row length. */
  K: number;
  rows: number;
  /** Outer sizes (rows = o[0] * o[1] * o[2]). */
  o: [number, number, number];
  /** Statistic / parameter strides of the outer axes. */
  rs: [number, number, number];
  rp: [number, number, number];
  colStat: Int32Array;
  colParam: Int32Array;
  /** Column mode: the statistic changes along a row. */
  statVaries: boolean;
  /** The parameters change along a row. */
  paramVaries: boolean;
  statSize: number;
  paramSize: number;
  /** Values per statistic. */
  count: number;
  /**
   * When the statistics are computed by consecutive runs of rows, `rows` rows
   * each, run u covering statistics [u * stats, (u + 1) * stats) (LayerNorm: one
   * row per statistic; channels-first InstanceNorm/GroupNorm: a sample's
   * channel or group; channels-last InstanceNorm/GroupNorm: a sample); null
   * otherwise (BatchNorm: every row feeds every statistic).
   */
  units: {rows: number; stats: number} | null;
}

/** `s` padded in front with 1s to rank 4. */
export function pad4(s: number[]): number[] {
  return [1, 1, 1, 1].slice(s.length).concat(s);
}

/** Row-major strides of `shape` (rank 4) with 0 for axes of size 1 (broadcast). */
export function broadcastStrides(shape: number[]): number[] {
  const strides = [0, 0, 0, 0];
  let acc = 1;
  for (let i = 3; i >= 0; i--) {
    strides[i] = shape[i] === 1 ? 0 : acc;
    acc *= shape[i];
  }
  return strides;
}

const cache = new Map<string, Geometry>();

/** The geometry of a kernel's layout attributes (memoized: a training loop repeats the same few). */
export function geometryOf(a: LayoutAttrs): Geometry {
  const key = `${a.shape}|${a.statShape}|${a.paramShape}`;
  let g = cache.get(key);
  if (!g) {
    g = build(a);
    if (cache.size > 256) cache.clear();
    cache.set(key, g);
  }
  return g;
}

function build(a: LayoutAttrs): Geometry {
  if (a.shape.length > 4) throw new Error(`fused normalization kernels take rank <= 4, got shape [${a.shape}]`);
  const s = pad4(a.shape);
  const ss = broadcastStrides(pad4(a.statShape));
  const ps = broadcastStrides(pad4(a.paramShape));
  // Inner axes: the last, then more while the row is short.
  let first = 3;
  let K = s[3];
  while (first > 0 && K < MIN_ROW) {
    first--;
    K *= s[first];
  }
  const colStat = new Int32Array(K);
  const colParam = new Int32Array(K);
  for (let k = 0; k < K; k++) {
    let rest = k;
    let st = 0;
    let pa = 0;
    for (let d = 3; d >= first; d--) {
      const i = rest % s[d];
      rest = (rest - i) / s[d];
      st += i * ss[d];
      pa += i * ps[d];
    }
    colStat[k] = st;
    colParam[k] = pa;
  }
  // Outer axes, padded in front to three.
  const o = [1, 1, 1];
  const rs = [0, 0, 0];
  const rp = [0, 0, 0];
  for (let d = first - 1, j = 2; d >= 0; d--, j--) {
    o[j] = s[d];
    rs[j] = ss[d];
    rp[j] = ps[d];
  }
  const size = s[0] * s[1] * s[2] * s[3];
  const statSize = a.statShape.reduce((p, d) => p * d, 1);
  const rows = size / K;
  return {
    size, K, rows, o: o as Geometry['o'], rs: rs as Geometry['rs'], rp: rp as Geometry['rp'],
    colStat, colParam, statVaries: colStat.some(v => v !== 0), paramVaries: colParam.some(v => v !== 0),
    statSize, paramSize: a.paramShape.reduce((p, d) => p * d, 1), count: size / statSize,
    units: unitsOf(o, rs, rows, colStat, statSize),
  };
}

/** Geometry.units: checked row by row (once per geometry). */
function unitsOf(o: number[], rs: number[], rows: number, colStat: Int32Array, statSize: number):
    Geometry['units'] {
  const base = (r: number) => {
    const i2 = r % o[2];
    const q = (r - i2) / o[2];
    const i1 = q % o[1];
    return ((q - i1) / o[1]) * rs[0] + i1 * rs[1] + i2 * rs[2];
  };
  let U = 1;
  while (U < rows && base(U) === base(0)) U++;
  const W = colStat.reduce((m, v) => Math.max(m, v), 0) + 1;
  if (rows % U !== 0 || (rows / U) * W !== statSize || U === rows) return null;
  for (let r = 0; r < rows; r++) {
    if (base(r) !== Math.floor(r / U) * W) return null;
  }
  return {rows: U, stats: W};
}

/**
 * Each statistic's parameter index (the running statistics are per parameter:
 * BatchNorm's per-channel statistics are its parameters' own, InstanceNorm's
 * per-instance ones average over the batch). Throws when the parameters vary
 * within a statistic's group (no running statistics exist for such plans).
 */
export function statToParam(a: LayoutAttrs): Int32Array {
  const s = pad4(a.shape);
  const st = pad4(a.statShape);
  const ps = broadcastStrides(pad4(a.paramShape));
  for (let d = 0; d < 4; d++) {
    if (st[d] === 1 && ps[d] !== 0 && s[d] > 1) throw new Error('running statistics need parameters constant within each statistic');
  }
  const map = new Int32Array(st[0] * st[1] * st[2] * st[3]);
  let i = 0;
  for (let i0 = 0; i0 < st[0]; i0++) {
    for (let i1 = 0; i1 < st[1]; i1++) {
      for (let i2 = 0; i2 < st[2]; i2++) {
        for (let i3 = 0; i3 < st[3]; i3++) map[i++] = i0 * ps[0] + i1 * ps[1] + i2 * ps[2] + i3 * ps[3];
      }
    }
  }
  return map;
}
