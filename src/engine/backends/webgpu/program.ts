/**
 * What the WebGPU kernels share: the program object tfjs-backend-webgpu runs
 * (`backend.runWebGPUProgram`), the canonical view's index arithmetic as WGSL
 * with the sizes baked in, the workgroup tree reduction, and the copies that
 * split one packed output buffer into the kernel's outputs.
 *
 * Nothing here imports @tensorflow/tfjs-backend-webgpu: the script-tag bundle
 * runs against the page's tfjs and tf-backend-webgpu.min.js, so the few
 * pieces of its program interface we rely on are reproduced (the `main`
 * entry-point header of webgpu_program.ts getMainHeaderString('index'): the
 * backend wraps our code in its `_start`, which calls `main(getGlobalIndex())`
 * for a flat `dispatchLayout`, and binds `result` (the output) and one
 * storage array per `variableNames` entry, named as the entry).
 *
 * A program writes exactly one output buffer. The kernels return several
 * outputs (y, mean, variance, aux, running statistics; dx, dgamma, dbeta), so
 * the small ones are computed into one packed buffer by one program and
 * copied out with GPU buffer-to-buffer copies (`copyOut`): no shader program,
 * no dispatch. That touches the backend's command encoder, which is not
 * public API; where the backend lacks those members (another tfjs version),
 * a one-line copy program runs instead.
 */
import * as tf from '@tensorflow/tfjs';

/** Threads per workgroup (WebGPU's guaranteed maximum is 256). */
export const WG = 256;

/** The part of tfjs-backend-webgpu's backend the kernels use. */
export interface GpuBackend {
  runWebGPUProgram(program: object, inputs: tf.TensorInfo[], dtype: tf.DataType,
                   uniforms?: Array<{type: string; data: number[]}>): tf.TensorInfo;
  makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

/** Internals of tfjs-backend-webgpu 4.x used for buffer copies (see the file comment). */
interface BackendInternals {
  tensorMap: {get(dataId: tf.DataId): {resource?: unknown}};
  commandEncoder?: {copyBufferToBuffer(a: unknown, ao: number, b: unknown, bo: number, n: number): void};
  commandQueueOwnedIds: {add(dataId: tf.DataId): void};
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  uploadToGPU(dataId: tf.DataId): void;
}

/** A tfjs-backend-webgpu program: one output, flat dispatch, user code with the sizes baked in. */
export class NormProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = {x: [0]};
  dispatch: [number, number, number];
  variableNames: string[];
  workgroupSize: [number, number, number] = [WG, 1, 1];
  size = false;
  /** Components per element of the output and of each input (4: vec4<f32> arrays). */
  outputComponent?: number;
  variableComponents?: number[];
  private code: string;

  /** `key` must identify `code` (every baked constant). */
  /** Fields of the uniforms struct (after tfjs' own: NAN, INFINITY, shapes), in the order of the data `run` passes. */
  uniforms?: string;

  constructor(key: string, outputSize: number, variableNames: string[], workgroups: number, code: string,
              uniforms?: string) {
    this.outputShape = [outputSize];
    this.uniforms = uniforms;
    this.shaderKey = `tfjsnorm_${key}`;
    this.variableNames = variableNames;
    this.dispatch = [Math.max(1, workgroups), 1, 1];
    this.code = code;
  }

  getUserCode(): string {
    // The pipeline layout is 'auto': a binding the shader does not use is dropped from it, and the
    // backend's bind group (every input and the uniforms) would then fail. Phony uses keep them all.
    const uses = ['uniforms.NAN', ...this.variableNames.map(n => `${n}[0]`)].map(u => `_ = ${u};`).join(' ');
    return this.code.replace(`${MAIN} {`, `${MAIN} {\n  ${uses}`);
  }
}

/** tfjs-backend-webgpu's entry header (webgpu_program.ts getMainHeaderString('index')). */
export const MAIN = 'fn main(index : i32)';

/** The workgroup's linear index and the thread's (the backend may fold a long dispatch into 2-3 dimensions). */
export const WG_INDEX = `let tid = i32(localId.x);
  let wg = index / ${WG};`;

export const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** A view of `t` as a flat array (same buffer, no program). */
export const flat = (t: tf.TensorInfo): tf.TensorInfo => ({dataId: t.dataId, shape: [sizeOf(t.shape)], dtype: t.dtype});

/** A float literal. */
export function f32(v: number): string {
  return `f32(${Math.fround(v).toExponential(9)})`;
}

/**
 * A WGSL function `name(i: i32) -> i32` mapping index i, row-major over axes of
 * `sizes` (outermost first), to the sum of its coordinates times `strides`.
 */
