/**
 * Checked, all-or-nothing weight assignment: every name, shape and dtype is
 * checked before the first variable is written, so a failed load leaves the
 * model as it was.
 */
import * as tf from '@tensorflow/tfjs';
import type {LayerVariable} from '@tensorflow/tfjs-layers/dist/variables';
import {fail, show} from '../validate';
import {fileSystem} from './file_system';

/** Every layer of a model, nested models' layers included. */
export function allLayers(model: tf.LayersModel | tf.layers.Layer): tf.layers.Layer[] {
  const out: tf.layers.Layer[] = [];
  const visit = (l: tf.layers.Layer) => {
    const inner = (l as unknown as {layers?: tf.layers.Layer[]}).layers;
    if (Array.isArray(inner)) inner.forEach(visit);
    else out.push(l);
  };
  visit(model as tf.layers.Layer);
  return out;
}

/**
 * Checks `value` fits `variable` (shape; dtype, integral values for int32)
 * and returns the value to write, in the variable's dtype. `owner` (the
 * function the user called) and `what` (the source) name them in errors.
 */
export function checkedValue(owner: string, variable: LayerVariable, value: tf.Tensor, what: string): tf.Tensor {
  if (!tf.util.arraysEqual(variable.shape as number[], value.shape)) {
    fail(owner, `Shape mismatch for ${what}: ${variable.originalName} has shape ${show(variable.shape)}`,
         `${what}.shape`, value.shape);
  }
  if (variable.dtype === value.dtype) return value;
  if (variable.dtype === 'int32' && value.dtype === 'float32') {
    const v = value.dataSync();
    if (!v.every(Number.isInteger)) {
      fail(owner, `${what} must hold integers for the int32 weight ${variable.originalName}`, what,
           Array.from(v).slice(0, 4));
    }
  } else if (variable.dtype !== 'float32' || (value.dtype !== 'int32' && value.dtype !== 'bool')) {
    fail(owner, `dtype mismatch for ${what}: ${variable.originalName} is ${variable.dtype}`, `${what}.dtype`, value.dtype);
  }
  return tf.cast(value, variable.dtype);
}

/** Writes checked pairs (from checkedValue); disposes the casts it was given that are not `sources`. */
export function writeAll(pairs: Array<[LayerVariable, tf.Tensor]>, sources: Set<tf.Tensor>): void {
  for (const [variable, value] of pairs) variable.write(value);
  for (const [, value] of pairs) if (!sources.has(value)) value.dispose();
}

/** Options of {@link loadWeights}. */
export interface LoadWeightsOptions {
  /** Require every weight of the model to be set and every given weight to be used. Default true. */
  strict?: boolean;
}

/**
 * Loads weights into an existing model from a model.json path, an IOHandler
 * or a map of tfjs weight names (`layer/gamma`) to tensors. Unlike
 * `model.loadWeights`, every name, shape and dtype is checked before anything
 * is written: a wrong shape or count throws a ValueError naming the weight
 * and leaves the model unchanged. Default options: strict true.
 *
 * ```js
 * await tfn.loadWeights(model, 'trained/model.json');                 // checked; model unchanged on error
 * await tfn.loadWeights(model, {'batch_norm_1/gamma': g}, {strict: false});
 * ```
 */
export async function loadWeights(model: tf.LayersModel, source: string | tf.io.IOHandler | tf.NamedTensorMap,
                                  options: LoadWeightsOptions = {}): Promise<void> {
  const owner = 'loadWeights';
  const strict = options.strict ?? true;
  let tensors: tf.NamedTensorMap;
  let owned = false;
  if (typeof source === 'string' || typeof (source as tf.io.IOHandler).load === 'function') {
    const handler = typeof source === 'string' ? fileSystem(source) : source as tf.io.IOHandler;
    const artifacts = await handler.load!();
    if (artifacts.weightSpecs == null || artifacts.weightData == null) {
      fail(owner, 'The model files hold no weights', 'source', typeof source === 'string' ? source : 'IOHandler');
    }
    const specs = artifacts.weightSpecs.filter(s => s.group !== 'optimizer');
    tensors = tf.io.decodeWeights(artifacts.weightData, artifacts.weightSpecs);
    for (const s of artifacts.weightSpecs) if (s.group === 'optimizer') tensors[s.name].dispose();
    tensors = Object.fromEntries(specs.map(s => [s.name, tensors[s.name]]));
    owned = true;
  } else {
    tensors = source as tf.NamedTensorMap;
  }
  try {
    const byName = new Map<string, LayerVariable>();
    for (const layer of allLayers(model)) {
      for (const w of layer.weights) byName.set(w.originalName, w as LayerVariable);
    }
    const pairs: Array<[LayerVariable, tf.Tensor]> = [];
    const unknown: string[] = [];
    const seen = new Set<string>();
    try {
      for (const [name, value] of Object.entries(tensors)) {
        const variable = byName.get(name);
        if (!variable) {
          unknown.push(name);
          continue;
        }
        seen.add(name);
        pairs.push([variable, checkedValue(owner, variable, value, name)]);
      }
      const missing = [...byName.keys()].filter(n => !seen.has(n));
      if (strict && unknown.length) {
        fail(owner, `${unknown.length} given weight(s) match no weight of the model (${byName.size} weights)`, 'names', unknown);
      }
      if (strict && missing.length) {
        fail(owner, `${missing.length} of the model's ${byName.size} weights are not in the given weights`, 'missing', missing);
      }
    } catch (e) {
      const given = new Set(Object.values(tensors));
      pairs.forEach(([, v]) => given.has(v) || v.dispose());
      throw e;
    }
    writeAll(pairs, new Set(Object.values(tensors)));
  } finally {
    if (owned) Object.values(tensors).forEach(t => t.dispose());
  }
}
