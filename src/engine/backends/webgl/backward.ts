/**
 * TfjsNormBackward on WebGL, in at most three programs:
 *
 *   1. partials (only when a group gathers more than DIRECT_MAX values): a
 *      packed texture, per chunk of ~sqrt(n) values both of a group's sums
 *      in one pass, two chunks per texel. With fine groups (FINE_MIN: the
 *      groups of the statistics' and the parameters' kept axes together,
 *      e.g. GroupNorm's (sample, channel), BatchNorm's statistics) the
 *      chunks' means of dy and dy * xhat per fine group, from which the
 *      sums program weighs and adds the statistics' and the parameters'
 *      sums; else the means of g = dy * gamma and of g * xhat per statistic,
 *      and of dy * xhat and dy per parameter (xhat recomputed from x and the
 *      forward's aux).
 *   2. sums: one flat texture [mean(g) | mean(g * xhat) | dgamma | dbeta]
 *      (per statistic, per parameter; with float16 textures each mean as two
 *      rows, hi + lo) combining the chunks, or reducing the
 *      groups directly when they are short. dgamma and dbeta are shallow
 *      slices of it.
 *   3. dx = (g - mean(g) - xhat * mean(g * xhat)) * invStd, a packed output
 *      in dy's shape (four values per texel).
 *
 * The row layout (LayerNorm, RMSNorm: rows of P values, one parameter per
 * column) with rows longer than DIRECT_MAX has its own partials and sums
 * programs (rowPartials, rowSums): each x and dy value is read twice in the
 * partials (once for its row, once for its column), not three or more times.
 * The programs after a partials pass texelFetch its packed texels (WebGL2;
 * else tfjs unpacks it first).
 *
 * With an activation epilogue (attr activation) every program that reads dy
 * reads dz = dy * act'(z) instead, z recomputed from x, aux, gamma and beta
 * (nm_dz); the row layout's unpacked partials are not used then (its packed
 * ones, rowPartialsPacked, recompute dz per value).
 *
 * Sums accumulate in float32 in the shader; chunk results are stored as
 * means (bounded by the data, so float16 textures hold them).
 */
import * as tf from '@tensorflow/tfjs';
import {BackwardAttrs, KernelActivation} from '../../kernels';
import {ACT_GLSL, actGradGlsl} from './activation';
import {columnGroups, f16Textures, hiGlsl, rowStatCol} from './forward';
import {
  DIRECT_MAX, FINITE_GLSL, chunking, Groups, View, elementwise, fineOf, flatOutput, groupGlsl, packedTexelOf, pairChunkGlsl,
  pairPartials, partialFetch, partialLayout, texelAt, texelReader, texelStep, texelUv, viewOf,
} from './layout';
import {Runner, WebGLBackend, WebGLProgram, lit, uploadPacked} from './webgl_backend';

interface Args {
  inputs: Record<string, tf.TensorInfo | undefined>;
  backend: unknown;
  attrs?: unknown;
}

/** GLSL reading the aux rows: xhat of element (x offset, statistic). */
function xhatGlsl(S: number, center: boolean): string {
  // Without centering the mean rows hold 0: x - 0 - 0 is x, so they are not read.
  return `
    float nm_xhat(int xi, int s) {
      return ${center ? `((getX(xi) - getAux(s)) - getAux(${S} + s))` : 'getX(xi)'} * getAux(${2 * S} + s);
    }`;
}

/**
 * Chunk means, both of a group's sums in one pass: `vec2 nm_sc(int s, int c)`
 * over a statistic (g, g * xhat) and `vec2 nm_pc(int p, int c)` over a
 * parameter (dy * xhat, dy).
 */
function chunkGlsl(S: number, gs: Groups, gp: Groups | null, withGamma: boolean, act: boolean): string {
  const gam = withGamma ? 'getGamma(e.z)' : '1.0';
  // With an activation epilogue dy is dz = dy * act'(z), z recomputed from xhat (nm_dz).
  const dyOf = (xhat: string) => (act ? `nm_dz(getDy(e.x), ${xhat}, e.z)` : 'getDy(e.x)');
  const stat = `
    vec2 nm_sc(int s, int c) {
      ivec3 b = nm_s_base(s);
      int j0 = c * ${gs.L};
      int len = nm_s_len(c);
      vec2 acc = vec2(0.0);
      // A statistic's aux values are the same for all its elements: read once.
      float hi = getAux(b.y), lo = getAux(${S} + b.y), inv = getAux(${2 * S} + b.y);
      for (int t = 0; t < ${gs.L}; t++) {
        if (t >= len) break;
        ivec3 e = b + nm_s_off(j0 + t);
        float xh = ((getX(e.x) - hi) - lo) * inv;
        float g = ${dyOf('xh')} * ${gam};
        acc += vec2(g, g * xh);
      }
      return acc / float(len);
    }`;
  if (!gp) return stat;
  return `${stat}
    vec2 nm_pc(int p, int c) {
      ivec3 b = nm_p_base(p);
      int j0 = c * ${gp.L};
      int len = nm_p_len(c);
      vec2 acc = vec2(0.0);
      for (int t = 0; t < ${gp.L}; t++) {
        if (t >= len) break;
        ivec3 e = b + nm_p_off(j0 + t);
        float xh = nm_xhat(e.x, e.y);
        float d = ${dyOf('xh')};
        acc += vec2(d * xh, d);
      }
      return acc / float(len);
    }`;
}

