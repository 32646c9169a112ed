/**
 * Keras' fine-tuning rule for layers frozen through an enclosing model.
 *
 * Keras runs a frozen BatchNorm in inference mode, also when the freezing was
 * `base.trainable = false` on a model that contains it (Keras' setter recurses
 * into sublayers). tfjs' container setter only flips the `trainable` flags of
 * its direct children's weights: the layer's own `trainable` stays true, and
 * layers in a nested model keep training. So the package wraps the container
 * setter (installed once by register.ts): after tfjs' own behaviour, it records
 * which containers froze each of our layers, at any depth; unfreezing removes
 * the record. tfjs' behaviour for every other layer is unchanged.
 */
import * as tf from '@tensorflow/tfjs';

/** For each layer, the enclosing containers whose `trainable = false` currently freezes it. */
const frozenBy = new WeakMap<tf.layers.Layer, Set<tf.LayersModel>>();

/** Whether an enclosing model (at any depth) was frozen with `trainable = false`. */
export function frozenByEnclosingModel(layer: tf.layers.Layer): boolean {
  return (frozenBy.get(layer)?.size ?? 0) > 0;
}

function isContainer(layer: tf.layers.Layer): layer is tf.LayersModel {
  return layer instanceof tf.LayersModel;
}

/** Every layer below `container`, nested models included. */
function descendants(container: tf.LayersModel, out: tf.layers.Layer[] = []): tf.layers.Layer[] {
  for (const layer of container.layers) {
    out.push(layer);
    if (isContainer(layer)) descendants(layer, out);
  }
  return out;
}

const WRAPPED = Symbol.for('tfjs-norm.containerTrainable');

/**
 * Wraps tfjs' container `trainable` setter so that freezing a model marks
 * the layers `track(layer)` accepts below it (idempotent: a second copy of the
 * package does not wrap twice).
 */
export function installContainerFreezing(track: (layer: tf.layers.Layer) => boolean): void {
  // tfjs' Container, the class LayersModel (and Sequential) extend; it is not exported.
  const proto = Object.getPrototypeOf(tf.LayersModel.prototype) as object;
  const descriptor = Object.getOwnPropertyDescriptor(proto, 'trainable');
  const original = descriptor?.set;
  if (!descriptor || !original || (original as unknown as {[WRAPPED]?: boolean})[WRAPPED]) return;
  const set = function(this: tf.LayersModel, trainable: boolean) {
    original.call(this, trainable);
    for (const layer of descendants(this)) {
      if (!track(layer)) continue;
      const set = frozenBy.get(layer) ?? new Set<tf.LayersModel>();
      if (trainable) set.delete(this);
      else set.add(this);
      frozenBy.set(layer, set);
    }
  };
  (set as unknown as {[WRAPPED]: boolean})[WRAPPED] = true;
  Object.defineProperty(proto, 'trainable', {...descriptor, set});
}
