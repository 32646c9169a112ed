/**
 * A layer's weights by their short names. tfjs names a weight
 * `<layer name>/<short name>` (`batch_norm_1/moving_mean`); the tools and the
 * loaders look weights up by the short part (`gamma`, `moving_mean`, `kernel`).
 */
import * as tf from '@tensorflow/tfjs';
import type {LayerVariable} from '@tensorflow/tfjs-layers/dist/variables';

/** The weight's name inside its layer: `gamma`, `kernel`, `moving_mean`. */
export function shortName(v: {originalName: string}): string {
  return v.originalName.slice(v.originalName.lastIndexOf('/') + 1);
}

/** A layer's weight by its short name (`gamma`, `moving_mean`, `kernel`), or null. */
export function weightByShortName(layer: tf.layers.Layer, name: string): LayerVariable | null {
  return layer.weights.find(w => shortName(w) === name) ?? null;
}
