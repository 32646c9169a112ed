/**
 * recomputeBatchNormStats (PyTorch's swa_utils.update_bn): after training with
 * a small momentum on data whose distribution shifts, the recomputed running
 * statistics equal a direct float64 computation over the given batches:
 *
 *   running_mean = (1/K) sum_k mean(batch_k)            (= the mean of all the data: batches are equal-sized)
 *   running_var  = (1/K) sum_k unbiasedVar(batch_k)     (what PyTorch's cumulative average gives)
 *
 * per channel, where a BatchNorm's batch is its input in that pass (the layers
 * before it normalize with their own batch statistics; dropout is off), and
 * an InstanceNorm's batch statistic is the average over the batch of the
 * per-instance statistics. No trainable weight changes; momentum applies again
 * afterwards; frozen layers are recomputed too and stay frozen.
 */
import * as tf from '@tensorflow/tfjs';
import * as tfn from '../src';
import {recomputeBatchNormStats} from '../src/tools';
import {isRecomputingStats} from '../src/layers/base';
import {describeBackends, expectClose, noLeak, weight} from './harness';

const EPS = 1e-5;
const K = 6;
const B = 16;
/** float32 cumulative averages of values of order 1-10 against float64. */
const ATOL = 2e-5;
const RTOL = 2e-5;

type Rows = number[][];

/** Per-column mean and biased/unbiased variance of rows, in float64. */
function columnStats(rows: Rows): {mean: number[]; biased: number[]; unbiased: number[]} {
  const n = rows.length;
  const C = rows[0].length;
  const mean = new Array(C).fill(0);
  rows.forEach(r => r.forEach((v, c) => { mean[c] += v / n; }));
  const ss = new Array(C).fill(0);
  rows.forEach(r => r.forEach((v, c) => { ss[c] += (v - mean[c]) ** 2; }));
  return {mean, biased: ss.map(s => s / n), unbiased: ss.map(s => s / (n - 1))};
}

const average = (list: number[][]) => list[0].map((_, c) => list.reduce((a, l) => a + l[c], 0) / list.length);
const values = (layer: tf.layers.Layer, name: string) => Array.from(weight(layer, name)!.read().dataSync());
const rowsOf = (t: tf.Tensor) => t.arraySync() as Rows;

/** Training data whose mean drifts from +4 to 0, then the K batches the statistics are recomputed over. */
function data(F: number): {trainX: tf.Tensor; trainY: tf.Tensor; batches: tf.Tensor[]} {
  return tf.tidy(() => {
    const drift = tf.reshape(tf.linspace(4, 0, 8 * B), [8 * B, 1]);
    const trainX = tf.add(tf.randomNormal([8 * B, F], 0, 1.5, 'float32', 1), drift);
    const trainY = tf.oneHot(tf.cast(tf.greater(tf.sum(trainX, 1), 2), 'int32'), 2);
    const batches = Array.from({length: K}, (_, k) =>
      tf.add(tf.mul(tf.randomNormal([B, F], 0, 1, 'float32', 10 + k), tf.linspace(0.5, 2.5, F)), tf.linspace(-1, 3, F)));
    return {trainX, trainY, batches};
  });
}

