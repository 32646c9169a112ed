/**
 * The one normalization entry every op goes through: checks gamma/beta,
 * reshapes the input to its plan's canonical view (plan.ts), normalizes with
 * batch statistics (or given ones) and reshapes back.
 *
 * Path choice: a fused kernel when the active backend registers one
 * (kernels.ts), else the op composition (op_path.ts). Both give a
 * closed-form gradient w.r.t. x, gamma and beta through one tf.customGrad.
 */
import * as tf from '@tensorflow/tfjs';
import {checkParamTensor} from '../validate';
import {Activation, activationGradOps, activationOps} from './activation';
import {ClosedForm, withClosedFormGrad} from './custom_grad';
import {tapeDepth} from './environment';
import {
  BACKWARD_KERNEL, BackwardAttrs, FORWARD_KERNEL, ForwardAttrs, epilogueInKernel, SCALE_SHIFT_KERNEL, ScaleShiftAttrs, layoutAttrs, runKernel,
  usesKernel,
} from './kernels';
import {backwardOps, forwardOps, scaleShiftBackwardOps, scaleShiftOps} from './op_path';
import {NormPlan} from './plan';

/** What every normalization declares: who it is, its plan, and its constants. */
export interface NormSpec {
  /** The op or layer normalizing (error messages). */
  owner: string;
  plan: NormPlan;
  /** The public shape of gamma/beta (and of given mean/variance), e.g. [C]. */
  paramShape: number[];
  epsilon: number;
  /** Subtract the mean (true) or only divide by the root mean square (false: RMSNorm). */
  center: boolean;
  /** Applied after the affine transform (activation.ts); null/absent: none. */
  activation?: Activation | null;
}

/** Optional affine parameters in their public shape. */
export interface Affine {
  gamma?: tf.Tensor | null;
  beta?: tf.Tensor | null;
}

export interface Normalized {
  /** The output, in the input's shape. */
  output: tf.Tensor;
  /** Batch mean in the plan's statShape; null without withStats or when center = false. */
  mean: tf.Tensor | null;
  /** Biased batch variance (mean square when center = false) in statShape; null without withStats. */
  variance: tf.Tensor | null;
}

/** gamma or beta (or given statistics) checked and reshaped to the plan's paramShape. */
function paramOf(spec: NormSpec, t: tf.Tensor | null | undefined, name: string): tf.Tensor | null {
  const checked = checkParamTensor(spec.owner, t, spec.paramShape, name);
  return checked ? tf.reshape(checked, spec.plan.paramShape) : null;
}

/** Running statistics to update from this batch's (layers with trackRunningStats). */
export interface RunningStats {
  /** Per parameter (the public paramShape). */
  mean: tf.Tensor;
  variance: tf.Tensor;
  /** int32 scalar: batches seen before this one. */
  numBatchesTracked: tf.Tensor;
  /** PyTorch's momentum (weight of the new batch), or null for the cumulative average. */
  momentum: number | null;
}

/** The running statistics after this batch, as new tensors (the caller writes them to its variables). */
export interface UpdatedRunningStats {
  mean: tf.Tensor;
  variance: tf.Tensor;
  numBatchesTracked: tf.Tensor;
}

/**
 * PyTorch's running-statistics update from one batch's mean and biased
 * variance (statShape): the variance enters unbiased (count / (count - 1));
 * statistics of one parameter (InstanceNorm's per-instance ones) are averaged;
 * factor = momentum, or 1 / num_batches_tracked after counting this batch.
 * All on tensors: no read-back. The fused forward kernels do the same inside.
 */
