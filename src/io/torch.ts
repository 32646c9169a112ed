/**
 * `loadTorchStateDict(model, tensors)`: copies a PyTorch state_dict (e.g. from
 * readSafetensors) onto a tfjs model, converting layouts:
 *
 *   nn.Linear.weight [out, in]          -> Dense kernel [in, out]
 *   nn.Conv1d/2d/3d.weight [O, I, ...k] -> Conv1D/2D/3D kernel [...k, I, O]
 *   norm weight / bias                  -> gamma / beta (`scale` for RMSNormalization)
 *   running_mean / running_var          -> moving_mean / moving_variance
 *   num_batches_tracked (int64)         -> num_batches_tracked (int32)
 *
 * A torch module `features.0` maps to the tfjs layer of the same name unless
 * `nameMap` says otherwise.
 */
import * as tf from '@tensorflow/tfjs';
import type {LayerVariable} from '@tensorflow/tfjs-layers/dist/variables';
import {fail, show} from '../validate';
import {weightByShortName} from '../weight_names';
import {allLayers, checkedValue, writeAll} from './weights';

const OWNER = 'loadTorchStateDict';

/** Options of {@link loadTorchStateDict}. */
export interface LoadTorchOptions {
  /**
   * torch module name -> tfjs layer name, for modules whose tfjs layer has
   * another name (`{'features.0': 'conv2d_1'}`), or a function returning the
   * layer name (null: skip the module). Unlisted modules map to the layer of
   * the same name.
   */
  nameMap?: {[torchModule: string]: string} | ((torchModule: string) => string | null);
  /** Throw unless every model weight is set and every state_dict key used. Default false. */
  strict?: boolean;
}

/** What {@link loadTorchStateDict} did. */
export interface LoadTorchResult {
  /** state_dict keys copied, with the tfjs weight each went to. */
  loaded: Array<{
    /** The state_dict key, e.g. `features.1.running_mean`. */
    key: string;
    /** The tfjs weight's name, e.g. `batch_norm_1/moving_mean`. */
    weight: string;
  }>;
  /** tfjs weights (originalName) no key was found for; they keep their values. */
  unmatched: string[];
  /** state_dict keys that were not used. */
  unused: string[];
}

/** torch parameter name -> tfjs weight short name, per tfjs class. */
const NORM_MAP: {[torch: string]: string} = {
  weight: 'gamma', bias: 'beta', running_mean: 'moving_mean', running_var: 'moving_variance',
  num_batches_tracked: 'num_batches_tracked',
};
const LINEAR_MAP: {[torch: string]: string} = {weight: 'kernel', bias: 'bias'};

function paramMap(className: string): {[torch: string]: string} | null {
  if (className === 'Dense' || /^Conv[123]D$/.test(className)) return LINEAR_MAP;
  if (className === 'RMSNormalization') return {weight: 'scale'};
  if (/Norm/.test(className)) return NORM_MAP;
  return null;
}

/** torch layout -> tfjs layout of a Linear/Conv weight. */
function convert(className: string, param: string, value: tf.Tensor): tf.Tensor {
  if (param !== 'weight') return value;
  if (className === 'Dense' && value.rank === 2) return tf.transpose(value, [1, 0]);
  if (/^Conv[123]D$/.test(className) && value.rank >= 3) {
    const r = value.rank;
    // [O, I, k1, ..., kn] -> [k1, ..., kn, I, O]
    return tf.transpose(value, [...Array.from({length: r - 2}, (_, i) => i + 2), 1, 0]);
  }
  return value;
}

/**
 * Copies a PyTorch state_dict onto `model`: our normalization layers, tfjs'
 * BatchNormalization/LayerNormalization, the Keras-compatible layers, Dense
 * (from nn.Linear) and Conv1D/2D/3D (from nn.Conv1d/2d/3d). Shape or dtype
 * mismatches throw a ValueError naming the key, before anything is written.
 * Returns what was loaded and the unmatched weights and unused keys.
 *
 * ```js
 * const {unmatched, unused} = loadTorchStateDict(model, readSafetensors(bytes), {nameMap: {fc: 'dense'}});
 * ```
 *
 * The tfjs model must use the same layout as the PyTorch one where it
 * matters (e.g. `dataFormat: 'channelsFirst'` convolutions and `axis: 1`
 * norms before a Flatten feeding a Dense), or the Dense kernel rows will not
 * line up.
 */
export function loadTorchStateDict(model: tf.LayersModel | tf.layers.Layer, tensors: tf.NamedTensorMap,
                                   options: LoadTorchOptions = {}): LoadTorchResult {
  const map = options.nameMap ?? {};
  const toLayer = typeof map === 'function' ? map : (m: string) => (m in map ? map[m] : m);
  const layers = new Map<string, tf.layers.Layer>();
  for (const l of allLayers(model)) layers.set(l.name, l);

  const pairs: Array<[LayerVariable, tf.Tensor]> = [];
  const loaded: Array<{key: string; weight: string}> = [];
  const unused: string[] = [];
  const set = new Set<LayerVariable>();
  const sources = new Set(Object.values(tensors));
  try {
    for (const [key, value] of Object.entries(tensors)) {
      const dot = key.lastIndexOf('.');
      const module = dot < 0 ? '' : key.slice(0, dot);
      const param = key.slice(dot + 1);
      const layerName = toLayer(module);
      const layer = layerName == null ? undefined : layers.get(layerName);
      const target = layer ? paramMap(layer.getClassName())?.[param] : undefined;
      const variable = target ? weightByShortName(layer!, target) : null;
      if (!variable) {
        unused.push(key);
        continue;
      }
      const className = layer!.getClassName();
      const converted = convert(className, param, value);
      if (converted !== value && !tf.util.arraysEqual(variable.shape as number[], converted.shape)) {
        // Name the torch layout: the received shape is the torch one.
        converted.dispose();
        fail(OWNER, `Shape mismatch for ${key}: ${variable.originalName} has shape ${show(variable.shape)} ` +
                    `(torch layout ${show(torchShape(className, variable.shape as number[]))})`, `${key}.shape`, value.shape);
      }
      let checked: tf.Tensor;
      try {
        checked = checkedValue(OWNER, variable, converted, key);
      } catch (e) {
        if (converted !== value) converted.dispose();
        throw e;
      }
      if (checked !== converted && converted !== value) converted.dispose();
      pairs.push([variable, checked]);
      set.add(variable);
      loaded.push({key, weight: variable.originalName});
    }
  } catch (e) {
    pairs.forEach(([, v]) => sources.has(v) || v.dispose());
    throw e;
  }
  const unmatched = allLayers(model).flatMap(l => l.weights as LayerVariable[])
      .filter(w => !set.has(w)).map(w => w.originalName);
  if (options.strict && (unmatched.length || unused.length)) {
    pairs.forEach(([, v]) => sources.has(v) || v.dispose());
    fail(OWNER, `The state_dict does not cover the model exactly (strict); unused keys: ${show(unused)}`,
         'unmatched', unmatched);
  }
  writeAll(pairs, sources);
  return {loaded, unmatched, unused};
}

/** The torch shape a tfjs Dense/Conv kernel corresponds to, for error messages. */
function torchShape(className: string, shape: number[]): number[] {
  if (className === 'Dense') return [shape[1], shape[0]];
  const r = shape.length;
  return [shape[r - 1], shape[r - 2], ...shape.slice(0, r - 2)];
}
