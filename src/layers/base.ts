/**
 * The base every layer here shares (PyTorch's `_NormBase`): argument
 * checking, the affine weights (`gamma`, `beta`), the running statistics
 * (`moving_mean`, `moving_variance`, `num_batches_tracked`) with PyTorch's
 * update rule, the choice between running and batch statistics, and the
 * config. Subclasses resolve their shape and normalize with batch statistics
 * through an op from ops/.
 */
import * as tf from '@tensorflow/tfjs';
import type {LayerArgs} from '@tensorflow/tfjs-layers/dist/engine/topology';
import type {Kwargs} from '@tensorflow/tfjs-layers/dist/types';
import type {LayerVariable} from '@tensorflow/tfjs-layers/dist/variables';
import {Activation, ActivationArg, ActivationIdentifier, activationIdentifier, checkActivation} from '../engine/activation';
import type {RunningStats, UpdatedRunningStats} from '../engine/normalize';
import {batchNorm} from '../ops/batch_norm';
import {frozenByEnclosingModel} from './freezing';
import {checkBoolean, checkEpsilon, checkFloatDtype, checkMomentum, knownDim, resolveChannelAxis} from '../validate';
import {AffineParam, AffineWeights, ConstraintArg, InitializerArg, RegularizerArg, readAffine} from './affine_weights';
import {Initializer, getInitializer, serialize} from './registry';

export type {ConstraintArg, InitializerArg, RegularizerArg} from './affine_weights';

/** Arguments every normalization layer with affine weights takes. */
export interface AffineArgs extends LayerArgs {
  /** Added to the variance for numerical stability. Default 1e-5 (PyTorch's). */
  epsilon?: number;
  /**
   * Learn a per-channel scale `gamma` and offset `beta`. Default true for
   * BatchNorm, GroupNorm, LayerNorm and RMSNorm, false for InstanceNorm (PyTorch's).
   */
  affine?: boolean;
  /** Initializer of `gamma`. Default 'ones'. */
  gammaInitializer?: InitializerArg;
  /** Initializer of `beta`. Default 'zeros'. */
  betaInitializer?: InitializerArg;
  /** Regularizer of `gamma`. Default none. */
  gammaRegularizer?: RegularizerArg;
  /** Regularizer of `beta`. Default none. */
  betaRegularizer?: RegularizerArg;
  /** Constraint of `gamma`. Default none. */
  gammaConstraint?: ConstraintArg;
  /** Constraint of `beta`. Default none. */
  betaConstraint?: ConstraintArg;
  /**
   * Applied after the affine transform, fused into the forward and backward
   * kernels: 'relu', 'silu' (tfjs' name: 'swish'), 'gelu' (PyTorch's exact erf
   * GELU) or null (default). Written to the config with tfjs' identifiers.
   */
  activation?: ActivationArg;
}

/** Arguments of layers that keep running statistics (BatchNorm, InstanceNorm). */
export interface RunningStatsArgs {
  /**
   * PyTorch's momentum: the weight of the new batch,
   * `running = (1 - momentum) * running + momentum * batch`. Default 0.1.
   * `null` gives the cumulative average (factor 1 / num_batches_tracked).
   * (Keras' and tf.layers.batchNormalization's momentum 0.99 is 1 - this.)
   */
  momentum?: number | null;
  /** Keep running statistics for inference. Default true for BatchNorm, false for InstanceNorm (PyTorch's). */
  trackRunningStats?: boolean;
  /** Initializer of `moving_mean`. Default 'zeros'. */
  movingMeanInitializer?: InitializerArg;
  /** Initializer of `moving_variance`. Default 'ones'. */
  movingVarianceInitializer?: InitializerArg;
}

/** The per-class defaults a subclass passes to the {@link NormLayer} constructor. */
interface BaseDefaults {
  affine: boolean;
  /** Set for layers with running statistics: the trackRunningStats default. */
  trackRunningStats?: boolean;
  /** Whether the affine part has `beta`. Default true (LayerNorm: its `bias` argument; RMSNorm: false). */
  beta?: boolean;
  /** Whether the class takes the beta* arguments at all. Default true (RMSNorm: false). */
  betaArgs?: boolean;
}

export type {RunningStats};

/** The result of a normalization with batch statistics. */
export interface BatchNormalized {
  output: tf.Tensor;
  /** The running statistics after this batch, when asked for. */
  running?: UpdatedRunningStats | null;
}

/** Layers in a recomputeBatchNormStats pass (tools/recompute_stats.ts): an internal mode, not public state. */
const recomputing = new WeakSet<NormLayer>();

/**
 * Puts `layer` in (or out of) the statistics-recomputation mode: it runs in
 * training mode whatever `training` and `trainable` say, and its running
 * statistics take the cumulative average (momentum null), as in PyTorch's
 * swa_utils.update_bn.
 */