/** Fine groups at least this long replace the parameters' own pass (see backwardKernel). */
const FINE_MIN = 16;

/**
 * GLSL `nm_dz(dy, xhat, p)`: dy * act'(z), z = xhat * gamma[p] + beta[p] as the
 * forward's y program computes it (the activation epilogue's dz, recomputed
 * wherever the backward reads dy instead of written by a program of its own).
 */
function dzGlsl(act: KernelActivation, withGamma: boolean, withBeta: boolean): string {
  return `${ACT_GLSL}
    vec2 nm_gb(int p) { return vec2(${withGamma ? 'getGamma(p)' : '1.0'}, ${withBeta ? 'getBeta(p)' : '0.0'}); }
    float nm_dzp(float dy, float xh, vec2 gb) { return ${actGradGlsl(act, 'dy', 'xh * gb.x + gb.y')}; }
    float nm_dz(float dy, float xh, int p) { return nm_dzp(dy, xh, nm_gb(p)); }`;
}

/**
 * The row layout: every statistic a run of P consecutive values of x (its
 * kept axes lead), every parameter one position in the run (its kept axes
 * trail): LayerNorm and RMSNorm with elementwise parameters. Element (s, p)
 * is at offset s * P + p.
 */
function rowLayout(v: View): boolean {
  let seenParam = false;
  for (let d = 0; d < 4; d++) {
    if (v.s[d] === 1) continue;
    if (v.statKept[d] === v.paramKept[d]) return false;
    if (v.paramKept[d]) seenParam = true;
    else if (seenParam) return false;
  }
  return v.S * v.P === v.size;
}

/**
 * The row layout's partials, one packed program over x and dy read with
 * texture() at walked texel coordinates (no division per value):
 *
 * - statistic texels, one per (row pair, chunk of columns: chunking): the
 *   chunk's means of g = dy * gamma and g * xhat for both rows (each gamma
 *   value read once for the two);
 * - parameter texels, one per (column pair, chunk of ~sqrt(S) rows): the
 *   chunk's means of dy * xhat and dy for both columns (each row's aux values
 *   read once for the two).
 *
 * As chunks of partialFetch: texel T holds chunks 2T, 2T + 1, (moment 0,
 * moment 1); statistic row s, column chunk c is chunk 2 (s/2 * ncs + c) + s % 2,
 * parameter p, row chunk c chunk 2 (TS + c * J + p/2) + p % 2. The sums
 * program combines them (one texelFetch per chunk).
 */
interface RowPlan {
  /** Columns per statistic chunk, chunks per row, row pairs, statistic texels. */
  Lc: number; ncs: number; SP: number; TS: number;
  /** Rows per parameter chunk, row chunks, column pairs. */
  Lr: number; nr: number; J: number;
  W: number; H: number;
}

/** `even`: chunks of even lengths (rowPartialsPacked reads two rows and two columns per texel). */
function rowPlan(S: number, P: number, even = false): RowPlan {
  const {L: Lc, nc: ncs} = chunking(P, Math.ceil(S / 2), even ? 2 : 1);
  const SP = Math.ceil(S / 2);
  const Lr0 = Math.ceil(Math.sqrt(S));
  const Lr = even ? Lr0 + (Lr0 % 2) : Lr0;
  const nr = Math.ceil(S / Lr);
  const J = Math.ceil(P / 2);
  const TS = SP * ncs;
  const T = TS + nr * J;
  const W = Math.max(1, Math.ceil(Math.sqrt(T)));
  return {Lc, ncs, SP, TS, Lr, nr, J, W, H: Math.ceil(T / W)};
}

/** GLSL: xhat of value `xv` from the aux values read by auxGlsl with suffix r (x * invStd without centering). */
const xhatOf = (center: boolean) => (xv: string, r: string) =>
  (center ? `((${xv} - hi${r}) - lo${r}) * inv${r}` : `${xv} * inv${r}`);

/** GLSL reading statistic s's aux values (invStd; mean hi, lo when centering) into inv/hi/lo + suffix r. */
const auxGlsl = (S: number, center: boolean) => (r: string, s: string) => `float inv${r} = getAux(${2 * S} + ${s});` +
  (center ? ` float hi${r} = getAux(${s}); float lo${r} = getAux(${S} + ${s});` : '');

/**
 * GLSL opening both row-partials programs' statistic texel T: the row pair
 * (sa, sb), the column chunk's first column p0 and length len, and both rows'
 * aux values (auxGlsl, suffixes a and b).
 */
