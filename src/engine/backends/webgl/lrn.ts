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
import {Runner, WebGLBackend, lit, sizeOf} from './webgl_backend';

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

export function lrnForwardKernel({inputs, backend, attrs}: Args): tf.TensorInfo {
  const l = attrs as LrnAttrs;
  const x = inputs.x!;
  check(l, x);
  const r = new Runner(backend as WebGLBackend);
  try {
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
