/**
 * Hostile configs: `fromConfig` (the serialization registry) and
 * `tf.loadLayersModel` with wrong types, missing required fields, unknown
 * keys, negative or non-integer sizes and non-finite epsilon. Each must throw
 * a ValueError naming the field in Keras' `Received: field=value` style, and
 * never hand back a layer or model (nor leave tensors behind).
 */
import * as tf from '@tensorflow/tfjs';
import * as tfn from '../src';
import {noLeak} from './harness';

const registry = () => tf.serialization.SerializationMap.getMap().classNameMap;

function fromConfig(className: string, config: unknown): tf.layers.Layer {
  const [cls, make] = registry()[className];
  return make(cls, config as tf.serialization.ConfigDict) as unknown as tf.layers.Layer;
}

function expectValueError(fn: () => unknown, fragments: string[]): void {
  let error: unknown = null;
  let result: unknown;
  try {
    result = fn();
  } catch (e) {
    error = e;
  }
  if (error === null) throw new Error(`no error; got ${result instanceof tf.layers.Layer ? 'a layer' : String(result)}`);
  expect(error).toBeInstanceOf(tfn.ValueError);
  for (const f of fragments) expect((error as Error).message).toContain(f);
}

type Hostile = [string, string, Record<string, unknown>, string[]];

/** [what, class, config, message fragments]: each config gives a ValueError containing every fragment. */
const HOSTILE: Hostile[] = [
  // wrong types
  ['epsilon as a string', 'BatchNorm', {epsilon: '1e-5'}, ['`epsilon`', 'Received: epsilon="1e-5"']],
  ['affine as a string', 'InstanceNorm', {affine: 'true'}, ['`affine`', 'Received: affine="true"']],
  ['trackRunningStats as a number', 'BatchNorm', {trackRunningStats: 1}, ['`trackRunningStats`', 'Received: trackRunningStats=1']],
  ['momentum as a string', 'BatchNorm', {momentum: '0.1'}, ['`momentum`', 'Received: momentum="0.1"']],
  ['axis as a string', 'GroupNorm', {numGroups: 1, axis: '-1'}, ['`axis`', 'Received: axis="-1"']],
  ['LayerNorm axis as a list of strings', 'LayerNorm', {axis: ['-1']}, ['`axis`', 'Received: axis=["-1"]']],
  ['LayerNorm bias as a string', 'LayerNorm', {bias: 'no'}, ['`bias`', 'Received: bias="no"']],
  ['numGroups as a string', 'GroupNorm', {numGroups: '2'}, ['`numGroups`', 'Received: numGroups="2"']],
  ['size as a string', 'LocalResponseNorm', {size: '5'}, ['`size`', 'Received: size="5"']],
  ['LRN alpha as a string', 'LocalResponseNorm', {size: 5, alpha: 'small'}, ['`alpha`', 'Received: alpha="small"']],
  ['gammaInitializer as a number', 'BatchNorm', {gammaInitializer: 3}, ['`gammaInitializer`', 'Received: gammaInitializer=3']],
  ['unknown initializer class', 'LayerNorm', {gammaInitializer: {className: 'Sparkly', config: {}}},
   ['gammaInitializer', 'Sparkly']],
  ['regularizer that is an initializer', 'GroupNorm', {numGroups: 1, gammaRegularizer: {className: 'Zeros', config: {}}},
   ['gammaRegularizer', 'Zeros']],
  // missing required fields
  ['GroupNorm without numGroups', 'GroupNorm', {axis: 1}, ['`numGroups`', 'Received: numGroups=undefined']],
  ['LocalResponseNorm without size', 'LocalResponseNorm', {alpha: 1e-4}, ['`size`', 'Received: size=undefined']],
  // negative or non-integer sizes
  ['numGroups negative', 'GroupNorm', {numGroups: -2}, ['positive integer', 'Received: numGroups=-2']],
  ['numGroups 0', 'GroupNorm', {numGroups: 0}, ['Received: numGroups=0']],
  ['numGroups non-integer', 'GroupNorm', {numGroups: 2.5}, ['Received: numGroups=2.5']],
  ['size negative', 'LocalResponseNorm', {size: -3}, ['positive integer', 'Received: size=-3']],
  ['size non-integer', 'LocalResponseNorm', {size: 2.5}, ['Received: size=2.5']],
  ['axis non-integer', 'BatchNorm', {axis: 1.5}, ['Received: axis=1.5']],
  ['axis 0 (batch)', 'InstanceNorm', {axis: 0}, ['Received: axis=0']],
  ['LRN k negative', 'LocalResponseNorm', {size: 3, k: -1}, ['`k`', 'Received: k=-1']],
  // non-finite / out-of-range numbers
  ['epsilon NaN', 'BatchNorm', {epsilon: NaN}, ['`epsilon`', 'Received: epsilon=NaN']],
  ['epsilon Infinity', 'LayerNorm', {epsilon: Infinity}, ['`epsilon`', 'Received: epsilon=Infinity']],
  ['epsilon negative', 'GroupNorm', {numGroups: 1, epsilon: -1e-5}, ['Received: epsilon=-0.00001']],
  ['RMSNorm epsilon NaN', 'RMSNorm', {epsilon: NaN}, ['`epsilon`', 'Received: epsilon=NaN']],
  ['momentum NaN', 'InstanceNorm', {momentum: NaN}, ['`momentum`', 'Received: momentum=NaN']],
  ['momentum above 1', 'BatchNorm', {momentum: 1.01}, ['Received: momentum=1.01']],
  ['LRN beta NaN', 'LocalResponseNorm', {size: 3, beta: NaN}, ['`beta`', 'Received: beta=NaN']],
];

