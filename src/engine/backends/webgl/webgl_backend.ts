/**
 * The part of tfjs-backend-webgl's MathBackendWebGL the fused kernels use,
 * reached through the kernel's `backend` argument (the package never imports
 * tfjs-backend-webgl: the browser bundle runs against the page's tfjs).
 *
 * Every program here indexes its inputs by flat offset in the canonical view:
 * unpacked inputs go in as 1-D views of their textures (free: tfjs' own
 * Reshape does the same); packed ones (a packed op's output, the usual case
 * inside a model) are read in place by a getter over their 2x2 texels
 * (packedGeometry, packedGetter), or unpacked first where their texture is
 * not laid out as tfjs usually lays it (or without WebGL2). Reductions write
 * 1-D unpacked outputs, handed out in the shape the kernel promises, or
 * packed partials (two values per chunk), which the next program reads as
 * the packed texture they are (`raw` inputs of `run`, texelFetch; without
 * WebGL2 tfjs unpacks them); elementwise passes write packed outputs in the
 * tensor's shape (layout.ts elementwise).
 * Kernels with several outputs write them into one texture (one program) and
 * hand out contiguous ranges of it as shallow slices, the way tfjs' Slice
 * kernel does: a slice shares the texture, counted in `dataRefCount`.
 */
import * as tf from '@tensorflow/tfjs';

interface TexData {
  isPacked?: boolean;
  texture?: {texture: unknown; texShape: number[]} | null;
  texShape?: number[] | null;
  values?: unknown;
  shape: number[];
  dtype: tf.DataType;
  refCount: number;
  slice?: {flatOffset: number; origDataId: tf.DataId} | null;
}

/** A GPGPU program as tfjs-backend-webgl runs it (its gpgpu_math.ts GPGPUProgram). */
export interface WebGLProgram {
  variableNames: string[];
  outputShape: number[];
  userCode: string;
  packedInputs?: boolean;
  packedOutput?: boolean;
}

export interface WebGLBackend {
  texData: {get(dataId: tf.DataId): TexData};
  dataRefCount: Map<tf.DataId, number>;
  makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  runWebGLProgram(program: WebGLProgram, inputs: tf.TensorInfo[], dtype: tf.DataType): tf.TensorInfo;
  disposeIntermediateTensorInfo(t: tf.TensorInfo): void;
  unpackTensor(t: tf.TensorInfo): tf.TensorInfo;
  uploadToGPU(dataId: tf.DataId): void;
}

/** WebGL2 (texelFetch): the fetch paths below need it; WebGL1 keeps tfjs' samplers. */
export const texelFetchOk = (): boolean => tf.env().getNumber('WEBGL_VERSION') === 2;

/**
 * Uploads each of `ts` that is still on the CPU (a tensor made from JS values,
 * not yet on the GPU) as a packed texture, the way tfjs uploads a tensor whose
 * first consumer is one of its packed ops: the kernels then read it in place,
 * four values per fetch (packedGeometry), where an unpacked upload gives one
 * value per texel. Only float32 tensors of rank 2 to 4 above tfjs' uniform
 * size, with WebGL2 and WEBGL_PACK; others are left to the first program.
 */
export function uploadPacked(backend: WebGLBackend, ...ts: Array<tf.TensorInfo | undefined>): void {
  if (!texelFetchOk() || !tf.env().getBool('WEBGL_PACK')) return;
  for (const t of ts) {
    if (!t) continue;
    const d = backend.texData.get(t.dataId);
    if (d.texture != null || d.values == null || d.texShape != null || d.slice || d.isPacked || d.dtype !== 'float32' ||
        d.shape.length < 2 || d.shape.length > 4 || sizeOf(d.shape) <= tf.env().getNumber('WEBGL_SIZE_UPLOAD_UNIFORM')) {
      continue;
    }
    d.isPacked = true;
    backend.uploadToGPU(t.dataId);
  }
}

export const sizeOf = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * Whether tfjs' packed texture of B batches of R rows holds flat rows 2k and
 * 2k + 1 in texel row k (no batch restarts a texel row): R even, or one batch.
 */
export const rowsPaired = (B: number, R: number): boolean => R % 2 === 0 || B === 1;

/**
 * Runs programs on one backend, tracking the temporaries (unpacked inputs,
 * intermediate textures) that `done()` disposes.
 */
export class Runner {
  private temps: tf.TensorInfo[] = [];
  /** Unpacked copies of packed inputs, made once per kernel call. */
  private unpacked = new Map<tf.DataId, tf.TensorInfo>();
  constructor(readonly backend: WebGLBackend) {}

  /** `t` as a 1-D unpacked view (a packed texture is unpacked first, once, into a temporary). */
  flat(t: tf.TensorInfo): tf.TensorInfo {
    let src = t;
    if (this.backend.texData.get(t.dataId).isPacked) {
      src = this.unpacked.get(t.dataId) ?? this.backend.unpackTensor(t);
      if (!this.unpacked.has(t.dataId)) {
        this.unpacked.set(t.dataId, src);
        this.temps.push(src);
      }
    }
    return {dataId: src.dataId, shape: [sizeOf(t.shape)], dtype: src.dtype};
  }

