/**
 * TfjsNormForward on WebGL: batch statistics, the normalized output and the
 * running statistics in at most three programs.
 *
 *   1. partials (only when a statistic covers more than DIRECT_MAX values):
 *      a packed texture [2, S * nc], per (statistic, chunk of ~sqrt(n)
 *      values): the chunk's mean of (x - pivot) and its variance, both from
 *      one pass over the chunk (sums shifted by the chunk's first value;
 *      pivot = the statistic's first value if finite), two chunks per texel.
 *      Means, not sums, so float16 storage holds them. Read by the next
 *      program as the packed texture it is (WebGL2: no unpack program).
 *   2. statistics: one flat texture [mean hi | mean lo | 1/sqrt(var + eps) |
 *      variance | running mean' | running variance' | batches' + 1]: each
 *      texel merges its statistic's chunks (Chan's pairwise formula, in two
 *      passes over the chunk results: mean, then M2), or reduces a short
 *      statistic directly (one pass, shifted as a chunk).
 *      The outputs are shallow slices of it: mean = the hi row, aux = the
 *      first three rows, variance, and the running statistics.
 *   3. y = ((x - hi) - lo) * invStd * gamma + beta, a packed output in x's
 *      shape (four values per texel; layout.ts elementwise; x read at the
 *      lanes' texels where its texture is as wide as the last axis).
 *
 * All arithmetic is float32 in the shader, whatever the texture storage.
 * With float16 textures (WEBGL_FORCE_F16_TEXTURES) the mean's hi half is
 * rounded to float16 in the shader so that lo carries what storage drops.
 */
import * as tf from '@tensorflow/tfjs';
import {ForwardAttrs, KernelActivation, LayoutAttrs} from '../../kernels';
import {ACT_GLSL, actGlsl} from './activation';
import {statToParam} from '../geometry';
import {
  DIRECT_MAX, FINITE_GLSL, Groups, View, chunkMomentsGlsl, elementwise, flatOutput, groupGlsl, packedTexelOf, pairChunkGlsl, pairMomentsGlsl, pairPartials, partialLayout, texelAt, texelReader, texelStep, viewOf,
} from './layout';
import {Runner, WebGLBackend, WebGLProgram, lit, rowsPaired, sizeOf, uploadPacked} from './webgl_backend';

interface Args {
  inputs: Record<string, tf.TensorInfo | undefined>;
  backend: unknown;
  attrs?: unknown;
}

/** GLSL: hi part of a mean, rounded to float16 when textures store float16. */
export function hiGlsl(f16: boolean): string {
  return f16 ? `
    float nm_hi(float m) {
      if (!nm_finite(m) || m == 0.0) return m;
      float e = exp2(floor(log2(abs(m))) - 10.0);
      return floor(m / e + 0.5) * e;
    }` : `
    float nm_hi(float m) { return m; }`;
}

export function f16Textures(): boolean {
  return tf.env().getBool('WEBGL_FORCE_F16_TEXTURES') || !tf.env().getBool('WEBGL_RENDER_FLOAT32_ENABLED');
}

/**
 * GLSL of one chunk's moments in one pass over it: `vec2 nm_chunk(int s, int c)`
 * = (mean of x - nm_pivot(s), variance) over chunk c of statistic s; without
 * centering (0, mean of x^2). The sums are shifted by the chunk's first value
 * (when finite), so they cancel no more than the data's spread within a chunk.
 */
function chunkGlsl(g: Groups, center: boolean): string {
  const {name, L} = g;
  return `
    float nm_pivot(int s) {
      ${center ? `float p = getX(${name}_base(s).x); return nm_finite(p) ? p : 0.0;` : 'return 0.0;'}
    }
    vec2 nm_chunk(int s, int c) {
      ivec3 b = ${name}_base(s);
      int j0 = c * ${L};
      int len = ${name}_len(c);
      float a1 = 0.0;
      float a2 = 0.0;
      ${center ? `float c0 = getX((b + ${name}_off(j0)).x);
      float cp = nm_finite(c0) ? c0 : nm_pivot(s);` : ''}
      for (int t = 0; t < ${L}; t++) {
        if (t >= len) break;
        float d = getX((b + ${name}_off(j0 + t)).x)${center ? ' - cp' : ''};
        ${center ? 'a1 += d;' : ''}
        a2 += d * d;
      }
      ${chunkMomentsGlsl(center, 'a1', 'a2')}
    }`;
}

