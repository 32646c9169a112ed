/**
 * The affine weights `gamma` (scale) and `beta` (offset), shared by NormLayer
 * (PyTorch's `affine`) and KerasAffineLayer (Keras' `scale`/`center`): their
 * initializers, regularizers and constraints resolved from the layer's
 * arguments, their creation with the layer's `addWeight`, and their config
 * entries. Which weights exist, and the order of creation and of the config
 * entries (Keras lists beta's first), stay with the layer.
 */
import * as tf from '@tensorflow/tfjs';
import type {LayerVariable} from '@tensorflow/tfjs-layers/dist/variables';
import {
  Constraint, ConstraintIdentifier, Initializer, InitializerIdentifier, Regularizer, RegularizerIdentifier,
  getConstraint, getInitializer, getRegularizer, serialize,
} from './registry';

/** An initializer: its name ('ones', 'zeros', 'glorotUniform'), an instance, or a serialized config. */
export type InitializerArg = InitializerIdentifier | Initializer | tf.serialization.ConfigDict;
/** A regularizer: its name ('l1l2'), an instance, or a serialized config. */
export type RegularizerArg = RegularizerIdentifier | Regularizer | tf.serialization.ConfigDict;
/** A constraint: its name ('nonNeg', 'unitNorm'), an instance, or a serialized config. */
export type ConstraintArg = ConstraintIdentifier | Constraint | tf.serialization.ConfigDict;

/** One affine weight. */
export type AffineParam = 'gamma' | 'beta';

/** The argument type of each kind. */
interface KindArgs {
  Initializer: InitializerArg;
  Regularizer: RegularizerArg;
  Constraint: ConstraintArg;
}

/** The affine weights' arguments, `gammaInitializer` to `betaConstraint` (AffineArgs and KerasAffineArgs have them). */
export type AffineWeightArgs = {[K in keyof KindArgs as `${AffineParam}${K}`]?: KindArgs[K]};

/** How one affine weight is initialized, regularized and constrained. */
interface ParamSpec {
  initializer: Initializer;
  regularizer: Regularizer | null;
  constraint: Constraint | null;
}

/** A layer's protected `addWeight`, passed in by the layer. */
export type AddWeight = (name: string, shape: tf.Shape, dtype?: tf.DataType, initializer?: Initializer,
                         regularizer?: Regularizer, trainable?: boolean, constraint?: Constraint) => LayerVariable;

/** The gamma and beta variables of a layer (null where it has none). */
export interface AffineVariables {
  gamma: LayerVariable | null;
  beta: LayerVariable | null;
}

const DEFAULT_INITIALIZER: {[p in AffineParam]: InitializerIdentifier} = {gamma: 'ones', beta: 'zeros'};

/** The resolved arguments of a layer's gamma and beta. */
export class AffineWeights {
  private readonly specs: {[p in AffineParam]: ParamSpec};

  /** Resolves the arguments (default initializers: gamma 'ones', beta 'zeros'); `owner` names the layer in errors. */
  constructor(owner: string, args: AffineWeightArgs) {
    const spec = (p: AffineParam): ParamSpec => ({
      initializer: getInitializer(owner, args[`${p}Initializer` as const], `${p}Initializer`, DEFAULT_INITIALIZER[p]),
      regularizer: getRegularizer(owner, args[`${p}Regularizer` as const], `${p}Regularizer`),
      constraint: getConstraint(owner, args[`${p}Constraint` as const], `${p}Constraint`),
    });
    this.specs = {gamma: spec('gamma'), beta: spec('beta')};
  }

  /** Creates the trainable float32 weights `params` (in that order) of `shape` with the layer's `addWeight`. */
  create(addWeight: AddWeight, shape: number[], params: AffineParam[]): AffineVariables {
    const made: AffineVariables = {gamma: null, beta: null};
    for (const p of params) {
      const {initializer, regularizer, constraint} = this.specs[p];
      made[p] = addWeight(p, shape, 'float32', initializer, regularizer ?? undefined, true, constraint ?? undefined);
    }
    return made;
  }

  /**
   * Config entries of `params`: their initializers, then regularizers, then
   * constraints, each in the order of `params` (the order the classes have
   * always written them in).
   */
  config(params: AffineParam[]): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = {};
    for (const kind of ['initializer', 'regularizer', 'constraint'] as const) {
      const key = kind.charAt(0).toUpperCase() + kind.slice(1);
      for (const p of params) config[`${p}${key}`] = serialize(this.specs[p][kind]);
    }
    return config;
  }
}

/** The current gamma and beta for an op (null where the layer has none). */
export function readAffine(layer: AffineVariables): {gamma: tf.Tensor | null; beta: tf.Tensor | null} {
  return {gamma: layer.gamma ? layer.gamma.read() : null, beta: layer.beta ? layer.beta.read() : null};
}
