/**
 * The fused kernels for tfjs-backend-webgl (names and attributes: ../../kernels.ts),
 * registered by register.ts. Programs per call (one layer):
 *
 *   TfjsNormForward     2, or 3 when a statistic covers > DIRECT_MAX (128) values (forward.ts)
 *   TfjsNormBackward    2, or 3 when a statistic or parameter gathers > 128 values (backward.ts)
 *   TfjsNormScaleShift  1 (scale_shift.ts)
 *   TfjsNormLrnForward  1, TfjsNormLrnBackward 2 (lrn.ts)
 *
 * so a training step (forward with the running-statistics update, backward)
 * runs 4 to 6 programs per layer, and inference with running statistics one.
 * Measured by the browser suite's fused-vs-op test (page.ts), which counts
 * them: 4 on small inputs; on [8, 160, 4] BatchNorm, InstanceNorm and
 * GroupNorm 6, LayerNorm and RMSNorm 5, LocalResponseNorm 3. The programs
 * read packed inputs (a packed op's output, the usual case inside a model)
 * in place, four values per fetch where the layout allows, and unpacked ones
 * one value per texel; a tensor still on the CPU is uploaded packed
 * (uploadPacked). Elementwise passes (y, dx, scale-shift) write packed
 * outputs (layout.ts elementwise).
 */
import * as tf from '@tensorflow/tfjs';
import {
  BACKWARD_KERNEL, FORWARD_KERNEL, LRN_BACKWARD_KERNEL, LRN_FORWARD_KERNEL, SCALE_SHIFT_KERNEL,
} from '../../kernels';
import {backwardKernel} from './backward';
import {forwardKernel} from './forward';
import {lrnBackwardKernel, lrnForwardKernel} from './lrn';
import {scaleShiftKernel} from './scale_shift';

const kernel = (kernelName: string, fn: (args: never) => tf.TensorInfo | tf.TensorInfo[]): tf.KernelConfig => ({
  kernelName, backendName: 'webgl', kernelFunc: fn as unknown as tf.KernelFunc,
});

/** The webgl backend's kernels. */
export const webglKernels: tf.KernelConfig[] = [
  kernel(FORWARD_KERNEL, forwardKernel),
  kernel(BACKWARD_KERNEL, backwardKernel),
  kernel(SCALE_SHIFT_KERNEL, scaleShiftKernel),
  kernel(LRN_FORWARD_KERNEL, lrnForwardKernel),
  kernel(LRN_BACKWARD_KERNEL, lrnBackwardKernel),
];
