/**
 * `foldBatchNorm(model)`: an inference copy of a model where every norm layer
 * that applies one fixed per-channel scale and shift in inference (BatchNorm,
 * InstanceNorm with running statistics, tf.layers.batchNormalization) and
 * directly follows a linear conv/dense layer is merged into that layer's
 * kernel and bias:
 *
 *   s = gamma / sqrt(running_var + epsilon),  W' = W * s,  b' = (b - running_mean) * s + beta
 *
 * per output channel. The model is rebuilt from its JSON topology (the save
 * format), so the result saves and loads like any model. Three steps:
 * decideFolds (which norm folds into which layer, and why the others stay),
 * rewriteTopology (the new JSON) and copyWeights (copies, and the folded
 * kernels and biases).
 */
import * as tf from '@tensorflow/tfjs';
import type {PyJsonDict} from '@tensorflow/tfjs-layers/dist/keras_format/types';
import {fail, show} from '../validate';
import {shortName, weightByShortName} from '../weight_names';
import {NormLayer} from '../layers/base';
import {BatchNorm} from '../layers/batch_norm';
import {InstanceNorm} from '../layers/instance_norm';

const OWNER = 'foldBatchNorm';

/** A norm layer merged into the layer before it. */
export interface FoldedPair {
  /** Name of the removed norm layer. */
  norm: string;
  /** Name of the conv/dense layer that absorbed it. */
  into: string;
}

/** A normalization layer left in the model, and why. */
export interface KeptNorm {
  /** Name of the norm layer kept. */
  layer: string;
  /** Why it could not be folded. */
  reason: string;
}

/** What {@link foldBatchNorm} folded and what it kept. */
export interface FoldReport {
  /** The norm layers merged into the layer before them. */
  folded: FoldedPair[];
  /** The normalization layers left in the model, with the reason. */
  kept: KeptNorm[];
}

/** What {@link foldBatchNorm} returns. */
export interface FoldBatchNormResult {
  /** The new inference model; the input model is left untouched. */
  model: tf.LayersModel;
  /** What was folded and what was kept. */
  report: FoldReport;
}

/** Layers that can absorb a following norm: class name -> the kernel whose last axis (flattened) is the output channel. */
const PRODUCERS: {[className: string]: string} = {
  Dense: 'kernel',
  Conv1D: 'kernel',
  Conv2D: 'kernel',
  Conv3D: 'kernel',
  // [kh, kw, in, multiplier]: output channel in * multiplier + m is the flattened last two axes.
  DepthwiseConv2D: 'depthwise_kernel',
  // [1, 1, in * multiplier, out]
  SeparableConv2D: 'pointwise_kernel',
};

/** A reference to a layer output in the JSON topology: [layer, node, tensor, kwargs?]. */
type Ref = [string, number, number, ...unknown[]];

/** Inference rule of a normalization layer: a fixed scale/shift on `axis`, or why not. */
type NormRule = {axis: number; epsilon: number} | {reason: string};

function ruleOf(layer: tf.layers.Layer): NormRule | null {
  if (layer instanceof BatchNorm || layer instanceof InstanceNorm) {
    if (!layer.trackRunningStats) {
      return {reason: `${layer.getClassName()} without trackRunningStats normalizes with the statistics of each ` +
                      (layer instanceof BatchNorm ? 'batch' : 'instance') + ' in inference'};
    }
    if (layer.activation !== null) {
      return {reason: `${layer.getClassName()} applies activation ${show(layer.activation)} after normalizing, ` +
                      'which a convolution or dense layer cannot absorb'};
    }
    return {axis: layer.axis, epsilon: layer.epsilon};
  }
  if (layer instanceof NormLayer) {
    return {reason: `${layer.getClassName()} normalizes with the statistics of each sample`};
  }
  if (layer.getClassName() === 'BatchNormalization') {
    const config = layer.getConfig();
    return {axis: config.axis as number, epsilon: config.epsilon as number};
  }
  return null;
}

async function valuesOf(layer: tf.layers.Layer, name: string): Promise<Float32Array | null> {
  const w = weightByShortName(layer, name);
  return w ? (await w.read().data()) as Float32Array : null;
}

/** Channel axis of a producer's output of the given rank. */
function producerChannelAxis(layer: tf.layers.Layer, rank: number): number {
  return layer.getConfig().dataFormat === 'channelsFirst' ? 1 : rank - 1;
}

function outputRank(layer: tf.layers.Layer): number {
  const shape = layer.outputShape;
  return (Array.isArray(shape[0]) ? shape[0] : shape).length;
}