export function indexFn(name: string, sizes: number[], strides: number[]): string {
  const lines: string[] = [];
  const axes = sizes.map((s, k) => k).filter(k => sizes[k] > 1);
  for (let n = axes.length - 1; n >= 0; n--) {
    const k = axes[n];
    if (n === 0) {
      if (strides[k] !== 0) lines.push(`o = o + r * ${strides[k]};`);
    } else {
      if (strides[k] !== 0) lines.push(`o = o + (r % ${sizes[k]}) * ${strides[k]};`);
      lines.push(`r = r / ${sizes[k]};`);
    }
  }
  return `fn ${name}(i : i32) -> i32 {
  var r = i;
  var o = 0;
  ${lines.join('\n  ')}
  return o;
}`;
}

/**
 * Shared arrays and `reduce2(tid, a, b)`: the workgroup's sums of a and b by a
 * tree reduction in shared memory (every thread gets both; call it in uniform control flow).
 */
export const REDUCE = `
var<workgroup> redA : array<f32, ${WG}>;
var<workgroup> redB : array<f32, ${WG}>;
fn reduce2(t : i32, a : f32, b : f32) -> vec2<f32> {
  workgroupBarrier();
  redA[t] = a;
  redB[t] = b;
  workgroupBarrier();
  for (var s = ${WG / 2}; s > 0; s = s >> 1u) {
    if (t < s) {
      redA[t] = redA[t] + redA[t + s];
      redB[t] = redB[t] + redB[t + s];
    }
    workgroupBarrier();
  }
  return vec2<f32>(redA[0], redB[0]);
}`;

/** Uniform data as the backend takes it (one entry per field of NormProgram.uniforms). */
export type Uniforms = Array<{type: 'int32' | 'float32'; data: number[]}>;

/** Runs `program` on flat views of `inputs`; the output (flat) must be disposed or returned by the caller. */
export function run(backend: GpuBackend, program: NormProgram, inputs: tf.TensorInfo[],
                    dtype: 'float32' | 'int32' = 'float32', uniforms?: Uniforms): tf.TensorInfo {
  return backend.runWebGPUProgram(program, inputs.map(flat), dtype, uniforms);
}

/**
 * idx4(i, sizes, strides): index i, row-major over the 4 axes of `sizes`, to
 * the sum of its coordinates times `strides` (axes of size 1 add nothing).
 * Sizes and strides are uniforms, so one compiled pipeline serves every shape.
 */
export const IDX4 = `
fn idx4(i : i32, sz : vec4<i32>, st : vec4<i32>) -> i32 {
  var r = i;
  var o = (r % sz.w) * st.w;
  r = r / sz.w;
  o = o + (r % sz.z) * st.z;
  r = r / sz.z;
  o = o + (r % sz.y) * st.y;
  r = r / sz.y;
  return o + r * st.x;
}`;

/** Counts copies done without a program (tests read it). */
export const copyStats = {direct: 0, program: 0};

function internals(backend: GpuBackend): BackendInternals | null {
  const b = backend as unknown as Partial<BackendInternals>;
  return b.tensorMap && b.commandQueueOwnedIds && typeof b.ensureCommandEncoderReady === 'function' &&
         typeof b.endComputePassEncoder === 'function' && typeof b.uploadToGPU === 'function'
           ? b as BackendInternals : null;
}

/**
 * A new tensor of `shape` and `dtype` holding elements [offset, offset + size)
 * of `src` (4-byte elements; the bits are copied, so a float32 tensor can come
 * out of an int32 buffer written with bitcast).
 */
export function copyOut(backend: GpuBackend, src: tf.TensorInfo, offset: number, shape: number[],
                        dtype: 'float32' | 'int32'): tf.TensorInfo {
  const n = sizeOf(shape);
  const b = internals(backend);
  if (b && n > 0) {
    const out = backend.makeTensorInfo(shape, dtype);
    b.uploadToGPU(out.dataId);
    const from = b.tensorMap.get(src.dataId).resource;
    const to = b.tensorMap.get(out.dataId).resource;
    b.ensureCommandEncoderReady();
    b.endComputePassEncoder();
    if (from && to && b.commandEncoder) {
      b.commandEncoder.copyBufferToBuffer(from, offset * 4, to, 0, n * 4);
      // Keep both buffers out of the pool until the queue is submitted (as runWebGPUProgram does).
      b.commandQueueOwnedIds.add(src.dataId);
      b.commandQueueOwnedIds.add(out.dataId);
      copyStats.direct++;
      return out;
    }
    backend.disposeData(out.dataId);
  }
  copyStats.program++;
  const srcType = src.dtype === 'int32' ? 'i32' : 'f32';
  const dstType = dtype === 'int32' ? 'i32' : 'f32';
  const value = srcType === dstType ? `src[${offset} + index]` : `bitcast<${dstType}>(src[${offset} + index])`;
  const program = new NormProgram(`copy_${offset}_${n}_${srcType}_${dstType}`, n, ['src'], Math.ceil(n / WG),
                                  `${MAIN} {\n  if (index < ${n}) { result[index] = ${value}; }\n}`);
  const out = run(backend, program, [src], dtype);
  return {dataId: out.dataId, shape, dtype};
}