  /**
   * Where `t` is a packed texture that a program can read in place by flat
   * offset (packedGetter): the [B, R, C] view of its stored shape (B batches
   * of R x C) when its texture is tfjs' usual [B R', C'] values (R', C' rounded
   * up to even; 2 x 2 values per texel), WebGL2, not a slice; else null (it is
   * unpacked first, flat).
   */
  packedGeometry(t: tf.TensorInfo): [number, number, number] | null {
    if (!texelFetchOk()) return null;
    const d = this.backend.texData.get(t.dataId);
    if (!d.isPacked || d.slice || !d.texture || !d.texShape || d.dtype !== 'float32') return null;
    const shape = d.shape.length ? d.shape : [1];
    if (sizeOf(shape) !== sizeOf(t.shape)) return null;
    const C = shape[shape.length - 1];
    const R = shape.length > 1 ? shape[shape.length - 2] : 1;
    const B = sizeOf(shape.slice(0, -2));
    const even = (n: number) => n + (n % 2);
    return d.texShape[0] === B * even(R) && d.texShape[1] === even(C) ? [B, R, C] : null;
  }

  /**
   * Whether `t` is a packed texture (packedGeometry) holding two values of
   * each of two consecutive rows of C values per texel, rows counted flat
   * (offset / C): flat row s, column p in texel (p / 2, s / 2), lane
   * 2 (s % 2) + p % 2, every texel in [C / 2, ceil(rows / 2)]. Its last axis is
   * C, C is even, and its rows do not restart a texel row per batch (R even,
   * or one batch).
   */
  packedRows(t: tf.TensorInfo, C: number): boolean {
    return C % 2 === 0 && this.pairedRows(t) === C;
  }

  /**
   * The row length C of a packed `t` (packedGeometry) whose texel row k holds
   * its flat rows 2k and 2k + 1 (R even, or one batch: no batch restarts a
   * texel row); else null.
   */
  pairedRows(t: tf.TensorInfo): number | null {
    const g = this.packedGeometry(t);
    return g && rowsPaired(g[0], g[1]) ? g[2] : null;
  }

  /**
   * Whether a packed pass with output `shape` may read `t`'s texel at its own
   * output texel (elementwise's `packed`): `t` packed as tfjs packs `shape`
   * (the same [B, R, C]), R and C even (no padding lanes).
   */
  packedAt(t: tf.TensorInfo, shape: number[]): boolean {
    const g = this.packedGeometry(t);
    if (!g || shape.length < 2 || shape.length > 4) return false;
    const C = shape[shape.length - 1];
    const R = shape[shape.length - 2];
    return g[0] === sizeOf(shape.slice(0, -2)) && g[1] === R && g[2] === C && R % 2 === 0 && C % 2 === 0;
  }

  /**
   * The physical [height, width] of `t`'s texture when a program may
   * texelFetch its values by flat offset (texel (i mod width, i / width)):
   * WebGL2, an unpacked texture, not a slice; else null (tfjs' sampler, getX).
   * A tensor still on the CPU is uploaded first, as runWebGLProgram would
   * (unless tfjs would pass it as a uniform).
   */
  texel(t: tf.TensorInfo): [number, number] | null {
    if (!texelFetchOk() || this.packedGeometry(t)) return null;
    const f = this.flat(t);
    const b = this.backend;
    let data = b.texData.get(f.dataId);
    if (data.texture == null) {
      if (sizeOf(f.shape) <= tf.env().getNumber('WEBGL_SIZE_UPLOAD_UNIFORM')) return null;
      b.uploadToGPU(f.dataId);
      data = b.texData.get(f.dataId);
    }
    const ts = data.texture?.texShape;
    if (data.isPacked || data.slice || !ts || ts.length !== 2 || ts[0] * ts[1] < sizeOf(f.shape)) return null;
    return [ts[0], ts[1]];
  }

  /**
   * The physical [height, width] of a packed program output (a partials
   * texture) that a program may texelFetch directly (see run's `raw`); null
   * without WebGL2 (the reader then goes through tfjs' unpack).
   */
  packedTexel(t: tf.TensorInfo): [number, number] | null {
    if (!texelFetchOk()) return null;
    const data = this.backend.texData.get(t.dataId);
    const ts = data.texture?.texShape;
    return data.isPacked && !data.slice && ts && ts.length === 2 ? [ts[0], ts[1]] : null;
  }