export function runningUpdateOps(plan: NormPlan, mean: tf.Tensor, variance: tf.Tensor,
                                 r: RunningStats): UpdatedRunningStats {
  const count = plan.reduceSize;
  const perParam = (t: tf.Tensor) => {
    const axes = plan.statShape.map((d, i) => (d > 1 && plan.paramShape[i] === 1 ? i : -1)).filter(i => i >= 0);
    return tf.reshape(axes.length ? tf.mean(t, axes) : t, r.mean.shape);
  };
  const batchMean = perParam(mean);
  const unbiasedVariance = perParam(tf.mul(variance, count / (count - 1)));
  const batches = tf.add(r.numBatchesTracked, tf.scalar(1, 'int32'));
  const factor = r.momentum === null ? tf.div(1, tf.cast(batches, 'float32')) : tf.scalar(r.momentum);
  const blend = (old: tf.Tensor, batch: tf.Tensor) => tf.add(old, tf.mul(tf.sub(batch, old), factor));
  return {mean: blend(r.mean, batchMean), variance: blend(r.variance, unbiasedVariance), numBatchesTracked: batches};
}

export interface Normalized {
  /** The output, in the input's shape. */
  output: tf.Tensor;
  /** Batch mean in the plan's statShape; null without withStats or when center = false. */
  mean: tf.Tensor | null;
  /** Biased batch variance (mean square when center = false) in statShape; null without withStats. */
  variance: tf.Tensor | null;
  /** The running statistics after this batch; null without `running` (or for an empty batch). */
  running: UpdatedRunningStats | null;
  /** x + residual (differentiable: its gradient goes to both), when a residual was given. */
  sum: tf.Tensor | null;
}

/** What a batch-statistics forward returns beyond the closed form. */
type Forward = ClosedForm & {
  mean: tf.Tensor | null; variance: tf.Tensor; running: UpdatedRunningStats | null;
  /** x + residual (with a residual). */
  sum: tf.Tensor | null;
};

/**
 * One batch-statistics forward on the inputs as given (x, [residual], [gamma],
 * [beta] in their own shapes) with its closed-form backward, the statistics,
 * the updated running statistics and the sum x + residual (all computed with
 * the tape off: customGrad's forward records nothing).
 */
type Path = (spec: NormSpec, hasGamma: boolean, hasBeta: boolean, withStats: boolean,
             running: RunningStats | null, hasResidual: boolean) => (x: tf.Tensor, ...rest: tf.Tensor[]) => Forward;

/**
 * A second tensor on `t`'s buffer, as tfjs' own Add gradient hands dy to both inputs: a reshape to the same shape
 * shares the buffer on every backend, where tf.clone copies it on wasm (its Identity kernel).
 */
const share = (t: tf.Tensor): tf.Tensor => tf.reshape(t, t.shape);

/** Gradients w.r.t. [x, residual?, ...params] from the ones w.r.t. [x (the sum, with a residual), ...params]. */
function spreadResidual(grads: tf.Tensor[], hasResidual: boolean): tf.Tensor[] {
  return hasResidual ? [grads[0], share(grads[0]), ...grads.slice(1)] : grads;
}

/**
 * The fused kernels (kernels.ts): they take and return tensors in their own
 * shapes, so no reshapes. An epilogue (activation, residual) runs inside the
 * kernels (`inKernel`), or as tfjs ops around the plain kernels: the sum
 * before, act(z) after, dz = dy * act'(z) before the backward kernel.
 */
