/**
 * `fileSystem(path)`: a tfjs IOHandler for Node that writes and reads the
 * standard layers-model format (model.json + binary weight shards), the
 * format tensorflowjs_converter writes and tfjs-node's `file://`,
 * `tf.io.http` and the browser read. No tfjs-node needed.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as path from 'path';
import {fail, show} from '../validate';

const OWNER = 'fileSystem';
const MODEL_JSON = 'model.json';
/** tensorflowjs_converter's default shard size. */
const DEFAULT_SHARD_BYTES = 4 * 1024 * 1024;

/** Options of {@link fileSystem}. */
export interface FileSystemOptions {
  /** Largest weight file written by `save`, in bytes. Default 4 MiB (the converter's). */
  shardSizeBytes?: number;
}

const BYTES_PER: {[dtype: string]: number} = {
  float32: 4, int32: 4, bool: 1, complex64: 8, uint8: 1, uint16: 2, float16: 2,
};

/** Bytes a weight spec occupies in the weight files, or null when not fixed (strings). */
function specBytes(spec: tf.io.WeightsManifestEntry): number | null {
  const dtype = spec.quantization ? spec.quantization.dtype : spec.dtype;
  const per = BYTES_PER[dtype];
  if (per == null) return null;
  return spec.shape.reduce((a, b) => a * b, 1) * per;
}

function isMissing(e: unknown): boolean {
  return (e as NodeJS.ErrnoException)?.code === 'ENOENT' || (e as NodeJS.ErrnoException)?.code === 'ENOTDIR';
}

/** Checks model.json's weightsManifest; an error names the first malformed part (the whole may be large). */
function checkManifest(manifest: unknown, file: string): tf.io.WeightsManifestConfig {
  const what = `${file}: \`weightsManifest\` must be a list of {paths: string[], weights: [{name, shape, dtype}]} groups`;
  if (!Array.isArray(manifest)) fail(OWNER, what, 'weightsManifest', manifest);
  manifest.forEach((g, i) => {
    const group = `weightsManifest[${i}]`;
    if (g == null || typeof g !== 'object') fail(OWNER, what, group, g);
    if (!Array.isArray(g.paths) || !g.paths.every((p: unknown) => typeof p === 'string')) {
      fail(OWNER, what, `${group}.paths`, g.paths);
    }
    if (!Array.isArray(g.weights)) fail(OWNER, what, `${group}.weights`, g.weights);
    g.weights.forEach((w: tf.io.WeightsManifestEntry, j: number) => {
      if (!(w != null && typeof w.name === 'string' && typeof w.dtype === 'string' && Array.isArray(w.shape) &&
            w.shape.every(d => Number.isInteger(d) && d >= 0))) {
        fail(OWNER, what, `${group}.weights[${j}]`, w);
      }
    });
  });
  return manifest as tf.io.WeightsManifestConfig;
}

class FileSystemHandler implements tf.io.IOHandler {
  constructor(private readonly target: string, private readonly shardBytes: number) {}