/**
 * GLSL: `vec2 nm_stat(int s)`: (mean - nm_pivot(s), variance) of statistic s;
 * chunk c of statistic s is partial `col(s, c)` (groupGlsl's NAME_col, or
 * nm_rcol of rowStatPartials).
 */
function statGlsl(g: Groups, partials: string | null, col = `${g.name}_col`): string {
  if (partials == null) {
    return `
    vec2 nm_stat(int s) { return nm_chunk(s, 0); }`;
  }
  const {name, nc, n} = g;
  return `${partials}
    vec2 nm_stat(int s) {
      float acc = 0.0;
      for (int c = 0; c < ${nc}; c++) acc += float(${name}_len(c)) * nm_part(0, ${col}(s, c));
      float m = acc / ${lit(n)};
      acc = 0.0;
      for (int c = 0; c < ${nc}; c++) {
        int k = ${col}(s, c);
        float d = nm_part(0, k) - m;
        acc += float(${name}_len(c)) * (nm_part(1, k) + d * d);
      }
      return vec2(m, acc / ${lit(n)});
    }`;
}

/**
 * The program computing every chunk's moments: packed (partialLayout), so
 * one texel computes two chunks' moments, each in one pass over x (the
 * statistics program texelFetches its texels itself, partialFetch; without
 * WebGL2 it reads it through tfjs' unpack).
 */
function partialProgram(v: View, enumGlsl: string, g: Groups, center: boolean, chunks = chunkGlsl(g, center)): WebGLProgram {
  const lay = partialLayout(g.count * g.nc);
  return {
    variableNames: ['x'],
    outputShape: lay.outputShape,
    packedOutput: true,
    userCode: `${FINITE_GLSL}${enumGlsl}${chunks}
    vec2 nm_k(int k) {
      ivec2 oc = ${g.name}_oc(k);
      return nm_chunk(oc.x, oc.y);
    }${lay.main('nm_k')}`,
  };
}

/**
 * The groups kept along `keep` (statistics, or the backward's fine groups)
 * of a packed x of rows of C values (Runner.packedRows' texel layout) as
 * rectangles: Q consecutive rows times Cs consecutive columns, each group
 * starting at a multiple of either; null where the groups are not such runs.
 */
function groupRects(v: View, C: number, keep: boolean[]): {Q: number; Cs: number} | null {
  const runs = (from: number, to: number) => {
    let seenReduced = false;
    let reduced = 1;
    for (let d = from; d < to; d++) {
      if (v.s[d] === 1) continue;
      if (!keep[d]) {
        seenReduced = true;
        reduced *= v.s[d];
      } else if (seenReduced) return null;
    }
    return reduced;
  };
  const n = v.s.reduce((acc, d, k) => (keep[k] ? acc : acc * d), 1);
  // A run of whole rows (InstanceNorm / GroupNorm channels-first): Cs = C.
  if (runs(0, 4) != null && n % C === 0) return {Q: n / C, Cs: C};
  // Else the axes holding the C columns (innermost, their sizes multiplying to C) and the rows (the
  // others): in each part a group's kept axes lead its reduced ones, so it covers a run of either.
  let k = 4;
  let prod = 1;
  while (k > 0 && prod < C) prod *= v.s[--k];
  if (prod !== C) return null;
  const Q = runs(0, k);
  const Cs = runs(k, 4);
  return Q != null && Cs != null && Q * Cs === n ? {Q, Cs} : null;
}

/**
 * Where every statistic of a packed x is a rectangle of whole texels
 * (groupRects with Q and Cs even): InstanceNorm and GroupNorm channels-first,
 * GroupNorm channels-last with an even number of channels a group.
 */
export function texelRects(v: View, C: number): {Q: number; Cs: number} | null {
  const rect = groupRects(v, C, v.statKept);
  return rect && rect.Q % 2 === 0 && rect.Cs % 2 === 0 ? rect : null;
}

/**
 * Where the groups kept along `keep` are single columns of Q rows (Q even)
 * of a packed x with C even: groups 2p and 2p + 1 are columns 2c, 2c + 1 of
 * the same rows (their channel axes are innermost and kept), so a texel
 * column walks both, two values of each per texel (BatchNorm, InstanceNorm
 * channels-last statistics; the backward's fine groups channels-last).
 */
