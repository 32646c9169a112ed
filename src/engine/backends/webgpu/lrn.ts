/**
 * LocalResponseNorm on the [outer, C, inner] view (attributes: ../../kernels.ts
 * LrnAttrs; the math: ops/local_response_norm.ts) as WebGPU programs, one
 * thread per element, the window sums read directly (windows are a few
 * channels; a window with a NaN or Inf stays local to it, as in PyTorch):
 *   forward   1 program: y_c = x_c * d_c^-beta, d_c = k + scale * sum_{W(c)} x^2
 *   backward  1 program: dx_j = dy_j d_j^-beta - 2 scale beta x_j * sum_{c: j in W(c)} dy_c x_c d_c^(-beta-1),
 *             each d_c of the transposed window recomputed from x (size^2 reads per element, no scratch tensor)
 * A training step is 2 programs.
 */
import * as tf from '@tensorflow/tfjs';
import {LrnAttrs} from '../../kernels';
import {GpuBackend, MAIN, NormProgram, WG, run, sizeOf} from './program';

interface KernelArgs {
  inputs: Record<string, tf.TensorInfo | undefined>;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}

/** d^-beta, with the common exponents without pow (as the cpu kernels); the exponent kind is part of the shader key. */
function negPow(beta: number, d: string): [string, string] {
  if (beta === 0.75) return ['b075', `(1.0 / (sqrt(${d}) * sqrt(sqrt(${d}))))`];
  if (beta === 0.5) return ['b05', `(1.0 / sqrt(${d}))`];
  if (beta === 1) return ['b1', `(1.0 / ${d})`];
  return ['pow', `pow(${d}, -uniforms.lrnF.z)`];
}

/** outer, C, inner, size; before, after; scale, k, beta, 2 scale beta. */
const LRN_UNIFORMS = 'lrnDims : vec4<i32>, lrnWin : vec4<i32>, lrnF : vec4<f32>,';

const DENOM = `
fn denom(base : i32, c : i32) -> f32 {
  var acc = 0.0;
  for (var j = max(c - uniforms.lrnWin.x, 0); j <= min(c + uniforms.lrnWin.y, uniforms.lrnDims.y - 1); j = j + 1) {
    let v = x[base + j * uniforms.lrnDims.z];
    acc = acc + v * v;
  }
  return uniforms.lrnF.y + uniforms.lrnF.x * acc;
}`;

export function lrnKernel({inputs, backend, attrs}: KernelArgs, backward: boolean): tf.TensorInfo {
  const b = backend as GpuBackend;
  const l = attrs as unknown as LrnAttrs;
  const x = inputs.x!;
  const size = sizeOf(x.shape);
  if (size !== l.outer * l.C * l.inner) {
    throw new Error(`LocalResponseNorm kernel: x has ${size} elements, the view [${l.outer}, ${l.C}, ${l.inner}] ${l.outer * l.C * l.inner}. Received: shape [${x.shape}]`);
  }
  const head = `${MAIN} {
  if (index >= uniforms.lrnDims.w) { return; }
  let inner = uniforms.lrnDims.z;
  let c = (index / inner) % uniforms.lrnDims.y;
  let base = index - c * inner;`;
  const [kind, powD] = negPow(l.beta, 'd');
  const powDj = negPow(l.beta, 'dj')[1];
  const code = backward ? `${DENOM}
${head}
  let d = denom(base, c);
  var acc = 0.0;
  for (var j = max(c - uniforms.lrnWin.y, 0); j <= min(c + uniforms.lrnWin.x, uniforms.lrnDims.y - 1); j = j + 1) {
    let o = base + j * inner;
    let dj = denom(base, j);
    acc = acc + dy[o] * x[o] * ${powDj} / dj;
  }
  result[index] = dy[index] * ${powD} - uniforms.lrnF.w * x[index] * acc;
}` : `${DENOM}
${head}
  let d = denom(base, c);
  result[index] = x[index] * ${powD};
}`;
  const program = new NormProgram(`lrn_${backward}_${kind}`, size, backward ? ['dy', 'x'] : ['x'], Math.ceil(size / WG),
                                  code, LRN_UNIFORMS);
  const uniforms = [
    {type: 'int32' as const, data: [l.outer, l.C, l.inner, size]}, {type: 'int32' as const, data: [l.before, l.after, 0, 0]},
    {type: 'float32' as const, data: [l.scale, l.k, l.beta, 2 * l.scale * l.beta]},
  ];
  const out = run(b, program, backward ? [inputs.dy!, x] : [x], 'float32', uniforms);
  return {dataId: out.dataId, shape: x.shape, dtype: 'float32'};
}