/**
 * Needs a src fix (see the report of issue 6): tfjs' Layer base accepts these
 * silently, so a typo in a config (`epsilonn`) or a corrupt model.json gives a
 * layer that ignores the field.
 */
const HOSTILE_PENDING: Hostile[] = [
  ['unknown key (typo of epsilon)', 'BatchNorm', {epsilonn: 1e-3}, ['`epsilonn`', 'Received: epsilonn=0.001']],
  ['unknown key on GroupNorm', 'GroupNorm', {numGroups: 2, groups: 4}, ['`groups`', 'Received: groups=4']],
  ['unknown key on LayerNorm', 'LayerNorm', {normalizedShape: [4]}, ['`normalizedShape`']],
  ['unknown key on RMSNorm', 'RMSNorm', {eps: 1e-6}, ['`eps`', 'Received: eps=0.000001']],
  ['unknown key on InstanceNorm', 'InstanceNorm', {center: false}, ['`center`', 'Received: center=false']],
  ['unknown key on LocalResponseNorm', 'LocalResponseNorm', {size: 3, depthRadius: 2}, ['`depthRadius`']],
  ['trainable as a string', 'BatchNorm', {trainable: 'yes'}, ['`trainable`', 'Received: trainable="yes"']],
  ['negative size in batchInputShape', 'LayerNorm', {batchInputShape: [null, -4]}, ['`batchInputShape`', '-4']],
  ['non-integer size in batchInputShape', 'BatchNorm', {batchInputShape: [null, 2.5]}, ['`batchInputShape`', '2.5']],
  ['config null', 'BatchNorm', null as unknown as Record<string, unknown>, ['config', 'Received: config=null']],
];

describe('fromConfig with hostile configs', () => {
  it.each(HOSTILE)('%s', (_, cls, config, fragments) => {
    expectValueError(() => fromConfig(cls, config), fragments);
  });
  it.each(HOSTILE_PENDING)('%s', (_, cls, config, fragments) => {
    expectValueError(() => fromConfig(cls, config), fragments);
  });

  it('the documented config of every layer round-trips (the checks reject nothing valid)', () => {
    const layers = [
      tfn.layers.batchNorm({axis: 1, momentum: null, epsilon: 1e-3, trainable: false, name: 'bn_ok'}),
      tfn.layers.instanceNorm({affine: true, trackRunningStats: true}),
      tfn.layers.groupNorm({numGroups: 2, axis: -1, gammaRegularizer: 'l2'}),
      tfn.layers.layerNorm({axis: [-2, -1], bias: false}),
      tfn.layers.rmsNorm({epsilon: null}),
      tfn.layers.localResponseNorm({size: 5, alpha: 1e-3, beta: 0.5, k: 2, axis: 1}),
    ];
    for (const layer of layers) {
      const config = JSON.parse(JSON.stringify(layer.getConfig()));
      const copy = fromConfig(layer.getClassName(), config);
      expect(copy.getConfig()).toEqual(layer.getConfig());
    }
  });
});

// ------------------------------------------------------------ loadLayersModel

interface Saved {
  artifacts: tf.io.ModelArtifacts;
  weightData: ArrayBuffer;
}

