/**
 * `recomputeBatchNormStats(model, data)`: "precise BatchNorm", PyTorch's
 * `torch.optim.swa_utils.update_bn`. Running statistics tracked with a small
 * momentum lag behind the weights (and behind data whose distribution moved
 * during training); this replaces them with the plain average over a pass
 * through the data.
 */
import * as tf from '@tensorflow/tfjs';
import {fail, show} from '../validate';
import {NormLayer, setRecomputingStats} from '../layers/base';

const OWNER = 'recomputeBatchNormStats';

/** Model inputs of one batch: a tensor, one tensor per model input, or a map by input name. */
export type BatchInputs = tf.Tensor | tf.Tensor[] | tf.NamedTensorMap;
/** One batch: the inputs, or `{xs, ys}` as `model.fitDataset` takes (ys is ignored). */
export type StatsBatch = BatchInputs | {
  /** The model inputs. */
  xs: BatchInputs;
  /** Targets, ignored. */
  ys?: tf.TensorContainer;
};

/** Options of {@link recomputeBatchNormStats}. */
export interface RecomputeStatsOptions {
  /** Use at most this many batches. Default: all of `data`. */
  batches?: number;
  /** Called after each batch with the batches done and the total when known (array length or `batches`). */
  onProgress?: (done: number, total: number | null) => void | Promise<void>;
}

/** What {@link recomputeBatchNormStats} did. */
export interface RecomputeStatsResult {
  /** Layers whose running statistics were recomputed. */
  layers: string[];
  /** Batches averaged. */
  batches: number;
  /** Layers with running statistics this function leaves alone (tfjs' BatchNormalization). */
  skipped: string[];
}

/** Layers with running statistics, nested models included. */
function statsLayers(model: tf.LayersModel, found: NormLayer[], skipped: string[]): void {
  for (const layer of model.layers) {
    if (layer instanceof tf.LayersModel) statsLayers(layer, found, skipped);
    else if (layer instanceof NormLayer && layer.trackRunningStats && layer.movingMean) found.push(layer);
    else if (layer.getClassName() === 'BatchNormalization') skipped.push(layer.name);
  }
}

function isTensor(x: unknown): x is tf.Tensor {
  return x instanceof tf.Tensor;
}

/** The model inputs of a batch, as predictOnBatch takes them. */
function inputsOf(model: tf.LayersModel, batch: StatsBatch): tf.Tensor | tf.Tensor[] {
  const xs = (!isTensor(batch) && !Array.isArray(batch) && 'xs' in batch ? batch.xs : batch) as BatchInputs;
  if (isTensor(xs)) return xs;
  if (Array.isArray(xs) && xs.every(isTensor)) return xs;
  if (xs != null && typeof xs === 'object' && !Array.isArray(xs)) {
    const named = xs as tf.NamedTensorMap;
    return model.inputNames.map(name => {
      if (!isTensor(named[name])) {
        fail(OWNER, `a batch given by input name lacks input ${show(name)}`, 'keys', Object.keys(named));
      }
      return named[name];
    });
  }
  return fail(OWNER, 'each batch must be a tensor, a list of tensors, a map of tensors by input name, or {xs, ys}',
              'batch', batch);
}

/**
 * Precise BatchNorm: resets the running mean and variance of every BatchNorm
 * and InstanceNorm with trackRunningStats in `model` (nested models included)
 * and recomputes them as the cumulative average over the batches of `data`,
 * as PyTorch's `torch.optim.swa_utils.update_bn` does: the running mean
 * becomes the average of the batch means and the running variance the
 * average of the unbiased batch variances (InstanceNorm: of the per-instance
 * statistics averaged over each batch); `num_batches_tracked` counts the
 * batches. With equal-sized batches the running mean is the exact mean of the
 * data. The layers' momentum applies again afterwards.
 *
 * Unlike update_bn, which runs the whole model in training mode, only these
 * norm layers run in training mode (frozen ones included); every other layer
 * runs in inference mode, so dropout is off and the statistics are those of
 * the activations inference sees, and the result is deterministic. No
 * trainable weight changes. Batches are fed whole (one forward pass each), so
 * their size is the batch size of the statistics.
 *
 * `data`: a `tf.data.Dataset` (its elements are disposed after use, as
 * `fitDataset` does) or an array of batches (left alone). A batch is a
 * tensor, a list of tensors (multi-input models), a map by input name, or
 * `{xs, ys}` (ys ignored). On an error the previous statistics are restored.
 *
 * ```js
 * await recomputeBatchNormStats(model, trainBatches, {onProgress: (i, n) => console.log(`${i}/${n}`)});
 * ```
 */
export async function recomputeBatchNormStats(model: tf.LayersModel, data: tf.data.Dataset<StatsBatch> | StatsBatch[],
                                              options: RecomputeStatsOptions = {}): Promise<RecomputeStatsResult> {
  if (!(model instanceof tf.LayersModel)) fail(OWNER, 'expects a tf.LayersModel', 'model', model);
  const limit = options.batches ?? Infinity;
  if (!(limit === Infinity || (Number.isInteger(limit) && limit > 0))) {
    fail(OWNER, '`batches` must be a positive integer', 'batches', limit);
  }
  const fromArray = Array.isArray(data);
  if (!fromArray && !(data instanceof tf.data.Dataset)) {
    fail(OWNER, '`data` must be a tf.data.Dataset or an array of batches', 'data', data);
  }
  const layers: NormLayer[] = [];
  const skipped: string[] = [];
  statsLayers(model, layers, skipped);
  if (layers.length === 0) return {layers: [], batches: 0, skipped};

  const total = fromArray ? Math.min(limit, data.length) : (limit === Infinity ? null : limit);
  const saved = layers.map(l => [l.movingMean!, l.movingVariance!, l.numBatchesTracked!].map(v => v.read().clone()));
  let done = 0;
  try {
    tf.tidy(() => {
      for (const l of layers) {
        l.movingMean!.write(tf.zerosLike(l.movingMean!.read()));
        l.movingVariance!.write(tf.onesLike(l.movingVariance!.read()));
        l.numBatchesTracked!.write(tf.scalar(0, 'int32'));
        setRecomputingStats(l, true);
      }
    });
    const step = async (batch: StatsBatch) => {
      tf.dispose(model.predictOnBatch(inputsOf(model, batch)));
      done++;
      if (options.onProgress) await options.onProgress(done, total);
    };
    if (fromArray) {
      for (const batch of data.slice(0, total!)) await step(batch);
    } else {
      const iterator = await data.iterator();
      while (done < limit) {
        const next = await iterator.next();
        if (next.done) break;
        try {
          await step(next.value);
        } finally {
          tf.dispose(next.value as tf.TensorContainer);
        }
      }
    }
    if (done === 0) fail(OWNER, '`data` gave no batch', 'batches', 0);
  } catch (e) {
    layers.forEach((l, i) => [l.movingMean!, l.movingVariance!, l.numBatchesTracked!].forEach((v, j) => v.write(saved[i][j])));
    throw e;
  } finally {
    for (const l of layers) setRecomputingStats(l, false);
    tf.dispose(saved);
  }
  return {layers: layers.map(l => l.name), batches: done, skipped};
}