export function setRecomputingStats(layer: NormLayer, on: boolean): void {
  if (on) recomputing.add(layer);
  else recomputing.delete(layer);
}

/** Whether `layer` is in the statistics-recomputation mode. */
export function isRecomputingStats(layer: NormLayer): boolean {
  return recomputing.has(layer);
}

/** What a subclass resolves from the input shape at build time. */
export interface BuildSpec {
  /** Shape of gamma/beta (and of the running statistics). */
  paramShape: number[];
  /** Input spec axes that must keep their size. */
  fixedAxes: {[axis: number]: number};
}

/** Argument names of AffineArgs and RunningStatsArgs, for checkLayerArgs. */
export const AFFINE_KEYS = ['epsilon', 'affine', 'gammaInitializer', 'betaInitializer', 'gammaRegularizer',
                            'betaRegularizer', 'gammaConstraint', 'betaConstraint', 'activation'];
export const RUNNING_STATS_KEYS = ['momentum', 'trackRunningStats', 'movingMeanInitializer', 'movingVarianceInitializer'];

/**
 * The base class of BatchNorm, GroupNorm, InstanceNorm, LayerNorm and RMSNorm:
 * argument checking, the affine weights, PyTorch's running-statistics update
 * and the config. Not constructed directly; use it to find this package's
 * layers in a model.
 *
 * ```js
 * const norms = model.layers.filter(l => l instanceof tfn.NormLayer);
 * ```
 */
export abstract class NormLayer extends tf.layers.Layer {
  /** Added to the variance (or mean square) for numerical stability. Default 1e-5 (RMSNorm: float32 eps). */
  readonly epsilon: number;
  /** Whether the layer has the learnable `gamma` (and `beta`). */
  readonly affine: boolean;
  /** The activation after the affine transform, as tfjs names it ('relu', 'swish', 'gelu'), or null. */
  readonly activation: ActivationIdentifier | null;
  /** The same as the ops take it ('silu' for 'swish'). */
  protected readonly fusedActivation: Activation | null;
  /** Whether the affine part has `beta` (LayerNorm's `bias: false` drops it). */
  protected readonly hasBeta: boolean;
  /** The affine weights' arguments written in the config: gamma's and beta's, or gamma's only (RMSNorm). */
  private readonly affineConfigParams: AffineParam[];
  /** PyTorch's momentum (weight of the new batch); null: cumulative average, or no running statistics. Default 0.1. */
  readonly momentum: number | null;
  /** Whether training updates `moving_mean`/`moving_variance` and inference uses them. */
  readonly trackRunningStats: boolean;
  private readonly affineWeights: AffineWeights;
  protected readonly movingMeanInitializer: Initializer;
  protected readonly movingVarianceInitializer: Initializer;

  /** The scale weight `gamma` once built (null without affine). */
  gamma: LayerVariable | null = null;
  /** The offset weight `beta` once built (null without affine, or with LayerNorm's `bias: false`, or RMSNorm). */
  beta: LayerVariable | null = null;
  /** `moving_mean` once built (null without trackRunningStats). */
  movingMean: LayerVariable | null = null;
  /** `moving_variance` once built (null without trackRunningStats). */
  movingVariance: LayerVariable | null = null;
  /** `num_batches_tracked` [] int32 once built (null without trackRunningStats). */
  numBatchesTracked: LayerVariable | null = null;

  constructor(args: AffineArgs & RunningStatsArgs, defaults: BaseDefaults) {
    super(args ?? {});
    args = args ?? {};
    const owner = this.getClassName();
    this.supportsMasking = true;
    this.epsilon = checkEpsilon(owner, args.epsilon ?? 1e-5);
    this.affine = checkBoolean(owner, args.affine ?? defaults.affine, 'affine');
    this.fusedActivation = checkActivation(owner, args.activation);
    this.activation = activationIdentifier(this.fusedActivation);
    this.affineConfigParams = (defaults.betaArgs ?? true) ? ['gamma', 'beta'] : ['gamma'];
    this.hasBeta = this.affine && (defaults.beta ?? true);
    const tracks = defaults.trackRunningStats !== undefined;
    this.trackRunningStats = tracks &&
        checkBoolean(owner, args.trackRunningStats ?? defaults.trackRunningStats, 'trackRunningStats');
    this.momentum = tracks ? checkMomentum(owner, args.momentum === undefined ? 0.1 : args.momentum) : null;
    this.affineWeights = new AffineWeights(owner, args);
    this.movingMeanInitializer = getInitializer(owner, args.movingMeanInitializer, 'movingMeanInitializer', 'zeros');
    this.movingVarianceInitializer = getInitializer(owner, args.movingVarianceInitializer, 'movingVarianceInitializer', 'ones');
  }

  /** Validates the input shape and resolves axes; called once by build. */
  protected abstract resolveShape(inputShape: Array<number | null>): BuildSpec;

