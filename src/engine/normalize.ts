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
import {ClosedForm, withClosedFormGrad} from './custom_grad';
import {tapeDepth} from './environment';
import {BACKWARD_KERNEL, FORWARD_KERNEL, SCALE_SHIFT_KERNEL, layoutAttrs, runKernel, usesKernel} from './kernels';
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

/** One batch-statistics forward (inputs x, [gamma], [beta]) and its closed-form backward, plus the statistics. */
type Path = (spec: NormSpec, hasGamma: boolean, hasBeta: boolean, withStats: boolean) =>
    (x: tf.Tensor, ...params: tf.Tensor[]) => ClosedForm & {mean: tf.Tensor | null; variance: tf.Tensor};

const fusedPath: Path = (spec, hasGamma, hasBeta) => (x, ...params) => {
  const inputs: tf.NamedTensorMap = {x};
  if (hasGamma) inputs.gamma = params[0];
  if (hasBeta) inputs.beta = params[hasGamma ? 1 : 0];
  const attrs = {...layoutAttrs(spec.plan), epsilon: spec.epsilon, center: spec.center};
  const [y, mean, variance, aux] = runKernel(FORWARD_KERNEL, inputs, attrs) as tf.Tensor[];
  return {
    value: y, mean: spec.center ? mean : null, variance,
    saved: [aux],
    backward: (dy, [xS, gammaS], [auxS]) => {
      const backInputs: tf.NamedTensorMap = {dy, x: xS, aux: auxS};
      if (hasGamma) backInputs.gamma = gammaS;
      const backAttrs = {...layoutAttrs(spec.plan), center: spec.center, withGamma: hasGamma, withBeta: hasBeta};
      return runKernel(BACKWARD_KERNEL, backInputs, backAttrs) as tf.Tensor[];
    },
  };
};

const opPath: Path = (spec, hasGamma, hasBeta, withStats) => (x, ...params) => {
  const gamma = hasGamma ? params[0] : null;
  const beta = hasBeta ? params[hasGamma ? 1 : 0] : null;
  const f = forwardOps(x, spec.plan, spec.epsilon, spec.center, gamma, beta, withStats);
  return {
    value: f.y, mean: f.mean, variance: f.variance,
    saved: [f.xhat, f.invStd],
    backward: (dy, [, gammaS], [xhat, invStd]) =>
      backwardOps(dy, xhat, invStd, hasGamma ? gammaS : null, spec.plan, spec.center, hasBeta),
  };
};

/**
 * Normalizes `x` with batch statistics over the plan's reduced axes, then
 * scales and shifts. Differentiable w.r.t. x, gamma and beta. With
 * `withStats`, also returns the statistics (statShape) for running-stat updates.
 */
export function normalize(x: tf.Tensor, spec: NormSpec, affine: Affine = {}, withStats = false): Normalized {
  const {plan} = spec;
  let stats: tf.Tensor[] = [];
  const output = tf.tidy(() => {
    const gamma = paramOf(spec, affine.gamma, 'gamma');
    const beta = paramOf(spec, affine.beta, 'beta');
    if (x.size === 0) {
      // An empty batch: an empty output (PyTorch's) and zero gradients for gamma/beta; no statistics.
      // (tfjs' own broadcast gradients fail on empty tensors, hence the explicit ones.)
      const params = [gamma, beta].filter((t): t is tf.Tensor => t != null);
      return withClosedFormGrad([x, ...params], (...ins) => ({
        value: tf.clone(ins[0]), saved: [], backward: (dy, inputs) => inputs.map(t => tf.zerosLike(t)),
      }));
    }
    const path = usesKernel(FORWARD_KERNEL, plan) && usesKernel(BACKWARD_KERNEL, plan) ? fusedPath : opPath;
    const forward = path(spec, gamma != null, beta != null, withStats);
    const inputs = [tf.reshape(x, plan.shape), ...(gamma ? [gamma] : []), ...(beta ? [beta] : [])];
    const y = withClosedFormGrad(inputs, (...ins) => {
      const f = forward(ins[0], ...ins.slice(1));
      // The statistics leave the custom gradient's scope: keep them, then adopt them below.
      if (withStats) stats = [f.mean, f.variance].filter((t): t is tf.Tensor => t != null).map(t => tf.keep(t));
      return f;
    }, (xIn, ...params) => opPath(spec, gamma != null, beta != null, false)(xIn, ...params));
    return tf.reshape(y, x.shape);
  });
  // Hand the kept statistics to the caller's scope (a clone is tracked; the kept originals are freed).
  const owned = stats.map(t => {
    const c = tf.clone(t);
    t.dispose();
    return c;
  });
  return {
    output,
    mean: spec.center && owned.length === 2 ? owned[0] : null,
    variance: owned.length ? owned[owned.length - 1] : null,
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
    const xc = tf.reshape(x, plan.shape);
    if (!usesKernel(SCALE_SHIFT_KERNEL, plan)) {
      return tf.reshape(scaleShiftOps(xc, mean, variance, gamma, beta, spec.epsilon), x.shape);
    }
    const attrs = {...layoutAttrs(plan), epsilon: spec.epsilon};
    const named = (ins: tf.Tensor[]): tf.NamedTensorMap => {
      const m: tf.NamedTensorMap = {x: ins[0], mean: ins[1], variance: ins[2]};
      if (gamma) m.gamma = ins[3];
      if (beta) m.beta = ins[gamma ? 4 : 3];
      return m;
    };
    const inputs = [xc, mean, variance, ...(gamma ? [gamma] : []), ...(beta ? [beta] : [])];
    if (tapeDepth() === 0) {
      // Plain inference: the kernel alone, without the custom-gradient wrapper.
      return tf.reshape(runKernel(SCALE_SHIFT_KERNEL, named(inputs), attrs) as tf.Tensor, x.shape);
    }
    const y = withClosedFormGrad(inputs, (...ins) => ({
      value: runKernel(SCALE_SHIFT_KERNEL, named(ins), attrs) as tf.Tensor,
      saved: [],
      // Closed form, as ops on the inputs alone: differentiable again as it is.
      backward: (dy, [xS, mS, vS, ...rest]) =>
        scaleShiftBackwardOps(dy, xS, mS, vS, gamma ? rest[0] : null, beta != null, plan, spec.epsilon),
    }));
    return tf.reshape(y, x.shape);
  });
}