  /**
   * Runs `program` on 1-D views of `inputs`; the output is float32 and 1-D.
   * Inputs in `raw` are packed textures the program reads itself (texelFetch
   * of whole texels, packedTexel): handed to runWebGLProgram as unpacked for
   * the call, so that tfjs does not run its unpack program on them (the
   * generated getter, unused, samples the texture's first channel).
   */
  run(program: WebGLProgram, inputs: tf.TensorInfo[], raw: tf.TensorInfo[] = []): tf.TensorInfo {
    // Packed inputs the program reads in place (packedGeometry): under a renamed variable, passed like raw
    // ones, with a getter of the program's name and signature (getX(int flat offset)) over the texels.
    const names = [...program.variableNames];
    const getters: string[] = [];
    const inPlace: tf.TensorInfo[] = [];
    const ins = inputs.map((t, k) => {
      if (raw.includes(t)) return t;
      const g = this.packedGeometry(t);
      if (!g) return this.flat(t);
      getters.push(packedGetter(names[k], `${names[k]}_pk`, g));
      names[k] = `${names[k]}_pk`;
      inPlace.push(t);
      return t;
    });
    const prog = getters.length ? {...program, variableNames: names, userCode: `${getters.join('')}${program.userCode}`} : program;
    const flipped = [...raw, ...inPlace].map(t => this.backend.texData.get(t.dataId)).filter(d => d.isPacked);
    for (const d of flipped) d.isPacked = false;
    try {
      return this.backend.runWebGLProgram(prog, ins, 'float32');
    } finally {
      for (const d of flipped) d.isPacked = true;
    }
  }

  /** Like `run`, the output a temporary (disposed by `done`). */
  runTemp(program: WebGLProgram, inputs: tf.TensorInfo[], raw: tf.TensorInfo[] = []): tf.TensorInfo {
    const out = this.run(program, inputs, raw);
    this.temps.push(out);
    return out;
  }

  /**
   * The shape `t`'s texture was made in (tfjs' Reshape keeps a texture's
   * shape), if it holds t's values: a packed output made in that shape
   * reshapes back to it for free (the layers hand kernels reshaped views).
   */
  storedShape(t: tf.TensorInfo): number[] {
    const shape = this.backend.texData.get(t.dataId).shape;
    return shape && sizeOf(shape) === sizeOf(t.shape) ? shape : t.shape;
  }

  /** A kernel output: the 1-D program output in `shape`. */
  static reshaped(t: tf.TensorInfo, shape: number[]): tf.TensorInfo {
    return {dataId: t.dataId, shape, dtype: t.dtype};
  }

  /**
   * A kernel output sharing `src`'s texture: `size(shape)` values from flat
   * `offset` (tfjs-backend-webgl's shallowSlice, kernels/Slice.ts).
   */
  slice(src: tf.TensorInfo, offset: number, shape: number[], dtype: tf.DataType = 'float32'): tf.TensorInfo {
    const b = this.backend;
    const srcData = b.texData.get(src.dataId);
    const t = b.makeTensorInfo(shape, dtype);
    const data = b.texData.get(t.dataId);
    Object.assign(data, srcData);
    data.refCount = 1;
    data.shape = shape;
    data.dtype = dtype;
    const base = srcData.slice;
    data.slice = {flatOffset: offset + (base ? base.flatOffset : 0), origDataId: (base && base.origDataId) || src.dataId};
    const orig = data.slice.origDataId;
    b.dataRefCount.set(orig, (b.dataRefCount.get(orig) || 1) + 1);
    return t;
  }

  /** Disposes the temporaries (a texture shared by slices lives on in them). */
  done(): void {
    for (const t of this.temps) this.backend.disposeIntermediateTensorInfo(t);
    this.temps = [];
    this.unpacked.clear();
  }
}

/**
 * GLSL `float getNAME(int i)`: the value at flat offset i of a packed texture
 * `sampler` holding B batches of R x C values (packedGeometry): batch b, row
 * r, column c in texel (c / 2, b ceil(R / 2) + r / 2), lane 2 (r % 2) + c % 2.
 */
export function packedGetter(name: string, sampler: string, [B, R, C]: [number, number, number]): string {
  const getter = `get${name.charAt(0).toUpperCase()}${name.slice(1)}`;
  // With R even (or one batch) the texel row is the flat row / 2 and the lane row its parity.
  const rowOf = R % 2 === 0 || B === 1 ? 'int tr = row >> 1; int rb = row & 1;'
    : `int b = row / ${R}; int r = row - b * ${R}; int tr = b * ${(R + 1) / 2} + (r >> 1); int rb = r & 1;`;
  return `
    float ${getter}(int i) {
      int row = i / ${C};
      int c = i - row * ${C};
      ${rowOf}
      vec4 v = texelFetch(${sampler}, ivec2(c >> 1, tr), 0);
      int lane = rb * 2 + (c & 1);
      return lane == 0 ? v.x : lane == 1 ? v.y : lane == 2 ? v.z : v.w;
    }`;
}

/** A GLSL float literal. */
export function lit(v: number): string {
  if (!Number.isFinite(v)) throw new Error(`fused webgl kernel: non-finite constant. Received: ${v}`);
  const s = Number.isInteger(v) && Math.abs(v) < 1e9 ? `${v}.0` : v.toPrecision(9);
  return s.includes('.') || s.includes('e') ? s : `${s}.0`;
}