  /** Writes `<dir>/model.json` and `<dir>/group1-shard{i}of{n}.bin`; creates `dir` if its parent exists. */
  async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
    const dir = this.target;
    if (artifacts.modelTopology instanceof ArrayBuffer) {
      fail(OWNER, 'saves layers models (JSON topology), not binary graph models', 'modelTopology', 'ArrayBuffer');
    }
    await this.ensureDirectory(dir);
    const data = artifacts.weightData == null ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
    const count = Math.max(1, Math.ceil(data.byteLength / this.shardBytes));
    const paths: string[] = [];
    for (let i = 0; i < count && data.byteLength > 0; i++) {
      const name = `group1-shard${i + 1}of${count}.bin`;
      await fs.promises.writeFile(path.join(dir, name),
                                  new Uint8Array(data, i * this.shardBytes, Math.min(this.shardBytes, data.byteLength - i * this.shardBytes)));
      paths.push(name);
    }
    const manifest: tf.io.WeightsManifestConfig = [{paths, weights: artifacts.weightSpecs ?? []}];
    const modelJSON: tf.io.ModelJSON = {
      modelTopology: artifacts.modelTopology as {},
      weightsManifest: manifest,
      format: artifacts.format ?? 'layers-model',
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy ?? null,
    };
    if (artifacts.trainingConfig != null) modelJSON.trainingConfig = artifacts.trainingConfig;
    if (artifacts.signature != null) modelJSON.signature = artifacts.signature;
    if (artifacts.userDefinedMetadata != null) modelJSON.userDefinedMetadata = artifacts.userDefinedMetadata;
    if (artifacts.modelInitializer != null) modelJSON.modelInitializer = artifacts.modelInitializer;
    // model.json last: a half-written save never points at missing shards.
    await fs.promises.writeFile(path.join(dir, MODEL_JSON), JSON.stringify(modelJSON), 'utf8');
    return {modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts)};
  }

  /** Reads model.json (the path, or `<path>/model.json` for a directory) and its weight files. */
  async load(): Promise<tf.io.ModelArtifacts> {
    let file = this.target;
    const info = await fs.promises.stat(file).catch(e => {
      if (isMissing(e)) fail(OWNER, 'No model.json to load: the path does not exist', 'path', this.target);
      throw e;
    });
    if (info.isDirectory()) file = path.join(file, MODEL_JSON);
    const text = await fs.promises.readFile(file, 'utf8').catch(e => {
      if (isMissing(e)) fail(OWNER, 'No model.json in the directory', 'path', this.target);
      throw e;
    });
    let modelJSON: tf.io.ModelJSON;
    try {
      modelJSON = JSON.parse(text);
    } catch (e) {
      fail(OWNER, `${file} is not valid JSON (${(e as Error).message})`, 'path', file);
    }
    if (modelJSON == null || typeof modelJSON !== 'object' || modelJSON.modelTopology == null) {
      fail(OWNER, `${file} has no \`modelTopology\`: not a tfjs model.json`, 'path', file);
    }
    if (modelJSON.weightsManifest == null) return tf.io.getModelArtifactsForJSON(modelJSON, async () => [[], new ArrayBuffer(0)]);
    const manifest = checkManifest(modelJSON.weightsManifest, file);
    return tf.io.getModelArtifactsForJSON({...modelJSON, weightsManifest: manifest},
                                          m => this.readWeights(m, path.dirname(file), file));
  }

  private async readWeights(manifest: tf.io.WeightsManifestConfig, dir: string,
                            file: string): Promise<[tf.io.WeightsManifestEntry[], ArrayBuffer]> {
    const buffers: Uint8Array[] = [];
    const specs: tf.io.WeightsManifestEntry[] = [];
    for (const group of manifest) {
      let got = 0;
      for (const p of group.paths) {
        const full = path.join(dir, p);
        const buf = await fs.promises.readFile(full).catch(e => {
          if (isMissing(e)) fail(OWNER, `Weight file ${show(p)} listed in ${file} is missing`, 'path', full);
          throw e;
        });
        buffers.push(buf);
        got += buf.byteLength;
      }
      const sizes = group.weights.map(specBytes);
      if (sizes.every(s => s != null)) {
        const expected = (sizes as number[]).reduce((a, b) => a + b, 0);
        if (got < expected) {
          fail(OWNER, `The weight files ${show(group.paths)} are truncated: the manifest in ${file} needs ${expected} bytes`,
               'bytes', got);
        }
        if (got > expected) {
          fail(OWNER, `The weight files ${show(group.paths)} do not match the manifest in ${file}: ` +
                      `it describes ${expected} bytes`, 'bytes', got);
        }
      }
      specs.push(...group.weights);
    }
    const total = buffers.reduce((a, b) => a + b.byteLength, 0);
    const out = new Uint8Array(total);
    let offset = 0;
    for (const b of buffers) {
      out.set(b, offset);
      offset += b.byteLength;
    }
    return [specs, out.buffer];
  }

  private async ensureDirectory(dir: string): Promise<void> {
    const info = await fs.promises.stat(dir).catch(e => (isMissing(e) ? null : Promise.reject(e)));
    if (info?.isDirectory()) return;
    if (info) fail(OWNER, 'Cannot save into a path that is a file; give a directory', 'path', dir);
    const parent = path.dirname(path.resolve(dir));
    const parentInfo = await fs.promises.stat(parent).catch(e => (isMissing(e) ? null : Promise.reject(e)));
    if (!parentInfo?.isDirectory()) {
      fail(OWNER, `Cannot save: the parent directory ${show(parent)} does not exist`, 'path', dir);
    }
    await fs.promises.mkdir(dir);
  }
}

/**
 * A tfjs IOHandler that saves to and loads from the local file system in the
 * standard layers-model format, without tfjs-node:
 *
 * ```js
 * await model.save(fileSystem('my-model'));                        // my-model/model.json + group1-shard1of1.bin
 * const m = await tf.loadLayersModel(fileSystem('my-model/model.json'));
 * ```
 *
 * `save` takes a directory (created if its parent exists); `load` takes the
 * model.json path or its directory. The files load unchanged in tfjs-node's
 * `file://` and over HTTP in the browser. Errors name the missing directory,
 * the missing or truncated weight file, or the manifest that does not match.
 */
export function fileSystem(target: string, options: FileSystemOptions = {}): tf.io.IOHandler {
  if (typeof target !== 'string' || target.length === 0) {
    fail(OWNER, 'needs a path string', 'path', target);
  }
  // A browser bundle of the CommonJS build maps fs and path to empty modules (package.json `browser`).
  if (typeof fs.promises?.readFile !== 'function' || typeof path.join !== 'function') {
    throw new Error('tfjs-norm: fileSystem() needs Node (its fs and path modules). In a browser save and load ' +
                    "with tfjs' own handlers: 'indexeddb://', 'localstorage://', 'downloads://', tf.io.http.");
  }
  const shard = options.shardSizeBytes ?? DEFAULT_SHARD_BYTES;
  if (!Number.isInteger(shard) || shard < 4) {
    fail(OWNER, '`shardSizeBytes` must be an integer >= 4', 'shardSizeBytes', shard);
  }
  return new FileSystemHandler(target.replace(/^file:\/\//, ''), shard);
}