export function columnGroups(v: View, C: number, keep: boolean[]): boolean {
  const rect = groupRects(v, C, keep);
  return C % 2 === 0 && rect != null && rect.Cs === 1 && rect.Q % 2 === 0;
}

/**
 * GLSL of a texel walk's sums: a1 += d, a2 += d * d per texel of x at `t`
 * (nm_x; less cp4 when centering), for `len` values, `per` values a texel,
 * at most `texels` texels, `step` advancing t.
 */
function walkSumsGlsl(texels: number, per: number, center: boolean, step: string, t = 't'): string {
  return `vec4 a1 = vec4(0.0);
      vec4 a2 = vec4(0.0);
      for (int q = 0; q < ${texels}; q++) {
        if (${per} * q >= len) break;
        vec4 d = nm_x(${t})${center ? ' - cp4' : ''};
        a1 += d;
        a2 += d * d;
        ${step}
      }`;
}

/**
 * The chunk moments of column-pair groups (columnGroups) of a packed x read
 * in place (physical texture tex), in rowStatPartials' layout: texel T = p
 * nc + c holds chunk c (rows c L .. c L + len of the group's Q, L even) of
 * groups 2p, 2p + 1, (means, variances); group o, chunk c is chunk nm_rcol(o,
 * c). Per value the arithmetic of nm_chunk.
 */
function columnStatPartials(enumGlsl: string, g: Groups, center: boolean, C: number, tex: [number, number]): WebGLProgram {
  const {name, L, nc} = g;
  return pairPartials(['x'], Math.ceil(g.count / 2), nc, `${FINITE_GLSL}${enumGlsl}${texelReader('x', tex)}${packedTexelOf(C)}`, `int p = T / ${nc};
      int c = T - p * ${nc};
      ivec2 c0 = nm_texelOf(${name}_base(2 * p).x);
      int len = ${name}_len(c);
      ivec2 t = c0 + ivec2(0, c * ${L / 2});
      ${center ? `vec4 v0 = nm_x(c0);
      vec4 f = nm_x(t);
      vec2 piv = vec2(nm_finite(v0.x) ? v0.x : 0.0, nm_finite(v0.y) ? v0.y : 0.0);
      vec2 cp = vec2(nm_finite(f.x) ? f.x : piv.x, nm_finite(f.y) ? f.y : piv.y);
      vec4 cp4 = cp.xyxy;` : ''}
      ${walkSumsGlsl(L / 2, 2, center, 't.y += 1;')}
      ${pairMomentsGlsl(center, '(a1.xy + a1.zw)', '(a2.xy + a2.zw)')}`);
}

/**
 * GLSL `nm_pivot(s)` and `nm_chunk(s, c)` as chunkGlsl's, over statistics that
 * are texel rectangles (texelRects) of a packed x read in place (physical
 * texture tex): chunk c is the values c L .. c L + len of the rectangle in
 * texel order (texel rows, then texels within a row; four values a texel, L
 * a multiple of 4). Moments do not depend on the order of the values; the
 * pivot (the statistic's first value) is the same value as chunkGlsl's.
 */
function rectChunkGlsl(g: Groups, center: boolean, C: number, Cs: number, tex: [number, number]): string {
  const {name, L} = g;
  const Cr = Cs / 2;
  return `
${texelReader('x', tex)}${packedTexelOf(C)}
    ivec2 nm_corner(int s) { return nm_texelOf(${name}_base(s).x); }
    float nm_pivot(int s) {
      ${center ? 'float p = nm_x(nm_corner(s)).x; return nm_finite(p) ? p : 0.0;' : 'return 0.0;'}
    }
    vec2 nm_chunk(int s, int c) {
      ivec2 c0 = nm_corner(s);
      int u = c * ${L / 4};
      int ur = u / ${Cr};
      ivec2 t = c0 + ivec2(u - ur * ${Cr}, ur);
      int len = ${name}_len(c);
      ${center ? `float f = nm_x(t).x;
      float cp = nm_finite(f) ? f : nm_pivot(s);
      vec4 cp4 = vec4(cp);` : ''}
      ${walkSumsGlsl(L / 4, 4, center, `t.x += 1; ${Cr * 2 === C ? `if (t.x >= ${Cr}) { t.x = 0; t.y += 1; }`
                                                               : `if (t.x >= c0.x + ${Cr}) { t.x = c0.x; t.y += 1; }`}`)}
      ${chunkMomentsGlsl(center, '(a1.x + a1.y + a1.z + a1.w)', '(a2.x + a2.y + a2.z + a2.w)')}
    }`;
}

