/**
 * GLSL for walking the canonical view (plan.ts) by flat offset, with every
 * size and stride a constant of the generated program (tfjs caches one
 * compiled program per distinct source):
 *
 * - `nm_elem(i)`: element i's statistic and parameter index (elementwise passes);
 * - a group enumerator, `NAME_base(o)` + `NAME_off(j)`: the j-th element of
 *   group o as ivec3(x offset, statistic, parameter). The groups are the
 *   statistics (reduced over the reduce axes) or the parameters (gamma/beta
 *   gradients, reduced over the axes gamma does not vary along); the axes may
 *   interleave (GroupNorm channels-last [N, HW, G, C/G] reduces axes 1 and 3);
 *   j walks a group's elements in memory order.
 * - chunking: a group of n elements is reduced directly (one loop) when n is
 *   small, else in `nc` chunks of `L` (~sqrt(n)) by a partial-sums program
 *   whose results a second program combines (the two-level reduction).
 */
import * as tf from '@tensorflow/tfjs';
import {LayoutAttrs} from '../../kernels';
import {broadcastStrides, pad4} from '../geometry';

/**
 * Groups up to this size reduce in one loop per output texel; longer ones in
 * chunks of ~sqrt(n) (more texels at work, and the forward's statistics texels,
 * which each recompute their statistic, then only combine chunk results).
 */
export const DIRECT_MAX = 128;

export interface View {
  /** Shape padded to rank 4. */
  s: number[];
  /** Row-major strides of s. */
  xs: number[];
  /** Statistic / parameter strides (0 along axes they do not vary). */
  ss: number[];
  ps: number[];
  size: number;
  /** Number of statistics / parameters. */
  S: number;
  P: number;
  /** Axes each statistic / parameter keeps (varies along). */
  statKept: boolean[];
  paramKept: boolean[];
}

export function viewOf(a: LayoutAttrs): View {
  if (a.shape.length > 4) throw new Error(`fused webgl kernels take rank <= 4. Received: shape [${a.shape}]`);
  const s = pad4(a.shape);
  const st = pad4(a.statShape);
  const pa = pad4(a.paramShape);
  const xs = [s[1] * s[2] * s[3], s[2] * s[3], s[3], 1];
  return {
    s, xs, ss: broadcastStrides(st), ps: broadcastStrides(pa), size: s[0] * s[1] * s[2] * s[3],
    S: st.reduce((p, d) => p * d, 1), P: pa.reduce((p, d) => p * d, 1),
    statKept: st.map(d => d > 1), paramKept: pa.map(d => d > 1),
  };
}

const vec = (v: View, d: number) => `ivec3(${v.xs[d]}, ${v.ss[d]}, ${v.ps[d]})`;

/** `ivec3 nm_elem(int i)`: (unused, statistic, parameter) of flat element i. */
export function elemGlsl(v: View): string {
  const lines: string[] = [];
  for (let d = 3; d >= 0; d--) {
    if (v.s[d] === 1 || (v.ss[d] === 0 && v.ps[d] === 0)) continue;
    // The outermost non-trivial axis needs no imod (i < size); the innermost no division.
    const outer = v.s.slice(0, d).every(k => k === 1);
    const q = v.xs[d] === 1 ? 'i' : `i / ${v.xs[d]}`;
    const c = outer ? q : `imod(${q}, ${v.s[d]})`;
    lines.push(`r += (${c}) * ivec3(0, ${v.ss[d]}, ${v.ps[d]});`);
  }
  return `
    ivec3 nm_elem(int i) {
      ivec3 r = ivec3(0);
      ${lines.join('\n      ')}
      return r;
    }`;
}

/** A reduction over groups: `keep` the axes that index the group, the others are reduced. */
export interface Groups {
  name: string;
  /** Number of groups and of elements per group. */
  count: number;
  n: number;
  /** Chunk length and number of chunks (1: direct). */
  L: number;
  nc: number;
}

export function chunking(n: number): {L: number; nc: number} {
  if (n <= DIRECT_MAX) return {L: n, nc: 1};
  const L = Math.ceil(Math.sqrt(n));
  return {L, nc: Math.ceil(n / L)};
}

