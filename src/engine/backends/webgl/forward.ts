/**
 * TfjsNormForward on WebGL: batch statistics, the normalized output and the
 * running statistics in at most three programs.
 *
 *   1. partials (only when a statistic covers more than DIRECT_MAX values):
 *      one texel per (statistic, chunk of ~sqrt(n) values, moment): the
 *      chunk's mean of (x - pivot), and its mean of (x - pivot - chunk mean)^2
 *      (shifted two-pass within the chunk; pivot = the statistic's first value
 *      if finite). Means, not sums, so float16 storage holds them.
 *   2. statistics: one flat texture [mean hi | mean lo | 1/sqrt(var + eps) |
 *      variance | running mean' | running variance' | batches' + 1]: each
 *      texel merges its statistic's chunks (Chan's pairwise formula, in two
 *      passes over the chunk results: mean, then M2), or reduces a short
 *      statistic directly (one pass for the mean rows, two for the others).
 *      The outputs are shallow slices of it: mean = the hi row, aux = the
 *      first three rows, variance, and the running statistics.
 *   3. y = ((x - hi) - lo) * invStd * gamma + beta.
 *
 * All arithmetic is float32 in the shader, whatever the texture storage.
 * With float16 textures (WEBGL_FORCE_F16_TEXTURES) the mean's hi half is
 * rounded to float16 in the shader so that lo carries what storage drops.
 */
import * as tf from '@tensorflow/tfjs';
import {ForwardAttrs} from '../../kernels';
import {statToParam} from '../geometry';
import {FINITE_GLSL, Groups, View, elemGlsl, groupGlsl, viewOf} from './layout';
import {Runner, WebGLBackend, WebGLProgram, lit} from './webgl_backend';

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

/** GLSL of one chunk's moments: `void nm_chunk(int s, int c, bool second, out float m, out float v)`. */
function chunkGlsl(g: Groups, center: boolean): string {
  const {name, L} = g;
  const loop = (body: string) => `
      for (int t = 0; t < ${L}; t++) {
        if (t >= len) break;
        float xv = getX((b + ${name}_off(j0 + t)).x);
        ${body}
      }`;
  return `
    float nm_pivot(int s) {
      ${center ? `float p = getX(${name}_base(s).x); return nm_finite(p) ? p : 0.0;` : 'return 0.0;'}
    }
    void nm_chunk(int s, int c, bool second, out float m, out float v) {
      ivec3 b = ${name}_base(s);
      int j0 = c * ${L};
      int len = ${name}_len(c);
      float piv = nm_pivot(s);
      float acc = 0.0;
      m = 0.0;
      v = 0.0;
      ${center ? `${loop('acc += xv - piv;')}
      m = acc / float(len);
      if (!second) return;
      acc = 0.0;
      ${loop('float d = xv - piv - m; acc += d * d;')}` : `if (!second) return;
      ${loop('acc += xv * xv;')}`}
      v = acc / float(len);
    }`;
}

/**
 * GLSL: `void nm_stat(int s, bool second, out float m, out float v)`: shifted
 * mean m (add nm_pivot(s)) and, with `second` (else maybe 0), the variance.
 */
function statGlsl(g: Groups, partials: boolean): string {
  if (!partials) {
    return `
    void nm_stat(int s, bool second, out float m, out float v) { nm_chunk(s, 0, second, m, v); }`;
  }
  const {name, nc, n, count} = g;
  return `
    void nm_stat(int s, bool second, out float m, out float v) {
      float acc = 0.0;
      for (int c = 0; c < ${nc}; c++) acc += float(${name}_len(c)) * getPart(s * ${nc} + c);
      m = acc / ${lit(n)};
      acc = 0.0;
      for (int c = 0; c < ${nc}; c++) {
        float d = getPart(s * ${nc} + c) - m;
        acc += float(${name}_len(c)) * (getPart(${count * nc} + s * ${nc} + c) + d * d);
      }
      v = acc / ${lit(n)};
    }`;
}

/** The program computing every chunk's moments: [2, S, nc] (moment, statistic, chunk). */
function partialProgram(v: View, enumGlsl: string, g: Groups, center: boolean): WebGLProgram {
  return {
    variableNames: ['x'],
    outputShape: [2 * g.count * g.nc],
    userCode: `${FINITE_GLSL}${enumGlsl}${chunkGlsl(g, center)}
    void main() {
      int t = getOutputCoords();
      int which = t / ${g.count * g.nc};
      int r = t - which * ${g.count * g.nc};
      int s = r / ${g.nc};
      float m, vv;
      nm_chunk(s, r - s * ${g.nc}, which == 1, m, vv);
      setOutput(which == 0 ? m : vv);
    }`,
  };
}

interface Running {
  /** Statistics per parameter and, per parameter, the GLSL giving its e-th statistic. */
  perParam: number;
  statOfParam: string;
  momentum: number | null;
  count: number;
}