/** Folded [kernel, bias] of `producer` followed by `norm`, computed in float64. */
async function foldedWeights(producer: tf.layers.Layer, norm: tf.layers.Layer, epsilon: number):
    Promise<{kernel: tf.Tensor; bias: tf.Tensor}> {
  const kernelVar = weightByShortName(producer, PRODUCERS[producer.getClassName()])!;
  const kernel = (await kernelVar.read().data()) as Float32Array;
  const mean = (await valuesOf(norm, 'moving_mean'))!;
  const variance = (await valuesOf(norm, 'moving_variance'))!;
  const gamma = await valuesOf(norm, 'gamma');
  const beta = await valuesOf(norm, 'beta');
  const bias = await valuesOf(producer, 'bias');
  const C = mean.length;
  if (kernel.length % C !== 0) {
    fail(OWNER, `the ${C} channels of ${norm.name} do not divide the size of ${producer.name}'s kernel`,
         `${producer.name}.kernel.shape`, kernelVar.shape);
  }
  const scale = new Float64Array(C);
  const newBias = new Float32Array(C);
  for (let c = 0; c < C; c++) {
    scale[c] = (gamma ? gamma[c] : 1) / Math.sqrt(variance[c] + epsilon);
    newBias[c] = ((bias ? bias[c] : 0) - mean[c]) * scale[c] + (beta ? beta[c] : 0);
  }
  const newKernel = new Float32Array(kernel.length);
  for (let i = 0; i < kernel.length; i++) newKernel[i] = kernel[i] * scale[i % C];
  return {kernel: tf.tensor(newKernel, kernelVar.shape as number[], 'float32'), bias: tf.tensor1d(newBias, 'float32')};
}

/** The model's JSON topology (the save format) and its wiring, in one form for Sequential and functional models. */
interface Graph {
  /** `model.toJSON()`; rewriteTopology edits it. */
  topology: PyJsonDict;
  /** The layer entries, in order. */
  entries: PyJsonDict[];
  sequential: boolean;
  /** Inbound references per layer; a Sequential's first layer reads the model input ('': no layer). */
  inbound: Map<string, Ref[][]>;
  /** The model outputs. */
  outputs: Ref[];
}

/** What foldBatchNorm does: the report, and for each fold the norm removed and the producer changed. */
interface FoldPlan {
  report: FoldReport;
  /** Folded norm name -> the producer output it read (its consumers read that instead). */
  removed: Map<string, Ref>;
  /** Producer name -> the norm folded into it and its epsilon. */
  producers: Map<string, {norm: tf.layers.Layer; epsilon: number}>;
}

function entryName(e: PyJsonDict): string {
  return (e.name ?? (e.config as PyJsonDict).name) as string;
}

function readGraph(model: tf.LayersModel): Graph {
  const topology = model.toJSON(null, false) as PyJsonDict;
  const config = topology.config as PyJsonDict;
  const entries = config.layers as PyJsonDict[];
  const sequential = topology.class_name === 'Sequential';
  const inbound = new Map<string, Ref[][]>();
  entries.forEach((e, i) => {
    inbound.set(entryName(e), sequential ? [[[i === 0 ? '' : entryName(entries[i - 1]), 0, 0]]]
                                         : e.inbound_nodes as unknown as Ref[][]);
  });
  const outputs: Ref[] = sequential ? [[entryName(entries[entries.length - 1]), 0, 0]]
                                    : config.output_layers as unknown as Ref[];
  return {topology, entries, sequential, inbound, outputs};
}

/** How many layers (and model outputs) read `ref`. */
function consumers(graph: Graph, ref: Ref): number {
  const same = (r: Ref) => r[0] === ref[0] && r[1] === ref[1] && r[2] === ref[2];
  let n = graph.outputs.filter(same).length;
  for (const nodes of graph.inbound.values()) {
    for (const refs of nodes) n += refs.filter(same).length;
  }
  return n;
}

/** The conv/dense layer `layer` folds into and the reference it reads, or why it cannot fold. */
function foldTarget(layer: tf.layers.Layer, axis: number, graph: Graph,
                    byName: Map<string, tf.layers.Layer>): {producer: tf.layers.Layer; ref: Ref} | string {
  const nodes = graph.inbound.get(layer.name)!;
  if (nodes.length !== 1 || nodes[0].length !== 1) return 'the layer is used more than once';
  const ref = nodes[0][0];
  const producer = byName.get(ref[0]);
  if (!producer) return 'it reads the model input';
  const kind = producer.getClassName();
  if (!(kind in PRODUCERS)) return `it follows ${producer.name} (${kind}), not a conv or dense layer`;
  if (graph.inbound.get(producer.name)!.length !== 1) return `${producer.name} is used more than once`;
  if (consumers(graph, ref) !== 1) return `${producer.name}'s output also feeds other layers or is a model output`;
  const activation = producer.getConfig().activation;
  if (activation !== 'linear') return `${producer.name} applies activation ${show(activation)} first`;
  const rank = outputRank(producer);
  const normAxis = axis < 0 ? axis + rank : axis;
  const channelAxis = producerChannelAxis(producer, rank);
  if (normAxis !== channelAxis) return `its axis ${axis} is not ${producer.name}'s channel axis ${channelAxis}`;
  return {producer, ref};
}

