/**
 * Hostile configs: `fromConfig` (the serialization registry) and
 * `tf.loadLayersModel` with wrong types, missing required fields, unknown
 * keys, negative or non-integer sizes and non-finite epsilon. Each must throw
 * a ValueError naming the field in Keras' `Received: field=value` style, and
 * never hand back a layer or model (nor leave tensors behind).
 */
import * as tf from '@tensorflow/tfjs';
import {CATALOG, expectValueError, expectValueErrorAsync, makeLayer, noLeak} from './harness';

const registry = () => tf.serialization.SerializationMap.getMap().classNameMap;

function fromConfig(className: string, config: unknown): tf.layers.Layer {
  const [cls, make] = registry()[className];
  return make(cls, config as tf.serialization.ConfigDict) as unknown as tf.layers.Layer;
}

/** [what, class, config, message fragments] over the catalog: each config gives a ValueError containing every fragment. */
const HOSTILE: Array<[string, string, Record<string, unknown>, string[]]> =
    CATALOG.flatMap(info => info.hostileConfigs.map(([what, config, fragments]) =>
      [`${info.name}: ${what}`, info.name, config, fragments] as [string, string, Record<string, unknown>, string[]]));

describe('fromConfig with hostile configs', () => {
  it.each(HOSTILE)('%s', (_, cls, config, fragments) => {
    expectValueError(() => fromConfig(cls, config), ...fragments);
  });

  it.each(CATALOG.map(info => [info.name, info] as const))(
    'the documented config of %s round-trips (the checks reject nothing valid)', (_, info) => {
      const layer = makeLayer(info, info.documentedConfig);
      const config = JSON.parse(JSON.stringify(layer.getConfig()));
      const copy = fromConfig(layer.getClassName(), config);
      expect(copy.getConfig()).toEqual(layer.getConfig());
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

const SAVED = CATALOG.filter(info => info.hostileLoad);

describe('loadLayersModel with hostile configs', () => {
  const saved: Record<string, Saved> = {};

  beforeAll(async () => {
    await tf.setBackend('cpu');
    for (const info of SAVED) {
      const {args, inputShape} = info.hostileLoad!;
      saved[info.name] = await save(makeLayer(info, {...args, inputShape}), inputShape);
    }
  });

  it.each(SAVED.map(info => [info.name]))('the unedited %s model loads (control)', async name => {
    const m = await loadEdited(saved[name], () => undefined);
    expect(m.layers[0].getClassName()).toBe(name);
    m.dispose();
  });

  it.each(SAVED.flatMap(info => info.hostileLoad!.edits.map(([what, edit, fragments]) =>
    [`${info.name}: ${what}`, info.name, edit, fragments] as const)))('%s', async (_, name, edit, fragments) => {
    await noLeak(() => expectValueErrorAsync(() => loadEdited(saved[name], edit), ...fragments), 'a failed load');
  });
});