/** GLSL of the enumerator `NAME_base(o)`, `NAME_off(j)` and `NAME_len(c)` (chunk c's length). */
export function groupGlsl(v: View, name: string, keep: boolean[]): {glsl: string; groups: Groups} {
  const baseAxes: number[] = [];
  const offAxes: number[] = [];
  let count = 1;
  let n = 1;
  for (let d = 3; d >= 0; d--) {
    if (v.s[d] === 1) continue;
    if (keep[d]) {
      baseAxes.push(d);
      count *= v.s[d];
    } else {
      offAxes.push(d);
      n *= v.s[d];
    }
  }
  // Innermost axis first; the outermost one takes what is left of q (no imod: q is in range).
  const walk = (axes: number[]) => axes.map((d, k) => (k === axes.length - 1
    ? `r += q * ${vec(v, d)};`
    : `{ int c = imod(q, ${v.s[d]}); q = q / ${v.s[d]}; r += c * ${vec(v, d)}; }`));
  const base = walk(baseAxes);
  const off = walk(offAxes);
  const {L, nc} = chunking(n);
  const glsl = `
    ivec3 ${name}_base(int o) {
      ivec3 r = ivec3(0);
      int q = o;
      ${base.join('\n      ')}
      return r;
    }
    ivec3 ${name}_off(int j) {
      ivec3 r = ivec3(0);
      int q = j;
      ${off.join('\n      ')}
      return r;
    }
    int ${name}_len(int c) { int rest = ${n} - c * ${L}; return rest < ${L} ? rest : ${L}; }`;
  return {glsl, groups: {name, count, n, L, nc}};
}

/** GLSL: x is finite (false for NaN and +-Inf). */
export const FINITE_GLSL = `
    bool nm_finite(float v) { return abs(v) <= 3.4028234e38; }`;

/**
 * A packed output for an elementwise pass: the program writes `shape` as
 * tfjs packs it (a texel holds the 2x2 block rows r, r + 1 x columns c,
 * c + 1 of the last two axes), so it runs a quarter of the fragments of an
 * unpacked one, and its output goes to tfjs' packed ops without conversion.
 * GLSL `ivec4 nm_lanes()`: the flat offsets of the texel's four values, in
 * setOutput's order; lanes in the padding (odd sizes) repeat a valid one.
 * null for rank > 4 (tfjs' packed coordinates differ there).
 */
export function lanesGlsl(shape: number[]): string | null {
  const n = shape.length;
  if (n < 1 || n > 4) return null;
  const C = shape[n - 1];
  if (n === 1) {
    return `
    ivec4 nm_lanes() {
      int c = getOutputCoords();
      int c1 = c + 1 < ${C} ? c + 1 : c;
      return ivec4(c, c1, c, c1);
    }`;
  }
  const R = shape[n - 2];
  const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  const comps = ['x', 'y', 'z', 'w'].slice(0, n);
  const type = n === 2 ? 'ivec2' : n === 3 ? 'ivec3' : 'ivec4';
  const flat = comps.map((k, d) => (strides[d] === 1 ? `rc.${k}` : `rc.${k} * ${strides[d]}`)).join(' + ');
  return `
    ivec4 nm_lanes() {
      ${type} rc = getOutputCoords();
      int f = ${flat};
      int dc = rc.${comps[n - 1]} + 1 < ${C} ? 1 : 0;
      int dr = rc.${comps[n - 2]} + 1 < ${R} ? ${C} : 0;
      return ivec4(f, f + dc, f + dr, f + dr + dc);
    }`;
}

/**
 * An elementwise program over `shape` from GLSL `float nm_one(int i)` (the
 * value at flat offset i): packed output (lanesGlsl) when possible, else
 * one value per texel, 1-D.
 */
export function elementwiseMain(shape: number[]): {main: string; outputShape: number[]; packedOutput: boolean} {
  // Packed outputs where tfjs itself packs (and so does not unpack them right away).
  const packed = tf.env().getBool('WEBGL_PACK') && tf.env().getBool('WEBGL_LAZILY_UNPACK');
  const lanes = packed ? lanesGlsl(shape) : null;
  if (lanes) {
    return {
      outputShape: shape, packedOutput: true, main: `${lanes}
    void main() {
      ivec4 f = nm_lanes();
      setOutput(vec4(nm_one(f.x), nm_one(f.y), nm_one(f.z), nm_one(f.w)));
    }`,
    };
  }
  return {
    outputShape: [shape.reduce((a, b) => a * b, 1)], packedOutput: false, main: `
    void main() {
      setOutput(nm_one(getOutputCoords()));
    }`,
  };
}
