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
 * Sums accumulate in float32 in the shader; chunk results are stored as
 * means (bounded by the data, so float16 textures hold them).
 */
import * as tf from '@tensorflow/tfjs';
import {BackwardAttrs} from '../../kernels';
import {applyProgram, f16Textures, hiGlsl} from './forward';
import {FINITE_GLSL, Groups, View, elementwise, fineOf, flatOutput, groupGlsl, partialLayout, viewOf} from './layout';
import {Runner, WebGLBackend, WebGLProgram, lit} from './webgl_backend';

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
function chunkGlsl(S: number, gs: Groups, gp: Groups | null, withGamma: boolean): string {
  const gam = withGamma ? 'getGamma(e.z)' : '1.0';
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
        float g = getDy(e.x) * ${gam};
        acc += vec2(g, g * (((getX(e.x) - hi) - lo) * inv));
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
        float d = getDy(e.x);
        acc += vec2(d * nm_xhat(e.x, e.y), d);
      }
      return acc / float(len);
    }`;
}

/** Fine groups at least this long replace the parameters' own pass (see backwardKernel). */
const FINE_MIN = 16;

/**
 * The kernel: with an activation epilogue, first dz = dy * act'(z) (z
 * recomputed from x, the forward's aux, gamma and beta: one more program,
 * unpacked), then the backward of dz.
 */
export function backwardKernel({inputs, backend, attrs}: Args): tf.TensorInfo[] {
  const a = attrs as BackwardAttrs;
  if (!a.activation) return backwardOf({inputs, backend, attrs});
  const {dy, x, aux, gamma, beta} = inputs as Record<string, tf.TensorInfo>;
  const v = viewOf(a);
  const S = v.S;
  const r = new Runner(backend as WebGLBackend);
  try {
    const ins = [x, aux, ...(gamma ? [gamma] : []), ...(beta ? [beta] : []), dy];
    const dz = r.runTemp(applyProgram(v, r.storedShape(dy), gamma != null, beta != null, [0, S, 2 * S], a.center,
                                      a.activation, true), ins);
    const plain = {...a, activation: undefined};
    return backwardOf({inputs: {dy: Runner.reshaped(dz, dy.shape), x, aux, gamma}, backend, attrs: plain});
  } finally {
    r.done();
  }
}

function backwardOf({inputs, backend, attrs}: Args): tf.TensorInfo[] {
  const a = attrs as BackwardAttrs;
  const v: View = viewOf(a);
  const {dy, x, aux, gamma} = inputs as Record<string, tf.TensorInfo>;
  const withGamma = gamma != null;
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
  const sEnum = groupGlsl(v, 'nm_s', fine ? fineKept : v.statKept);
  const pEnum = params && !fine ? groupGlsl(v, 'nm_p', v.paramKept) : null;
  const gs = sEnum.groups;
  const gp = pEnum ? pEnum.groups : null;
  const partials = gs.nc > 1 || (gp != null && gp.nc > 1);
  const common = `${sEnum.glsl}${pEnum ? pEnum.glsl : ''}${xhatGlsl(S, a.center)}${chunkGlsl(S, gs, gp, withGamma && !fine)}`;
  const names = ['dy', 'x', 'aux'];
  if (withGamma) names.push('gamma');
  const ins = [dy, x, aux];
  if (withGamma) ins.push(gamma);
  // Partials: packed (partialLayout), both sums of each chunk: the statistics' chunks, then the
  // parameters', each group-major or chunk-major (nm_s_col, nm_p_col: neighbouring texels read
  // neighbouring data; walking a column alone, 768 values apart for LayerNorm, was a hot spot).
  const KS = gs.count * gs.nc;
  const K = KS + (gp ? P * gp.nc : 0);
  const lay = partialLayout(K);
  const r = new Runner(backend as WebGLBackend);
  try {
    let part: tf.TensorInfo | null = null;
    if (partials) {
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
    const statSum = (group: string, which: string) => combine(gs, 'nm_sc', group, which, c => `nm_s_col(${group}, ${c})`);
    // With float16 textures each per-statistic mean is stored as hi + lo (R = 2 rows), so that
    // g - mean(g) cancels as in float32 (a one-value group's dx is exactly 0).
    const f16 = f16Textures();
    const R = f16 ? 2 : 1;
    const flat = flatOutput(2 * R * S + (params ? 2 * P : 0));
    // The sums program reads the packed partials itself where it can (no unpack program).
    let partGlsl = '';
    const raw: tf.TensorInfo[] = [];
    if (part) {
      const fetched = lay.fetch(r.packedTexel(part));
      if (fetched != null) raw.push(part);
      partGlsl = fetched ?? `${lay.index}
    float nm_part(int m, int k) { return getPart(nm_pidx(m, k)); }`;
    }
    const sums = r.runTemp({
      variableNames: partials ? [...names, 'part'] : names,
      outputShape: flat.outputShape,
      userCode: `${FINITE_GLSL}${hiGlsl(f16)}${common}${partGlsl}${fine ? fine.ofStat.glsl + fine.ofParam.glsl : ''}
    void main() {
      ${flat.coords}
      float acc = 0.0;
      if (t < ${2 * R * S}) {
        int k = t / ${S};
        int s = t - k * ${S};
        int which = k / ${R};
        ${a.center ? '' : 'if (which == 0) { setOutput(0.0); return; }'}
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
    const dx = r.run({
      variableNames: [...names, 'sums'],
      ...elementwise(v, r.storedShape(dy), {
        // Without centering mean(g) and the mean rows are 0 (g - 0 is g, x - 0 - 0 is x): not read.
        stat: a.center ? [...stat, 'getAux($s)', `getAux(${S} + $s)`, `getAux(${2 * S} + $s)`]
                       : [stat[1], `getAux(${2 * S} + $s)`],
        param: withGamma ? ['getGamma($p)'] : [],
        elem: ['getDy($i)', 'getX($i)'],
        value: (st, [gam], [dyv, xv]) => {
          const g = gam ? `${dyv} * ${gam}` : dyv;
          if (!a.center) return `((${g} - ${xv} * ${st[1]} * ${st[0]}) * ${st[1]})`;
          const [c1, c2, hi, lo, inv] = st;
          return `((${g} - ${c1} - ((${xv} - ${hi}) - ${lo}) * ${inv} * ${c2}) * ${inv})`;
        },
      }),
    }, [...ins, sums]);
    const outs = [Runner.reshaped(dx, dy.shape)];
    if (a.withGamma) outs.push(r.slice(sums, 2 * R * S, gamma.shape));
    if (a.withBeta) outs.push(r.slice(sums, 2 * R * S + P, a.betaShape ?? a.paramShape));
    return outs;
  } finally {
    r.done();
  }
}