function rowStatItem(pl: RowPlan, S: number, P: number, center: boolean): string {
  const auxOf = auxGlsl(S, center);
  return `int sp = T / ${pl.ncs};
      int c = T - sp * ${pl.ncs};
      ${pairChunkGlsl('sp', 'c', S, pl.Lc, P, ['sa', 'sb', 'p0'])}
      ${auxOf('a', 'sa')}
      ${auxOf('b', 'sb')}`;
}

/** GLSL: the main of both row-partials programs, statistic texels then parameter texels (nm_stat, nm_param). */
const rowMainGlsl = (pl: RowPlan) => `
    void main() {
      ivec2 rc = getOutputCoords();
      int T = (rc.x / 2) * ${pl.W} + rc.y / 2;
      if (T < ${pl.TS}) setOutput(nm_stat(T));
      else if (T < ${pl.TS + pl.nr * pl.J}) setOutput(nm_param(T - ${pl.TS}));
      else setOutput(vec4(0.0));
    }`;

function rowPartials(v: View, pl: RowPlan, center: boolean, withGamma: boolean, tx: [number, number],
                     td: [number, number], tg: [number, number] | null): WebGLProgram {
  const S = v.S;
  const P = v.P;
  const wx = tx[1];
  const wd = td[1];
  const same = tx[0] === td[0] && wx === wd;
  const xh = xhatOf(center);
  const auxOf = auxGlsl(S, center);
  // Two walks (rows a, b or columns a, b) over x and dy; dy shares x's coordinates when the textures have the same shape.
  const coords = (o: string, name: string) => `ivec2 cx${name} = ${texelAt(o, wx)};${same ? '' : ` ivec2 cd${name} = ${texelAt(o, wd)};`}`;
  const cd = (name: string) => (same ? `cx${name}` : `cd${name}`);
  const step = (name: string, d: number) => `${texelStep(`cx${name}`, d, wx)}${same ? '' : ` ${texelStep(`cd${name}`, d, wd)}`}`;
  // texture() at the texel's centre: on SwiftShader faster than texelFetch of the same texel.
  const fetch = (tex: string, c: string) => `texture(${tex}, ${texelUv(c, tex === 'x' ? tx : td)}).r`;
  const gam = tg ? `texture(gamma, ${texelUv('cg', tg)}).r` : withGamma ? 'getGamma(p)' : '1.0';
  return {
    variableNames: withGamma ? ['dy', 'x', 'aux', 'gamma'] : ['dy', 'x', 'aux'],
    outputShape: [2 * pl.H, 2 * pl.W],
    packedOutput: true,
    userCode: `
    vec4 nm_stat(int T) {
      ${rowStatItem(pl, S, P, center)}
      ${coords(`sa * ${P} + p0`, 'a')}
      ${coords(`sb * ${P} + p0`, 'b')}
      ${tg ? `ivec2 cg = ${texelAt('p0', tg[1])};` : ''}
      vec4 acc = vec4(0.0);
      for (int t = 0; t < ${pl.Lc}; t++) {
        if (t >= len) break;
        ${tg ? '' : 'int p = p0 + t;'}
        float gm = ${gam};
        float ga = ${fetch('dy', cd('a'))} * gm;
        float gb = ${fetch('dy', cd('b'))} * gm;
        acc += vec4(ga, gb, ga * (${xh(fetch('x', 'cxa'), 'a')}), gb * (${xh(fetch('x', 'cxb'), 'b')}));
        ${step('a', 1)}
        ${step('b', 1)}
        ${tg ? texelStep('cg', 1, tg[1]) : ''}
      }
      return acc / float(len);
    }
    vec4 nm_param(int q) {
      int c = q / ${pl.J};
      int j = q - c * ${pl.J};
      ${pairChunkGlsl('j', 'c', P, pl.Lr, S, ['pa', 'pb', 'r0'])}
      ${coords(`r0 * ${P} + pa`, 'a')}
      ${coords(`r0 * ${P} + pb`, 'b')}
      vec4 acc = vec4(0.0);
      for (int t = 0; t < ${pl.Lr}; t++) {
        if (t >= len) break;
        int s = r0 + t;
        ${auxOf('', 's')}
        float da = ${fetch('dy', cd('a'))};
        float db = ${fetch('dy', cd('b'))};
        acc += vec4(da * (${xh(fetch('x', 'cxa'), '')}), db * (${xh(fetch('x', 'cxb'), '')}), da, db);
        ${step('a', P)}
        ${step('b', P)}
      }
      return acc / float(len);
    }${rowMainGlsl(pl)}`,
  };
}

/** Where rowPartialsPacked reads x or dy: a packed texture (Runner.packedRows) or an unpacked one (Runner.texel). */
interface RowSource {
  packed: boolean;
  tex: [number, number];
}