/**
 * Whether every statistic is a run of consecutive values of x (its kept axes
 * lead): LayerNorm and RMSNorm rows, InstanceNorm and GroupNorm channels-first.
 */
function contiguousStats(v: View): boolean {
  let seenReduced = false;
  for (let d = 0; d < 4; d++) {
    if (v.s[d] === 1) continue;
    if (!v.statKept[d]) seenReduced = true;
    else if (seenReduced) return false;
  }
  return true;
}

/**
 * The chunk moments of contiguous statistics (contiguousStats) with x read by
 * texture() at walked texel coordinates (tx: x's unpacked texture [height,
 * width]), no division per value: texel T covers chunk c of the statistic
 * pair (2 sp, 2 sp + 1), T = sp * nc + c, the same chunks (groups' L, nc) and
 * the same arithmetic as partialProgram's nm_chunk. As chunks of
 * partialFetch: statistic s, chunk c is chunk nm_rcol(s, c) =
 * 2 (s/2 * nc + c) + s % 2 (rowStatCol).
 */
function rowStatPartials(v: View, g: Groups, center: boolean, tx: [number, number]): WebGLProgram {
  const S = v.S;
  const {n, L, nc} = g;
  const w = tx[1];
  const at = (o: string) => texelAt(o, w);
  return pairPartials(['x'], Math.ceil(S / 2), nc, `${FINITE_GLSL}
${texelReader('x', tx, true)}`, `int sp = T / ${nc};
      int c = T - sp * ${nc};
      ${pairChunkGlsl('sp', 'c', S, L, n, ['sa', 'sb', 'p0'])}
      ivec2 ca = ${at(`sa * ${n} + p0`)};
      ivec2 cb = ${at(`sb * ${n} + p0`)};
      ${center ? `float pa = nm_x(${at(`sa * ${n}`)});
      float pb = nm_x(${at(`sb * ${n}`)});
      pa = nm_finite(pa) ? pa : 0.0;
      pb = nm_finite(pb) ? pb : 0.0;
      float ca0 = nm_x(ca);
      float cb0 = nm_x(cb);
      float cpa = nm_finite(ca0) ? ca0 : pa;
      float cpb = nm_finite(cb0) ? cb0 : pb;` : ''}
      vec4 acc = vec4(0.0);
      for (int t = 0; t < ${L}; t++) {
        if (t >= len) break;
        float da = nm_x(ca)${center ? ' - cpa' : ''};
        float db = nm_x(cb)${center ? ' - cpb' : ''};
        acc += vec4(da, db, da * da, db * db);
        ${texelStep('ca', 1, w)}
        ${texelStep('cb', 1, w)}
      }
      ${pairMomentsGlsl(center, 'acc.xy', 'acc.zw', 'vec2(cpa, cpb)', 'vec2(pa, pb)')}`);
}

/**
 * rowStatPartials for rows read from a packed x in place (Runner.packedRows:
 * texel (p / 2, s / 2) holds columns p, p + 1 of rows s, s + 1 for even s
 * and p): texel T = sp * nc + c reads chunk c of rows 2 sp, 2 sp + 1 from
 * texel row sp, four values per fetch (L even). The same output layout, and
 * per value the same arithmetic, as rowStatPartials; a pair past the last
 * row reads padding into moments no statistic reads.
 */
function rowStatPartialsPacked(v: View, g: Groups, center: boolean, tx: [number, number]): WebGLProgram {
  const S = v.S;
  const {n, L, nc} = g;
  return pairPartials(['x'], Math.ceil(S / 2), nc, `${FINITE_GLSL}
${texelReader('x', tx)}`, `int sp = T / ${nc};
      int c = T - sp * ${nc};
      ${pairChunkGlsl('sp', 'c', S, L, n, ['sa', 'sb', 'p0'])}
      ivec2 tc = ivec2(p0 / 2, sp);
      ${center ? `vec4 v0 = nm_x(ivec2(0, sp));
      vec4 c0 = nm_x(tc);
      float pa = nm_finite(v0.x) ? v0.x : 0.0;
      float pb = nm_finite(v0.z) ? v0.z : 0.0;
      float cpa = nm_finite(c0.x) ? c0.x : pa;
      float cpb = nm_finite(c0.z) ? c0.z : pb;
      vec4 cp4 = vec4(cpa, cpa, cpb, cpb);` : ''}
      ${walkSumsGlsl(L / 2, 2, center, 'tc.x += 1;', 'tc')}
      ${pairMomentsGlsl(center, 'vec2(a1.x + a1.y, a1.z + a1.w)', 'vec2(a2.x + a2.y, a2.z + a2.w)', 'vec2(cpa, cpb)', 'vec2(pa, pb)')}`);
}