const fusedPath = (inKernel: boolean): Path => (spec, hasGamma, hasBeta, withStats, running, hasResidual) =>
    (x, ...rest) => {
  const params = hasResidual ? rest.slice(1) : rest;
  const opSum = hasResidual && !inKernel ? tf.add(x, rest[0]) : null;
  const inputs: tf.NamedTensorMap = {x: opSum ?? x};
  if (hasGamma) inputs.gamma = params[0];
  if (hasBeta) inputs.beta = params[hasGamma ? 1 : 0];
  if (hasResidual && inKernel) inputs.residual = rest[0];
  const betaShape = hasBeta ? inputs.beta.shape : undefined;
  const act = spec.activation ?? undefined;
  const attrs: ForwardAttrs = {...layoutAttrs(spec.plan), epsilon: spec.epsilon, center: spec.center};
  if (act && inKernel) attrs.activation = act;
  if (running) {
    inputs.runningMean = running.mean;
    inputs.runningVariance = running.variance;
    inputs.numBatchesTracked = running.numBatchesTracked;
    attrs.momentum = running.momentum;
  }
  const outs = runKernel(FORWARD_KERNEL, inputs, attrs) as tf.Tensor[];
  const [y, mean, variance, aux] = outs;
  const updated = running ? outs.slice(4, 7) : [];
  const sum = opSum ?? (hasResidual ? outs[outs.length - 1] : null);
  // The kernel's y is kept: as ops it is z, for act'(z); in the kernels, silu's and gelu's output act(z), from
  // which the backward kernel may take act'(z) (a division instead of an exp or an erfc).
  const keptY = act && (!inKernel || act !== 'relu') ? y : null;
  return {
    value: act && !inKernel ? activationOps(y, act) : y, mean: spec.center ? mean : null, variance,
    running: running ? {mean: updated[0], variance: updated[1], numBatchesTracked: updated[2]} : null,
    sum,
    saved: [aux, ...(sum ? [sum] : []), ...(keptY ? [keptY] : [])],
    // With a residual the backward reads the saved sum, not x and the residual: only the parameters.
    reads: hasResidual ? params.map((_, i) => 2 + i) : undefined,
    backward: (dy, savedInputs, [auxS, ...more]) => {
      const sumS = sum ? more[0] : null;
      const yS = keptY ? more[more.length - 1] : null;
      const [xS, ...paramsS] = hasResidual ? [sumS!, ...savedInputs.slice(2)] : savedInputs;
      if (yS && !inKernel) dy = activationGradOps(dy, yS, act!);
      const backInputs: tf.NamedTensorMap = {dy, x: xS, aux: auxS};
      if (hasGamma) backInputs.gamma = paramsS[0];
      const backAttrs: BackwardAttrs = {...layoutAttrs(spec.plan), center: spec.center, withGamma: hasGamma,
                                        withBeta: hasBeta, betaShape};
      if (act && inKernel) {
        backAttrs.activation = act;
        if (hasBeta) backInputs.beta = paramsS[hasGamma ? 1 : 0];
        if (yS) backInputs.y = yS;
      }
      return spreadResidual(runKernel(BACKWARD_KERNEL, backInputs, backAttrs) as tf.Tensor[], hasResidual);
    },
  };
};

/** The op composition (op_path.ts) on the canonical view, reshaped in and out. */
const opPath: Path = (spec, hasGamma, hasBeta, withStats, running, hasResidual) => (x, ...rest) => {
  const {plan} = spec;
  const params = hasResidual ? rest.slice(1) : rest;
  const sum = hasResidual ? tf.add(x, rest[0]) : null;
  const gamma = hasGamma ? tf.reshape(params[0], plan.paramShape) : null;
  const beta = hasBeta ? tf.reshape(params[hasGamma ? 1 : 0], plan.paramShape) : null;
  const f = forwardOps(tf.reshape(sum ?? x, plan.shape), plan, spec.epsilon, spec.center, gamma, beta,
                       withStats || (running != null && spec.center));
  const shapes = [x.shape, ...params.map(p => p.shape)];
  const act = spec.activation;
  return {
    value: tf.reshape(act ? activationOps(f.y, act) : f.y, x.shape), mean: f.mean, variance: f.variance,
    running: running ? runningUpdateOps(plan, f.mean!, f.variance, running) : null,
    sum,
    // With an activation, z (the pre-activation) too: dz = dy * act'(z).
    saved: act ? [f.xhat, f.invStd, f.y] : [f.xhat, f.invStd],
    reads: hasGamma ? [hasResidual ? 2 : 1] : [],
    backward: (dy, savedInputs, [xhat, invStd, z]) => {
      const gammaS = savedInputs[hasResidual ? 2 : 1];
      let dz = tf.reshape(dy, plan.shape);
      if (act) dz = activationGradOps(dz, z, act);
      const grads = backwardOps(dz, xhat, invStd, hasGamma ? tf.reshape(gammaS, plan.paramShape) : null,
                                plan, spec.center, hasBeta).map((g, i) => tf.reshape(g, shapes[i]));
      return spreadResidual(grads, hasResidual);
    },
  };
};

