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
 *
 * On the cpu backend the same math runs as fused kernels (cpu_kernels.ts:
 * float64 accumulation, one kernel forward, one backward, one for inference);
 * every other backend runs the op composition below. setFusedKernels(false)
 * or the environment variable TFJS_NORM_FUSED=0 forces the ops on cpu too.
 */
import * as tf from '@tensorflow/tfjs';
import {BACKWARD_KERNEL, FORWARD_KERNEL, SCALE_SHIFT_KERNEL, registerCpuKernels} from './cpu_kernels';
import {NormPlan} from './plan';

registerCpuKernels();

let fusedEnabled = !(typeof process !== 'undefined' && process.env?.TFJS_NORM_FUSED === '0');

/**
 * Turns the fused cpu kernels (cpu_kernels.ts) on or off; off forces the op
 * composition on cpu too (tests compare the two). Returns the previous setting.
 */
export function setFusedKernels(enabled: boolean): boolean {
  const previous = fusedEnabled;
  fusedEnabled = enabled;
  return previous;
}

/** Whether normalizations of `plan` run as fused kernels on the current backend. */
export function usesFusedKernels(plan: NormPlan): boolean {
  return fusedEnabled && plan.shape.length <= 4 && tf.getBackend() === 'cpu';
}

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

/**
 * Each group's first element, the shift of the two-pass statistics; 0 where
 * it is not finite (x - Inf would turn the group's -Inf/+Inf mean into NaN).
 */
function finitePivot(x: tf.Tensor, plan: NormPlan): tf.Tensor {
  const first = tf.slice(x, plan.shape.map(() => 0), plan.statShape);
  return tf.where(tf.isFinite(first), first, tf.zerosLike(first));
}

/** Mean and biased variance over `plan.reduceAxes`, in statShape, shifted by a pivot sample. */
export function canonicalMoments(x: tf.Tensor, plan: NormPlan): {mean: tf.Tensor; variance: tf.Tensor} {
  return tf.tidy(() => {
    const pivot = finitePivot(x, plan);
    const shifted = tf.sub(x, pivot);
    const m1 = tf.mean(shifted, plan.reduceAxes, true);
    const variance = tf.mean(tf.square(tf.sub(shifted, m1)), plan.reduceAxes, true);
    return {mean: tf.add(pivot, m1), variance};
  });
}

/**
 * Sum (or mean) of `t` (canonical shape) over `axes`, kept as 1s, arranged for
 * backends that transpose before reducing non-innermost axes (wasm: a mean
 * over axis 0 of [32768, 64] takes 11 ms, the same sum as a matMul 0.5 ms):
 * trailing axes reduce directly, a trailing reduced axis goes first, and a
 * single non-trailing axis of a rank-2/3 view becomes a matMul with a row of
 * ones (broadcast over the batch axis).
 */
function reduceOver(t: tf.Tensor, axes: number[], mean: boolean): tf.Tensor {
  const rank = t.rank;
  const trailing = axes.every((a, i) => a === rank - axes.length + i);
  if (trailing) return mean ? tf.mean(t, axes, true) : tf.sum(t, axes, true);
  if (axes.includes(rank - 1)) {
    const inner = reduceOver(t, [rank - 1], mean);
    return reduceOver(inner, axes.filter(a => a !== rank - 1), mean);
  }
  if (axes.length === 1 && axes[0] === rank - 2 && rank <= 3) {
    const m = t.shape[rank - 2];
    const ones = tf.fill(rank === 2 ? [1, m] : [1, 1, m], mean ? 1 / m : 1);
    return tf.matMul(ones, t);
  }
  return mean ? tf.mean(t, axes, true) : tf.sum(t, axes, true);
}