/** input [F] -> BatchNorm -> Dense -> Dropout -> BatchNorm -> Dense, momentum 0.01. */
function mlp(F: number): tf.Sequential {
  const m = tf.sequential();
  m.add(tfn.layers.batchNorm({momentum: 0.01, inputShape: [F]}));
  m.add(tf.layers.dense({units: 4}));
  m.add(tf.layers.dropout({rate: 0.5}));
  m.add(tfn.layers.batchNorm({momentum: 0.01}));
  m.add(tf.layers.dense({units: 2, activation: 'softmax'}));
  m.compile({optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy'});
  return m;
}

/** Expected statistics of the MLP's two BatchNorms over `batches`, in float64. */
function expectedMlp(model: tf.Sequential, batches: tf.Tensor[]) {
  const [bn1, dense] = model.layers;
  const g1 = values(bn1, 'gamma');
  const b1 = values(bn1, 'beta');
  const W = dense.getWeights()[0].arraySync() as number[][];
  const bias = Array.from(dense.getWeights()[1].dataSync());
  const s1: number[][][] = [[], []];
  const s2: number[][][] = [[], []];
  for (const batch of batches) {
    const x = rowsOf(batch);
    const st = columnStats(x);
    s1[0].push(st.mean);
    s1[1].push(st.unbiased);
    // BN1 in training mode normalizes with the batch's biased variance; dropout is off.
    const y = x.map(r => r.map((v, c) => (v - st.mean[c]) / Math.sqrt(st.biased[c] + EPS) * g1[c] + b1[c]));
    const z = y.map(r => bias.map((b, j) => r.reduce((a, v, i) => a + v * W[i][j], b)));
    const sz = columnStats(z);
    s2[0].push(sz.mean);
    s2[1].push(sz.unbiased);
  }
  return {mean1: average(s1[0]), var1: average(s1[1]), mean2: average(s2[0]), var2: average(s2[1])};
}

function trainableSnapshot(model: tf.LayersModel): number[][] {
  return model.trainableWeights.map(w => Array.from(w.read().dataSync()));
}

describeBackends('recomputeBatchNormStats', () => {
  it('gives the average batch statistics after training on shifting data with a small momentum', async () => {
    const F = 5;
    const model = mlp(F);
    const {trainX, trainY, batches} = data(F);
    await model.fit(trainX, trainY, {epochs: 2, batchSize: B, shuffle: false, verbose: 0});
    const [bn1, , , bn2] = model.layers as [tfn.BatchNorm, tf.layers.Layer, tf.layers.Layer, tfn.BatchNorm];
    const trainable = trainableSnapshot(model);
    const stale = values(bn1, 'moving_mean');

    const result = await noLeak(() => recomputeBatchNormStats(model, batches), 'recomputeBatchNormStats');
    expect(result).toEqual({layers: [bn1.name, bn2.name], batches: K, skipped: []});

    const e = expectedMlp(model, batches);
    expectClose(values(bn1, 'moving_mean'), e.mean1, 'BatchNorm 1 running mean', ATOL, RTOL);
    expectClose(values(bn1, 'moving_variance'), e.var1, 'BatchNorm 1 running variance', ATOL, RTOL);
    expectClose(values(bn2, 'moving_mean'), e.mean2, 'BatchNorm 2 running mean', ATOL, RTOL);
    expectClose(values(bn2, 'moving_variance'), e.var2, 'BatchNorm 2 running variance', ATOL, RTOL);
    // Equal-sized batches: the running mean is the mean of all the data.
    const all = columnStats(batches.flatMap(rowsOf));
    expectClose(values(bn1, 'moving_mean'), all.mean, 'BatchNorm 1 running mean vs the data mean', ATOL, RTOL);
    // The stale statistics were far off (the data moved): the test is not vacuous.
    expect(Math.max(...stale.map((v, c) => Math.abs(v - all.mean[c])))).toBeGreaterThan(0.5);
    expect(values(bn1, 'num_batches_tracked')).toEqual([K]);
    expect(values(bn2, 'num_batches_tracked')).toEqual([K]);

    // Nothing trainable moved; momentum and the inference path are back.
    expect(trainableSnapshot(model)).toEqual(trainable);
    expect(bn1.momentum).toBe(0.01);
    expect(bn1.getConfig().momentum).toBe(0.01);
    expect(isRecomputingStats(bn1)).toBe(false);
    const before = values(bn1, 'moving_mean');
    tf.dispose(model.predict(batches[0]));
    expect(values(bn1, 'moving_mean')).toEqual(before);
    // A training step blends with momentum 0.01 again, not 1 / (K + 1).
    tf.tidy(() => {
      const batchMean = tf.mean(batches[1], 0).dataSync();
      bn1.apply(batches[1], {training: true});
      const expected = before.map((m, c) => m + 0.01 * (batchMean[c] - m));
      expectClose(values(bn1, 'moving_mean'), expected, 'running mean after one more training step', 1e-6, 1e-6);
    });

    tf.dispose([trainX, trainY, ...batches]);
    model.dispose();
  });

  it('is deterministic: dropout stays off', async () => {
    const F = 3;
    const model = mlp(F);
    const {trainX, trainY, batches} = data(F);
    await recomputeBatchNormStats(model, batches);
    const first = values(model.layers[3], 'moving_variance');
    await recomputeBatchNormStats(model, batches);
    expect(values(model.layers[3], 'moving_variance')).toEqual(first);
    tf.dispose([trainX, trainY, ...batches]);
    model.dispose();
  });

  it('recomputes channels-first BatchNorm, InstanceNorm and frozen layers from a tf.data.Dataset', async () => {
    // [N, C=3, L=4]: BatchNorm over axis 1 (frozen), InstanceNorm over axis 1 with running stats.
    const x = tf.input({shape: [3, 4]});
    const bn = tfn.layers.batchNorm({axis: 1, trainable: false});
    const inorm = tfn.layers.instanceNorm({axis: 1, affine: true, trackRunningStats: true, momentum: 0.2});
    const model = tf.model({inputs: x, outputs: [bn.apply(x) as tf.SymbolicTensor, inorm.apply(x) as tf.SymbolicTensor]});
    const batches = Array.from({length: 5}, (_, k) =>
      tf.tidy(() => tf.add(tf.mul(tf.randomNormal([B, 3, 4], 0, 1, 'float32', 30 + k), tf.reshape([1, 2, 0.5], [1, 3, 1])),
                           tf.reshape([2, -1, 5], [1, 3, 1]))));
    const used = 4;
    const progress: Array<[number, number | null]> = [];
    const dataset = tf.data.array(batches.map(b => ({xs: b, ys: tf.zeros([B])})));
    const before = tf.memory().numTensors;
    const result = await recomputeBatchNormStats(model, dataset, {batches: used, onProgress: (i, n) => { progress.push([i, n]); }});
    expect(tf.memory().numTensors).toBe(before);
    expect(result.batches).toBe(used);
    expect(progress).toEqual([[1, used], [2, used], [3, used], [4, used]]);

    // Direct computation: channel c of sample n is the row x[n][c][0..L-1].
    const bnMeans: number[][] = [];
    const bnVars: number[][] = [];
    const inMeans: number[][] = [];
    const inVars: number[][] = [];
    for (const batch of batches.slice(0, used)) {
      const a = batch.arraySync() as number[][][];
      // BatchNorm: per channel over N and L.
      const perChannel = [0, 1, 2].map(c => columnStats(a.flatMap(s => s[c].map(v => [v]))));
      bnMeans.push(perChannel.map(s => s.mean[0]));
      bnVars.push(perChannel.map(s => s.unbiased[0]));
      // InstanceNorm: per sample and channel over L, averaged over the batch.
      const inst = a.map(s => s.map(row => columnStats(row.map(v => [v]))));
      inMeans.push([0, 1, 2].map(c => inst.reduce((acc, s) => acc + s[c].mean[0], 0) / a.length));
      inVars.push([0, 1, 2].map(c => inst.reduce((acc, s) => acc + s[c].unbiased[0], 0) / a.length));
    }
    expectClose(values(bn, 'moving_mean'), average(bnMeans), 'frozen BatchNorm running mean', ATOL, RTOL);
    expectClose(values(bn, 'moving_variance'), average(bnVars), 'frozen BatchNorm running variance', ATOL, RTOL);
    expectClose(values(inorm, 'moving_mean'), average(inMeans), 'InstanceNorm running mean', ATOL, RTOL);
    expectClose(values(inorm, 'moving_variance'), average(inVars), 'InstanceNorm running variance', ATOL, RTOL);
    expect(bn.trainable).toBe(false);
    expect(values(inorm, 'gamma')).toEqual([1, 1, 1]);
    tf.dispose(batches);
    model.dispose();
  });

  it('restores the statistics when data gives no batch, and ignores models without running stats', async () => {
    const model = mlp(3);
    const bn = model.layers[0];
    tf.tidy(() => { weight(bn, 'moving_mean')!.write(tf.tensor1d([1, 2, 3])); });
    await expect(recomputeBatchNormStats(model, [])).rejects.toThrow(/gave no batch/);
    expect(values(bn, 'moving_mean')).toEqual([1, 2, 3]);
    expect(values(bn, 'moving_variance')).toEqual([1, 1, 1]);
    expect(isRecomputingStats(bn as tfn.BatchNorm)).toBe(false);
    await expect(recomputeBatchNormStats(model, [], {batches: 0})).rejects.toThrow(/Received: batches=0/);
    const plain = tf.sequential({layers: [tf.layers.dense({units: 2, inputShape: [3]})]});
    expect(await recomputeBatchNormStats(plain, [])).toEqual({layers: [], batches: 0, skipped: []});
    plain.dispose();
    model.dispose();
  });
});
