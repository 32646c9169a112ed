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
 *   small, else in `nc` chunks of `L` (~sqrt(n), longer where groups are
 *   many: TARGET_CHUNKS) by a partial-sums program
 *   whose results a second program combines (the two-level reduction).
 */
import * as tf from '@tensorflow/tfjs';
import {LayoutAttrs} from '../../kernels';
import {broadcastStrides, pad4} from '../geometry';
import {lit} from './webgl_backend';

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
  /**
   * Partials laid out [nc, count] (chunk-major) rather than [count, nc]:
   * whichever puts neighbouring texels' data closer in x (BatchNorm
   * channels-last: neighbouring channels, not chunks 91 rows apart).
   */
  chunkMajor: boolean;
}

/**
 * Chunks in all (over every group) above which a reduction takes fewer,
 * longer chunks than ~sqrt(n): enough texels for the partials pass, while
 * the combining pass (whose every output texel walks its group's chunks,
 * e.g. the forward's four statistics rows) stays short (LayerNorm [1024
 * rows, 768]: 8 chunks of 96 per row rather than 28 of 28).
 */
export const TARGET_CHUNKS = 8192;

/**
 * Chunk length L and count nc for `count` groups of n values (nc = 1: reduced
 * directly); L rounded up to a multiple of `multiple` (the packed walks read
 * two or four values of a group per texel, so chunks start at whole texels).
 */
export function chunking(n: number, count = 1, multiple = 1): {L: number; nc: number} {
  if (n <= DIRECT_MAX) return {L: n, nc: 1};
  const nc0 = Math.max(2, Math.min(Math.ceil(Math.sqrt(n)), Math.ceil(TARGET_CHUNKS / count)));
  const L = Math.ceil(Math.ceil(n / nc0) / multiple) * multiple;
  return {L, nc: Math.ceil(n / L)};
}

/**
 * GLSL of the enumerator `NAME_base(o)`, `NAME_off(j)` and `NAME_len(c)`
 * (chunk c's length); `multiple`: chunking's.
 */
