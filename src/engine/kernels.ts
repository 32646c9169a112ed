/**
 * The fused kernels' names and attributes, shared by every backend that
 * implements them (backends/cpu.ts, backends/wasm.ts), and the dispatch: a
 * plan runs on a fused kernel when one is registered for the active backend,
 * the `TFJS_NORM_FUSED` flag is on, and the canonical view has rank <= 4;
 * otherwise on the op composition (op_path.ts), which every backend runs.
 *
 *   TfjsNormForward      x, [gamma], [beta], [runningMean, runningVariance, numBatchesTracked], [residual]
 *                          -> y, mean, variance, aux, [runningMean', runningVariance', numBatchesTracked'], [sum]
 *   TfjsNormBackward     dy, x, aux, [gamma], [beta], [y] -> dx, [dgamma], [dbeta]
 *   TfjsNormScaleShift   x, mean, variance, [gamma], [beta] -> y
 *   TfjsNormLrnForward   x -> y                      (LocalResponseNorm)
 *   TfjsNormLrnBackward  dy, x -> dx
 *
 * Forward and backward take x, dy, gamma and beta in any shape of the right
 * size (the attributes carry the canonical view) and return y, dx, dgamma
 * and dbeta in the shapes of x, dy, gamma and `betaShape`: no reshapes around
 * them, which on a gradient tape cost a kernel and a saved clone each.
 * mean/variance are in plan.statShape (ScaleShift: all in paramShape); `aux`
 * ([3, statSize]) carries what the backward needs beyond x: the mean split into
 * two float32 halves (hi + lo) and 1/sqrt(var + eps). With the running
 * statistics as inputs, the forward also returns them updated by PyTorch's
 * rule (norm_impl.ts updateRunning): off the gradient tape, in the same kernel.
 *
 * Epilogues (issue #17), optional: attr `activation` ('relu' | 'silu' |
 * 'gelu', absent = none) on all three: y = act(z), z = xhat * gamma + beta.
 * With it the backward also takes `beta` (and gamma) and recomputes z from x
 * and aux, so dz = dy * act'(z) feeds the usual backward; for 'silu' and
 * 'gelu' it also takes `y`, the forward's output act(z), which a backend may
 * use for act'(z) (the SIMD module does: sigmoid(z) or Phi(z) = y / z, no
 * exp or erfc recomputed) or ignore. Input `residual`
 * (x's shape) on the forward: the kernel normalizes x + residual and also
 * returns that sum (last output); the backward then gets x = the sum, and
 * d(x) = d(residual) = its dx. Calls with an epilogue run a fused kernel
 * only on the backends in FUSED_EPILOGUE_BACKENDS (the others run the op
 * path, which implements both).
 */
import * as tf from '@tensorflow/tfjs';
import {fusedKernelsEnabled, simdEnabled} from './environment';
import {NormPlan} from './plan';

export const FORWARD_KERNEL = 'TfjsNormForward';
export const BACKWARD_KERNEL = 'TfjsNormBackward';
export const SCALE_SHIFT_KERNEL = 'TfjsNormScaleShift';
export const LRN_FORWARD_KERNEL = 'TfjsNormLrnForward';
export const LRN_BACKWARD_KERNEL = 'TfjsNormLrnBackward';

/** Attributes every normalization kernel takes: the canonical view (see plan.ts). */
export interface LayoutAttrs {
  /** plan.shape */
  shape: number[];
  /** plan.statShape */
  statShape: number[];
  /** plan.paramShape */
  paramShape: number[];
  [key: string]: unknown;
}

/** The activation attribute of the epilogue (absent: none). */
export type KernelActivation = 'relu' | 'silu' | 'gelu';

/** Backends whose TfjsNorm* kernels implement the epilogues (`activation`, `residual`). */
export const FUSED_EPILOGUE_BACKENDS: Set<string> = new Set<string>(['cpu', 'wasm', 'webgl', 'webgpu']);

/**
 * Backends of FUSED_EPILOGUE_BACKENDS where, while the SIMD module is on
 * (TFJS_NORM_SIMD), an epilogue runs as tfjs ops around the plain SIMD kernels
 * instead of inside them. Empty: since the module has the epilogue passes
 * (wasm/norm.ts), inside is faster on cpu and wasm (bench/epilogue.ts, README);
 * the tests still run this path (test/activation.test.ts, 'ops around SIMD').
 */
export const EPILOGUE_AS_OPS_WITH_SIMD: Set<string> = new Set<string>([]);

/** Whether an epilogue on the active backend runs inside the kernels (else as ops around them). */
export function epilogueInKernel(): boolean {
  return !(EPILOGUE_AS_OPS_WITH_SIMD.has(tf.getBackend()) && simdEnabled());
}

export interface ForwardAttrs extends LayoutAttrs {
  epsilon: number;
  activation?: KernelActivation;
  /** Subtract the mean (false: RMSNorm). */
  center: boolean;
  /**
   * With running-statistics inputs: PyTorch's momentum, or null for the
   * cumulative average (1 / num_batches_tracked).
   */
  momentum?: number | null;
}

export interface BackwardAttrs extends LayoutAttrs {
  center: boolean;
  /** With it, inputs also carry beta (when the forward had one) to recompute the pre-activation. */
  activation?: KernelActivation;
  /** Return dgamma (in gamma's shape). */
  withGamma: boolean;
  /** Return dbeta, in this shape. */
  withBeta: boolean;
  betaShape?: number[];
}

export interface ScaleShiftAttrs extends LayoutAttrs {
  epsilon: number;
  activation?: KernelActivation;
}

/** LocalResponseNorm on the [outer, C, inner] view of x (ops/local_response_norm.ts). */
export interface LrnAttrs {
  outer: number;
  C: number;
  inner: number;
  /** Window [c - before, c + after]. */
  before: number;
  after: number;
  /** alpha / size. */
  scale: number;
  k: number;
  beta: number;
  [key: string]: unknown;
}

/** The canonical view the kernels loop over. */
export function layoutAttrs(plan: NormPlan): LayoutAttrs {
  return {shape: plan.shape, statShape: plan.statShape, paramShape: plan.paramShape};
}

/**
 * Whether `kernelName` should run for `plan` (none: LocalResponseNorm) on the
 * active backend; a call with an epilogue (activation or residual) only where
 * the backend is in FUSED_EPILOGUE_BACKENDS.
 */
export function usesKernel(kernelName: string, plan: NormPlan | null, epilogue = false): boolean {
  return fusedKernelsEnabled() && (plan == null || plan.shape.length <= 4) &&
         (!epilogue || FUSED_EPILOGUE_BACKENDS.has(tf.getBackend())) &&
         tf.getKernel(kernelName, tf.getBackend()) != null;
}

/** Runs a kernel with plain-object attributes. */
export function runKernel(kernelName: string, inputs: tf.NamedTensorMap, attrs: object): tf.Tensor | tf.Tensor[] {
  return tf.engine().runKernel(kernelName, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];
}
