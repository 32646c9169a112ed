/**
 * Keras model import: converter-format model.json + weights written by
 * test/fixtures/keras/make_fixtures.py (snake_case config as Keras writes it),
 * loaded with tf.loadLayersModel, against float64 references of Keras'
 * documented formulas. Plus config round trips, errors and registration.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {ValueError} from '../src';
import {fileSystem} from '../src/io';
import {
  AddonsGroupNormalization, AddonsInstanceNormalization, GroupNormalization, InstanceNormalization, RMSNormalization,
  UnitNormalization,
} from '../src/keras';
import {registerKerasClass} from '../src/keras/common';
import {describeBackends, disposeAll, disposeLayer, expectClose, noLeak, weight} from './harness';

const DIR = path.join(__dirname, 'fixtures', 'keras');
const expected: {cases: Record<string, {inputShape: number[]; x: number[]; y: number[]}>} =
    JSON.parse(fs.readFileSync(path.join(DIR, 'expected.json'), 'utf8'));

/** Class expected in each fixture (besides InputLayer/Conv2D/Flatten/Dense). */
const CLASSES: Record<string, string[]> = {
  group_normalization: ['GroupNormalization'],
  group_normalization_per_channel: ['GroupNormalization'],
  addons_group_normalization: ['Addons>GroupNormalization'],
  addons_instance_normalization: ['Addons>InstanceNormalization'],
  contrib_instance_normalization: ['InstanceNormalization'],
  contrib_instance_normalization_axis_none: ['InstanceNormalization'],
  contrib_instance_normalization_no_affine: ['InstanceNormalization'],
  rms_normalization: ['RMSNormalization'],
  rms_normalization_two_axes: ['RMSNormalization'],
  unit_normalization: ['UnitNormalization'],
  unit_normalization_two_axes: ['UnitNormalization'],
  mixed_model: ['Conv2D', 'GroupNormalization', 'Flatten', 'Dense', 'RMSNormalization', 'Dense', 'UnitNormalization'],
};

const tmpDirs: string[] = [];
afterAll(() => tmpDirs.forEach(d => fs.rmSync(d, {recursive: true, force: true})));
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-norm-keras-'));
  tmpDirs.push(d);
  return d;
}

describe('Keras fixtures', () => {
  it('are written as Keras writes them (snake_case config keys)', () => {
    const json = JSON.parse(fs.readFileSync(path.join(DIR, 'group_normalization', 'model.json'), 'utf8'));
    const cfg = json.modelTopology.model_config.config.layers[1].config;
    expect(Object.keys(cfg)).toEqual(expect.arrayContaining(['beta_initializer', 'gamma_regularizer', 'beta_constraint']));
    expect(Object.keys(expected.cases).sort()).toEqual(Object.keys(CLASSES).sort());
  });
});

describeBackends('Keras model import', () => {
  for (const [name, c] of Object.entries(expected.cases)) {
    it(`${name} loads and gives Keras' numbers`, async () => {
      const model = await tf.loadLayersModel(fileSystem(path.join(DIR, name, 'model.json')));
      expect(model.layers.map(l => l.getClassName()).filter(n => n !== 'InputLayer')).toEqual(CLASSES[name]);
      await noLeak(() => {
        const x = tf.tensor(c.x, c.inputShape);
        const y = model.predict(x) as tf.Tensor;
        expect(y.shape).toEqual(model.outputs[0].shape.map((d, i) => (i === 0 ? c.inputShape[0] : d)));
        expectClose(y, c.y, name);
        disposeAll(x, y);
      });
      // Saved by us (tfjs camelCase config -> Keras snake_case), loaded again: same numbers.
      const dir = tmpDir();
      await model.save(fileSystem(dir));
      const saved = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      const layerCfg = saved.modelTopology.config.layers.find((l: {class_name: string}) => CLASSES[name].includes(l.class_name)).config;
      expect(Object.keys(layerCfg).every(k => k === k.toLowerCase())).toBe(true);
      const again = await tf.loadLayersModel(fileSystem(path.join(dir, 'model.json')));
      tf.tidy(() => {
        const x = tf.tensor(c.x, c.inputShape);
        expect(Array.from((again.predict(x) as tf.Tensor).dataSync())).toEqual(Array.from((model.predict(x) as tf.Tensor).dataSync()));
      });
      model.dispose();
      again.dispose();
    });
  }

  it('the Keras layers train (gradients flow to gamma/beta/scale)', async () => {
    await noLeak(() => {
      const layers = [new GroupNormalization({groups: 2}), new InstanceNormalization({axis: -1}), new RMSNormalization()];
      const x = tf.randomNormal([2, 3, 4]);
      for (const layer of layers) {
        layer.build(x.shape);
        const vars = layer.trainableWeights.map(w => w.read() as tf.Variable);
        const {value, grads} = tf.variableGrads(() => tf.sum(tf.square(layer.apply(x) as tf.Tensor)) as tf.Scalar, vars);
        expect(Object.keys(grads).length).toBe(vars.length);
        Object.values(grads).forEach(g => expect(tf.tidy(() => tf.all(tf.isFinite(g)).dataSync()[0])).toBe(1));
        disposeAll(value, ...Object.values(grads));
        disposeLayer(layer);
      }
      x.dispose();
    });
  });
});