  /**
   * The normalization with batch statistics (training, or any mode without
   * running statistics) through an op; with `running`, also those statistics
   * updated from the batch (layers with running statistics).
   */
  protected abstract normalizeBatch(x: tf.Tensor, running: RunningStats | null): BatchNormalized;

  /** The channel axis argument of layers with running statistics (their statistics are per channel). */
  protected runningStatsAxis(): number {
    throw new Error(`${this.getClassName()} keeps no running statistics`);
  }

  /** Running statistics in inference, else batch statistics, then the running update when training. */
  private forward(x: tf.Tensor, training: boolean): tf.Tensor {
    if (!training && this.trackRunningStats) {
      return batchNorm(x, {axis: this.runningStatsAxis(), mean: this.movingMean!.read(),
                           variance: this.movingVariance!.read(), ...this.affineTensors(), epsilon: this.epsilon,
                           activation: this.fusedActivation});
    }
    const update = training && this.trackRunningStats;
    const r = this.normalizeBatch(x, update ? this.runningStats() : null);
    if (r.running) {
      // Computed with the tape off (inside the forward kernel, or the op path's custom-gradient forward).
      this.movingMean!.write(r.running.mean);
      this.movingVariance!.write(r.running.variance);
      this.numBatchesTracked!.write(r.running.numBatchesTracked);
    }
    return r.output;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape);
    const spec = this.resolveShape(shape);
    const p = spec.paramShape;
    if (this.affine) {
      ({gamma: this.gamma, beta: this.beta} =
           this.affineWeights.create(this.addWeight.bind(this), p, this.hasBeta ? ['gamma', 'beta'] : ['gamma']));
    }
    if (this.trackRunningStats) {
      this.movingMean = this.addWeight('moving_mean', p, 'float32', this.movingMeanInitializer, undefined, false);
      this.movingVariance = this.addWeight('moving_variance', p, 'float32', this.movingVarianceInitializer, undefined, false);
      this.numBatchesTracked = this.addWeight('num_batches_tracked', [], 'int32', tf.initializers.zeros(), undefined, false);
    }
    this.inputSpec = [{ndim: shape.length, axes: spec.fixedAxes}];
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    return tf.tidy(() => {
      const x = singleFloatInput(inputs, this.getClassName());
      // Keras' fine-tuning rule: a frozen layer (itself, or through an enclosing model) runs in inference mode.
      const training = recomputing.has(this) ||
          (kwargs?.training === true && this.trainable && !frozenByEnclosingModel(this));
      return this.forward(x, training);
    });
  }

  /** The current gamma and beta for an op (null where the layer has none). */
  protected affineTensors(): {gamma: tf.Tensor | null; beta: tf.Tensor | null} {
    return readAffine(this);
  }

  /**
   * The running statistics for this batch's update (PyTorch's rule:
   * engine/normalize.ts runningUpdateOps, or inside the fused forward kernel);
   * a statistics recomputation (tools/recompute_stats.ts) takes the cumulative average.
   */
  private runningStats(): RunningStats {
    return {mean: this.movingMean!.read(), variance: this.movingVariance!.read(),
            numBatchesTracked: this.numBatchesTracked!.read(),
            momentum: recomputing.has(this) ? null : this.momentum};
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {epsilon: this.epsilon, affine: this.affine, ...this.affineWeights.config(this.affineConfigParams),
            activation: this.activation, ...super.getConfig()};
  }

  /** Config entries of layers with running statistics. */
  protected runningStatsConfig(): tf.serialization.ConfigDict {
    return {
      momentum: this.momentum,
      trackRunningStats: this.trackRunningStats,
      movingMeanInitializer: serialize(this.movingMeanInitializer),
      movingVarianceInitializer: serialize(this.movingVarianceInitializer),
    };
  }
}

/**
 * Build spec of layers with per-channel weights (BatchNorm, InstanceNorm,
 * GroupNorm): the channel axis resolved against the input's rank and its size.
 */
export function channelSpec(owner: string, shape: Array<number | null>, axis: number): BuildSpec & {channels: number} {
  const channelAxis = resolveChannelAxis(owner, axis, shape.length);
  const C = knownDim(owner, shape, channelAxis, 'channel axis');
  return {paramShape: [C], fixedAxes: {[channelAxis]: C}, channels: C};
}

/** The one input shape of a single-input layer. */
export function singleShape(inputShape: tf.Shape | tf.Shape[]): Array<number | null> {
  return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Array<number | null>;
}

/** The one input tensor of a single-input layer's call. */
export function singleInput(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(inputs) ? inputs[0] : inputs;
}

/** The one input tensor of a single-input layer, checked to be float32. */
export function singleFloatInput(inputs: tf.Tensor | tf.Tensor[], layer: string): tf.Tensor {
  const x = singleInput(inputs);
  checkFloatDtype(layer, x.dtype);
  return x;
}
