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
    lines.push(`{ int q = i / ${v.xs[d]}; int c = imod(q, ${v.s[d]}); r += c * ivec3(0, ${v.ss[d]}, ${v.ps[d]}); }`);
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
  const base: string[] = [];
  const off: string[] = [];
  let count = 1;
  let n = 1;
  for (let d = 3; d >= 0; d--) {
    if (v.s[d] === 1) continue;
    if (keep[d]) {
      base.push(`{ int c = imod(q, ${v.s[d]}); q = q / ${v.s[d]}; r += c * ${vec(v, d)}; }`);
      count *= v.s[d];
    } else {
      off.push(`{ int c = imod(q, ${v.s[d]}); q = q / ${v.s[d]}; r += c * ${vec(v, d)}; }`);
      n *= v.s[d];
    }
  }
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