/** GLSL: the partial chunk of statistic s, chunk c in rowStatPartials' texture. */
export const rowStatCol = (nc: number) => `
    int nm_rcol(int s, int c) { int sp = s / 2; return 2 * (sp * ${nc} + c) + (s - 2 * sp); }`;

interface Running {
  /** Statistics per parameter and, per parameter, the GLSL giving its e-th statistic. */
  perParam: number;
  statOfParam: string;
  momentum: number | null;
  count: number;
}

/**
 * The statistics of each parameter, when every parameter is constant within
 * each statistic (BatchNorm, InstanceNorm): `int nm_statOf(int p, int e)`, the
 * e-th of its `perParam` statistics; null for other layouts.
 */
export function statsOfParam(a: LayoutAttrs, v: View): {perParam: number; glsl: string} | null {
  if (v.s.some((d, k) => d > 1 && v.paramKept[k] && !v.statKept[k])) return null;
  const map = statToParam(a);
  const P = v.P;
  const lists: number[][] = Array.from({length: P}, () => []);
  map.forEach((p, s) => lists[p].push(s));
  const E = lists[0].length;
  if (!lists.every(l => l.length === E)) return null;
  // The statistics of parameter p are base(p) + k * step (an arithmetic progression in every plan where
  // parameters are constant within statistics: BatchNorm one each, InstanceNorm one per sample); checked here.
  const step = E > 1 ? lists[0][1] - lists[0][0] : 0;
  const base = lists.map(l => l[0]);
  const arith = lists.every(l => l.every((s, k) => s === l[0] + k * step));
  const baseStep = P > 1 ? base[1] - base[0] : 0;
  const linear = base.every((b, p) => b === base[0] + p * baseStep);
  if (!arith || !linear) return null;
  return {perParam: E, glsl: `int nm_statOf(int p, int e) { return ${base[0]} + p * ${baseStep} + e * ${step}; }`};
}

function runningOf(a: ForwardAttrs, v: View): Running {
  const sp = statsOfParam(a, v);
  if (!sp) throw new Error('fused webgl forward: unsupported running-statistics layout');
  return {perParam: sp.perParam, momentum: (a.momentum ?? null) as number | null, count: v.size / v.S, statOfParam: sp.glsl};
}

function statsProgram(v: View, enumGlsl: string, g: Groups, partials: string | null, a: ForwardAttrs,
                      running: Running | null, f16: boolean, col?: string): WebGLProgram {
  const S = v.S;
  const P = v.P;
  const names = ['x'];
  if (partials != null) names.push('part');
  if (running) names.push('rmean', 'rvar', 'nbt');
  const factor = running ? (running.momentum == null ? '1.0 / (getNbt(0) + 1.0)' : lit(running.momentum)) : '';
  const runningMain = running ? `
      int u = t - ${4 * S};
      if (u >= ${2 * P}) {
        setOutput(getNbt(0) + 1.0);
        return;
      }
      int which = u / ${P};
      int p = u - which * ${P};
      float acc = 0.0;
      for (int e = 0; e < ${running.perParam}; e++) {
        int s = nm_statOf(p, e);
        vec2 st = nm_stat(s);
        acc += which == 0 ? nm_pivot(s) + st.x : st.y * (float(${running.count}) / float(${running.count - 1}));
      }
      float batch = acc / ${lit(running.perParam)};
      float old = which == 0 ? getRmean(p) : getRvar(p);
      setOutput(old + (batch - old) * (${factor}));` : '';
  const flat = flatOutput(4 * S + (running ? 2 * P + 1 : 0));
  return {
    variableNames: names,
    outputShape: flat.outputShape,
    userCode: `${FINITE_GLSL}${hiGlsl(f16)}${enumGlsl}${chunkGlsl(g, a.center)}${statGlsl(g, partials, col)}
    ${running ? running.statOfParam : ''}
    void main() {
      ${flat.coords}
      if (t < ${4 * S}) {
        int r = t / ${S};
        int s = t - r * ${S};
        vec2 st = nm_stat(s);
        float m = st.x;
        float vv = st.y;
        float piv = nm_pivot(s);
        float hi = ${a.center ? 'nm_hi(piv + m)' : '0.0'};
        float res = hi;
        if (r == 1) res = ${a.center ? '(piv - hi) + m' : '0.0'};
        else if (r == 2) res = inversesqrt(vv + ${lit(a.epsilon)});
        else if (r == 3) res = vv;
        setOutput(res);
        return;
      }${runningMain}
    }`,
  };
}