/**
 * Normalizes `x` with batch statistics over the plan's reduced axes, then
 * scales and shifts (and applies spec.activation). Differentiable w.r.t. x,
 * gamma and beta. With `withStats`, also returns the statistics (statShape);
 * with `running`, the running statistics updated from this batch (off the
 * gradient tape); with `residual`, normalizes x + residual (differentiable
 * w.r.t. both) and, with `returnSum`, also returns that sum.
 */
export function normalize(x: tf.Tensor, spec: NormSpec, affine: Affine = {}, withStats = false,
                          running: RunningStats | null = null, residual: tf.Tensor | null = null,
                          returnSum = true): Normalized {
  const {plan} = spec;
  let kept: Array<tf.Tensor | null> = [];
  let keptSum: tf.Tensor | null = null;
  const hasResidual = residual != null;
  const [output, sum = null] = tf.tidy((): tf.Tensor[] => {
    const gamma = checkParamTensor(spec.owner, affine.gamma, spec.paramShape, 'gamma');
    const beta = checkParamTensor(spec.owner, affine.beta, spec.paramShape, 'beta');
    const params = [gamma, beta].filter((t): t is tf.Tensor => t != null);
    const ins0 = [x, ...(residual ? [residual] : []), ...params];
    if (x.size === 0) {
      // An empty batch: an empty output (PyTorch's) and zero gradients for gamma/beta; no statistics.
      // (tfjs' own broadcast gradients fail on empty tensors, hence the explicit ones.)
      const empty = withClosedFormGrad(ins0, (...ins) => ({
        value: tf.clone(ins[0]), saved: [], backward: (dy, inputs) => inputs.map(t => tf.zerosLike(t)),
      }));
      return residual && returnSum ? [empty, tf.add(x, residual)] : [empty];
    }
    // An epilogue runs on the kernels only on backends whose kernels implement it (FUSED_EPILOGUE_BACKENDS);
    // there inside them, or around them as ops where that is faster (epilogueInKernel).
    const epilogue = spec.activation != null || hasResidual;
    const path = usesKernel(FORWARD_KERNEL, plan, epilogue) && usesKernel(BACKWARD_KERNEL, plan, epilogue)
        ? fusedPath(!epilogue || epilogueInKernel()) : opPath;
    const forward = path(spec, gamma != null, beta != null, withStats, running, hasResidual);
    const out = withClosedFormGrad(ins0, (...ins) => {
      const f = forward(ins[0], ...ins.slice(1));
      // The statistics leave the custom gradient's scope: keep them, then adopt them below.
      kept = [withStats ? f.mean : null, withStats ? f.variance : null, f.running?.mean ?? null,
              f.running?.variance ?? null, f.running?.numBatchesTracked ?? null].map(t => (t ? tf.keep(t) : null));
      keptSum = f.sum ? tf.keep(f.sum) : null;
      return f;
    }, (xIn, ...rest) => opPath(spec, gamma != null, beta != null, false, null, hasResidual)(xIn, ...rest));
    if (!residual || !returnSum) return [out];
    // The sum the forward computed, as x + residual on the tape: its gradient goes to both.
    const s = keptSum!;
    const sumT = withClosedFormGrad([x, residual], () => ({
      value: share(s), saved: [], reads: [], backward: dy => [share(dy), share(dy)],
    }), (a, b) => ({value: tf.add(a, b), saved: [], reads: [], backward: dy => [share(dy), share(dy)]}));
    return [out, sumT];
  });
  (keptSum as tf.Tensor | null)?.dispose();
  // Hand the kept tensors to the caller's scope (a clone is tracked; the kept originals are freed).
  const [mean, variance, rMean, rVariance, rBatches] = kept.map(t => {
    if (!t) return null;
    const c = tf.clone(t);
    t.dispose();
    return c;
  });
  return {
    output,
    mean: spec.center ? mean : null,
    variance,
    running: rMean && rVariance && rBatches ? {mean: rMean, variance: rVariance, numBatchesTracked: rBatches} : null,
    sum,
  };
}