describe('Keras layer configs', () => {
  const made = () => [
    new GroupNormalization({groups: -1, axis: 1, epsilon: 0.01, center: false, gammaInitializer: 'glorotUniform',
                            gammaRegularizer: 'l2', betaConstraint: 'nonNeg'}),
    new AddonsGroupNormalization({groups: 2}),
    new AddonsInstanceNormalization({scale: false}),
    new InstanceNormalization({axis: null, epsilon: 0.1, betaInitializer: 'ones'}),
    new InstanceNormalization({axis: 2, center: false, scale: false}),
    new RMSNormalization({axis: [-2, -1], epsilon: 1e-3}),
    new UnitNormalization({axis: [1, 2]}),
  ];

  it('fromConfig(getConfig()) rebuilds an identical layer; config never changes after build', () => {
    for (const layer of made()) {
      const before = layer.getConfig();
      layer.build([2, 4, 6]);
      expect(layer.getConfig()).toEqual(before);
      const cls = layer.constructor as typeof GroupNormalization;
      const [registered, fromConfig] = tf.serialization.SerializationMap.getMap().classNameMap[cls.className];
      const copy = fromConfig(registered, before) as unknown as tf.layers.Layer;
      expect(copy.constructor).toBe(layer.constructor);
      expect(copy.getConfig()).toEqual(before);
      disposeLayer(layer);
    }
  });

  it('Keras defaults and weight names', () => {
    const gn = new GroupNormalization();
    expect(gn.getConfig()).toMatchObject({groups: 32, axis: -1, epsilon: 1e-3, center: true, scale: true});
    const ai = new AddonsInstanceNormalization({groups: 3} as {groups: number});
    expect(ai.getConfig().groups).toBe(-1);
    expect(new InstanceNormalization().getConfig()).toMatchObject({axis: null, epsilon: 1e-3});
    expect(new RMSNormalization().getConfig()).toMatchObject({axis: -1, epsilon: 1e-6});
    expect(new UnitNormalization().getConfig()).toMatchObject({axis: -1});
    const cases: Array<[tf.layers.Layer, number[], string[]]> = [
      [new GroupNormalization({groups: 2}), [1, 4], ['gamma', 'beta']],
      [new GroupNormalization({groups: 2, center: false}), [1, 4], ['gamma']],
      [new GroupNormalization({groups: 2, scale: false}), [1, 4], ['beta']],
      [new GroupNormalization({groups: 2, center: false, scale: false}), [1, 4], []],
      [new InstanceNormalization(), [1, 3, 4], ['gamma', 'beta']],
      [new RMSNormalization(), [1, 4], ['scale']],
      [new UnitNormalization(), [1, 4], []],
    ];
    for (const [layer, shape, names] of cases) {
      layer.build(shape);
      expect(layer.weights.map(w => w.originalName)).toEqual(names);
      if (names.includes('gamma')) expect(weight(layer, 'gamma')!.shape).toEqual(layer instanceof InstanceNormalization ? [1] : [4]);
      disposeLayer(layer);
    }
  });

  it('accepts a Keras 3 DTypePolicy dtype', () => {
    const policy = {module: 'keras', className: 'DTypePolicy', config: {name: 'float32'}, registeredName: null};
    const layer = new RMSNormalization({inputShape: [4], dtype: policy} as never);
    expect(layer.getConfig().dtype).toBe('float32');
    expect(() => new RMSNormalization({dtype: {className: 'DTypePolicy', config: {}}} as never)).toThrow(/Unrecognized `dtype`/);
  });

  it('errors in Keras style', () => {
    expect(() => new GroupNormalization({groups: 0})).toThrow(/Received: groups=0/);
    expect(() => new GroupNormalization({groups: 1.5})).toThrow(ValueError);
    expect(() => new GroupNormalization({groups: 3}).build([2, 4])).toThrow(/must divide the number of channels \(4\). Received: groups=3/);
    expect(() => new GroupNormalization({groups: 8}).build([2, 4])).toThrow(/cannot be more than the number of channels \(4\). Received: groups=8/);
    expect(() => new GroupNormalization({axis: 0, groups: 1}).build([2, 4])).toThrow(/batch axis/);
    expect(() => new GroupNormalization({axis: 5}).build([2, 4])).toThrow(/Received: axis=5/);
    expect(() => new InstanceNormalization({axis: 0})).toThrow(/Received: axis=0/);
    expect(() => new InstanceNormalization({axis: 1}).build([2, 4])).toThrow(/rank-2 input.*Received: axis=1/);
    expect(() => new InstanceNormalization({epsilon: -1})).toThrow(/Received: epsilon=-1/);
    expect(() => new RMSNormalization({axis: 'x' as never})).toThrow(/Received: axis="x"/);
    expect(() => new UnitNormalization({axis: []})).toThrow(/Received: axis=\[\]/);
    expect(() => new GroupNormalization({gammaInitializer: 'nope'})).toThrow(/Unknown initializer/);
  });

  it('never replaces a class tfjs owns', () => {
    const map = tf.serialization.SerializationMap.getMap().classNameMap;
    expect(map.BatchNormalization[0]).toBe(tf.layers.batchNormalization({}).constructor);
    expect(map.LayerNormalization[0]).toBe(tf.layers.layerNormalization({}).constructor);
    class Impostor extends tf.layers.Layer {
      static className = 'BatchNormalization';
    }
    expect(() => registerKerasClass(Impostor)).toThrow(/Received: className="BatchNormalization"/);
    expect(map.BatchNormalization[0]).toBe(tf.layers.batchNormalization({}).constructor);
    for (const name of ['GroupNormalization', 'Addons>GroupNormalization', 'Addons>InstanceNormalization',
                        'InstanceNormalization', 'RMSNormalization', 'UnitNormalization']) {
      expect(map[name]).toBeDefined();
    }
  });
});