function forwardOps(x: tf.Tensor, plan: NormPlan, o: NormalizeOptions) {
  const R = plan.reduceAxes;
  let xc: tf.Tensor;
  let mean: tf.Tensor | null = null;
  let variance: tf.Tensor;
  if (o.center) {
    const pivot = finitePivot(x, plan);
    const shifted = tf.sub(x, pivot);
    const m1 = reduceOver(shifted, R, true);
    xc = tf.sub(shifted, m1);
    variance = reduceOver(tf.square(xc), R, true);
    // The mean itself is only needed by callers that asked for statistics.
    if (o.withStats) mean = tf.add(pivot, m1);
  } else {
    xc = x;
    variance = reduceOver(tf.square(x), R, true);
  }
  const invStd = tf.rsqrt(tf.add(variance, o.epsilon));
  const xhat = tf.mul(xc, invStd);
  let y = xhat;
  if (o.gamma) y = tf.mul(y, o.gamma);
  if (o.beta) y = tf.add(y, o.beta);
  return {y, xhat, invStd, mean, variance};
}

/** Sum over the axes gamma/beta do not vary along, kept as 1s: exactly plan.paramShape. */
function paramSum(t: tf.Tensor, plan: NormPlan): tf.Tensor {
  return reduceOver(t, plan.nonParamAxes, false);
}

function backwardOps(dy: tf.Tensor, xhat: tf.Tensor, invStd: tf.Tensor, gamma: tf.Tensor | null,
                     plan: NormPlan, center: boolean) {
  const R = plan.reduceAxes;
  const g = gamma ? tf.mul(dy, gamma) : dy;
  const projection = tf.mul(xhat, reduceOver(tf.mul(g, xhat), R, true));
  let inner = tf.sub(g, projection);
  if (center) inner = tf.sub(inner, reduceOver(g, R, true));
  const dx = tf.mul(inner, invStd);
  const dgamma = gamma ? paramSum(tf.mul(dy, xhat), plan) : null;
  return {dx, dgamma};
}

/** Whether a gradient tape is recording (tf.grads & co. around the call). */
function recordingGradients(): boolean {
  return (tf.engine() as unknown as {state: {gradientDepth: number}}).state.gradientDepth > 0;
}

/** The canonical view the fused kernels loop over. */
function layoutAttrs(plan: NormPlan) {
  return {shape: plan.shape, statShape: plan.statShape, paramShape: plan.paramShape};
}

/**
 * Normalizes canonical-shaped `x` (see plan.ts) with batch statistics.
 * Differentiable w.r.t. x, gamma and beta through a closed-form backward.
 * On cpu it runs as two fused kernels (forward, backward; cpu_kernels.ts),
 * elsewhere as the op composition above.
 */
