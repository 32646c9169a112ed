/**
 * `readSafetensors(bytes)`: the `.safetensors` format (Hugging Face; what
 * `safetensors.torch.save_file` writes): an 8-byte little-endian header
 * length N, N bytes of JSON header {name: {dtype, shape, data_offsets}}, then
 * the raw little-endian tensor data.
 */
import * as tf from '@tensorflow/tfjs';
import {fail, show} from '../validate';

/** The owner errors name (readSafetensorsFile is its long form). */
const OWNER = 'readSafetensors';

const DTYPE_BYTES: {[dtype: string]: number} = {F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4};

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** A parsed `.safetensors` file: what {@link readSafetensorsFile} returns. */
export interface SafetensorsFile {
  /** The tensors: floats as float32, I64/I32 as int32. */
  tensors: tf.NamedTensorMap;
  /** The header's `__metadata__` (string to string), or {}. */
  metadata: {[key: string]: string};
  /** The dtype each tensor had in the file (F32, F16, BF16, F64, I64, I32). */
  dtypes: {[name: string]: string};
}

function bad(what: string, name: string, value: unknown): never {
  return fail(OWNER, `Malformed safetensors file: ${what}`, name, value);
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function decode(view: DataView, begin: number, count: number, dtype: string, name: string): Float32Array | Int32Array {
  switch (dtype) {
    case 'F32': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(begin + 4 * i, true);
      return out;
    }
    case 'F64': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(begin + 8 * i, true);
      return out;
    }
    case 'F16': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(begin + 2 * i, true));
      return out;
    }
    case 'BF16': {
      const bits = new Uint32Array(count);
      for (let i = 0; i < count; i++) bits[i] = view.getUint16(begin + 2 * i, true) << 16;
      return new Float32Array(bits.buffer);
    }
    case 'I32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(begin + 4 * i, true);
      return out;
    }
    case 'I64': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const lo = view.getUint32(begin + 8 * i, true);
        const hi = view.getInt32(begin + 8 * i + 4, true);
        if (!((hi === 0 && lo <= 0x7fffffff) || (hi === -1 && lo >= 0x80000000))) {
          fail(OWNER, `Tensor ${show(name)} holds an int64 value outside the int32 range tfjs supports`, `${name}[${i}]`,
               hi * 2 ** 32 + lo);
        }
        out[i] = lo | 0;
      }
      return out;
    }
    default:
      throw new Error(`unreachable dtype ${dtype}`);
  }
}

/**
 * Parses a `.safetensors` file into float32/int32 tensors (F32, F16, BF16,
 * F64 -> float32; I64, I32 -> int32, with a range check), its metadata and
 * the original dtypes. Malformed files (short header, bad JSON, offsets
 * outside the data or not matching shape and dtype, unsupported dtypes)
 * throw a ValueError. The caller owns the tensors.
 *
 * ```js
 * const {tensors} = readSafetensors(fs.readFileSync('model.safetensors'));
 * ```
 */
export function readSafetensorsFile(bytes: ArrayBuffer | ArrayBufferView): SafetensorsFile {
  const u8 = bytes instanceof ArrayBuffer ? new Uint8Array(bytes)
      : ArrayBuffer.isView(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      : bad('expected the file bytes (ArrayBuffer, Uint8Array or Buffer)', 'bytes', typeof bytes);
  const view = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  if (u8.byteLength < 8) bad('the file is shorter than the 8-byte header length', 'byteLength', u8.byteLength);
  // u64 little-endian; anything past 2^53 is far beyond the file anyway.
  const n = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  if (n > u8.byteLength - 8) {
    bad(`the header length exceeds the ${u8.byteLength - 8} bytes after it (truncated file?)`, 'headerLength', n);
  }
  let header: {[name: string]: unknown};
  try {
    header = JSON.parse(new TextDecoder('utf-8', {fatal: true}).decode(u8.subarray(8, 8 + n)));
  } catch (e) {
    return bad(`the header is not valid UTF-8 JSON (${(e as Error).message})`, 'header', new TextDecoder().decode(u8.subarray(8, Math.min(8 + n, 88))));
  }
  if (header == null || typeof header !== 'object' || Array.isArray(header)) bad('the header must be a JSON object', 'header', header);
  const dataStart = 8 + n;
  const dataLength = u8.byteLength - dataStart;
  const tensors: tf.NamedTensorMap = {};
  const dtypes: {[name: string]: string} = {};
  let metadata: {[key: string]: string} = {};
  try {
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') {
        metadata = (raw ?? {}) as {[key: string]: string};
        continue;
      }
      const entry = raw as SafetensorsEntry;
      if (entry == null || typeof entry !== 'object') bad(`entry ${show(name)} must be an object`, name, entry);
      const per = DTYPE_BYTES[entry.dtype];
      if (per == null) {
        fail(OWNER, `Unsupported safetensors dtype for ${show(name)}: supported are ${Object.keys(DTYPE_BYTES).join(', ')}`,
             'dtype', entry.dtype);
      }
      if (!Array.isArray(entry.shape) || !entry.shape.every(d => Number.isInteger(d) && d >= 0)) {
        bad(`the shape of ${show(name)} must be a list of non-negative integers`, `${name}.shape`, entry.shape);
      }
      const offsets = entry.data_offsets;
      if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(o => Number.isInteger(o)) ||
          offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > dataLength) {
        bad(`the data_offsets of ${show(name)} must be [begin, end] within the ${dataLength} data bytes`,
            `${name}.data_offsets`, offsets);
      }
      const count = entry.shape.reduce((a, b) => a * b, 1);
      if (offsets[1] - offsets[0] !== count * per) {
        bad(`${show(name)} spans ${offsets[1] - offsets[0]} bytes but shape ${show(entry.shape)} of ${entry.dtype} needs ${count * per}`,
            `${name}.data_offsets`, offsets);
      }
      const values = decode(view, dataStart + offsets[0], count, entry.dtype, name);
      tensors[name] = tf.tensor(values, entry.shape, values instanceof Int32Array ? 'int32' : 'float32');
      dtypes[name] = entry.dtype;
    }
  } catch (e) {
    Object.values(tensors).forEach(t => t.dispose());
    throw e;
  }
  return {tensors, metadata, dtypes};
}

/**
 * The tensors of a `.safetensors` file by name (see {@link readSafetensorsFile}).
 *
 * ```js
 * const stateDict = tfn.readSafetensors(fs.readFileSync('model.safetensors'));
 * tfn.loadTorchStateDict(model, stateDict);
 * ```
 */
export function readSafetensors(bytes: ArrayBuffer | ArrayBufferView): tf.NamedTensorMap {
  return readSafetensorsFile(bytes).tensors;
}