/**
 * rowPartials for x and dy read in place from packed textures of the same
 * layout (Runner.packedRows: texel (p / 2, s / 2) holds columns p, p + 1 of
 * rows s, s + 1 for even s and p), four values of each per fetch (one of
 * them may be unpacked, P even: its four values read apart): a
 * statistic texel walks its row pair's texel row, a parameter texel its
 * column pair's texel column, two rows per step (pl from rowPlan's `even`).
 * The same output layout as rowPartials; moments of a row or column past
 * the last (padding) are never read. With an activation epilogue, dy is dz
 * (nm_dz) throughout.
 */
function rowPartialsPacked(v: View, pl: RowPlan, center: boolean, withGamma: boolean, src: {x: RowSource; dy: RowSource},
                           tg: [number, number] | null, act?: KernelActivation, withBeta = false): WebGLProgram {
  const S = v.S;
  const P = v.P;
  // The four values of texel c: a packed texture's texel, or an unpacked texture's values at rows 2 c.y,
  // 2 c.y + 1, columns 2 c.x, 2 c.x + 1 (a row past the last reads clamped garbage no moment keeps).
  const block = (name: string, at: RowSource) => {
    if (at.packed) return texelReader(name, at.tex);
    const w = at.tex[1];
    const f = (e: string) => `texture(${name}, ${texelUv(e, at.tex)}).r`;
    // With an even width an even offset's right neighbour is in the same texel row.
    const next = (e: string) => (w % 2 === 0 ? `${e} + ivec2(1, 0)` : texelAt(`o${e} + 1`, w));
    return `vec4 nm_${name}(ivec2 c) {
      int oa = c.y * ${2 * P} + 2 * c.x;
      int ob = oa + ${P};
      ivec2 a = ${texelAt('oa', w)};
      ivec2 b = ${texelAt('ob', w)};
      return vec4(${f('a')}, ${f(next('a'))}, ${f('b')}, ${f(next('b'))});
    }`;
  };
  const xh = xhatOf(center);
  const auxOf = auxGlsl(S, center);
  // gamma of columns p, p + 1: walked texel reads of its unpacked texture, or its getter.
  const gam = tg ? `vec2(texture(gamma, ${texelUv('cg', tg)}).r, texture(gamma, ${texelUv('cg1', tg)}).r)`
    : withGamma ? 'vec2(getGamma(p), getGamma(p + 1))' : 'vec2(1.0)';
  // With an activation epilogue dy is dz = dy * act'(z) (nm_dz, z from xhat, gamma and beta of column p).
  // (gamma, beta) of a column read once per step (statistic texels) or per walk (parameter texels): nm_gb.
  const dz = (d: string, xhv: string, gb: string) => (act ? `nm_dzp(${d}, ${xhv}, ${gb})` : d);
  const names = ['dy', 'x', 'aux'];
  if (withGamma) names.push('gamma');
  if (act && withBeta) names.push('beta');
  return {
    variableNames: names,
    outputShape: [2 * pl.H, 2 * pl.W],
    packedOutput: true,
    userCode: `${act ? dzGlsl(act, withGamma, withBeta) : ''}
    ${block('dy', src.dy)}
    ${block('x', src.x)}
    vec4 nm_stat(int T) {
      ${rowStatItem(pl, S, P, center)}
      ivec2 tc = ivec2(p0 / 2, sp);
      ${tg ? `ivec2 cg = ${texelAt('p0', tg[1])}; ivec2 cg1 = ${texelAt('p0 + 1', tg[1])};` : ''}
      vec4 acc = vec4(0.0);
      for (int t = 0; t < ${pl.Lc / 2}; t++) {
        if (2 * t >= len) break;
        ${tg && !act ? '' : 'int p = p0 + 2 * t;'}
        vec2 gm = ${gam};
        vec4 xv = nm_x(tc);
        vec2 xa = vec2(${xh('xv.x', 'a')}, ${xh('xv.y', 'a')});
        vec2 xb = vec2(${xh('xv.z', 'b')}, ${xh('xv.w', 'b')});
        vec4 d = nm_dy(tc);
        ${act ? `vec2 gb0 = nm_gb(p);
        vec2 gb1 = nm_gb(p + 1);
        d = vec4(${dz('d.x', 'xa.x', 'gb0')}, ${dz('d.y', 'xa.y', 'gb1')}, ${dz('d.z', 'xb.x', 'gb0')}, ${dz('d.w', 'xb.y', 'gb1')});` : ''}
        vec4 g = d * gm.xyxy;
        acc += vec4(g.x + g.y, g.z + g.w, dot(g.xy, xa), dot(g.zw, xb));
        tc.x += 1;
        ${tg ? `${texelStep('cg', 2, tg[1])} ${texelStep('cg1', 2, tg[1])}` : ''}
      }
      return acc / float(len);
    }
    vec4 nm_param(int q) {
      int c = q / ${pl.J};
      int j = q - c * ${pl.J};
      ${pairChunkGlsl('j', 'c', P, pl.Lr, S, ['pa', 'pb', 'r0'])}
      ivec2 tc = ivec2(j, r0 / 2);
      ${act ? 'vec2 gb0 = nm_gb(2 * j); vec2 gb1 = nm_gb(2 * j + 1);' : ''}
      vec4 acc = vec4(0.0);
      for (int t = 0; t < ${pl.Lr / 2}; t++) {
        if (2 * t >= len) break;
        int s = r0 + 2 * t;
        ${auxOf('a', 's')}
        vec4 d = nm_dy(tc);
        vec4 xv = nm_x(tc);
        vec4 xhv = vec4(${xh('xv.x', 'a')}, ${xh('xv.y', 'a')}, 0.0, 0.0);
        if (2 * t + 1 < len) {
          ${auxOf('b', 's + 1')}
          xhv.zw = vec2(${xh('xv.z', 'b')}, ${xh('xv.w', 'b')});
        } else {
          d.zw = vec2(0.0);
        }
        ${act ? `d = vec4(${dz('d.x', 'xhv.x', 'gb0')}, ${dz('d.y', 'xhv.y', 'gb1')}, ${dz('d.z', 'xhv.z', 'gb0')}, ${dz('d.w', 'xhv.w', 'gb1')});` : ''}
        acc += vec4(d.x * xhv.x + d.z * xhv.z, d.y * xhv.y + d.w * xhv.w, d.x + d.z, d.y + d.w);
        tc.y += 1;
      }
      return acc / float(len);
    }${rowMainGlsl(pl)}`,
  };
}