export function normalizeCanonical(x: tf.Tensor, plan: NormPlan, o: NormalizeOptions): NormalizeResult {
  let stats: tf.Tensor[] = [];
  const inputs = [x];
  if (o.gamma) inputs.push(o.gamma);
  if (o.beta) inputs.push(o.beta);
  const hasGamma = o.gamma != null;
  const hasBeta = o.beta != null;
  const fused = usesFusedKernels(plan);
  const keepStats = (mean: tf.Tensor | null, variance: tf.Tensor) => {
    if (o.withStats) stats = o.center && mean ? [tf.keep(mean), tf.keep(variance)] : [tf.keep(variance)];
  };

  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const xIn = args[0] as tf.Tensor;
    const gammaIn = hasGamma ? args[1] as tf.Tensor : null;
    const betaIn = hasBeta ? args[hasGamma ? 2 : 1] as tf.Tensor : null;
    if (fused) {
      const kernelInputs: tf.NamedTensorMap = {x: xIn};
      if (gammaIn) kernelInputs.gamma = gammaIn;
      if (betaIn) kernelInputs.beta = betaIn;
      const attrs = {...layoutAttrs(plan), epsilon: o.epsilon, center: o.center};
      const [y, mean, variance, aux] =
        tf.engine().runKernel(FORWARD_KERNEL, kernelInputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
      save(gammaIn ? [xIn, aux, gammaIn] : [xIn, aux]);
      keepStats(mean, variance);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [xS, auxS, gammaS] = saved;
          const backInputs: tf.NamedTensorMap = {dy, x: xS, aux: auxS};
          if (gammaS) backInputs.gamma = gammaS;
          const backAttrs = {...layoutAttrs(plan), center: o.center, withGamma: hasGamma, withBeta: hasBeta};
          return tf.engine().runKernel(BACKWARD_KERNEL, backInputs,
                                       backAttrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
        },
      };
    }
    const f = forwardOps(xIn, plan, {...o, gamma: gammaIn, beta: betaIn});
    save(gammaIn ? [f.xhat, f.invStd, gammaIn] : [f.xhat, f.invStd]);
    keepStats(f.mean, f.variance);
    return {
      value: f.y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xhatS, invStdS, gammaS] = saved;
        const {dx, dgamma} = backwardOps(dy, xhatS, invStdS, gammaS ?? null, plan, o.center);
        const grads = [dx];
        if (dgamma) grads.push(dgamma);
        if (hasBeta) grads.push(paramSum(dy, plan));
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

/** normalizeWithStats as ops (other backends, and its gradient everywhere). */
function scaleShiftOps(x: tf.Tensor, plan: NormPlan, mean: tf.Tensor, variance: tf.Tensor,
                       gamma: tf.Tensor | null, beta: tf.Tensor | null, epsilon: number): tf.Tensor {
  let scale = tf.rsqrt(tf.add(variance, epsilon));
  if (gamma) scale = tf.mul(scale, gamma);
  let shift = tf.neg(tf.mul(mean, scale));
  if (beta) shift = tf.add(shift, beta);
  return tf.add(tf.mul(x, scale), shift);
}

/**
 * Normalizes with given per-parameter statistics (running mean/variance): a
 * single scale-and-shift y = x * scale + shift with scale = gamma / sqrt(var + eps)
 * and shift = beta - mean * scale folded on the small per-channel tensors
 * (one fused kernel on cpu). `mean`/`variance` are reshaped to plan.paramShape.
 * Differentiable w.r.t. every input.
 */
export function normalizeWithStats(x: tf.Tensor, plan: NormPlan, mean: tf.Tensor, variance: tf.Tensor,
                                   gamma: tf.Tensor | null, beta: tf.Tensor | null, epsilon: number): tf.Tensor {
  return tf.tidy(() => {
    if (!usesFusedKernels(plan)) {
      return scaleShiftOps(x, plan, tf.reshape(mean, plan.paramShape), tf.reshape(variance, plan.paramShape),
                           gamma, beta, epsilon);
    }
    const attrs = {...layoutAttrs(plan), epsilon};
    if (!recordingGradients()) {
      // Plain inference: the one kernel (it reads mean/variance flat, in paramShape order).
      const named: tf.NamedTensorMap = {x, mean, variance};
      if (gamma) named.gamma = gamma;
      if (beta) named.beta = beta;
      return tf.engine().runKernel(SCALE_SHIFT_KERNEL, named, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    }
    const m = tf.reshape(mean, plan.paramShape);
    const v = tf.reshape(variance, plan.paramShape);
    const inputs = [x, m, v];
    if (gamma) inputs.push(gamma);
    if (beta) inputs.push(beta);
    const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const save = args[args.length - 1] as tf.GradSaveFunc;
      const ins = args.slice(0, -1) as tf.Tensor[];
      save(ins);
      const named: tf.NamedTensorMap = {x: ins[0], mean: ins[1], variance: ins[2]};
      if (gamma) named.gamma = ins[3];
      if (beta) named.beta = ins[gamma ? 4 : 3];
      return {
        value: tf.engine().runKernel(SCALE_SHIFT_KERNEL, named, attrs as unknown as tf.NamedAttrMap) as tf.Tensor,
        // Closed form, as ops (inference is rarely differentiated: frozen layers).
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [xS, mS, vS] = saved;
          const gS = gamma ? saved[3] : null;
          const invStd = tf.rsqrt(tf.add(vS, epsilon));
          const scale = gS ? tf.mul(invStd, gS) : invStd;
          const dx = tf.mul(dy, scale);
          const xc = tf.sub(xS, mS);
          const dyXc = paramSum(tf.mul(dy, xc), plan);
          const grads = [dx, tf.neg(paramSum(dx, plan)),
                         tf.mul(tf.mul(dyXc, scale), tf.mul(tf.square(invStd), -0.5))];
          if (gamma) grads.push(tf.mul(dyXc, invStd));
          if (beta) grads.push(paramSum(dy, plan));
          return grads;
        },
      };
    });
    return op(...inputs);
  });
}
