/**
 * TfjsNormLrnForward / TfjsNormLrnBackward on WebGL (LocalResponseNorm on the
 * [outer, C, inner] view; window [c - before, c + after], clipped):
 *
 *   forward   1 program: d = k + scale * (window sum of x^2), y = x * d^-beta
 *   backward  2 programs: t = dy * x * d^(-beta - 1) per element, then
 *             dx = dy * d^-beta - 2 * scale * beta * x * (sum of t over the
 *             transposed window [c - after, c + before])
 *
 * Window sums are computed directly for each element (no sliding sums), so a
 * NaN or Inf stays inside the windows that contain it, as in PyTorch.
 */
import * as tf from '@tensorflow/tfjs';
import {LrnAttrs} from '../../kernels';
import {Runner, WebGLBackend, WebGLProgram, lit, sizeOf} from './webgl_backend';

interface Args {
  inputs: Record<string, tf.TensorInfo | undefined>;
  backend: unknown;
  attrs?: unknown;
}

/** d^-beta without pow for the common exponents (as the cpu kernels). */
function negPowGlsl(beta: number): string {
  if (beta === 0.75) return 'float nm_negpow(float d) { return 1.0 / (sqrt(d) * sqrt(sqrt(d))); }';
  if (beta === 0.5) return 'float nm_negpow(float d) { return 1.0 / sqrt(d); }';
  if (beta === 1) return 'float nm_negpow(float d) { return 1.0 / d; }';
  return `float nm_negpow(float d) { return exp2(${lit(-beta)} * log2(d)); }`;
}

/** GLSL: `ivec2 nm_cw(int i)` (plane c, offset of plane 0) and `float nm_d(int i)` (the denominator). */
function windowGlsl(l: LrnAttrs): string {
  const {C, inner, before, after} = l;
  return `
    ${negPowGlsl(l.beta)}
    ivec2 nm_cw(int i) {
      int q = i / ${inner};
      int c = imod(q, ${C});
      return ivec2(c, i - c * ${inner});
    }
    float nm_d(int i) {
      ivec2 cw = nm_cw(i);
      float acc = 0.0;
      for (int t = 0; t <= ${before + after}; t++) {
        int cc = cw.x - ${before} + t;
        if (cc < 0 || cc >= ${C}) continue;
        float e = getX(cw.y + cc * ${inner});
        acc += e * e;
      }
      return ${lit(l.k)} + ${lit(l.scale)} * acc;
    }`;
}

function check(l: LrnAttrs, x: tf.TensorInfo): void {
  if (sizeOf(x.shape) !== l.outer * l.C * l.inner) {
    throw new Error(`LocalResponseNorm kernel: size mismatch. Received: x [${x.shape}] for view [${l.outer}, ${l.C}, ${l.inner}]`);
  }
}

/**
 * The forward on a channels-last packed x read in place (Runner.packedGeometry
 * [B, R, C] with C the channels and R even or B = 1, so that texel row k holds
 * the flat rows 2k and 2k + 1): four outputs per texel, in x's stored shape,
 * each window channel's two rows read from one texel; the same sums in the
 * same order as windowGlsl's nm_d.
 */
function packedForward(l: LrnAttrs, shape: number[]): WebGLProgram {
  const n = shape.length; // 2 to 4
  // The flat row of the output texel's first value, from its coordinates in `shape`.
  const dims = ['x', 'y', 'z', 'w'];
  let row = `rc.${dims[0]}`;
  for (let d = 1; d < n - 1; d++) row = `(${row}) * ${shape[d]} + rc.${dims[d]}`;
  const c0 = `rc.${dims[n - 1]}`;
  const {C, before, after} = l;
  return {
    variableNames: ['x'],
    outputShape: shape,
    packedOutput: true,
    userCode: `${negPowGlsl(l.beta)}
    void main() {
      ivec${n} rc = getOutputCoords();
      int tr = (${row}) >> 1;
      int c0 = ${c0};
      vec2 acc0 = vec2(0.0);
      vec2 acc1 = vec2(0.0);
      for (int t = 0; t <= ${before + after + 1}; t++) {
        int cc = c0 - ${before} + t;
        if (cc < 0 || cc >= ${C}) continue;
        vec4 v = texelFetch(x, ivec2(cc >> 1, tr), 0);
        vec2 e = (cc & 1) == 0 ? v.xz : v.yw;
        if (t <= ${before + after}) acc0 += e * e;
        if (t >= 1) acc1 += e * e;
      }
      vec4 xv = texelFetch(x, ivec2(c0 >> 1, tr), 0);
      vec4 d = ${lit(l.k)} + ${lit(l.scale)} * vec4(acc0.x, acc1.x, acc0.y, acc1.y);
      setOutput(xv * vec4(nm_negpow(d.x), nm_negpow(d.y), nm_negpow(d.z), nm_negpow(d.w)));
    }`,
  };
}

export function lrnForwardKernel({inputs, backend, attrs}: Args): tf.TensorInfo {
  const l = attrs as LrnAttrs;
  const x = inputs.x!;
  check(l, x);
  const r = new Runner(backend as WebGLBackend);
  try {
    const stored = r.storedShape(x);
    if (l.inner === 1 && r.pairedRows(x) === l.C && stored.length >= 2 && stored.length <= 4) {
      const y = r.run(packedForward(l, stored), [x], [x]);
      return Runner.reshaped(y, x.shape);
    }
    const y = r.run({
      variableNames: ['x'],
      outputShape: [sizeOf(x.shape)],
      userCode: `${windowGlsl(l)}
    void main() {
      int i = getOutputCoords();
      setOutput(getX(i) * nm_negpow(nm_d(i)));
    }`,
    }, [x]);
    return Runner.reshaped(y, x.shape);
  } finally {
    r.done();
  }
}

export function lrnBackwardKernel({inputs, backend, attrs}: Args): tf.TensorInfo {
  const l = attrs as LrnAttrs;
  const {dy, x} = inputs as Record<string, tf.TensorInfo>;
  check(l, x);
  const size = sizeOf(x.shape);
  const r = new Runner(backend as WebGLBackend);
  try {
    const t = r.runTemp({
      variableNames: ['dy', 'x'],
      outputShape: [size],
      userCode: `${windowGlsl(l)}
    void main() {
      int i = getOutputCoords();
      float d = nm_d(i);
      setOutput(getDy(i) * getX(i) * nm_negpow(d) / d);
    }`,
    }, [dy, x]);
    const dx = r.run({
      variableNames: ['dy', 'x', 'tt'],
      outputShape: [size],
      userCode: `${windowGlsl(l)}
    void main() {
      int i = getOutputCoords();
      ivec2 cw = nm_cw(i);
      float acc = 0.0;
      for (int k = 0; k <= ${l.before + l.after}; k++) {
        int cc = cw.x - ${l.after} + k;
        if (cc < 0 || cc >= ${l.C}) continue;
        acc += getTt(cw.y + cc * ${l.inner});
      }
      setOutput(getDy(i) * nm_negpow(nm_d(i)) - ${lit(2 * l.scale * l.beta)} * getX(i) * acc);
    }`,
    }, [dy, x, t]);
    return Runner.reshaped(dx, x.shape);
  } finally {
    r.done();
  }
}
