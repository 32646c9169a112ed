/**
 * The fused kernels for tfjs' 'cpu' backend (names and attributes: ../kernels.ts;
 * the computation: kernel_bodies.ts).
 *
 * tfjs' cpu kernels are plain JavaScript loops, one full pass over the tensor
 * per op (and a transpose before every reduction over a non-innermost axis).
 * The closed-form normalization is a handful of passes over one tensor, so on
 * cpu it runs as kernels that loop over the canonical view directly: forward
 * 3 passes, backward 2, scale-and-shift 1, on the package's SIMD WebAssembly
 * module (simd/runner.ts, streamed through its own memory in cache-sized
 * chunks) where it can run, else on the JavaScript loops (loops.ts).
 *
 * Statistics and gradient sums accumulate in float64, so results match
 * PyTorch's float64 references as closely as the float32 op path does.
 * A test holds these kernels and the op composition to the same numbers
 * (test/fused_kernels.test.ts), with and without the SIMD module.
 */
import * as tf from '@tensorflow/tfjs';

import {
  BACKWARD_KERNEL, FORWARD_KERNEL, LRN_BACKWARD_KERNEL, LRN_FORWARD_KERNEL, SCALE_SHIFT_KERNEL,
} from '../kernels';
import {KernelArgs, Storage, backwardBody, forwardBody, lrnBody, scaleShiftBody} from './kernel_bodies';
import {cpuImpl} from './simd/select';

/** The part of tfjs' cpu backend the kernels use. */
interface CpuBackend {
  data: {get(dataId: tf.DataId): {values: Float32Array | Int32Array}};
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array | Int32Array): tf.TensorInfo;
}

function storage(backend: unknown): Storage {
  const cpu = backend as CpuBackend;
  return {
    // The backend keeps the array it is given: filled after the call, it is the output.
    output: (shape, dtype) => cpu.makeTensorInfo(
        shape, dtype, dtype === 'int32' ? new Int32Array(shape.reduce((a, b) => a * b, 1))
                                         : new Float32Array(shape.reduce((a, b) => a * b, 1))),
    view: t => cpu.data.get(t.dataId).values,
    select: cpuImpl,
  };
}

const kernel = (name: string, body: (st: Storage, args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[]) => ({
  kernelName: name, backendName: 'cpu',
  kernelFunc: ((args: KernelArgs) => body(storage(args.backend), args)) as unknown as tf.KernelFunc,
});

/** The cpu backend's kernels, registered by register.ts. */
export const cpuKernels: tf.KernelConfig[] = [
  kernel(FORWARD_KERNEL, forwardBody),
  kernel(BACKWARD_KERNEL, backwardBody),
  kernel(SCALE_SHIFT_KERNEL, scaleShiftBody),
  kernel(LRN_FORWARD_KERNEL, (st, args) => lrnBody(st, args, false)),
  kernel(LRN_BACKWARD_KERNEL, (st, args) => lrnBody(st, args, true)),
];