/** Given statistics (running mean/variance) in the public paramShape. */
export interface GivenStats {
  mean: tf.Tensor;
  variance: tf.Tensor;
}

/**
 * Normalizes with given per-parameter statistics: one scale-and-shift
 * y = (x - mean) / sqrt(variance + eps) * gamma + beta (one fused kernel where
 * registered). Differentiable w.r.t. every input.
 */
export function normalizeWithStats(x: tf.Tensor, spec: NormSpec, stats: GivenStats, affine: Affine = {}): tf.Tensor {
  const {plan} = spec;
  return tf.tidy(() => {
    const mean = paramOf(spec, stats.mean, 'mean')!;
    const variance = paramOf(spec, stats.variance, 'variance')!;
    const gamma = paramOf(spec, affine.gamma, 'gamma');
    const beta = paramOf(spec, affine.beta, 'beta');
    const act = spec.activation ?? null;
    if (!usesKernel(SCALE_SHIFT_KERNEL, plan, act != null)) {
      const z = scaleShiftOps(tf.reshape(x, plan.shape), mean, variance, gamma, beta, spec.epsilon);
      return tf.reshape(act ? activationOps(z, act) : z, x.shape);
    }
    // The kernel takes x in its own shape (its attributes give the canonical view) and returns y in it: on
    // webgl a packed x reshaped to plan.shape would run tfjs' packed-reshape program, and y another back.
    // The activation inside the kernel, or after it as an op (epilogueInKernel).
    const actIn = act != null && epilogueInKernel();
    const actOut = act != null && !actIn ? act : null;
    const attrs: ScaleShiftAttrs = {...layoutAttrs(plan), epsilon: spec.epsilon};
    if (actIn) attrs.activation = act!;
    const named = (ins: tf.Tensor[]): tf.NamedTensorMap => {
      const m: tf.NamedTensorMap = {x: ins[0], mean: ins[1], variance: ins[2]};
      if (gamma) m.gamma = ins[3];
      if (beta) m.beta = ins[gamma ? 4 : 3];
      return m;
    };
    const inputs = [x, mean, variance, ...(gamma ? [gamma] : []), ...(beta ? [beta] : [])];
    if (tapeDepth() === 0) {
      // Plain inference: the kernel alone, without the custom-gradient wrapper.
      const z = runKernel(SCALE_SHIFT_KERNEL, named(inputs), attrs) as tf.Tensor;
      return tf.reshape(actOut ? activationOps(z, actOut) : z, x.shape);
    }
    const y = withClosedFormGrad(inputs, (...ins) => ({
      value: actOut ? activationOps(runKernel(SCALE_SHIFT_KERNEL, named(ins), attrs) as tf.Tensor, actOut)
          : runKernel(SCALE_SHIFT_KERNEL, named(ins), attrs) as tf.Tensor,
      saved: [],
      // Closed form, as ops on the inputs alone (in the canonical view): differentiable again as it is.
      backward: (dy, [xS, mS, vS, ...rest]) => {
        const gS = gamma ? rest[0] : null;
        const xC = tf.reshape(xS, plan.shape);
        const dyC = tf.reshape(dy, plan.shape);
        const dz = act ? activationGradOps(dyC, scaleShiftOps(xC, mS, vS, gS, beta ? rest[rest.length - 1] : null,
                                                              spec.epsilon), act) : dyC;
        const [dx, ...grads] = scaleShiftBackwardOps(dz, xC, mS, vS, gS, beta != null, plan, spec.epsilon);
        return [tf.reshape(dx, x.shape), ...grads];
      },
    }));
    return tf.reshape(y, x.shape);
  });
}
