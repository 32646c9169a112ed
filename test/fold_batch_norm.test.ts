/**
 * foldBatchNorm: on several architectures (channels-last and -first convs,
 * conv without bias, depthwise and separable convs, dense, conv1d/conv3d,
 * InstanceNorm with running stats, tfjs' BatchNormalization, functional
 * graphs) the folded model predicts what the original predicts in inference
 * mode within 1e-5 of the output's scale, leaves the original untouched,
 * saves and loads like any model, and reports every norm it kept and why.
 */
import * as tf from '@tensorflow/tfjs';
import * as tfn from '../src';
import {foldBatchNorm, FoldReport} from '../src/tools';
import {describeBackends, expectClose, shortName} from './harness';

/** Fold tolerance: 1e-5 relative, relative to the output's largest magnitude for elements near zero. */
const REL = 1e-5;

/** Gives every norm (and every bias) non-trivial statistics and affine weights, deterministically. */
function randomizeStats(model: tf.LayersModel, seed: number): void {
  tf.tidy(() => {
    let s = seed;
    for (const layer of model.layers) {
      for (const w of layer.weights) {
        const name = shortName(w);
        const shape = w.shape as number[];
        const u = (lo: number, hi: number) => tf.randomUniform(shape, lo, hi, 'float32', s++);
        if (name === 'moving_mean' || name === 'beta' || name === 'bias') w.write(u(-1, 1));
        else if (name === 'moving_variance') w.write(u(0.2, 3));
        else if (name === 'gamma') w.write(u(0.5, 1.5));
      }
    }
  });
}

/** max |folded - original| / max |original| over a batch, with both in inference mode. */
function relativeError(original: tf.LayersModel, folded: tf.LayersModel, x: tf.Tensor | tf.Tensor[]): number {
  const toList = (y: tf.Tensor | tf.Tensor[]) => (Array.isArray(y) ? y : [y]);
  const expected = toList(original.predict(x) as tf.Tensor | tf.Tensor[]);
  const actual = toList(folded.predict(x) as tf.Tensor | tf.Tensor[]);
  let worst = 0;
  expected.forEach((e, i) => {
    const ev = e.dataSync();
    const av = actual[i].dataSync();
    expect(actual[i].shape).toEqual(e.shape);
    let scale = 0;
    for (const v of ev) scale = Math.max(scale, Math.abs(v));
    for (let j = 0; j < ev.length; j++) worst = Math.max(worst, Math.abs(av[j] - ev[j]) / scale);
    expectClose(av, ev, `output ${i}`, REL * scale, REL);
  });
  tf.dispose([...expected, ...actual]);
  return worst;
}

interface Arch {
  name: string;
  build: () => tf.LayersModel;
  /** Input shapes without the batch dim. */
  inputs: number[][];
  folded: number;
  kept: number;
}

const seq = (...layers: tf.layers.Layer[]) => {
  const m = tf.sequential();
  layers.forEach(l => m.add(l));
  return m;
};