export function groupGlsl(v: View, name: string, keep: boolean[], multiple = 1): {glsl: string; groups: Groups} {
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
  const {L, nc} = chunking(n, count, multiple);
  // x distance between neighbouring groups' first elements, and between a group's neighbouring chunks.
  const groupDist = baseAxes.length ? v.xs[baseAxes[0]] : Infinity;
  let chunkDist = 0;
  for (let q = L, k = 0; k < offAxes.length; k++) {
    const d = offAxes[k];
    chunkDist += (q % v.s[d]) * v.xs[d];
    q = Math.floor(q / v.s[d]);
  }
  const chunkMajor = nc > 1 && count > 1 && groupDist < chunkDist;
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
    int ${name}_len(int c) { int rest = ${n} - c * ${L}; return rest < ${L} ? rest : ${L}; }
    int ${name}_col(int o, int c) { return ${chunkMajor ? `c * ${count} + o` : `o * ${nc} + c`}; }
    ivec2 ${name}_oc(int k) {
      ${chunkMajor ? `int c = k / ${count}; return ivec2(k - c * ${count}, c);` : `int o = k / ${nc}; return ivec2(o, k - o * ${nc});`}
    }`;
  return {glsl, groups: {name, count, n, L, nc, chunkMajor}};
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
 * An elementwise pass: per output value, GLSL reading per-statistic values
 * (`$s`: the statistic), per-parameter values (`$p`) and per-element values
 * (`$i`: the flat offset), combined by `value` (from the variables' names).
 */
export interface ElementwiseSpec {
  stat: string[];
  param: string[];
  elem: string[];
  value: (stat: string[], param: string[], elem: string[]) => string;
  /**
   * Per elem entry, optionally: the input name and physical [height, width]
   * of its texture (Runner.texel) when the entry is that input's value at $i.
   * Where the width is the last axis' length, a packed pass reads it with
   * texture() at the lane's texel (its coordinates from the output
   * coordinates: no division per read, as tfjs' getter does).
   */
  direct?: ([string, [number, number]] | null)[];
  /**
   * Per elem entry, optionally: the name of an input packed exactly as the
   * output (Runner.packedAt) whose texel at the output texel holds the four
   * lanes' values (one texelFetch for them; the caller passes it raw).
   */
  packed?: (string | null)[];
}

type Delta = [number, number, number];

/**
 * The (x offset, statistic, parameter) steps from a packed texel's first
 * value to its right neighbour (col) and the one below (row), where they are
 * the same for every texel (else null): col when the last axis and the
 * innermost canonical axis have even sizes (the pair never straddles a
 * canonical row); row when the step of one row of `shape` adds 1 to a
 * canonical axis of even size, or C to the innermost one (a multiple of 2 C),
 * without carry for the texel's even row.
 */
function laneSteps(v: View, shape: number[]): {col: Delta | null; row: Delta | null} {
  const n = shape.length;
  const C = shape[n - 1];
  const at = (d: number, k = 1): Delta => [v.xs[d] * k, v.ss[d] * k, v.ps[d] * k];
  const col = C % 2 === 0 && v.s[3] % 2 === 0 ? at(3) : null;
  if (n === 1) return {col, row: [0, 0, 0]};
  if (shape[n - 2] % 2 !== 0) return {col, row: null};
  for (let d = 1; d <= 3; d++) {
    if (v.s.slice(d).reduce((x, y) => x * y, 1) === C && v.s[d - 1] % 2 === 0) return {col, row: at(d - 1)};
  }
  const s3 = v.s[3];
  if (C % s3 === 0 && v.s[2] % (2 * (C / s3)) === 0) return {col, row: at(2, C / s3)};
  if (s3 % (2 * C) === 0) return {col, row: at(3, C)};
  return {col, row: null};
}

const ivec = (d: Delta) => `ivec3(${d[0]}, ${d[1]}, ${d[2]})`;

/**
 * The program text, output shape and packing of an elementwise pass over a
 * tensor of `shape` (the canonical view `v`): a packed output (lanesGlsl)
 * where tfjs packs, its four values' indices derived from the first one's
 * where laneSteps allows, and each statistic or parameter value read once
 * per texel when the lanes share it; else one value per texel, 1-D.
 */
export function elementwise(v: View, shape: number[], spec: ElementwiseSpec, allowPacked = true):
    {userCode: string; outputShape: number[]; packedOutput: boolean; packedReads: string[]} {
  // Packed outputs where tfjs itself packs (and so does not unpack them right away); unpacked where the
  // caller's next program reads the output (allowPacked false: it would unpack it first).
  const packed = allowPacked && tf.env().getBool('WEBGL_PACK') && tf.env().getBool('WEBGL_LAZILY_UNPACK');
  const lanes = packed ? lanesGlsl(shape) : null;
  const sub = (t: string, s: string, p: string, i: string) => t.replace(/\$s/g, s).replace(/\$p/g, p).replace(/\$i/g, i);
  if (!lanes) {
    const body = (e: string, i: string) => {
      const st = spec.stat.map((t, k) => `float st${k} = ${sub(t, `${e}.y`, '', i)};`);
      const pa = spec.param.map((t, k) => `float pa${k} = ${sub(t, '', `${e}.z`, i)};`);
      const el = spec.elem.map((t, k) => `float el${k} = ${sub(t, '', '', i)};`);
      return [...st, ...pa, ...el].join('\n      ');
    };
    return {
      outputShape: [shape.reduce((x, y) => x * y, 1)], packedOutput: false, packedReads: [], userCode: `${elemGlsl(v)}
    void main() {
      int i = getOutputCoords();
      ivec3 e = nm_elem(i);
      ${body('e', 'i')}
      setOutput(${spec.value(spec.stat.map((_, k) => `st${k}`), spec.param.map((_, k) => `pa${k}`), spec.elem.map((_, k) => `el${k}`))});
    }`,
    };
  }
  const {col, row} = laneSteps(v, shape);
  const C = shape[shape.length - 1];
  // Texel coordinates of each lane in a texture C wide holding the tensor flat: lane 0's from its offset
  // (one division per texel), the others a column and / or a row on (offsets f, f + dc, f + dr, f + dr + dc,
  // dc in {0, 1}, dr in {0, C}: nm_lanes).
  const texelOk = (spec.direct ?? []).some(d => d && d[1][1] === C) && tf.env().getNumber('WEBGL_VERSION') === 2;
  const texelLines = texelOk ? [`int nm_r0 = f.x / ${C};`, `ivec2 nm_tc0 = ivec2(f.x - nm_r0 * ${C}, nm_r0);`,
    'ivec2 nm_tc1 = nm_tc0 + ivec2(f.y - f.x, 0);', 'ivec2 nm_tc2 = nm_tc0 + ivec2(0, f.z == f.x ? 0 : 1);',
    'ivec2 nm_tc3 = nm_tc2 + ivec2(f.w - f.z, 0);'] : [];
  // Inputs packed as the output: the texel at the output texel (tfjs' packed layout: texel column c / 2,
  // row (flat batch) * R / 2 + r / 2; R and C even).
  const packedReads = shape.length >= 2 ? (spec.packed ?? []).filter((p): p is string => p != null) : [];
  if (packedReads.length) {
    const n = shape.length;
    const [r, c] = ['xyzw'[n - 2], 'xyzw'[n - 1]];
    const batch = n === 3 ? 'nm_rc.x' : n === 4 ? `(nm_rc.x * ${shape[1]} + nm_rc.y)` : '0';
    texelLines.unshift(`${n === 2 ? 'ivec2' : n === 3 ? 'ivec3' : 'ivec4'} nm_rc = getOutputCoords();`,
                       `ivec2 nm_ptc = ivec2(nm_rc.${c} / 2, ${batch} * ${shape[n - 2] / 2} + nm_rc.${r} / 2);`);
    spec.packed!.forEach((p, k) => { if (p) texelLines.push(`vec4 nm_pt${k} = texelFetch(${p}, nm_ptc, 0);`); });
  }
  const add = (a: Delta, b: Delta): Delta => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
  // Each lane as [lane whose nm_elem it derives from, step from it].
  const from: [number, Delta][] = [[0, [0, 0, 0]], col ? [0, col] : [1, [0, 0, 0]], row ? [0, row] : [2, [0, 0, 0]]];
  from.push(col ? [from[2][0], add(from[2][1], col)] : row ? [from[1][0], add(from[1][1], row)] : [3, [0, 0, 0]]);
  const laneE = from.map(([b, d], l) => (b === l ? `ivec3 e${l} = nm_elem(f.${'xyzw'[l]});` : `ivec3 e${l} = e${b} + ${ivec(d)};`));
  // Lane l reads its statistic (component 1) / parameter (2) values from the first lane with the same index.
  const owner = (l: number, comp: 1 | 2) => {
    for (let m = 0; m < l; m++) {
      if (from[m][0] === from[l][0] && from[m][1][comp] === from[l][1][comp]) return m;
    }
    return l;
  };
  const lines: string[] = [];
  const values: string[] = [];
  for (let l = 0; l < 4; l++) {
    const so = owner(l, 1);
    const po = owner(l, 2);
    if (so === l) spec.stat.forEach((t, k) => lines.push(`float st${k}_${l} = ${sub(t, `e${l}.y`, '', '')};`));
    if (po === l) spec.param.forEach((t, k) => lines.push(`float pa${k}_${l} = ${sub(t, '', `e${l}.z`, '')};`));
    const i = `f.${'xyzw'[l]}`;
    spec.elem.forEach((t, k) => {
      if (packedReads.length && spec.packed?.[k]) {
        lines.push(`float el${k}_${l} = nm_pt${k}.${'xyzw'[l]};`);
        return;
      }
      const d = spec.direct?.[k];
      const byTexel = d && d[1][1] === C && texelOk;
      lines.push(`float el${k}_${l} = ${byTexel ? `texture(${d![0]}, ${texelUv(`nm_tc${l}`, d![1])}).r` : sub(t, '', '', i)};`);
    });
    values.push(spec.value(spec.stat.map((_, k) => `st${k}_${so}`), spec.param.map((_, k) => `pa${k}_${po}`),
                           spec.elem.map((_, k) => `el${k}_${l}`)));
  }
  return {
    outputShape: shape, packedOutput: true, packedReads, userCode: `${elemGlsl(v)}${lanes}
    void main() {
      ivec4 f = nm_lanes();
      ${laneE.join('\n      ')}
      ${texelLines.join('\n      ')}
      ${lines.join('\n      ')}
      setOutput(vec4(${values.join(',\n        ')}));
    }`,
  };
}

/**
 * The packed partials texture of K chunks, two values (moments) each, as a
 * squarish [2H, 2W] (a one-row texture would leave half of each 2x2
 * fragment quad idle): the texel at logical (2i, 2j) holds chunks
 * k = 2 (i W + j) and k + 1, row 2i the first moment, 2i + 1 the second.
 * `main(fn)`: the program's main, fn(k) the GLSL vec2 of chunk k; `index`:
 * GLSL `int nm_pidx(int m, int k)`, the flat offset of moment m of chunk k
 * once unpacked.
 */
export function partialLayout(K: number): {outputShape: number[]; main: (fn: string) => string; index: string;
    fetch: (phys: [number, number] | null) => string | null} {
  const W = Math.max(1, Math.ceil(Math.sqrt(K / 2)));
  const H = Math.ceil(K / 2 / W);
  return {
    outputShape: [2 * H, 2 * W],
    main: fn => `
    void main() {
      ivec2 rc = getOutputCoords();
      int k = rc.x * ${W} + rc.y;
      if (k >= ${K}) { setOutput(vec4(0.0)); return; }
      vec2 a = ${fn}(k);
      vec2 b = k + 1 < ${K} ? ${fn}(k + 1) : a;
      setOutput(vec4(a.x, b.x, a.y, b.y));
    }`,
    index: `
    int nm_pidx(int m, int k) { int i = k / ${2 * W}; return (2 * i + m) * ${2 * W} + (k - i * ${2 * W}); }`,
    fetch: phys => partialFetch(W, H, phys),
  };
}

/**
 * GLSL `float nm_part(int m, int k)`: moment m of chunk k of a partials
 * texture (partialLayout, or rowPartials: chunks 2T and 2T + 1 in texel T,
 * (first moments, second moments)) named `part`, whose physical texture is
 * `phys` ([height, width]): a texelFetch of the packed texel itself when the
 * texture is H x W texels (Runner.packedTexel; the program then takes it as
 * a `raw` input, without tfjs' unpack); else null.
 */
export function partialFetch(W: number, H: number, phys: [number, number] | null): string | null {
  if (!phys || phys[0] !== H || phys[1] !== W) return null;
  return `
    float nm_part(int m, int k) {
      int T = k / 2;
      int row = T / ${W};
      vec4 v = texelFetch(part, ivec2(T - row * ${W}, row), 0);
      int lane = k - 2 * T + 2 * m;
      return lane == 0 ? v.x : lane == 1 ? v.y : lane == 2 ? v.z : v.w;
    }`;
}

/**
 * Fine groups: the groups of groupGlsl(v, _, fine), with `fine` the union of
 * two groupings' kept axes (statistics and parameters), so each fine group
 * lies in one group of either. GLSL `int NAME(int k, int e)`: the index of
 * the e-th (of `count`) fine group inside group k of the grouping kept along
 * `kept`, whose group index has strides `strides` (v.ss or v.ps).
 */
export function fineOf(v: View, name: string, fine: boolean[], kept: boolean[], strides: number[]):
    {glsl: string; count: number} {
  // Fine-group index radices, numbered as groupGlsl numbers its groups (innermost kept axis first).
  const radix: number[] = [0, 0, 0, 0];
  let r = 1;
  for (let d = 3; d >= 0; d--) {
    if (v.s[d] === 1 || !fine[d]) continue;
    radix[d] = r;
    r *= v.s[d];
  }
  const lines: string[] = [];
  let count = 1;
  for (let d = 3; d >= 0; d--) {
    if (v.s[d] === 1 || !fine[d]) continue;
    if (kept[d]) {
      lines.push(`o += imod(k / ${strides[d]}, ${v.s[d]}) * ${radix[d]};`);
    } else {
      lines.push(`o += imod(e, ${v.s[d]}) * ${radix[d]}; e = e / ${v.s[d]};`);
      count *= v.s[d];
    }
  }
  return {count, glsl: `
    int ${name}(int k, int e) {
      int o = 0;
      ${lines.join('\n      ')}
      return o;
    }`};
}

/**
 * A flat unpacked output of n values as a squarish [H, W] texture (a 1-D
 * output is one texel row, which idles half of each 2x2 fragment quad):
 * GLSL `int t` = the flat offset (texels past n write 0 and return).
 * Flat offsets, and so shallow slices, are as for a 1-D output.
 */
export function flatOutput(n: number): {outputShape: number[]; coords: string} {
  const W = Math.ceil(Math.sqrt(n));
  const H = Math.ceil(n / W);
  if (H < 2) return {outputShape: [n], coords: 'int t = getOutputCoords();'};
  return {outputShape: [H, W], coords: `ivec2 rc = getOutputCoords();
      int t = rc.x * ${W} + rc.y;
      if (t >= ${n}) { setOutput(0.0); return; }`};
}

/** GLSL: texel coordinates of flat offset `i` in a texture `w` texels wide. */
export const texelAt = (i: string, w: number) => `ivec2(imod(${i}, ${w}), (${i}) / ${w})`;

/** GLSL: advance texel coordinates `c` (of a texture `w` texels wide) by d flat offsets, d >= 0. */
export function texelStep(c: string, d: number, w: number): string {
  const dx = d % w;
  const dyy = Math.floor(d / w);
  const lines: string[] = [];
  if (dx) lines.push(`${c}.x += ${dx};`);
  if (dyy) lines.push(`${c}.y += ${dyy};`);
  if (dx) lines.push(`if (${c}.x >= ${w}) { ${c}.x -= ${w}; ${c}.y += 1; }`);
  return lines.join(' ');
}

/**
 * GLSL of a (pair, chunk) work item: the pair's members `a` = 2 pair and `b`
 * = a + 1 (a again where a + 1 reaches `count`), the chunk's first offset
 * `start` = chunk * L and its length `len` (L, or what is left of `n`).
 */
export function pairChunkGlsl(pair: string, chunk: string, count: number, L: number, n: number,
                              [a, b, start]: [string, string, string]): string {
  return `int ${a} = 2 * ${pair};
      int ${b} = ${a} + 1 < ${count} ? ${a} + 1 : ${a};
      int ${start} = ${chunk} * ${L};
      int len = ${n} - ${start} < ${L} ? ${n} - ${start} : ${L};`;
}

/** GLSL: texture coordinates of the centre of texel `c` in a texture of physical [height, width] `tex`. */
export const texelUv = (c: string, tex: [number, number]) =>
  `(vec2(${c}) + 0.5) * vec2(${lit(1 / tex[1])}, ${lit(1 / tex[0])})`;

/**
 * GLSL `vec4 nm_NAME(ivec2 c)`: texel c of input `name` read with texture()
 * at its centre (on SwiftShader faster than texelFetch of the same texel);
 * `.r` of it for an unpacked texture (`scalar`: returns float).
 */
export function texelReader(name: string, tex: [number, number], scalar = false): string {
  return scalar ? `
    float nm_${name}(ivec2 c) { return texture(${name}, ${texelUv('c', tex)}).r; }` : `
    vec4 nm_${name}(ivec2 c) { return texture(${name}, ${texelUv('c', tex)}); }`;
}

/**
 * GLSL `ivec2 nm_texelOf(int o)`: the texel of flat offset o (even column) in
 * a packed texture of rows of C values laid out as Runner.packedRows says.
 */
export const packedTexelOf = (C: number) => `
    ivec2 nm_texelOf(int o) { int row = o / ${C}; return ivec2((o - row * ${C}) / 2, row / 2); }`;

/**
 * A pair-walk partials program: one packed texel per work item T (`pairs`
 * group pairs x `nc` chunks, T = pair nc + chunk) in partialLayout's texture
 * of 2 pairs nc chunks (texel T holds chunks 2T, 2T + 1), texels past the
 * items writing 0; `head`: GLSL before main, `body`: main's after `int T`.
 */
export function pairPartials(names: string[], pairs: number, nc: number, head: string, body: string) {
  const TC = pairs * nc;
  const lay = partialLayout(2 * TC);
  return {
    variableNames: names,
    outputShape: lay.outputShape,
    packedOutput: true,
    userCode: `${head}
    void main() {
      ivec2 rc = getOutputCoords();
      int T = (rc.x / 2) * ${lay.outputShape[1] / 2} + rc.y / 2;
      if (T >= ${TC}) { setOutput(vec4(0.0)); return; }
      ${body}
    }`,
  };
}

/**
 * GLSL ending nm_chunk over `len` values: returns (mean - nm_pivot(s),
 * variance) from the sums s1 (of x - cp) and s2 (of (x - cp)^2); without
 * centering (0, mean square from s2). A rounding negative variance is 0,
 * NaN (from non-finite x) stays NaN.
 */
export function chunkMomentsGlsl(center: boolean, s1: string, s2: string): string {
  return `float fl = float(len);
      ${center ? `float m = ${s1} / fl;
      float v = ${s2} / fl - m * m;
      return vec2((cp - nm_pivot(s)) + m, v < 0.0 ? 0.0 : v);` : `return vec2(0.0, ${s2} / fl);`}`;
}

/**
 * GLSL ending a pair walk over `len` values of two groups: setOutput of
 * (mean - pivot a, mean - pivot b, variance a, variance b) from the sums
 * `s1`, `s2` (vec2: of x - cp, of (x - cp)^2) shifted by cp (vec2) against
 * the pivots piv (vec2); a rounding negative variance is 0, NaN stays NaN.
 * Without centering (0, 0, mean square a, b).
 */
export function pairMomentsGlsl(center: boolean, s1: string, s2: string, cp = 'cp', piv = 'piv'): string {
  return `float fl = float(len);
      ${center ? `vec2 m = ${s1} / fl;
      vec2 va = ${s2} / fl - m * m;
      setOutput(vec4((${cp} - ${piv}) + m, va.x < 0.0 ? 0.0 : va.x, va.y < 0.0 ? 0.0 : va.y));`
    : `setOutput(vec4(0.0, 0.0, ${s2} / fl));`}`;
}
