/**
 * The one normalization kernel every layer and op goes through.
 *
 *   mean  = mean(x over R)                 (skipped when center = false: RMSNorm)
 *   var   = mean((x - mean)^2 over R)      biased, as PyTorch normalizes with
 *   xhat  = (x - mean) / sqrt(var + eps)
 *   y     = xhat * gamma + beta
 *
 * The backward is closed form (tf.customGrad), reusing xhat and 1/std saved in
 * the forward:
 *   g     = dy * gamma
 *   dx    = (g - mean(g) - xhat * mean(g * xhat)) / sqrt(var + eps)
 *   dgamma = sum(dy * xhat),  dbeta = sum(dy)   over the axes gamma does not vary along
 *
 * Statistics use the shifted two-pass algorithm (subtract one sample of each
 * group first), so a large common offset does not cost precision on backends
 * that accumulate in float32, and E[x^2] - E[x]^2 never appears.
 */
import * as tf from '@tensorflow/tfjs';
import {NormPlan} from './plan';

export interface NormalizeResult {
  output: tf.Tensor;
  /** Batch mean in the plan's statShape (zeros-free: absent when center = false). */
  mean: tf.Tensor | null;
  /** Biased batch variance (mean square when center = false) in statShape; null without withStats. */
  variance: tf.Tensor | null;
}

export interface NormalizeOptions {
  epsilon: number;
  /** Subtract the mean (true) or only divide by the root mean square (false). */
  center: boolean;
  /** gamma reshaped to plan.paramShape, or null. */
  gamma: tf.Tensor | null;
  /** beta reshaped to plan.paramShape, or null. */
  beta: tf.Tensor | null;
  /** Return the statistics too (the caller then owns them). */
  withStats: boolean;
}

/** Mean and biased variance over `plan.reduceAxes`, in statShape, shifted by a pivot sample. */
export function canonicalMoments(x: tf.Tensor, plan: NormPlan): {mean: tf.Tensor; variance: tf.Tensor} {
  return tf.tidy(() => {
    const pivot = tf.slice(x, plan.shape.map(() => 0), plan.statShape);
    const shifted = tf.sub(x, pivot);
    const m1 = tf.mean(shifted, plan.reduceAxes, true);
    const variance = tf.mean(tf.square(tf.sub(shifted, m1)), plan.reduceAxes, true);
    return {mean: tf.add(pivot, m1), variance};
  });
}

function forwardOps(x: tf.Tensor, plan: NormPlan, o: NormalizeOptions) {
  const R = plan.reduceAxes;
  let xc: tf.Tensor;
  let mean: tf.Tensor | null = null;
  let variance: tf.Tensor;
  if (o.center) {
    const pivot = tf.slice(x, plan.shape.map(() => 0), plan.statShape);
    const shifted = tf.sub(x, pivot);
    const m1 = tf.mean(shifted, R, true);
    xc = tf.sub(shifted, m1);
    variance = tf.mean(tf.square(xc), R, true);
    mean = tf.add(pivot, m1);
  } else {
    xc = x;
    variance = tf.mean(tf.square(x), R, true);
  }
  const invStd = tf.rsqrt(tf.add(variance, o.epsilon));
  const xhat = tf.mul(xc, invStd);
  let y = xhat;
  if (o.gamma) y = tf.mul(y, o.gamma);
  if (o.beta) y = tf.add(y, o.beta);
  return {y, xhat, invStd, mean, variance};
}

function backwardOps(dy: tf.Tensor, xhat: tf.Tensor, invStd: tf.Tensor, gamma: tf.Tensor | null,
                     plan: NormPlan, center: boolean) {
  const R = plan.reduceAxes;
  const g = gamma ? tf.mul(dy, gamma) : dy;
  const projection = tf.mul(xhat, tf.mean(tf.mul(g, xhat), R, true));
  let inner = tf.sub(g, projection);
  if (center) inner = tf.sub(inner, tf.mean(g, R, true));
  const dx = tf.mul(inner, invStd);
  const dgamma = gamma ? tf.reshape(tf.sum(tf.mul(dy, xhat), plan.nonParamAxes), plan.paramShape) : null;
  return {dx, dgamma};
}

/**
 * Normalizes canonical-shaped `x` (see plan.ts) with batch statistics.
 * Differentiable w.r.t. x, gamma and beta through a closed-form backward.
 */
export function normalizeCanonical(x: tf.Tensor, plan: NormPlan, o: NormalizeOptions): NormalizeResult {
  let stats: tf.Tensor[] = [];
  const inputs = [x];
  if (o.gamma) inputs.push(o.gamma);
  if (o.beta) inputs.push(o.beta);
  const hasGamma = o.gamma != null;
  const hasBeta = o.beta != null;

  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const xIn = args[0] as tf.Tensor;
    const gammaIn = hasGamma ? args[1] as tf.Tensor : null;
    const betaIn = hasBeta ? args[hasGamma ? 2 : 1] as tf.Tensor : null;
    const f = forwardOps(xIn, plan, {...o, gamma: gammaIn, beta: betaIn});
    save(gammaIn ? [f.xhat, f.invStd, gammaIn] : [f.xhat, f.invStd]);
    if (o.withStats) stats = f.mean ? [tf.keep(f.mean), tf.keep(f.variance)] : [tf.keep(f.variance)];
    return {
      value: f.y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xhatS, invStdS, gammaS] = saved;
        const {dx, dgamma} = backwardOps(dy, xhatS, invStdS, gammaS ?? null, plan, o.center);
        const grads = [dx];
        if (dgamma) grads.push(dgamma);
        if (hasBeta) grads.push(tf.reshape(tf.sum(dy, plan.nonParamAxes), plan.paramShape));
        return grads;
      },
    };
  });

  const output = op(...inputs);
  // Hand the kept statistics to the caller's scope (clone is tracked, kept originals freed).
  const owned = stats.map(t => {
    const c = tf.clone(t);
    t.dispose();
    return c;
  });
  return {
    output,
    mean: o.center && owned.length ? owned[0] : null,
    variance: owned.length ? owned[owned.length - 1] : null,
  };
}

/**
 * Normalizes with given per-parameter statistics (running mean/variance): a
 * single scale-and-shift y = x * scale + shift with scale = gamma / sqrt(var + eps)
 * and shift = beta - mean * scale folded on the small per-channel tensors.
 * `mean`/`variance` are reshaped to plan.paramShape. Differentiable by autodiff.
 */
export function normalizeWithStats(x: tf.Tensor, plan: NormPlan, mean: tf.Tensor, variance: tf.Tensor,
                                   gamma: tf.Tensor | null, beta: tf.Tensor | null, epsilon: number): tf.Tensor {
  return tf.tidy(() => {
    let scale = tf.rsqrt(tf.add(tf.reshape(variance, plan.paramShape), epsilon));
    if (gamma) scale = tf.mul(scale, gamma);
    let shift = tf.neg(tf.mul(tf.reshape(mean, plan.paramShape), scale));
    if (beta) shift = tf.add(shift, beta);
    return tf.add(tf.mul(x, scale), shift);
  });
}
