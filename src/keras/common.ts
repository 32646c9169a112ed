/**
 * What the Keras-compatible layers share: Keras' argument names (`center`,
 * `scale`, `beta_*`, `gamma_*`) and defaults, the `gamma`/`beta` weights under
 * Keras' names, and registration under Keras' class names. These layers follow
 * Keras' semantics (not PyTorch's) so that converted Keras models give Keras'
 * numbers; the math itself comes from src/ops.
 */
import * as tf from '@tensorflow/tfjs';
import type {LayerArgs} from '@tensorflow/tfjs-layers/dist/engine/topology';
import type {LayerVariable} from '@tensorflow/tfjs-layers/dist/variables';
import {checkBoolean, fail} from '../validate';
import {AffineParam, AffineWeights, ConstraintArg, InitializerArg, RegularizerArg} from '../layers/affine_weights';

/** Keras' `center`/`scale` arguments with their initializers, regularizers and constraints. */
export interface KerasAffineArgs extends LayerArgs {
  /** Learn an offset `beta`. Default true. */
  center?: boolean;
  /** Learn a scale `gamma`. Default true. */
  scale?: boolean;
  /** Initializer of `beta`. Default 'zeros'. */
  betaInitializer?: InitializerArg;
  /** Initializer of `gamma`. Default 'ones'. */
  gammaInitializer?: InitializerArg;
  /** Regularizer of `beta`. Default none. */
  betaRegularizer?: RegularizerArg;
  /** Regularizer of `gamma`. Default none. */
  gammaRegularizer?: RegularizerArg;
  /** Constraint of `beta`. Default none. */
  betaConstraint?: ConstraintArg;
  /** Constraint of `gamma`. Default none. */
  gammaConstraint?: ConstraintArg;
}

/**
 * Keras 3 writes `dtype` as a DTypePolicy dict ({class_name: 'DTypePolicy',
 * config: {name: 'float32'}}); tfjs expects a dtype string. `cls` is the class
 * being constructed (`new.target`: `this` is not there yet), for error messages.
 */
export function layerArgs<T extends LayerArgs>(cls: Function, args: T | undefined): T {
  const a = {...(args ?? {})} as T & {dtype?: unknown};
  const dtype = a.dtype as {config?: {name?: unknown}} | string | undefined | null;
  if (dtype != null && typeof dtype === 'object') {
    const name = dtype.config?.name;
    if (typeof name !== 'string') {
      fail((cls as {className?: string}).className ?? cls.name, 'Unrecognized `dtype`', 'dtype', dtype);
    }
    // 'mixed_float16' and friends compute in float32 here.
    a.dtype = (name.startsWith('mixed') ? 'float32' : name) as tf.DataType;
  }
  return a;
}

/** Base of the Keras layers with optional `gamma` (scale) and `beta` (center). */
export abstract class KerasAffineLayer extends tf.layers.Layer {
  /** Whether the layer learns the offset `beta`. Default true. */
  readonly center: boolean;
  /** Whether the layer learns the scale `gamma`. Default true. */
  readonly scale: boolean;
  private readonly affineWeights: AffineWeights;
  /** The scale weight `gamma` once built (null with `scale: false`). */
  gamma: LayerVariable | null = null;
  /** The offset weight `beta` once built (null with `center: false`). */
  beta: LayerVariable | null = null;

  constructor(args: KerasAffineArgs) {
    super(layerArgs(new.target, args));
    args = args ?? {};
    const owner = this.getClassName();
    this.center = checkBoolean(owner, args.center ?? true, 'center');
    this.scale = checkBoolean(owner, args.scale ?? true, 'scale');
    this.affineWeights = new AffineWeights(owner, args);
  }

  /** Creates `gamma` (scale) then `beta` (center) of `shape`, Keras' order. */
  protected addAffineWeights(shape: number[]): void {
    const params: AffineParam[] = [];
    if (this.scale) params.push('gamma');
    if (this.center) params.push('beta');
    ({gamma: this.gamma, beta: this.beta} = this.affineWeights.create(this.addWeight.bind(this), shape, params));
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    // Keras' order: beta's arguments before gamma's.
    return {center: this.center, scale: this.scale, ...this.affineWeights.config(['beta', 'gamma']), ...super.getConfig()};
  }
}

export {singleInput, singleShape} from '../layers/base';

/** Classes this package registered (so a second import of the package does not trip the ownership check). */
const OWN = new Set<string>();

/**
 * Registers `cls` under its Keras class name, refusing a name tfjs (or anyone
 * else) already owns: `BatchNormalization` and `LayerNormalization` stay tfjs'.
 */
export function registerKerasClass(cls: tf.serialization.SerializableConstructor<tf.serialization.Serializable> &
                                   {className: string}): void {
  const existing = tf.serialization.SerializationMap.getMap().classNameMap[cls.className];
  if (existing && !OWN.has(cls.className) &&
      !(existing[0] as unknown as {kerasCompat?: boolean}).kerasCompat) {
    fail('registerKerasClass', 'will not replace a class tfjs (or another library) already registers',
         'className', cls.className);
  }
  OWN.add(cls.className);
  tf.serialization.registerClass(cls);
}