/** Statistics of each parameter: `int nm_statOf(int p, int e)`. */
function runningOf(a: ForwardAttrs, v: View): Running {
  const map = statToParam(a);
  const P = v.P;
  const lists: number[][] = Array.from({length: P}, () => []);
  map.forEach((p, s) => lists[p].push(s));
  const E = lists[0].length;
  if (!lists.every(l => l.length === E)) throw new Error('fused webgl forward: uneven statistics per parameter');
  // The statistics of parameter p are base(p) + k * step (an arithmetic progression in every plan with running
  // statistics: BatchNorm one each, InstanceNorm one per sample); checked here, else a lookup would be needed.
  const step = E > 1 ? lists[0][1] - lists[0][0] : 0;
  const base = lists.map(l => l[0]);
  const arith = lists.every(l => l.every((s, k) => s === l[0] + k * step));
  const baseStep = P > 1 ? base[1] - base[0] : 0;
  const linear = base.every((b, p) => b === base[0] + p * baseStep);
  if (!arith || !linear) throw new Error('fused webgl forward: unsupported running-statistics layout');
  return {
    perParam: E, momentum: (a.momentum ?? null) as number | null, count: v.size / v.S,
    statOfParam: `int nm_statOf(int p, int e) { return ${base[0]} + p * ${baseStep} + e * ${step}; }`,
  };
}

function statsProgram(v: View, enumGlsl: string, g: Groups, partials: boolean, a: ForwardAttrs,
                      running: Running | null, f16: boolean): WebGLProgram {
  const S = v.S;
  const P = v.P;
  const names = ['x'];
  if (partials) names.push('part');
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
        float m, vv;
        nm_stat(s, which == 1, m, vv);
        acc += which == 0 ? nm_pivot(s) + m : vv * (float(${running.count}) / float(${running.count - 1}));
      }
      float batch = acc / ${lit(running.perParam)};
      float old = which == 0 ? getRmean(p) : getRvar(p);
      setOutput(old + (batch - old) * (${factor}));` : '';
  return {
    variableNames: names,
    outputShape: [4 * S + (running ? 2 * P + 1 : 0)],
    userCode: `${FINITE_GLSL}${hiGlsl(f16)}${enumGlsl}${chunkGlsl(g, a.center)}${statGlsl(g, partials)}
    ${running ? running.statOfParam : ''}
    void main() {
      int t = getOutputCoords();
      if (t < ${4 * S}) {
        int r = t / ${S};
        int s = t - r * ${S};
        float m, vv;
        nm_stat(s, r >= 2, m, vv);
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

/** y from x and the statistics texture (hi, lo, invStd rows at `rows`). */
export function applyProgram(v: View, withGamma: boolean, withBeta: boolean, rows: [number, number, number]): WebGLProgram {
  const names = ['x', 'stats'];
  if (withGamma) names.push('gamma');
  if (withBeta) names.push('beta');
  return {
    variableNames: names,
    outputShape: [v.size],
    userCode: `${elemGlsl(v)}
    void main() {
      int i = getOutputCoords();
      ivec3 e = nm_elem(i);
      float y = ((getX(i) - getStats(${rows[0]} + e.y)) - getStats(${rows[1]} + e.y)) * getStats(${rows[2]} + e.y);
      ${withGamma ? 'y *= getGamma(e.z);' : ''}
      ${withBeta ? 'y += getBeta(e.z);' : ''}
      setOutput(y);
    }`,
  };
}

export function forwardKernel({inputs, backend, attrs}: Args): tf.TensorInfo[] {
  const a = attrs as ForwardAttrs;
  const v = viewOf(a);
  const x = inputs.x!;
  const {glsl, groups} = groupGlsl(v, 'nm_g', v.statKept);
  const partials = groups.nc > 1;
  const running = inputs.runningMean ? runningOf(a, v) : null;
  const r = new Runner(backend as WebGLBackend);
  try {
    const statInputs = [x];
    if (partials) statInputs.push(r.runTemp(partialProgram(v, glsl, groups, a.center), [x]));
    if (running) statInputs.push(inputs.runningMean!, inputs.runningVariance!, inputs.numBatchesTracked!);
    const stats = r.runTemp(statsProgram(v, glsl, groups, partials, a, running, f16Textures()), statInputs);
    const applyInputs = [x, stats];
    if (inputs.gamma) applyInputs.push(inputs.gamma);
    if (inputs.beta) applyInputs.push(inputs.beta);
    const S = v.S;
    const y = r.run(applyProgram(v, inputs.gamma != null, inputs.beta != null, [0, S, 2 * S]), applyInputs);
    // mean = the hi row (float32 of the mean; float16 storage rounds it as the shader did), aux = rows 0-2.
    const outs = [Runner.reshaped(y, x.shape), r.slice(stats, 0, a.statShape), r.slice(stats, 3 * S, a.statShape),
                  r.slice(stats, 0, [3, S])];
    if (running) {
      outs.push(r.slice(stats, 4 * S, inputs.runningMean!.shape), r.slice(stats, 4 * S + v.P, inputs.runningVariance!.shape),
                r.slice(stats, 4 * S + 2 * v.P, [], 'int32'));
    }
    return outs;
  } finally {
    r.done();
  }
}