const ARCHS: Arch[] = [
  {
    name: 'Sequential conv2d (bias, no bias) + dense, channels-last',
    inputs: [[8, 8, 3]],
    build: () => seq(
      tf.layers.conv2d({filters: 6, kernelSize: 3, padding: 'same', inputShape: [8, 8, 3]}),
      tfn.layers.batchNorm(),
      tf.layers.reLU(),
      tf.layers.conv2d({filters: 5, kernelSize: 3, strides: 2, useBias: false}),
      tfn.layers.batchNorm({momentum: null}),
      tf.layers.activation({activation: 'relu'}),
      tf.layers.flatten(),
      tf.layers.dense({units: 7}),
      tfn.layers.batchNorm({affine: false}),
      tf.layers.dense({units: 3}),
    ),
    folded: 3, kept: 0,
  },
  {
    name: 'Sequential conv2d channels-first, BatchNorm axis 1',
    inputs: [[3, 6, 6]],
    build: () => seq(
      tf.layers.conv2d({filters: 4, kernelSize: 3, dataFormat: 'channelsFirst', useBias: false, inputShape: [3, 6, 6]}),
      tfn.layers.batchNorm({axis: 1}),
      tf.layers.conv2d({filters: 5, kernelSize: 1, dataFormat: 'channelsFirst'}),
      tfn.layers.batchNorm({axis: 1}),
    ),
    folded: 2, kept: 0,
  },
  {
    name: 'depthwise (multiplier 2, with and without bias) and separable conv2d',
    inputs: [[7, 7, 3]],
    build: () => seq(
      tf.layers.depthwiseConv2d({kernelSize: 3, depthMultiplier: 2, useBias: false, inputShape: [7, 7, 3]}),
      tfn.layers.batchNorm(),
      tf.layers.depthwiseConv2d({kernelSize: 3, depthMultiplier: 1, padding: 'same'}),
      tfn.layers.batchNorm(),
      // depthMultiplier 1: tfjs 4.22's SeparableConv2D config omits depthMultiplier, so no model with another saves or loads.
      tf.layers.separableConv2d({filters: 4, kernelSize: 3}),
      tfn.layers.batchNorm(),
    ),
    folded: 3, kept: 0,
  },
  {
    name: 'conv1d + InstanceNorm with running stats, conv3d + tfjs BatchNormalization',
    inputs: [[9, 4], [4, 4, 4, 2]],
    build: () => {
      const a = tf.input({shape: [9, 4]});
      let y = tf.layers.conv1d({filters: 5, kernelSize: 3}).apply(a) as tf.SymbolicTensor;
      y = tfn.layers.instanceNorm({affine: true, trackRunningStats: true}).apply(y) as tf.SymbolicTensor;
      y = tf.layers.conv1d({filters: 3, kernelSize: 2}).apply(y) as tf.SymbolicTensor;
      y = tfn.layers.instanceNorm().apply(y) as tf.SymbolicTensor;  // per-instance: kept
      const b = tf.input({shape: [4, 4, 4, 2]});
      let z = tf.layers.conv3d({filters: 3, kernelSize: 2, useBias: false}).apply(b) as tf.SymbolicTensor;
      z = tfn.layers.batchNorm().apply(z) as tf.SymbolicTensor;
      z = tf.layers.reshape({targetShape: [27, 3]}).apply(z) as tf.SymbolicTensor;
      z = tf.layers.dense({units: 4}).apply(z) as tf.SymbolicTensor;
      z = tf.layers.batchNormalization({epsilon: 1e-3}).apply(z) as tf.SymbolicTensor;
      return tf.model({inputs: [a, b], outputs: [y, z]});
    },
    folded: 3, kept: 1,
  },
  {
    name: 'functional residual block and every reason to keep a norm',
    inputs: [[6, 6, 4]],
    build: () => {
      const x = tf.input({shape: [6, 6, 4]});
      const c1 = tf.layers.conv2d({filters: 4, kernelSize: 3, padding: 'same'}).apply(x) as tf.SymbolicTensor;
      const b1 = tfn.layers.batchNorm().apply(c1) as tf.SymbolicTensor;                        // folds
      const skip = tf.layers.conv2d({filters: 4, kernelSize: 1, useBias: false}).apply(x) as tf.SymbolicTensor;
      const bs = tfn.layers.batchNorm().apply(skip) as tf.SymbolicTensor;                      // folds
      const sum = tf.layers.add().apply([b1, bs]) as tf.SymbolicTensor;
      const act = tf.layers.conv2d({filters: 4, kernelSize: 1, activation: 'relu'}).apply(sum) as tf.SymbolicTensor;
      const kActivation = tfn.layers.batchNorm().apply(act) as tf.SymbolicTensor;             // relu between
      const shared = tf.layers.conv2d({filters: 4, kernelSize: 1}).apply(kActivation) as tf.SymbolicTensor;
      const kShared = tfn.layers.batchNorm().apply(shared) as tf.SymbolicTensor;              // conv output used twice
      const both = tf.layers.add().apply([kShared, shared]) as tf.SymbolicTensor;
      const c4 = tf.layers.conv2d({filters: 4, kernelSize: 1}).apply(both) as tf.SymbolicTensor;
      const kNoStats = tfn.layers.batchNorm({trackRunningStats: false}).apply(c4) as tf.SymbolicTensor;  // batch stats
      const c5 = tf.layers.conv2d({filters: 6, kernelSize: 1}).apply(kNoStats) as tf.SymbolicTensor;
      const kAxis = tfn.layers.batchNorm({axis: 1}).apply(c5) as tf.SymbolicTensor;           // not the channel axis
      const kAfterAdd = tfn.layers.batchNorm().apply(both) as tf.SymbolicTensor;              // follows Add
      const c6 = tf.layers.dense({units: 3}).apply(kAfterAdd) as tf.SymbolicTensor;
      const out = tfn.layers.batchNorm().apply(c6) as tf.SymbolicTensor;                      // folds, model output
      const kLayerNorm = tfn.layers.layerNorm().apply(out) as tf.SymbolicTensor;
      return tf.model({inputs: x, outputs: [kAxis, out, kLayerNorm]});
    },
    folded: 3, kept: 6,
  },
];

