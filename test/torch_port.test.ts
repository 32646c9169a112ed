/**
 * PyTorch weight import: readSafetensors on files written by
 * test/fixtures/torch_port/make_model.py (Debian's PyTorch), and a small CNN
 * (Conv2d + BatchNorm2d + GroupNorm + Linear) ported whole with
 * loadTorchStateDict, against PyTorch's float64 outputs.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as path from 'path';
import {BatchNorm, GroupNorm, ValueError} from '../src';
import {loadTorchStateDict, readSafetensors, readSafetensorsFile} from '../src/io';
import {describeBackends, disposeAll, expectClose, noLeak, weight} from './harness';

const DIR = path.join(__dirname, 'fixtures', 'torch_port');
const expected = JSON.parse(fs.readFileSync(path.join(DIR, 'expected.json'), 'utf8'));
const bytes = (name: string) => fs.readFileSync(path.join(DIR, name));

function disposeMap(m: tf.NamedTensorMap): void {
  Object.values(m).forEach(t => t.dispose());
}

/** The tfjs port of make_model.py's Net, NCHW throughout; the head is named differently to exercise nameMap. */
function portedNet(): tf.Sequential {
  return tf.sequential({layers: [
    tf.layers.conv2d({name: 'conv', inputShape: [3, 6, 6], filters: 8, kernelSize: 3, dataFormat: 'channelsFirst'}),
    new BatchNorm({name: 'bn', axis: 1}),
    tf.layers.reLU(),
    new GroupNorm({name: 'gn', numGroups: 4, axis: 1}),
    tf.layers.flatten(),
    tf.layers.dense({name: 'head', units: 5}),
  ]});
}

/** A hand-made safetensors file from a header object and data bytes. */
function safetensors(header: unknown, data: Uint8Array = new Uint8Array(0), lengthOverride?: number): Uint8Array {
  const text = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setUint32(0, lengthOverride ?? text.length, true);
  out.set(text, 8);
  out.set(data, 8 + text.length);
  return out;
}

describeBackends('readSafetensors', () => {
  it('decodes F32, F16, BF16, F64 and I64 to the values PyTorch wrote', async () => {
    await noLeak(() => {
      const file = readSafetensorsFile(bytes('dtypes.safetensors'));
      expect(file.metadata).toEqual({purpose: 'dtype test'});
      expect(file.dtypes).toEqual({f32: 'F32', f16: 'F16', bf16: 'BF16', f64: 'F64', i64: 'I64'});
      for (const [name, e] of Object.entries(expected.dtypes as Record<string, {shape: number[]; values: number[]}>)) {
        const t = file.tensors[name];
        expect(t.shape).toEqual(e.shape);
        expect(t.dtype).toBe(name === 'i64' ? 'int32' : 'float32');
        // Exact: each value is what PyTorch's dtype holds, widened to float32.
        expect(Array.from(t.dataSync())).toEqual(t.dtype === 'int32' ? e.values : e.values.map(v => Math.fround(v)));
      }
      disposeMap(file.tensors);
    });
  });

  it('rejects malformed files with clear errors and no leaks', async () => {
    await noLeak(() => {
      const f32 = new Uint8Array(new Float32Array([1, 2]).buffer);
      const entry = {dtype: 'F32', shape: [2], data_offsets: [0, 8]};
      expect(() => readSafetensors(new Uint8Array(4))).toThrow(/shorter than the 8-byte header length/);
      expect(() => readSafetensors(safetensors({a: entry}, f32, 10_000))).toThrow(/header length exceeds.*Received: headerLength=10000/);
      expect(() => readSafetensors(safetensors('x').subarray(0, 10))).toThrow(ValueError);
      const notJson = safetensors({});
      notJson[8] = 0x7b; notJson[9] = 0x7b;
      expect(() => readSafetensors(notJson)).toThrow(/not valid UTF-8 JSON/);
      expect(() => readSafetensors(safetensors({a: {...entry, dtype: 'U8'}}, f32))).toThrow(/Unsupported safetensors dtype.*Received: dtype="U8"/);
      expect(() => readSafetensors(safetensors({a: {...entry, data_offsets: [0, 12]}}, f32))).toThrow(/within the 8 data bytes/);
      expect(() => readSafetensors(safetensors({a: {...entry, shape: [3]}}, f32))).toThrow(/spans 8 bytes but shape \[3\] of F32 needs 12/);
      expect(() => readSafetensors(safetensors({a: {...entry, shape: [-1]}}, f32))).toThrow(/shape of "a"/);
      // A later bad entry must not leak the tensors decoded before it.
      expect(() => readSafetensors(safetensors({a: entry, b: {...entry, dtype: 'X'}}, f32))).toThrow(/Received: dtype="X"/);
      const big = new Uint8Array(8);
      new DataView(big.buffer).setUint32(4, 1, true); // 2^32: outside int32
      expect(() => readSafetensors(safetensors({n: {dtype: 'I64', shape: [], data_offsets: [0, 8]}}, big)))
          .toThrow(/outside the int32 range.*Received: n\[0\]=4294967296/);
    });
  });
});