/**
 * The backward's chunk means for column-pair groups (forward.ts
 * columnGroups: fine groups, or statistics without parameters, channels-last)
 * of packed x and dy read in place (physical textures tx, td): texel T = p nc
 * + c holds chunk c of groups 2p, 2p + 1 as (mean dy a, mean dy b, mean
 * dy xhat a, mean dy xhat b), the moments of nm_sc (gamma not applied: fine
 * groups weigh it in the sums program), in rowStatPartials' layout (group o,
 * chunk c is chunk nm_rcol(o, c)). With an activation epilogue dy is dz
 * (dz: dzGlsl's text).
 */
function columnPartials(names: string[], S: number, g: Groups, enumGlsl: string, center: boolean, C: number,
                        tx: [number, number], td: [number, number], dz: string | null): WebGLProgram {
  const {name, L, nc} = g;
  const auxOf = auxGlsl(S, center);
  const xh = xhatOf(center);
  return pairPartials(names, Math.ceil(g.count / 2), nc, `${dz ?? ''}${enumGlsl}${texelReader('dy', td)}${texelReader('x', tx)}${packedTexelOf(C)}`, `int p = T / ${nc};
      int c = T - p * ${nc};
      ivec3 ba = ${name}_base(2 * p);
      ivec3 bb = ${name}_base(2 * p + 1);
      ivec2 t = nm_texelOf(ba.x) + ivec2(0, c * ${L / 2});
      int len = ${name}_len(c);
      ${auxOf('a', 'ba.y')}
      ${auxOf('b', 'bb.y')}
      ${dz ? 'vec2 gba = nm_gb(ba.z); vec2 gbb = nm_gb(bb.z);' : ''}
      vec4 acc = vec4(0.0);
      for (int q = 0; q < ${L / 2}; q++) {
        if (2 * q >= len) break;
        vec4 xv = nm_x(t);
        vec4 d = nm_dy(t);
        vec4 xh = vec4(${xh('xv.x', 'a')}, ${xh('xv.y', 'b')}, ${xh('xv.z', 'a')}, ${xh('xv.w', 'b')});
        ${dz ? 'd = vec4(nm_dzp(d.x, xh.x, gba), nm_dzp(d.y, xh.y, gbb), nm_dzp(d.z, xh.z, gba), nm_dzp(d.w, xh.w, gbb));' : ''}
        acc += vec4(d.x + d.z, d.y + d.w, d.x * xh.x + d.z * xh.z, d.y * xh.y + d.w * xh.w);
        t.y += 1;
      }
      setOutput(acc / float(len));`);
}

/**
 * GLSL opening both sums programs' main (flatOutput `coords`) over the sums
 * texture [mean(g) | mean(g * xhat) | dgamma | dbeta], each mean R rows of S
 * (hi + lo with float16): for t in the means, the statistic s, the row k and
 * which mean (0: g, 1: g * xhat; without centering mean(g) is 0).
 */
function sumsHead(coords: string, S: number, R: number, center: boolean): string {
  return `${coords}
      float acc = 0.0;
      if (t < ${2 * R * S}) {
        int k = t / ${S};
        int s = t - k * ${S};
        int which = k / ${R};
        ${center ? '' : 'if (which == 0) { setOutput(0.0); return; }'}`;
}

/**
 * The row layout's sums texture (as backwardOf's: [mean(g) | mean(g * xhat)
 * | dgamma | dbeta], each per-statistic mean as R rows, hi + lo with float16
 * textures) from its partials alone.
 */
