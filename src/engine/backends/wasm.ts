/**
 * The fused kernels for tfjs-backend-wasm (names and attributes: ../kernels.ts;
 * the computation: kernel_bodies.ts), under the same names as cpu's.
 *
 * The package's SIMD module is instantiated on the tfjs module's own
 * WebAssembly.Memory, so the kernels read inputs and write outputs where the
 * tensors live, with no copies (simd/select.ts); where that memory cannot be
 * imported (a shared memory: tfjs' multi-threaded build) the module streams
 * chunks through its own memory, and where WebAssembly SIMD is unusable the
 * JavaScript loops run on views of the heap.
 */
import * as tf from '@tensorflow/tfjs';

import {
  BACKWARD_KERNEL, FORWARD_KERNEL, LRN_BACKWARD_KERNEL, LRN_FORWARD_KERNEL, SCALE_SHIFT_KERNEL,
} from '../kernels';
import {KernelArgs, Storage, backwardBody, forwardBody, lrnBody, scaleShiftBody} from './kernel_bodies';
import {WasmModule, wasmImpl} from './simd/select';

/** The part of tfjs-backend-wasm's BackendWasm the kernels use. */
interface WasmBackend {
  wasm: WasmModule;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array;
}

function storage(backend: unknown): Storage {
  const b = backend as WasmBackend;
  return {
    output: (shape, dtype) => b.makeOutput(shape, dtype),
    view: t => b.typedArrayFromHeap(t),
    select: () => wasmImpl(b.wasm),
  };
}

const kernel = (name: string, body: (st: Storage, args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[]) => ({
  kernelName: name, backendName: 'wasm',
  kernelFunc: ((args: KernelArgs) => body(storage(args.backend), args)) as unknown as tf.KernelFunc,
});

/** The wasm backend's kernels, registered by register.ts (where tfjs-backend-wasm is registered or not). */
export const wasmKernels: tf.KernelConfig[] = [
  kernel(FORWARD_KERNEL, forwardBody),
  kernel(BACKWARD_KERNEL, backwardBody),
  kernel(SCALE_SHIFT_KERNEL, scaleShiftBody),
  kernel(LRN_FORWARD_KERNEL, (st, args) => lrnBody(st, args, false)),
  kernel(LRN_BACKWARD_KERNEL, (st, args) => lrnBody(st, args, true)),
];
