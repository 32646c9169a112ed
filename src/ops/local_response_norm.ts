/**
 * PyTorch's `F.local_response_norm` along any channel axis:
 *   b_c = a_c * d_c^(-beta),  d_c = k + alpha / size * sum_{c' in W(c)} a_c'^2
 * with W(c) = [c - floor(size/2), c + floor((size-1)/2)] zero-padded at the
 * borders (still divided by `size` there). Closed-form backward:
 *   da_j = g_j d_j^(-beta) - 2 alpha beta / size * a_j * sum_{c: j in W(c)} g_c a_c d_c^(-beta-1)
 * where the transposed window sum swaps the padding. Window sums are
 * pad + shifted slices + addN on a rank-3 [outer, C, inner] view: no tile, no
 * transposes. Backends with the fused LocalResponseNorm kernels (cpu, wasm:
 * engine/kernels.ts) run those instead, with sliding window sums. (tf.localResponseNormalization differs: alpha not divided by
 * size, symmetric radius, channels-last 4-D only, no wasm kernel.)
 */
import * as tf from '@tensorflow/tfjs';
import {ClosedForm, withClosedFormGrad} from '../engine/custom_grad';
import {LRN_BACKWARD_KERNEL, LRN_FORWARD_KERNEL, LrnAttrs, runKernel, usesKernel} from '../engine/kernels';
import {checkFinite, checkInput, checkPositiveInt, checkPositiveNumber, resolveChannelAxis} from '../validate';

/** Arguments of {@link localResponseNorm}. */
export interface LocalResponseNormOpArgs {
  /** Number of neighbouring channels in the window (required). */
  size: number;
  /** Scale. Default 1e-4. */
  alpha?: number;
  /** Exponent. Default 0.75. */
  beta?: number;
  /** Additive constant. Default 1. */
  k?: number;
  /** Channel axis: -1 channels-last (default), 1 channels-first. */
  axis?: number;
}

/** out_c = sum of t over channels c - before .. c + after (zero outside), along axis 1 of a rank-3 view. */
function windowSum(t: tf.Tensor3D, before: number, after: number): tf.Tensor3D {
  if (before + after === 0) return t;
  const [A, C, B] = t.shape;
  const padded = tf.pad(t, [[0, 0], [before, after], [0, 0]]);
  const parts: tf.Tensor3D[] = [];
  for (let i = 0; i <= before + after; i++) parts.push(tf.slice(padded, [0, i, 0], [A, C, B]));
  return tf.addN(parts);
}

/**
 * PyTorch's `F.local_response_norm` along `axis`, with a closed-form gradient.
 * Defaults: alpha 1e-4, beta 0.75, k 1, axis -1; `size` is required.
 *
 * ```js
 * const y = tfn.ops.localResponseNorm(x, {size: 5, k: 2});   // x: [N, H, W, C]
 * ```
 */
export function localResponseNorm(x: tf.Tensor, args: LocalResponseNormOpArgs): tf.Tensor {
  const owner = 'localResponseNorm';
  checkInput(owner, x, 3);
  const size = checkPositiveInt(owner, args?.size, 'size');
  const alpha = checkFinite(owner, args.alpha ?? 1e-4, 'alpha');
  const beta = checkFinite(owner, args.beta ?? 0.75, 'beta');
  const k = checkPositiveNumber(owner, args.k ?? 1, 'k', true);
  const axis = resolveChannelAxis(owner, args.axis ?? -1, x.rank);
  const C = x.shape[axis];
  const outer = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = x.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const lo = Math.floor(size / 2);
  const hi = Math.floor((size - 1) / 2);
  const scale = alpha / size;

  const ops = (xIn: tf.Tensor): ClosedForm => {
    const a = tf.reshape(xIn, [outer, C, inner]) as tf.Tensor3D;
    const d = tf.add(tf.mul(windowSum(tf.square(a), lo, hi), scale), k);
    const dPow = tf.pow(d, -beta);
    return {
      value: tf.reshape(tf.mul(a, dPow), x.shape),
      saved: [a, d, dPow],
      reads: [],
      backward: (dy, _inputs, [aS, dS, dPowS]) => {
        const g = tf.reshape(dy, [outer, C, inner]);
        const t = tf.div(tf.mul(tf.mul(g, aS), dPowS), dS) as tf.Tensor3D; // g_c a_c d_c^(-beta-1)
        const back = tf.mul(tf.mul(aS, windowSum(t, hi, lo)), 2 * scale * beta);
        return tf.reshape(tf.sub(tf.mul(g, dPowS), back), x.shape);
      },
    };
  };
  if (!(usesKernel(LRN_FORWARD_KERNEL, null) && usesKernel(LRN_BACKWARD_KERNEL, null))) {
    return withClosedFormGrad([x], ops);
  }
  // Fused kernels (cpu, wasm): one pass forward; the backward recomputes the window sums from x
  // rather than keeping them, so a training step holds no tensor beyond y and dx.
  const attrs: LrnAttrs = {outer, C, inner, before: lo, after: hi, scale, k, beta};
  return withClosedFormGrad([x], xIn => ({
    value: runKernel(LRN_FORWARD_KERNEL, {x: xIn}, attrs) as tf.Tensor,
    saved: [],
    backward: (dy, [xS]) => runKernel(LRN_BACKWARD_KERNEL, {dy, x: xS}, attrs) as tf.Tensor,
  }), ops);
}