describeBackends('loadTorchStateDict', () => {
  it('ports a PyTorch CNN (conv + BatchNorm + GroupNorm + linear) to within 1e-4 of PyTorch', async () => {
    await noLeak(() => {
      const model = portedNet();
      const state = readSafetensors(bytes('model.safetensors'));
      const report = loadTorchStateDict(model, state, {nameMap: {fc: 'head'}});
      expect(report.unmatched).toEqual([]);
      expect(report.unused).toEqual([]);
      expect(report.loaded.map(l => l.key).sort()).toEqual(Object.keys(state).sort());
      disposeMap(state);
      const bn = model.getLayer('bn');
      expect(weight(bn, 'num_batches_tracked')!.read().dtype).toBe('int32');
      expect(weight(bn, 'num_batches_tracked')!.read().dataSync()[0]).toBe(2);

      const m = expected.model;
      const xEval = tf.tensor(m.x_eval, m.x_eval_shape);
      const yEval = model.predict(xEval) as tf.Tensor;
      expectClose(yEval, m.y_eval, 'eval output');
      // One more training-mode step continues PyTorch's running statistics.
      const xTrain = tf.tensor(m.x_train, m.x_train_shape);
      const yTrain = model.apply(xTrain, {training: true}) as tf.Tensor;
      expectClose(yTrain, m.y_train, 'training output');
      expectClose(weight(bn, 'moving_mean')!.read(), m.bn_running_mean, 'running mean');
      expectClose(weight(bn, 'moving_variance')!.read(), m.bn_running_var, 'running var');
      expect(weight(bn, 'num_batches_tracked')!.read().dataSync()[0]).toBe(m.bn_num_batches_tracked);
      disposeAll(xEval, yEval, xTrain, yTrain);
      model.dispose();
    });
  });

  it('converts nn.Conv1d and nn.Conv3d kernels', async () => {
    await noLeak(() => {
      const c = expected.convs;
      const c1 = tf.sequential({layers: [tf.layers.conv1d({name: 'c1', inputShape: [7, 2], filters: 3, kernelSize: 3})]});
      const c3 = tf.sequential({layers: [
        tf.layers.conv3d({name: 'c3', inputShape: c.x3_shape.slice(1), filters: 3, kernelSize: 2, dataFormat: 'channelsFirst'}),
      ]});
      const state = readSafetensors(bytes('convs.safetensors'));
      const r1 = loadTorchStateDict(c1, state);
      expect(r1.unused.sort()).toEqual(['c3.bias', 'c3.weight']);
      expect(r1.unmatched).toEqual([]);
      const r3 = loadTorchStateDict(c3, state);
      expect(r3.unused.sort()).toEqual(['c1.bias', 'c1.weight']);
      disposeMap(state);
      // Conv1D is channels-last here: the input goes [N, C, L] -> [N, L, C] and back.
      const x1 = tf.tidy(() => tf.transpose(tf.tensor(c.x1, c.x1_shape), [0, 2, 1]));
      const y1 = tf.tidy(() => tf.transpose(c1.predict(x1) as tf.Tensor, [0, 2, 1]));
      expectClose(y1, c.y1, 'conv1d output');
      const x3 = tf.tensor(c.x3, c.x3_shape);
      const y3 = c3.predict(x3) as tf.Tensor;
      expect(y3.shape).toEqual(c.y3_shape);
      expectClose(y3, c.y3, 'conv3d output');
      disposeAll(x1, y1, x3, y3);
      c1.dispose();
      c3.dispose();
    });
  });

  it('reports unmatched weights and unused keys; shape mismatches name the key and change nothing', async () => {
    await noLeak(() => {
      const model = portedNet();
      const state = readSafetensors(bytes('model.safetensors'));
      // Without the nameMap the head is unmatched and fc.* unused.
      const report = loadTorchStateDict(model, {...state, 'extra.weight': state['bn.weight']});
      expect(report.unmatched.sort()).toEqual(['head/bias', 'head/kernel']);
      expect(report.unused.sort()).toEqual(['extra.weight', 'fc.bias', 'fc.weight']);
      expect(() => loadTorchStateDict(model, state, {strict: true})).toThrow(/Received: unmatched=\["head\/kernel", "head\/bias"\]/);

      const before = model.getWeights().map(w => Array.from(w.dataSync()));
      const wrong = tf.zeros([5, 100]);
      expect(() => loadTorchStateDict(model, {...state, 'fc.weight': wrong}, {nameMap: {fc: 'head'}}))
          .toThrow(/Shape mismatch for fc\.weight: head\/kernel has shape \[128, 5\] \(torch layout \[5, 128\]\)\. Received: fc\.weight\.shape=\[5, 100\]/);
      const badBn = tf.zeros([4]);
      expect(() => loadTorchStateDict(model, {...state, 'bn.running_var': badBn}))
          .toThrow(/Shape mismatch for bn\.running_var.*Received: bn\.running_var\.shape=\[4\]/);
      expect(model.getWeights().map(w => Array.from(w.dataSync()))).toEqual(before);
      disposeAll(wrong, badBn);
      disposeMap(state);
      model.dispose();
    });
  });
});
