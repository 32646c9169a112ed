/**
 * The fused kernels for tfjs-backend-webgpu (names and attributes:
 * ../../kernels.ts), as WGSL compute programs run through the backend's
 * program interface (program.ts): normalization forward/backward/scale-and-shift
 * in norm.ts, LocalResponseNorm in lrn.ts. register.ts registers them under 'webgpu' (whether or not the
 * backend is loaded: a kernel only runs once the backend is active).
 */
import * as tf from '@tensorflow/tfjs';
import {
  BACKWARD_KERNEL, FORWARD_KERNEL, LRN_BACKWARD_KERNEL, LRN_FORWARD_KERNEL, SCALE_SHIFT_KERNEL,
} from '../../kernels';
import {lrnKernel} from './lrn';
import {backwardKernel, forwardKernel, scaleShiftKernel} from './norm';

const kernel = (kernelName: string, kernelFunc: unknown): tf.KernelConfig =>
  ({kernelName, backendName: 'webgpu', kernelFunc: kernelFunc as tf.KernelFunc});

/** The webgpu backend's kernels, registered by register.ts. */
export const webgpuKernels: tf.KernelConfig[] = [
  kernel(FORWARD_KERNEL, forwardKernel),
  kernel(BACKWARD_KERNEL, backwardKernel),
  kernel(SCALE_SHIFT_KERNEL, scaleShiftKernel),
  kernel(LRN_FORWARD_KERNEL, (args: Parameters<typeof lrnKernel>[0]) => lrnKernel(args, false)),
  kernel(LRN_BACKWARD_KERNEL, (args: Parameters<typeof lrnKernel>[0]) => lrnKernel(args, true)),
];