function rowSums(v: View, pl: RowPlan, center: boolean, R: number, f16: boolean, partGlsl: string): WebGLProgram {
  const S = v.S;
  const P = v.P;
  const flat = flatOutput(2 * R * S + 2 * P);
  const lenOf = (c: string, L: number, n: number) => `float(${n} - ${c} * ${L} < ${L} ? ${n} - ${c} * ${L} : ${L})`;
  return {
    variableNames: ['part'],
    outputShape: flat.outputShape,
    userCode: `${FINITE_GLSL}${hiGlsl(f16)}${partGlsl}
    void main() {
      ${sumsHead(flat.coords, S, R, center)}
        int sp = s / 2;
        int k0 = 2 * sp * ${pl.ncs} + (s - 2 * sp);
        for (int c = 0; c < ${pl.ncs}; c++) acc += ${lenOf('c', pl.Lc, P)} * nm_part(which, k0 + 2 * c);
        float mean = acc / ${lit(P)};
        float hi = nm_hi(mean);
        setOutput(k - which * ${R} == 0 ? hi : mean - hi);
        return;
      }
      int q = t - ${2 * R * S};
      int which = q / ${P};
      int p = q - which * ${P};
      int j = p / 2;
      int k0 = 2 * (${pl.TS} + j) + (p - 2 * j);
      // dgamma: moment 0 (dy * xhat), dbeta: moment 1 (dy); sums, so each chunk mean times its rows.
      for (int c = 0; c < ${pl.nr}; c++) acc += ${lenOf('c', pl.Lr, S)} * nm_part(which, k0 + ${2 * pl.J} * c);
      setOutput(acc);
    }`,
  };
}

