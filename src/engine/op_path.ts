/**
 * The normalization as a composition of tfjs ops: what every backend without
 * a fused kernel runs, and the reference the fused kernels are held to.
 *
 *   mean  = mean(x over R)                 (skipped when center = false: RMSNorm)
 *   var   = mean((x - mean)^2 over R)      biased, as PyTorch normalizes with
 *   xhat  = (x - mean) / sqrt(var + eps)
 *   y     = xhat * gamma + beta
 *
 * Closed-form backward, reusing xhat and 1/std from the forward:
 *   g      = dy * gamma
 *   dx     = (g - mean(g) - xhat * mean(g * xhat)) / sqrt(var + eps)
 *   dgamma = sum(dy * xhat),  dbeta = sum(dy)   over the axes gamma does not vary along
 *
 * Statistics use the shifted two-pass algorithm (subtract one sample of each
 * group first), so a large common offset does not cost precision on backends
 * that accumulate in float32, and E[x^2] - E[x]^2 never appears.
 * Every tensor here is in the plan's canonical shape (plan.ts).
 */
import * as tf from '@tensorflow/tfjs';
import {NormPlan} from './plan';

/**
 * Each group's first element, the shift of the two-pass statistics; 0 where
 * it is not finite (x - Inf would turn the group's -Inf/+Inf mean into NaN).
 * The 0 is a constant (tf.zeros, not zerosLike(first)): tfjs' gradient of
 * `where` w.r.t. its else-branch applies logicalNot, which has no gradient,
 * so an else-branch computed from x made a gradient of a gradient of
 * moments, and a third derivative of every normalization, throw.
 */
function finitePivot(x: tf.Tensor, plan: NormPlan): tf.Tensor {
  const first = tf.slice(x, plan.shape.map(() => 0), plan.statShape);
  return tf.where(tf.isFinite(first), first, tf.zeros(plan.statShape));
}

/**
 * Past this length a reduced axis is summed in two levels of about
 * sqrt(length) elements: wasm (XNNPACK's sum and matMul) adds one element
 * after another in float32, so the error grows with the length (LayerNorm
 * over 512x768 values: 9e-5 on the output, against 3e-7 in two levels).
 */
const LONG_AXIS = 1 << 14;

/**
 * Sum (or mean) of `t` over `axes`, kept as 1s, arranged for backends that
 * transpose before reducing non-innermost axes (wasm: a mean over axis 0 of
 * [32768, 64] takes 11 ms, the same sum as a matMul 0.5 ms): trailing axes
 * reduce directly, a trailing reduced axis goes first, and a single
 * non-trailing axis of a rank-2/3 view becomes a matMul with a row of ones.
 * A single axis (or trailing axes together) longer than LONG_AXIS is viewed
 * as [before, a, b, after] (zero-padded to a * b) and reduced over b, then a.
 *
 * The ones carry the full batch dimension ([B, 1, m], never a broadcast
 * [1, 1, m]): tfjs-backend-webgl's BatchMatMul reshapes a broadcast operand to
 * the full batch when the shared dimension exceeds 1000 and fails ("Size(1024)
 * must match the product of shape 8,1024,1": InstanceNorm on [8, 32, 32, C]).
 */
export function reduceOver(t: tf.Tensor, axes: number[], mean: boolean): tf.Tensor {
  const rank = t.rank;
  if (axes.length === 1 && t.shape[axes[0]] > LONG_AXIS) return reduceLongAxis(t, axes[0], mean);
  const trailing = axes.every((a, i) => a === rank - axes.length + i);
  const trailingSize = t.shape.slice(rank - axes.length).reduce((p, d) => p * d, 1);
  if (trailing && trailingSize > LONG_AXIS) {
    const merged = tf.reshape(t, [...t.shape.slice(0, rank - axes.length), trailingSize]);
    return tf.reshape(reduceLongAxis(merged, rank - axes.length, mean), t.shape.map((d, i) => (axes.includes(i) ? 1 : d)));
  }
  if (trailing) return mean ? tf.mean(t, axes, true) : tf.sum(t, axes, true);
  if (axes.includes(rank - 1)) {
    const inner = reduceOver(t, [rank - 1], mean);
    return reduceOver(inner, axes.filter(a => a !== rank - 1), mean);
  }
  if (axes.length === 1 && axes[0] === rank - 2 && rank <= 3) {
    const m = t.shape[rank - 2];
    const ones = tf.fill(rank === 2 ? [1, m] : [t.shape[0], 1, m], mean ? 1 / m : 1);
    return tf.matMul(ones, t);
  }
  return mean ? tf.mean(t, axes, true) : tf.sum(t, axes, true);
}

/** reduceOver of one long axis in two levels of ~sqrt(m), on a [before, m, after] view (see LONG_AXIS). */
function reduceLongAxis(t: tf.Tensor, axis: number, mean: boolean): tf.Tensor {
  const m = t.shape[axis];
  const before = t.shape.slice(0, axis).reduce((p, d) => p * d, 1);
  const after = t.shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  // Blocks of b ~ sqrt(m) values; an exact divisor of m when one is near (no padding copy).
  const root = Math.ceil(Math.sqrt(m));
  let b = root;
  while (b > root / 4 && m % b !== 0) b--;
  if (m % b !== 0) b = root;
  const a = Math.ceil(m / b);
  let view = tf.reshape(t, [before, m, after]);
  if (a * b !== m) view = tf.pad(view, [[0, 0], [0, a * b - m], [0, 0]]);
  const trail = after === 1;
  const blocks = tf.reshape(view, trail ? [before * a, b] : [before * a, b, after]);
  // A mean stays a mean of means (a float16 texture holds no sum of 10^5 squares); padding scales it by a * b / m.
  const partial = tf.reshape(reduceOver(blocks, [1], mean), trail ? [before, a] : [before, a, after]);
  let out = reduceOver(partial, [1], mean);
  if (mean && a * b !== m) out = tf.mul(out, (a * b) / m);
  return tf.reshape(out, t.shape.map((d, i) => (i === axis ? 1 : d)));
}

