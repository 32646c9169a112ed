/**
 * The fused kernels' names and attributes, shared by every backend that
 * implements them (backends/cpu.ts today), and the dispatch: a plan runs on a
 * fused kernel when one is registered for the active backend, the
 * `TFJS_NORM_FUSED` flag is on, and the canonical view has rank <= 4;
 * otherwise on the op composition (op_path.ts), which every backend runs.
 *
 *   TfjsNormForward     x, [gamma], [beta] -> y, mean, variance, aux
 *   TfjsNormBackward    dy, x, aux, [gamma] -> dx, [dgamma], [dbeta]
 *   TfjsNormScaleShift  x, mean, variance, [gamma], [beta] -> y
 *
 * mean/variance are in plan.statShape (ScaleShift: paramShape); `aux`
 * ([3, statSize]) carries what the backward needs beyond x: the mean split into
 * two float32 halves (hi + lo) and 1/sqrt(var + eps).
 */
import * as tf from '@tensorflow/tfjs';
import {fusedKernelsEnabled} from './environment';
import {NormPlan} from './plan';

export const FORWARD_KERNEL = 'TfjsNormForward';
export const BACKWARD_KERNEL = 'TfjsNormBackward';
export const SCALE_SHIFT_KERNEL = 'TfjsNormScaleShift';

/** Attributes every kernel takes: the canonical view (see plan.ts). */
export interface LayoutAttrs {
  /** plan.shape */
  shape: number[];
  /** plan.statShape */
  statShape: number[];
  /** plan.paramShape */
  paramShape: number[];
  [key: string]: unknown;
}

export interface ForwardAttrs extends LayoutAttrs {
  epsilon: number;
  /** Subtract the mean (false: RMSNorm). */
  center: boolean;
}

export interface BackwardAttrs extends LayoutAttrs {
  center: boolean;
  /** Return dgamma (paramShape). */
  withGamma: boolean;
  /** Return dbeta (paramShape). */
  withBeta: boolean;
}

export interface ScaleShiftAttrs extends LayoutAttrs {
  epsilon: number;
}

/** The canonical view the kernels loop over. */
export function layoutAttrs(plan: NormPlan): LayoutAttrs {
  return {shape: plan.shape, statShape: plan.statShape, paramShape: plan.paramShape};
}

/** Whether `kernelName` should run for `plan` on the active backend. */
export function usesKernel(kernelName: string, plan: NormPlan): boolean {
  return fusedKernelsEnabled() && plan.shape.length <= 4 && tf.getKernel(kernelName, tf.getBackend()) != null;
}

/** Runs a kernel with plain-object attributes. */
export function runKernel(kernelName: string, inputs: tf.NamedTensorMap, attrs: LayoutAttrs): tf.Tensor | tf.Tensor[] {
  return tf.engine().runKernel(kernelName, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];
}
