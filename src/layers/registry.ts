/**
 * Initializers, regularizers and constraints given by name, instance or
 * serialized `{className, config}`, resolved through the app's tfjs
 * serialization registry (never a second copy of tfjs-layers).
 */
import * as tf from '@tensorflow/tfjs';
import type {Initializer, InitializerIdentifier} from '@tensorflow/tfjs-layers/dist/initializers';
import type {Regularizer, RegularizerIdentifier} from '@tensorflow/tfjs-layers/dist/regularizers';
import type {Constraint, ConstraintIdentifier} from '@tensorflow/tfjs-layers/dist/constraints';
import {fail} from '../validate';

export type {Initializer, InitializerIdentifier, Regularizer, RegularizerIdentifier, Constraint, ConstraintIdentifier};

type Kind = 'initializer' | 'regularizer' | 'constraint';

interface Serialized {
  className: string;
  config?: tf.serialization.ConfigDict;
}

/** `glorot_uniform` / `glorotUniform` -> `GlorotUniform`; the l1/l2 shorthands -> L1L2. */
function classNameFor(id: string): {className: string; config: tf.serialization.ConfigDict} {
  if (id === 'l1') return {className: 'L1L2', config: {l1: 0.01, l2: 0}};
  if (id === 'l2') return {className: 'L1L2', config: {l1: 0, l2: 0.01}};
  if (id.toLowerCase() === 'l1l2' || id === 'l1_l2') return {className: 'L1L2', config: {}};
  const camel = id.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  const pascal = camel.charAt(0).toUpperCase() + camel.slice(1);
  return {className: pascal.replace(/^LecUn|^Lecun/, 'LeCun'), config: {}};
}

/** The abstract base class of each kind, found from a built-in instance of it. */
function base(kind: Kind): Function {
  const sample = kind === 'initializer' ? tf.initializers.zeros()
      : kind === 'regularizer' ? tf.regularizers.l1l2() : tf.constraints.nonNeg();
  return Object.getPrototypeOf(sample.constructor) as Function;
}

/** `owner`: the layer whose argument `argName` this is (error messages). */
function resolve<T>(owner: string, kind: Kind, id: unknown, argName: string): T | null {
  if (id == null) return null;
  if (typeof id === 'object' && typeof (id as {getClassName?: unknown}).getClassName === 'function' &&
      typeof (id as {apply?: unknown}).apply === 'function') {
    return id as T;
  }
  let spec: {className: string; config: tf.serialization.ConfigDict};
  if (typeof id === 'string') {
    spec = classNameFor(id);
  } else if (typeof id === 'object' && typeof (id as Serialized).className === 'string') {
    spec = {className: (id as Serialized).className, config: (id as Serialized).config ?? {}};
  } else {
    fail(owner, `\`${argName}\` must be a ${kind} name, a ${kind} object or {className, config}`, argName, id);
  }
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[spec.className];
  const expectedBase = base(kind);
  if (!entry || !(entry[0].prototype instanceof expectedBase)) {
    fail(owner, `Unknown ${kind} for \`${argName}\``, argName, id);
  }
  const [cls, fromConfig] = entry;
  return fromConfig(cls, spec.config) as unknown as T;
}

export function getInitializer(owner: string, id: unknown, argName: string, fallback: InitializerIdentifier): Initializer {
  return resolve<Initializer>(owner, 'initializer', id ?? fallback, argName)!;
}

export function getRegularizer(owner: string, id: unknown, argName: string): Regularizer | null {
  return resolve<Regularizer>(owner, 'regularizer', id, argName);
}

export function getConstraint(owner: string, id: unknown, argName: string): Constraint | null {
  return resolve<Constraint>(owner, 'constraint', id, argName);
}

/** `{className, config}` for an initializer, regularizer or constraint (null stays null). */
export function serialize(obj: tf.serialization.Serializable | null): tf.serialization.ConfigDict | null {
  if (obj == null) return null;
  return {className: obj.getClassName(), config: obj.getConfig()};
}