/** Sum over the axes gamma/beta do not vary along, kept as 1s: exactly plan.paramShape. */
export function paramSum(t: tf.Tensor, plan: NormPlan): tf.Tensor {
  return reduceOver(t, plan.nonParamAxes, false);
}

/** Mean and biased variance over `plan.reduceAxes`, in statShape, shifted by a pivot sample. */
export function momentsOps(x: tf.Tensor, plan: NormPlan): {mean: tf.Tensor; variance: tf.Tensor} {
  const pivot = finitePivot(x, plan);
  const shifted = tf.sub(x, pivot);
  const m1 = tf.mean(shifted, plan.reduceAxes, true);
  const variance = tf.mean(tf.square(tf.sub(shifted, m1)), plan.reduceAxes, true);
  return {mean: tf.add(pivot, m1), variance};
}

export interface OpForward {
  y: tf.Tensor;
  xhat: tf.Tensor;
  invStd: tf.Tensor;
  /** Batch mean (statShape); null when center = false or not asked for. */
  mean: tf.Tensor | null;
  /** Biased batch variance (mean square when center = false), statShape. */
  variance: tf.Tensor;
}

/** The forward with batch statistics. */
export function forwardOps(x: tf.Tensor, plan: NormPlan, epsilon: number, center: boolean,
                           gamma: tf.Tensor | null, beta: tf.Tensor | null, withMean: boolean): OpForward {
  const R = plan.reduceAxes;
  let xc: tf.Tensor;
  let mean: tf.Tensor | null = null;
  let variance: tf.Tensor;
  if (center) {
    const pivot = finitePivot(x, plan);
    const shifted = tf.sub(x, pivot);
    const m1 = reduceOver(shifted, R, true);
    xc = tf.sub(shifted, m1);
    variance = reduceOver(tf.square(xc), R, true);
    if (withMean) mean = tf.add(pivot, m1);
  } else {
    xc = x;
    variance = reduceOver(tf.square(x), R, true);
  }
  const invStd = tf.rsqrt(tf.add(variance, epsilon));
  const xhat = tf.mul(xc, invStd);
  let y = xhat;
  if (gamma) y = tf.mul(y, gamma);
  if (beta) y = tf.add(y, beta);
  return {y, xhat, invStd, mean, variance};
}

/** Gradients of the batch-statistics forward: [dx, dgamma?, dbeta?]. */
export function backwardOps(dy: tf.Tensor, xhat: tf.Tensor, invStd: tf.Tensor, gamma: tf.Tensor | null,
                            plan: NormPlan, center: boolean, withBeta: boolean): tf.Tensor[] {
  const R = plan.reduceAxes;
  const g = gamma ? tf.mul(dy, gamma) : dy;
  const projection = tf.mul(xhat, reduceOver(tf.mul(g, xhat), R, true));
  let inner = tf.sub(g, projection);
  if (center) inner = tf.sub(inner, reduceOver(g, R, true));
  const grads = [tf.mul(inner, invStd)];
  if (gamma) grads.push(paramSum(tf.mul(dy, xhat), plan));
  if (withBeta) grads.push(paramSum(dy, plan));
  return grads;
}

/**
 * Inference with given statistics (all in paramShape): y = x * scale + shift
 * with scale = gamma / sqrt(var + eps) and shift = beta - mean * scale folded
 * on the small per-parameter tensors. Differentiable by autodiff.
 */
export function scaleShiftOps(x: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor, gamma: tf.Tensor | null,
                              beta: tf.Tensor | null, epsilon: number): tf.Tensor {
  let scale = tf.rsqrt(tf.add(variance, epsilon));
  if (gamma) scale = tf.mul(scale, gamma);
  let shift = tf.neg(tf.mul(mean, scale));
  if (beta) shift = tf.add(shift, beta);
  return tf.add(tf.mul(x, scale), shift);
}

/** Gradients of scaleShiftOps w.r.t. [x, mean, variance, gamma?, beta?], closed form. */
export function scaleShiftBackwardOps(dy: tf.Tensor, x: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor,
                                      gamma: tf.Tensor | null, withBeta: boolean, plan: NormPlan,
                                      epsilon: number): tf.Tensor[] {
  const invStd = tf.rsqrt(tf.add(variance, epsilon));
  const scale = gamma ? tf.mul(invStd, gamma) : invStd;
  const dx = tf.mul(dy, scale);
  const dyXc = paramSum(tf.mul(dy, tf.sub(x, mean)), plan);
  const grads = [dx, tf.neg(paramSum(dx, plan)), tf.mul(tf.mul(dyXc, scale), tf.mul(tf.square(invStd), -0.5))];
  if (gamma) grads.push(tf.mul(dyXc, invStd));
  if (withBeta) grads.push(paramSum(dy, plan));
  return grads;
}
