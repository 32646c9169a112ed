/**
 * Save and load: fileSystem() writes the standard layers-model format; every
 * layer round-trips through it into a FRESH Node process that imports only the
 * package (registration on import) with identical predictions, running
 * statistics and num_batches_tracked, and training resumes where it stopped.
 * Plus the format, clear errors, and all-or-nothing weight loading.
 */
import * as tf from '@tensorflow/tfjs';
import {execFileSync} from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tfn from '../src';
import {fileSystem, loadWeights} from '../src/io';
import * as keras from '../src/keras';
import {describeBackends, disposeLayer, noLeak} from './harness';

const ROOT = path.join(__dirname, '..');
const LR = 0.05;
const tmpDirs: string[] = [];
afterAll(() => tmpDirs.forEach(d => fs.rmSync(d, {recursive: true, force: true})));
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-norm-io-'));
  tmpDirs.push(d);
  return d;
}

/**
 * The package bundled from src with esbuild (fast; no type check), placed
 * under node_modules/.cache so that it resolves the same @tensorflow/tfjs.
 * Once src/index.ts exports the io functions and imports the Keras layers the
 * entry is src/index.ts alone; until then io and keras are added to it.
 */
let bundled: {bundle: string; child: string} | null = null;
function bundle(): {bundle: string; child: string} {
  if (bundled) return bundled;
  const dir = path.join(ROOT, 'node_modules', '.cache', 'tfjs-norm-io-test', String(process.pid));
  fs.mkdirSync(dir, {recursive: true});
  tmpDirs.push(dir);
  const index = fs.readFileSync(path.join(ROOT, 'src', 'index.ts'), 'utf8');
  const complete = /fileSystem/.test(index) && /['"]\.\/keras['"]/.test(index);
  const contents = complete ? "export * from './src/index';"
      : "export * from './src/index'; export * from './src/io'; export * from './src/keras';";
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  require('esbuild').buildSync({
    stdin: {contents, resolveDir: ROOT, loader: 'ts'}, bundle: true, platform: 'node', format: 'cjs',
    external: ['@tensorflow/*'], outfile: path.join(dir, 'index.js'), logLevel: 'silent',
  });
  fs.writeFileSync(path.join(dir, 'child.js'), CHILD);
  bundled = {bundle: path.join(dir, 'index.js'), child: path.join(dir, 'child.js')};
  return bundled;
}

const CHILD = `
const [bundle, backend, jobFile] = process.argv.slice(2);
const tf = require('@tensorflow/tfjs');
if (backend === 'wasm') require('@tensorflow/tfjs-backend-wasm');
const tfn = require(bundle);
const fs = require('fs');
const path = require('path');

async function main() {
  tf.enableProdMode();
  await tf.setBackend(backend);
  await tf.ready();
  const job = JSON.parse(fs.readFileSync(jobFile, 'utf8'));
  const out = {backend: tf.getBackend(), cases: {}};
  for (const c of job.cases) {
    const model = await tf.loadLayersModel(tfn.fileSystem(path.join(c.dir, 'model.json')));
    const x = tf.tensor(c.x, c.xShape);
    const t = tf.tensor(c.target, c.targetShape);
    const predict = () => Array.from(model.predict(x).dataSync());
    const weights = () => Object.fromEntries(model.weights.map(w => [w.originalName, Array.from(w.read().dataSync())]));
    const r = {predictions: predict(), weights: weights(), dtypes: Object.fromEntries(model.weights.map(w => [w.originalName, w.dtype]))};
    model.compile({optimizer: tf.train.sgd(job.learningRate), loss: 'meanSquaredError'});
    await model.trainOnBatch(x, t);
    r.weightsAfterStep = weights();
    r.predictionsAfterStep = predict();
    out.cases[c.name] = r;
  }
  fs.writeFileSync(job.outFile, JSON.stringify(out));
}
main().catch(e => {
  console.error(e && e.stack || e);
  process.exit(1);
});
`;

interface Case {
  name: string;
  make: () => tf.layers.Layer;
}

/** One case per layer; arguments chosen so the config matters (momentum null needs num_batches_tracked). */
const CASES: Case[] = [
  // (gammaConstraint, not beta: tfjs' trainOnBatch does not apply constraints but loading does, so a
  // constraint training has violated would change the weights on load.)
  {name: 'BatchNorm', make: () => new tfn.BatchNorm({momentum: null, epsilon: 1e-3, gammaRegularizer: 'l2', gammaConstraint: 'nonNeg'})},
  {name: 'BatchNorm_axis1', make: () => new tfn.BatchNorm({axis: 1, momentum: 0.3, movingVarianceInitializer: 'ones'})},
  {name: 'InstanceNorm', make: () => new tfn.InstanceNorm({affine: true, trackRunningStats: true, momentum: null})},
  {name: 'GroupNorm', make: () => new tfn.GroupNorm({numGroups: 2, gammaInitializer: 'glorotUniform'})},
  {name: 'LayerNorm', make: () => new tfn.LayerNorm({axis: [-2, -1], bias: false})},
  {name: 'RMSNorm', make: () => new tfn.RMSNorm({epsilon: 1e-4})},
  {name: 'LocalResponseNorm', make: () => new tfn.LocalResponseNorm({size: 3, alpha: 0.1})},
  {name: 'GroupNormalization', make: () => new keras.GroupNormalization({groups: 2, center: false})},
  {name: 'AddonsInstanceNormalization', make: () => new keras.AddonsInstanceNormalization({})},
  {name: 'InstanceNormalization', make: () => new keras.InstanceNormalization({axis: -1})},
  {name: 'RMSNormalization', make: () => new keras.RMSNormalization({})},
  {name: 'UnitNormalization', make: () => new keras.UnitNormalization({axis: [1, 2]})},
];

const X_SHAPE = [6, 5, 4];
const T_SHAPE = [6, 2];
const seq = (n: number, scale: number, shift: number) => Array.from({length: n}, (_, i) => Math.sin(i * 1.7 + shift) * scale + 0.2);

function modelWith(layer: tf.layers.Layer): tf.Sequential {
  return tf.sequential({layers: [
    tf.layers.dense({units: 4, inputShape: X_SHAPE.slice(1), kernelInitializer: 'glorotUniform'}),
    layer,
    tf.layers.flatten(),
    tf.layers.dense({units: 2}),
  ]});
}

const values = (m: tf.LayersModel) => Object.fromEntries(m.weights.map(w => [w.originalName, Array.from(w.read().dataSync())]));

describeBackends('fileSystem round trip in a fresh Node process', backend => {
  const results: Record<string, {before: any; child: any}> = {};

  beforeAll(async () => {
    const {bundle: bundlePath, child} = bundle();
    const root = tmpDir();
    const job: any = {learningRate: LR, outFile: path.join(root, 'out.json'), cases: []};
    const x = seq(X_SHAPE.reduce((a, b) => a * b), 2, 0);
    const target = seq(T_SHAPE[0] * T_SHAPE[1], 1, 3);
    for (const c of CASES) {
      const model = modelWith(c.make());
      model.compile({optimizer: tf.train.sgd(LR), loss: 'meanSquaredError'});
      const xs = tf.tensor(x, X_SHAPE);
      const ts = tf.tensor(target, T_SHAPE);
      for (let i = 0; i < 2; i++) await model.trainOnBatch(xs, ts);
      const dir = path.join(root, c.name);
      await model.save(fileSystem(dir));
      const before: any = {predictions: Array.from((model.predict(xs) as tf.Tensor).dataSync()), weights: values(model),
                           config: model.layers[1].getConfig()};
      await model.trainOnBatch(xs, ts);
      before.weightsAfterStep = values(model);
      before.predictionsAfterStep = Array.from((model.predict(xs) as tf.Tensor).dataSync());
      results[c.name] = {before, child: null};
      job.cases.push({name: c.name, dir, x, xShape: X_SHAPE, target, targetShape: T_SHAPE});
      tf.dispose([xs, ts]);
      model.dispose();
    }
    const jobFile = path.join(root, 'job.json');
    fs.writeFileSync(jobFile, JSON.stringify(job));
    execFileSync(process.execPath, [child, bundlePath, backend, jobFile], {cwd: ROOT, stdio: 'pipe', timeout: 60000});
    const out = JSON.parse(fs.readFileSync(job.outFile, 'utf8'));
    expect(out.backend).toBe(backend);
    for (const c of CASES) results[c.name].child = out.cases[c.name];
  });

  for (const c of CASES) {
    it(`${c.name}: identical predictions, statistics and resumed training`, () => {
      const {before, child} = results[c.name];
      expect(child.weights).toEqual(before.weights);
      expect(child.predictions).toEqual(before.predictions);
      const stats = Object.keys(before.weights).filter(n => /moving_|num_batches_tracked/.test(n));
      if (/BatchNorm|^InstanceNorm$/.test(c.name)) {
        expect(stats.length).toBe(3);
        const count = stats.find(n => n.endsWith('num_batches_tracked'))!;
        expect(child.dtypes[count]).toBe('int32');
        expect(child.weights[count]).toEqual([2]);
        expect(child.weightsAfterStep[count]).toEqual([3]);
      }
      // One more step in the child = the step the original model took after saving.
      expect(child.weightsAfterStep).toEqual(before.weightsAfterStep);
      expect(child.predictionsAfterStep).toEqual(before.predictionsAfterStep);
    });
  }
});

describe('layer configs', () => {
  for (const c of CASES) {
    it(`${c.name}: fromConfig(getConfig()) is identical and config never changes after build`, () => {
      const layer = c.make();
      const config = layer.getConfig();
      layer.build([2, 5, 4]);
      expect(layer.getConfig()).toEqual(config);
      const [cls, fromConfig] = tf.serialization.SerializationMap.getMap().classNameMap[layer.getClassName()];
      const copy = fromConfig(cls, JSON.parse(JSON.stringify(config))) as unknown as tf.layers.Layer;
      expect(copy.constructor).toBe(layer.constructor);
      expect(copy.getConfig()).toEqual(config);
      copy.build([2, 5, 4]);
      expect(copy.weights.map(w => [w.originalName, w.shape, w.dtype, w.trainable]))
          .toEqual(layer.weights.map(w => [w.originalName, w.shape, w.dtype, w.trainable]));
      disposeLayer(layer);
      disposeLayer(copy);
    });
  }
});

describeBackends('fileSystem format and errors', () => {
  async function savedModel(): Promise<{model: tf.Sequential; dir: string}> {
    const model = modelWith(new tfn.BatchNorm({momentum: null}));
    const dir = path.join(tmpDir(), 'm');
    await model.save(fileSystem(dir));
    return {model, dir};
  }

  it('writes model.json + group1-shard1of1.bin as the converter and tfjs-node do', async () => {
    const {model, dir} = await savedModel();
    expect(fs.readdirSync(dir).sort()).toEqual(['group1-shard1of1.bin', 'model.json']);
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    expect(json.format).toBe('layers-model');
    expect(json.generatedBy).toMatch(/^TensorFlow\.js tfjs-layers v/);
    expect(json).toHaveProperty('convertedBy', null);
    expect(json.modelTopology.class_name).toBe('Sequential');
    expect(json.weightsManifest).toHaveLength(1);
    expect(json.weightsManifest[0].paths).toEqual(['group1-shard1of1.bin']);
    const specs = json.weightsManifest[0].weights;
    expect(specs.find((s: any) => s.name.endsWith('num_batches_tracked'))).toMatchObject({shape: [], dtype: 'int32'});
    const bytes = specs.reduce((a: number, s: any) => a + 4 * s.shape.reduce((p: number, d: number) => p * d, 1), 0);
    expect(fs.statSync(path.join(dir, 'group1-shard1of1.bin')).size).toBe(bytes);
    model.dispose();
  });

  it('shards weights and loads them back; loads over HTTP as a browser would', async () => {
    const model = modelWith(new tfn.GroupNorm({numGroups: 2}));
    const dir = path.join(tmpDir(), 'sharded');
    await model.save(fileSystem(dir, {shardSizeBytes: 64}));
    const shards = fs.readdirSync(dir).filter(f => f.endsWith('.bin')).sort();
    expect(shards.length).toBeGreaterThan(2);
    expect(shards[0]).toMatch(/^group1-shard\d+of\d+\.bin$/);
    const loaded = await tf.loadLayersModel(fileSystem(dir)); // a directory works too
    expect(values(loaded)).toEqual(values(model));
    // tf.io.http, the browser's loader, reads the same files unchanged.
    // (A minimal Response: Node's own would build the JSON in another realm than jest's.)
    const fetchFunc = async (url: string) => {
      const data = fs.readFileSync(path.join(dir, path.basename(url)));
      return {ok: true, status: 200, url, json: async () => JSON.parse(data.toString('utf8')),
              arrayBuffer: async () => data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)};
    };
    const viaHttp = await tf.loadLayersModel(tf.io.http('http://example.test/m/model.json', {fetchFunc: fetchFunc as unknown as typeof fetch}));
    expect(values(viaHttp)).toEqual(values(model));
    [model, loaded, viaHttp].forEach(m => m.dispose());
  });

  it('gives clear errors: missing directory, missing or truncated weights, manifest mismatch, bad JSON', async () => {
    const {model, dir} = await savedModel();
    model.dispose();
    const load = (p: string) => tf.loadLayersModel(fileSystem(p));
    await expect(load(path.join(dir, 'nope', 'model.json'))).rejects.toThrow(/path does not exist\. Received: path=".*nope\/model\.json"/);
    const empty = tmpDir();
    await expect(load(empty)).rejects.toThrow(/No model\.json in the directory/);
    const bin = path.join(dir, 'group1-shard1of1.bin');
    const good = fs.readFileSync(bin);
    fs.writeFileSync(bin, good.subarray(0, good.length - 4));
    await expect(load(dir)).rejects.toThrow(/truncated: the manifest in .*model\.json needs \d+ bytes\. Received: bytes=\d+/);
    fs.writeFileSync(bin, Buffer.concat([good, Buffer.alloc(8)]));
    await expect(load(dir)).rejects.toThrow(/do not match the manifest/);
    fs.rmSync(bin);
    await expect(load(dir)).rejects.toThrow(/Weight file "group1-shard1of1\.bin" listed in .*model\.json is missing/);
    fs.writeFileSync(bin, good);
    const jsonPath = path.join(dir, 'model.json');
    const json = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
    fs.writeFileSync(jsonPath, JSON.stringify({...json, weightsManifest: [{paths: 'x'}]}));
    await expect(load(dir)).rejects.toThrow(/`weightsManifest` must be a list/);
    fs.writeFileSync(jsonPath, '{"modelTopology": ');
    await expect(load(dir)).rejects.toThrow(/is not valid JSON/);
    const m2 = modelWith(new tfn.RMSNorm());
    await expect(m2.save(fileSystem(path.join(dir, 'no', 'such', 'dir')))).rejects.toThrow(/parent directory .* does not exist/);
    await expect(m2.save(fileSystem(bin))).rejects.toThrow(/path that is a file/);
    m2.dispose();
  });

  it('loadWeights: wrong shape or count fails with a clear error and leaves the model unchanged', async () => {
    const {model, dir} = await savedModel();
    const other = modelWith(new tfn.BatchNorm({momentum: null}));
    await noLeak(async () => {
      const before = values(other);
      // Different layer names: strict loading refuses, naming the weights.
      await expect(loadWeights(other, path.join(dir, 'model.json'))).rejects.toThrow(/match no weight of the model/);
      const named = Object.fromEntries(other.weights.map(w => [w.originalName, tf.zerosLike(w.read())]));
      const bnGamma = other.layers[1].weights[0].originalName;
      const wrong = {...named, [bnGamma]: tf.zeros([5])};
      await expect(loadWeights(other, wrong)).rejects.toThrow(new RegExp(`Shape mismatch for ${bnGamma}.*Received: ${bnGamma}\\.shape=\\[5\\]`));
      const fewer = {...named};
      delete fewer[bnGamma];
      await expect(loadWeights(other, fewer)).rejects.toThrow(/1 of the model's 9 weights are not in the given weights/);
      expect(values(other)).toEqual(before);
      // Right names and shapes: everything is written, num_batches_tracked as int32.
      await loadWeights(other, named);
      expect(Object.values(values(other)).every(v => v.every(e => e === 0))).toBe(true);
      tf.dispose([...Object.values(named), wrong[bnGamma]]);
    });
    model.dispose();
    other.dispose();
  });
});