/**
 * y = act(z), z = xhat * gamma + beta, from x and the statistics rows (hi, lo,
 * 1/std at `rows` of input `stats`), in `shape` (packed when it can); x read
 * directly at texel `texX` when given. The backward recomputes z with the same
 * formula (backward.ts, nm_dz).
 */
export function applyProgram(v: View, shape: number[], withGamma: boolean, withBeta: boolean,
                             rows: [number, number, number], center = true, act?: KernelActivation,
                             texX: [number, number] | null = null, packedX = false): WebGLProgram & {packedReads: string[]} {
  const names = ['x', 'stats'];
  if (withGamma) names.push('gamma');
  if (withBeta) names.push('beta');
  const param: string[] = [];
  if (withGamma) param.push('getGamma($p)');
  if (withBeta) param.push('getBeta($p)');
  const ew = elementwise(v, shape, {
    // Without centering the mean rows hold 0 (x - 0 - 0 is x): not read.
    stat: (center ? rows : [rows[2]]).map(r => `getStats(${r} + $s)`), param,
    elem: ['getX($i)'],
    direct: [texX ? ['x', texX] : null],
    packed: [packedX ? 'x' : null],
    value: (st, pa, [xv]) => {
      let y = center ? `((${xv} - ${st[0]}) - ${st[1]}) * ${st[2]}` : `${xv} * ${st[0]}`;
      if (withGamma) y = `${y} * ${pa[0]}`;
      if (withBeta) y = `${y} + ${pa[withGamma ? 1 : 0]}`;
      return actGlsl(act, y);
    },
  });
  return {variableNames: names, ...ew, userCode: `${act ? ACT_GLSL : ''}${ew.userCode}`};
}

/**
 * x + residual in `shape`: packed where the forward walks packed rows (`packed`:
 * rows of even length, a texel row per row pair; x and residual read with one
 * fetch per texel where they are packed alike), else unpacked (the forward's
 * programs read it next, and an unpacked texture is walked value by value).
 */
function sumProgram(v: View, shape: number[], packed: boolean, packedIn: [boolean, boolean]):
    WebGLProgram & {packedReads: string[]} {
  return {
    variableNames: ['x', 'residual'],
    ...elementwise(v, shape, {stat: [], param: [], elem: ['getX($i)', 'getResidual($i)'],
                              packed: [packedIn[0] ? 'x' : null, packedIn[1] ? 'residual' : null],
                              value: (_s, _p, [xv, rv]) => `${xv} + ${rv}`}, packed),
  };
}

/**
 * Whether a packed texture of `shape` holds rows of n values as Runner.packedRows
 * walks them (n its last axis, even; an even second-to-last axis or one batch).
 */
function packsRows(shape: number[], n: number): boolean {
  const C = shape[shape.length - 1];
  return shape.length >= 2 && C === n && C % 2 === 0 && rowsPaired(sizeOf(shape.slice(0, -2)), shape[shape.length - 2]);
}