/**
 * A saved Sequential model [layer -> dense] as in-memory artifacts (what
 * model.json and the weights file hold). Our layer comes first: a failed
 * Sequential.fromConfig leaks the weights of the layers it already built (tfjs'
 * behaviour, not ours), so with ours first a rejected config leaves nothing.
 */
async function save(layer: tf.layers.Layer, inputShape: number[]): Promise<Saved> {
  const model = tf.sequential({layers: [layer, tf.layers.dense({units: 2})]});
  model.build([null, ...inputShape]);
  let saved: Saved | null = null;
  await model.save(tf.io.withSaveHandler(async a => {
    saved = {artifacts: JSON.parse(JSON.stringify({...a, weightData: undefined})), weightData: a.weightData as ArrayBuffer};
    return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}};
  }));
  model.dispose();
  return saved!;
}

/** Loads `saved` after editing the saved config (snake_case, as in model.json) of our layer. */
async function loadEdited(saved: Saved, edit: (config: Record<string, unknown>) => void): Promise<tf.LayersModel> {
  const a = JSON.parse(JSON.stringify(saved.artifacts)) as tf.io.ModelArtifacts;
  const topology = a.modelTopology as {config: {layers: Array<{config: Record<string, unknown>}>}};
  edit(topology.config.layers[0].config);
  return tf.loadLayersModel(tf.io.fromMemory({...a, weightData: saved.weightData}));
}

async function expectLoadError(load: () => Promise<tf.LayersModel>, fragments: string[]): Promise<void> {
  await noLeak(async () => {
    let error: unknown = null;
    try {
      const m = await load();
      m.dispose();
    } catch (e) {
      error = e;
    }
    if (error === null) throw new Error('loadLayersModel accepted the hostile config');
    expect(error).toBeInstanceOf(tfn.ValueError);
    for (const f of fragments) expect((error as Error).message).toContain(f);
  }, 'a failed load');
}

describe('loadLayersModel with hostile configs', () => {
  let bn: Saved;
  let gn: Saved;
  let lrn: Saved;

  beforeAll(async () => {
    await tf.setBackend('cpu');
    bn = await save(tfn.layers.batchNorm({inputShape: [4]}), [4]);
    gn = await save(tfn.layers.groupNorm({numGroups: 2, inputShape: [4]}), [4]);
    lrn = await save(tfn.layers.localResponseNorm({size: 3, axis: -1, inputShape: [3, 4]}), [3, 4]);
  });

  it('the unedited model loads (control)', async () => {
    const m = await loadEdited(bn, () => undefined);
    expect(m.layers[0].getClassName()).toBe('BatchNorm');
    m.dispose();
  });

  it.each<[string, 'bn' | 'gn' | 'lrn', (c: Record<string, unknown>) => void, string[]]>([
    ['epsilon as a string', 'bn', c => { c.epsilon = 'small'; }, ['`epsilon`', 'Received: epsilon="small"']],
    ['epsilon negative, on GroupNorm', 'gn', c => { c.epsilon = -1; }, ['Received: epsilon=-1']],
    ['momentum out of range', 'bn', c => { c.momentum = 2; }, ['Received: momentum=2']],
    ['num_groups missing', 'gn', c => { delete c.num_groups; }, ['`numGroups`', 'Received: numGroups=undefined']],
    ['num_groups negative', 'gn', c => { c.num_groups = -2; }, ['Received: numGroups=-2']],
    ['num_groups not dividing the channels', 'gn', c => { c.num_groups = 3; }, ['divide', 'Received: numGroups=3']],
    ['size non-integer', 'lrn', c => { c.size = 1.5; }, ['`size`', 'Received: size=1.5']],
    ['axis as a string', 'bn', c => { c.axis = 'last'; }, ['`axis`', 'Received: axis="last"']],
  ])('%s', async (_, which, edit, fragments) => {
    const saved = {bn, gn, lrn}[which];
    await expectLoadError(() => loadEdited(saved, edit), fragments);
  });

  it.each<[string, (c: Record<string, unknown>) => void, string[]]>([
    ['unknown key (snake_case typo) [pending src fix]', c => { c.epsilonn = 0.001; }, ['`epsilonn`']],
    ['trainable as a string [pending src fix]', c => { c.trainable = 'false'; }, ['`trainable`']],
  ])('%s', async (_, edit, fragments) => {
    await expectLoadError(() => loadEdited(bn, edit), fragments);
  });
});