/** Step 1: which norms fold into which layer, and why every other normalization layer stays. */
function decideFolds(model: tf.LayersModel, graph: Graph): FoldPlan {
  const byName = new Map(model.layers.map(l => [l.name, l]));
  const plan: FoldPlan = {report: {folded: [], kept: []}, removed: new Map(), producers: new Map()};
  for (const layer of model.layers) {
    if (layer instanceof tf.LayersModel) {
      for (const inner of layer.layers) {
        if (ruleOf(inner)) {
          plan.report.kept.push({layer: `${layer.name}/${inner.name}`, reason: 'layers of nested models are not searched'});
        }
      }
      continue;
    }
    const rule = ruleOf(layer);
    if (!rule) continue;
    const keep = (reason: string) => plan.report.kept.push({layer: layer.name, reason});
    if ('reason' in rule) { keep(rule.reason); continue; }
    const target = foldTarget(layer, rule.axis, graph, byName);
    if (typeof target === 'string') { keep(target); continue; }
    plan.removed.set(layer.name, target.ref);
    plan.producers.set(target.producer.name, {norm: layer, epsilon: rule.epsilon});
    plan.report.folded.push({norm: layer.name, into: target.producer.name});
  }
  return plan;
}

/**
 * Step 2: the folded model's topology: folded norms removed, their consumers
 * (and model outputs) rewired to the producer, producers given a bias.
 */
function rewriteTopology(graph: Graph, plan: FoldPlan): PyJsonDict {
  const config = graph.topology.config as PyJsonDict;
  // A reference to a folded norm's output becomes one to the producer output it read.
  const rewired = (r: unknown[]): unknown[] | null => {
    const src = plan.removed.get(r[0] as string);
    return src && r[1] === 0 && r[2] === 0 ? [src[0], src[1], src[2], ...r.slice(3)] : null;
  };
  config.layers = graph.entries.filter(e => !plan.removed.has(entryName(e)));
  for (const e of config.layers as PyJsonDict[]) {
    if (plan.producers.has(entryName(e))) (e.config as PyJsonDict).use_bias = true;
    if (!graph.sequential) {
      for (const refs of e.inbound_nodes as unknown as unknown[][][]) refs.forEach((r, i) => (refs[i] = rewired(r) ?? r));
    }
  }
  if (!graph.sequential) {
    config.output_layers = graph.outputs.map(r => (rewired(r.slice(0, 3)) ?? r)) as unknown as PyJsonDict;
  }
  if (typeof config.name === 'string') config.name = `${config.name}_folded`;
  return graph.topology;
}

/** Step 3: the weights of `folded`: copies of the source model's, folded kernels and biases for the producers. */
async function copyWeights(source: tf.LayersModel, folded: tf.LayersModel, plan: FoldPlan): Promise<void> {
  const byName = new Map(source.layers.map(l => [l.name, l]));
  for (const layer of folded.layers) {
    const original = byName.get(layer.name)!;
    const fold = plan.producers.get(layer.name);
    if (!fold) {
      const values = original.getWeights().map(t => t.clone());
      layer.setWeights(values);
      tf.dispose(values);
      continue;
    }
    const {kernel, bias} = await foldedWeights(original, fold.norm, fold.epsilon);
    const kernelName = PRODUCERS[layer.getClassName()];
    const values = layer.weights.map(w => {
      const short = shortName(w);
      if (short === kernelName) return kernel;
      if (short === 'bias') return bias;
      return weightByShortName(original, short)!.read().clone();
    });
    layer.setWeights(values);
    tf.dispose([...values, kernel, bias]);
  }
}

/**
 * Returns a new model for inference in which every BatchNorm (and
 * InstanceNorm with trackRunningStats, and tfjs' BatchNormalization) that
 * directly follows a Dense, Conv1D/2D/3D, DepthwiseConv2D or SeparableConv2D
 * layer is merged into that layer's kernel and bias. A norm folds when the
 * layer before it has a linear activation, is used once, feeds only the norm
 * (and is not a model output), and the norm's `axis` is that layer's channel
 * axis (last, or 1 for `dataFormat: 'channelsFirst'`). Every other
 * normalization layer is kept and listed in `report.kept` with the reason.
 *
 * Works on Sequential and functional models (layers of nested models are not
 * searched). The folded model predicts what the original predicts in
 * inference mode; it is not meant for training (the norms are gone). The
 * input model is not modified.
 *
 * ```js
 * const {model: fast, report} = await foldBatchNorm(model);
 * console.log(report.folded, report.kept);
 * await fast.save(tfn.fileSystem('./folded'));
 * ```
 */
export async function foldBatchNorm(model: tf.LayersModel): Promise<FoldBatchNormResult> {
  if (!(model instanceof tf.LayersModel)) {
    fail(OWNER, 'expects a tf.LayersModel', 'model', (model as unknown as object)?.constructor?.name);
  }
  if (!(model.inputs?.length > 0)) {
    fail(OWNER, 'build the model first (give its first layer an inputShape)', 'model', model.name);
  }
  const graph = readGraph(model);
  const plan = decideFolds(model, graph);
  const folded = await tf.models.modelFromJSON({modelTopology: rewriteTopology(graph, plan)});
  try {
    await copyWeights(model, folded, plan);
  } catch (e) {
    folded.dispose();
    throw e;
  }
  return {model: folded, report: plan.report};
}