export function forwardKernel({inputs, backend, attrs}: Args): tf.TensorInfo[] {
  const a = attrs as ForwardAttrs;
  const v = viewOf(a);
  const r = new Runner(backend as WebGLBackend);
  uploadPacked(r.backend, inputs.x, inputs.residual);
  // The residual epilogue: everything below normalizes x + residual (one more program), returned last.
  const n = v.size / v.S;
  const rowsOk = contiguousStats(v) && n > DIRECT_MAX;
  let sum: tf.TensorInfo | null = null;
  if (inputs.residual) {
    const shape = r.storedShape(inputs.x!);
    const {packedReads, ...prog} = sumProgram(v, shape, rowsOk && packsRows(shape, n),
                                              [r.packedAt(inputs.x!, shape), r.packedAt(inputs.residual, shape)]);
    const ins = [inputs.x!, inputs.residual];
    sum = Runner.reshaped(r.run(prog, ins, ins.filter((_, k) => packedReads.includes(['x', 'residual'][k]))), inputs.x!.shape);
  }
  const x = sum ?? inputs.x!;
  // Rows of a packed x read in place, four values per fetch, where each statistic is one row of its texture.
  const rowsPacked = rowsOk && r.packedRows(x, n);
  // Else statistics that are rectangles of whole texels of a packed x, walked four values per fetch.
  const C = r.packedGeometry(x)?.[2] ?? 0;
  const xRows = !rowsPacked && n > DIRECT_MAX && C > 0 && r.packedRows(x, C);
  const rect = xRows ? texelRects(v, C) : null;
  // Or single columns (BatchNorm, InstanceNorm channels-last): a texel column walks two statistics.
  const cols = xRows && !rect && columnGroups(v, C, v.statKept);
  const {glsl, groups} = groupGlsl(v, 'nm_g', v.statKept, rowsPacked || cols ? 2 : rect ? 4 : 1);
  const partials = groups.nc > 1;
  const running = inputs.runningMean ? runningOf(a, v) : null;
  try {
    const statInputs = [x];
    // The statistics program reads the packed partials itself where it can (no unpack program).
    let partGlsl: string | null = null;
    let col: string | undefined;
    const raw: tf.TensorInfo[] = [];
    if (partials) {
      // Contiguous statistics in an unpacked texture: chunks of two statistics per texel, walked (rowStatPartials).
      const pk = rowsPacked ? r.packedTexel(x) : null;
      const tx = pk ?? (contiguousStats(v) ? r.texel(x) : null);
      const part = pk ? r.runTemp(rowStatPartialsPacked(v, groups, a.center, pk), [x], [x])
        : rect ? r.runTemp(partialProgram(v, glsl, groups, a.center, rectChunkGlsl(groups, a.center, C, rect.Cs, r.packedTexel(x)!)), [x], [x])
        : cols ? r.runTemp(columnStatPartials(glsl, groups, a.center, C, r.packedTexel(x)!), [x], [x])
        : r.runTemp(tx ? rowStatPartials(v, groups, a.center, tx) : partialProgram(v, glsl, groups, a.center), [x]);
      statInputs.push(part);
      // Two statistics' chunks per texel (rowStatPartials' layout: nm_rcol) or partialProgram's layout.
      const paired = tx != null || cols;
      const lay = partialLayout(paired ? 2 * Math.ceil(v.S / 2) * groups.nc : groups.count * groups.nc);
      partGlsl = lay.fetch(r.packedTexel(part));
      if (partGlsl != null) raw.push(part);
      else partGlsl = `${lay.index}
    float nm_part(int m, int k) { return getPart(nm_pidx(m, k)); }`;
      if (paired) {
        partGlsl += rowStatCol(groups.nc);
        col = 'nm_rcol';
      }
    }
    if (running) statInputs.push(inputs.runningMean!, inputs.runningVariance!, inputs.numBatchesTracked!);
    const stats = r.runTemp(statsProgram(v, glsl, groups, partGlsl, a, running, f16Textures(), col), statInputs, raw);
    const applyInputs = [x, stats];
    if (inputs.gamma) applyInputs.push(inputs.gamma);
    if (inputs.beta) applyInputs.push(inputs.beta);
    const S = v.S;
    const yShape = r.storedShape(inputs.x!);
    const {packedReads, ...apply} = applyProgram(v, yShape, inputs.gamma != null, inputs.beta != null, [0, S, 2 * S], a.center,
                                                 a.activation, r.texel(x), r.packedAt(x, yShape));
    const y = r.run(apply, applyInputs, packedReads.length ? [x] : []);
    // mean = the hi row (float32 of the mean; float16 storage rounds it as the shader did), aux = rows 0-2.
    const outs = [Runner.reshaped(y, x.shape), r.slice(stats, 0, a.statShape), r.slice(stats, 3 * S, a.statShape),
                  r.slice(stats, 0, [3, S])];
    if (running) {
      outs.push(r.slice(stats, 4 * S, inputs.runningMean!.shape), r.slice(stats, 4 * S + v.P, inputs.runningVariance!.shape),
                r.slice(stats, 4 * S + 2 * v.P, [], 'int32'));
    }
    if (sum) outs.push(sum);
    return outs;
  } finally {
    r.done();
  }
}