function weightsOf(model: tf.LayersModel): Float32Array[] {
  return model.getWeights().map(w => w.dataSync().slice() as Float32Array);
}

function inputsFor(arch: Arch, batch: number, seed: number): tf.Tensor[] {
  return arch.inputs.map((s, i) => tf.randomNormal([batch, ...s], 0.3, 1.2, 'float32', seed + i));
}

describeBackends('foldBatchNorm', () => {
  for (const arch of ARCHS) {
    it(`predicts as the original: ${arch.name}`, async () => {
      const model = arch.build();
      randomizeStats(model, 7);
      const before = weightsOf(model);
      const startTensors = tf.memory().numTensors;
      const {model: folded, report} = await foldBatchNorm(model);
      expect(report.folded.length).toBe(arch.folded);
      expect(report.kept.length).toBe(arch.kept);
      expect(folded.layers.length).toBe(model.layers.length - arch.folded);
      const x = inputsFor(arch, 3, 11);
      const err = relativeError(model, folded, x.length === 1 ? x[0] : x);
      // eslint-disable-next-line no-console
      console.log(`[${tf.getBackend()}] ${arch.name}: max |folded - original| / max |original| = ${err.toExponential(2)}`);
      tf.dispose(x);
      // The original is untouched.
      const after = weightsOf(model);
      expect(after.length).toBe(before.length);
      after.forEach((w, i) => expect(Array.from(w)).toEqual(Array.from(before[i])));
      folded.dispose();
      expect(tf.memory().numTensors).toBe(startTensors);
      model.dispose();
    });
  }

  it('says why each norm was kept', async () => {
    const model = ARCHS[4].build();
    const {model: folded, report} = await foldBatchNorm(model);
    const reasons = (r: FoldReport) => r.kept.map(k => k.reason).join('\n');
    expect(reasons(report)).toMatch(/activation "relu"/);
    expect(reasons(report)).toMatch(/also feeds other layers/);
    expect(reasons(report)).toMatch(/without trackRunningStats/);
    expect(reasons(report)).toMatch(/axis 1 is not .* channel axis 3/);
    expect(reasons(report)).toMatch(/\(Add\), not a conv or dense layer/);
    expect(reasons(report)).toMatch(/LayerNorm normalizes with the statistics of each sample/);
    expect(report.folded.map(f => f.into).every(n => folded.getLayer(n).getConfig().useBias === true)).toBe(true);
    folded.dispose();
    model.dispose();
  });

  it('saves and loads the folded model like any model', async () => {
    const arch = ARCHS[0];
    const model = arch.build();
    randomizeStats(model, 3);
    const {model: folded} = await foldBatchNorm(model);
    let artifacts: tf.io.ModelArtifacts | null = null;
    await folded.save(tf.io.withSaveHandler(async a => {
      artifacts = a;
      return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}};
    }));
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts!));
    expect(loaded.layers.map(l => l.getClassName())).not.toContain('BatchNorm');
    const x = inputsFor(arch, 2, 5)[0];
    const y0 = model.predict(x) as tf.Tensor;
    const y1 = loaded.predict(x) as tf.Tensor;
    const scale = y0.abs().max().dataSync()[0];
    expectClose(y1, y0.dataSync(), 'loaded folded model', REL * scale, REL);
    tf.dispose([x, y0, y1]);
    loaded.dispose();
    folded.dispose();
    model.dispose();
  });

  it('folds a trained model whose norms were updated by fit', async () => {
    const model = seq(
      tf.layers.dense({units: 8, inputShape: [5]}),
      tfn.layers.batchNorm(),
      tf.layers.dense({units: 1}),
    );
    model.compile({optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError'});
    const x = tf.randomNormal([32, 5], 2, 3, 'float32', 1);
    const y = tf.randomNormal([32, 1], 0, 1, 'float32', 2);
    await model.fit(x, y, {epochs: 3, batchSize: 8, verbose: 0});
    const {model: folded, report} = await foldBatchNorm(model);
    expect(report.folded).toEqual([{norm: model.layers[1].name, into: model.layers[0].name}]);
    relativeError(model, folded, x);
    tf.dispose([x, y]);
    folded.dispose();
    model.dispose();
  });

  it('rejects what is not a built LayersModel', async () => {
    await expect(foldBatchNorm({} as tf.LayersModel)).rejects.toThrow(/expects a tf.LayersModel/);
    await expect(foldBatchNorm(tf.sequential())).rejects.toThrow(/build the model first/);
  });
});