/** The kernel; with an activation epilogue, dz = dy * act'(z) recomputed inside each program that reads dy. */
export function backwardKernel({inputs, backend, attrs}: Args): tf.TensorInfo[] {
  const a = attrs as BackwardAttrs;
  const v: View = viewOf(a);
  const {dy, x, aux, gamma} = inputs as Record<string, tf.TensorInfo>;
  uploadPacked(backend as WebGLBackend, dy, x);
  const withGamma = gamma != null;
  const act = a.activation;
  // z's beta (the backward takes it with an activation only).
  const beta = act ? inputs.beta : undefined;
  const params = a.withGamma || a.withBeta;
  const S = v.S;
  const P = v.P;
  // With parameters, and groups of the statistics' and the parameters' kept axes together ("fine
  // groups": GroupNorm (sample, channel), BatchNorm / InstanceNorm the statistics themselves) longer than
  // FINE_MIN values, one pass sums dy and dy * xhat per fine group (gamma and the statistic are constant
  // in one): the statistics' sums of g and g * xhat are gamma-weighted sums of those, the parameters'
  // dbeta and dgamma plain sums. Else the statistics and the parameters are reduced apart.
  const fineKept = v.statKept.map((k, d) => k || v.paramKept[d]);
  const fineN = v.s.reduce((acc, d, k) => (fineKept[k] ? acc : acc * d), 1);
  const fine = params && fineN >= FINE_MIN
    ? {ofStat: fineOf(v, 'nm_fOfStat', fineKept, v.statKept, v.ss), ofParam: fineOf(v, 'nm_fOfParam', fineKept, v.paramKept, v.ps)}
    : null;
  const r = new Runner(backend as WebGLBackend);
  // Groups reduced alone (fine groups, or statistics without parameters) that are single columns of packed x
  // and dy (channels-last): walked in place, a texel column giving two values of each of two groups.
  const sKeep = fine ? fineKept : v.statKept;
  const Cx = r.packedGeometry(x)?.[2] ?? 0;
  const colWalk = (fine || !params) && Cx > 0 && v.s.reduce((acc, d, k) => (sKeep[k] ? acc : acc * d), 1) > DIRECT_MAX &&
    r.packedRows(x, Cx) && r.packedRows(dy, Cx) && columnGroups(v, Cx, sKeep);
  const sEnum = groupGlsl(v, 'nm_s', sKeep, colWalk ? 2 : 1);
  const pEnum = params && !fine ? groupGlsl(v, 'nm_p', v.paramKept) : null;
  const gs = sEnum.groups;
  const gp = pEnum ? pEnum.groups : null;
  const partials = gs.nc > 1 || (gp != null && gp.nc > 1);
  const common = `${act ? dzGlsl(act, withGamma, beta != null) : ''}${sEnum.glsl}${pEnum ? pEnum.glsl : ''}` +
                 `${xhatGlsl(S, a.center)}${chunkGlsl(S, gs, gp, withGamma && !fine, act != null)}`;
  const names = ['dy', 'x', 'aux'];
  if (withGamma) names.push('gamma');
  if (beta) names.push('beta');
  const ins = [dy, x, aux];
  if (withGamma) ins.push(gamma);
  if (beta) ins.push(beta);
  // Partials: packed (partialLayout), both sums of each chunk: the statistics' chunks, then the
  // parameters', each group-major or chunk-major (nm_s_col, nm_p_col: neighbouring texels read
  // neighbouring data; walking a column alone, 768 values apart for LayerNorm, was a hot spot).
  const KS = gs.count * gs.nc;
  const K = KS + (gp ? P * gp.nc : 0);
  const lay = partialLayout(K);
  try {
    const f16 = f16Textures();
    const R = f16 ? 2 : 1;
    // The row layout (LayerNorm, RMSNorm) with long rows: its own partials and sums (rowPartials), where
    // x, dy (and gamma) are unpacked textures read by texel coordinates (Runner.texel). Not with an
    // activation epilogue (rowPartials reads dy itself, not dz): those take the partials below.
    const rows = params && !fine && v.size / S > DIRECT_MAX && rowLayout(v);
    // Packed x and dy (a model's usual inputs) read in place, four values of each per fetch (also with an
    // activation epilogue: dz recomputed per value).
    // One of them packed is enough (a model's first layer: x an upload, dy a packed op's output; or the
    // packed sum of AddLayerNorm and an uploaded dy): the other, unpacked, is read four values apart.
    const source = (t: tf.TensorInfo): RowSource | null => {
      if (r.packedRows(t, P)) return {packed: true, tex: r.packedTexel(t)!};
      const tex = P % 2 === 0 ? r.texel(t) : null;
      return tex ? {packed: false, tex} : null;
    };
    const src = rows ? {x: source(x), dy: source(dy)} : null;
    const pk = src && src.x && src.dy && (src.x.packed || src.dy.packed) ? {x: src.x, dy: src.dy} : null;
    const tx = rows && !act && !pk ? r.texel(x) : null;
    const td = tx ? r.texel(dy) : null;
    let sums: tf.TensorInfo | null = null;
    if (pk) {
      const pl = rowPlan(S, P, true);
      const tg = withGamma ? r.texel(gamma) : null;
      const raw = [x, dy].filter((_, k) => [pk.x, pk.dy][k].packed);
      const part = r.runTemp(rowPartialsPacked(v, pl, a.center, withGamma, pk, tg, act, beta != null), ins, raw);
      const fetched = partialFetch(pl.W, pl.H, r.packedTexel(part));
      if (fetched == null) throw new Error(`fused webgl backward: partials texture of an unexpected size. Received: ${r.packedTexel(part)}`);
      sums = r.runTemp(rowSums(v, pl, a.center, R, f16, fetched), [part], [part]);
    } else if (tx && td) {
      const pl = rowPlan(S, P);
      const tg = withGamma ? r.texel(gamma) : null;
      const part = r.runTemp(rowPartials(v, pl, a.center, withGamma, tx, td, tg), ins);
      const fetched = partialFetch(pl.W, pl.H, r.packedTexel(part));
      if (fetched == null) throw new Error(`fused webgl backward: partials texture of an unexpected size. Received: ${r.packedTexel(part)}`);
      sums = r.runTemp(rowSums(v, pl, a.center, R, f16, fetched), [part], [part]);
    }
    let part: tf.TensorInfo | null = null;
    if (colWalk) {
      part = r.runTemp(columnPartials(names, S, gs, sEnum.glsl, a.center, Cx, r.packedTexel(x)!, r.packedTexel(dy)!,
                                      act ? dzGlsl(act, withGamma, beta != null) : null), ins, [x, dy]);
    } else if (partials && !sums) {
      part = r.runTemp({
        variableNames: names,
        outputShape: lay.outputShape,
        packedOutput: true,
        userCode: `${common}
    vec2 nm_k(int k) {
      if (k < ${KS}) {
        ivec2 oc = nm_s_oc(k);
        return nm_sc(oc.x, oc.y);
      }
      ${gp ? `ivec2 oc = nm_p_oc(k - ${KS});
      return nm_pc(oc.x, oc.y);` : 'return vec2(0.0);'}
    }${lay.main('nm_k')}`,
      } as WebGLProgram, ins);
    }
    // Sum of a group's chunk means times their lengths (from the partials, or computed here): `which`
    // picks the moment, `col` the chunk's column.
    const combine = (g: Groups, fn: string, group: string, which: string, col: (c: string) => string) => (partials ? `
        for (int c = 0; c < ${g.nc}; c++) acc += float(${g.name}_len(c)) * nm_part(${which}, ${col('c')});` : `
        { vec2 m = ${fn}(${group}, 0); acc += ((${which}) == 0 ? m.x : m.y) * ${lit(g.n)}; }`);
    const statSum = (group: string, which: string) => combine(gs, 'nm_sc', group, which,
                                                              c => `${colWalk ? 'nm_rcol' : 'nm_s_col'}(${group}, ${c})`);
    // With float16 textures each per-statistic mean is stored as hi + lo (R = 2 rows), so that
    // g - mean(g) cancels as in float32 (a one-value group's dx is exactly 0).
    const flat = flatOutput(2 * R * S + (params ? 2 * P : 0));
    // The sums program reads the packed partials itself where it can (no unpack program).
    let partGlsl = '';
    const raw: tf.TensorInfo[] = [];
    if (part) {
      const fetched = lay.fetch(r.packedTexel(part));
      if (fetched != null) raw.push(part);
      partGlsl = fetched ?? `${lay.index}
    float nm_part(int m, int k) { return getPart(nm_pidx(m, k)); }`;
      if (colWalk) partGlsl += rowStatCol(gs.nc);
    }
    if (!sums) sums = r.runTemp({
      variableNames: partials ? [...names, 'part'] : names,
      outputShape: flat.outputShape,
      userCode: `${FINITE_GLSL}${hiGlsl(f16)}${common}${partGlsl}${fine ? fine.ofStat.glsl + fine.ofParam.glsl : ''}
    void main() {
      ${sumsHead(flat.coords, S, R, a.center)}
        ${fine ? `for (int e = 0; e < ${fine.ofStat.count}; e++) {
          int o = nm_fOfStat(s, e);
          float part = acc;
          acc = 0.0;
          ${statSum('o', 'which')}
          acc = part + acc${withGamma ? ' * getGamma(nm_s_base(o).z)' : ''};
        }` : statSum('s', 'which')}
        float mean = acc / ${lit(v.size / S)};
        float hi = nm_hi(mean);
        setOutput(k - which * ${R} == 0 ? hi : mean - hi);
        return;
      }
      ${gp ? `
      int q = t - ${2 * R * S};
      int which = q / ${P};
      int p = q - which * ${P};
      ${combine(gp, 'nm_pc', 'p', 'which', c => `${KS} + nm_p_col(p, ${c})`)}
      setOutput(acc);` : fine ? `
      int q = t - ${2 * R * S};
      int which = q / ${P};
      int p = q - which * ${P};
      // dgamma sums the fine groups' sums of dy * xhat (moment 1), dbeta of dy (moment 0).
      for (int e = 0; e < ${fine.ofParam.count}; e++) {
        int o = nm_fOfParam(p, e);
        ${statSum('o', '1 - which')}
      }
      setOutput(acc);` : ''}
    }`,
    }, partials ? [...ins, part!] : ins, raw);
    const stat = f16 ? [`getSums($s) + getSums(${S} + $s)`, `getSums(${2 * S} + $s) + getSums(${3 * S} + $s)`]
                     : ['getSums($s)', `getSums(${S} + $s)`];
    const dxShape = r.storedShape(dy);
    const ew = elementwise(v, dxShape, {
      // Without centering mean(g) and the mean rows are 0 (g - 0 is g, x - 0 - 0 is x): not read.
      stat: a.center ? [...stat, 'getAux($s)', `getAux(${S} + $s)`, `getAux(${2 * S} + $s)`]
                     : [stat[1], `getAux(${2 * S} + $s)`],
      param: [...(withGamma ? ['getGamma($p)'] : []), ...(beta ? ['getBeta($p)'] : [])],
      elem: ['getDy($i)', 'getX($i)'],
      direct: [(t => (t ? ['dy', t] : null))(r.texel(dy)), (t => (t ? ['x', t] : null))(r.texel(x))],
      packed: [r.packedAt(dy, dxShape) ? 'dy' : null, r.packedAt(x, dxShape) ? 'x' : null],
      value: (st, pa, [dyv, xv]) => {
        const gam = withGamma ? pa[0] : null;
        const xhat = a.center ? `(((${xv} - ${st[2]}) - ${st[3]}) * ${st[4]})` : `(${xv} * ${st[1]})`;
        // dz = dy * act'(z), z = xhat * gamma + beta (the forward's formula).
        const d = act ? actGradGlsl(act, dyv, `${xhat}${gam ? ` * ${gam}` : ''}${beta ? ` + ${pa[pa.length - 1]}` : ''}`)
                      : dyv;
        const g = gam ? `${d} * ${gam}` : d;
        if (!a.center) return `((${g} - ${xhat} * ${st[0]}) * ${st[1]})`;
        const [c1, c2, , , inv] = st;
        return `((${g} - ${c1} - ${xhat} * ${c2}) * ${inv})`;
      },
    });
    const {packedReads, ...dxProgram} = ew;
    const dx = r.run({
      variableNames: [...names, 'sums'], ...dxProgram, userCode: `${act ? ACT_GLSL : ''}${ew.userCode}`,
    }, [...ins, sums], [dy, x].filter((_, k) => packedReads.includes(['dy', 'x'][k])));
    const outs = [Runner.reshaped(dx, dy.shape)];
    if (a.withGamma) outs.push(r.slice(sums, 2 * R * S, gamma.shape));
    if (a.withBeta) outs.push(r.slice(sums, 2 * R * S + P, a.betaShape ?? a.paramShape));
    return outs;
  } finally {
    r.done();
  }
}
