/**
 * Argument and input validation. Every check names its owner (the layer or op
 * that received the value), says what was expected and ends with Keras'
 * `Received: name=value`; every failure goes through {@link fail}.
 */
import * as tf from '@tensorflow/tfjs';
import {ValueError} from './errors';

/** Formats a received value for an error message. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(show).join(', ')}]`;
  if (typeof value === 'number' || value == null || typeof value === 'boolean') return String(value);
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

/** Throws `ValueError('<owner>: <what>. Received: <name>=<value>')`. */
export function fail(owner: string, what: string, name: string, value: unknown): never {
  throw new ValueError(`${owner}: ${what}. Received: ${name}=${show(value)}`);
}

export function checkEpsilon(owner: string, epsilon: unknown, name = 'epsilon'): number {
  if (typeof epsilon !== 'number' || !Number.isFinite(epsilon) || epsilon <= 0) {
    fail(owner, `\`${name}\` must be a finite number > 0`, name, epsilon);
  }
  return epsilon;
}

export function checkMomentum(owner: string, momentum: unknown): number | null {
  if (momentum === null) return null;
  if (typeof momentum !== 'number' || !(momentum >= 0 && momentum <= 1)) {
    fail(owner, '`momentum` must be a number in [0, 1], or null for a cumulative average', 'momentum', momentum);
  }
  return momentum;
}

export function checkBoolean(owner: string, value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') fail(owner, `\`${name}\` must be a boolean`, name, value);
  return value;
}

export function checkPositiveInt(owner: string, value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    fail(owner, `\`${name}\` must be a positive integer`, name, value);
  }
  return value;
}

export function checkPositiveNumber(owner: string, value: unknown, name: string, allowZero = false): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || (allowZero ? value < 0 : value <= 0)) {
    fail(owner, `\`${name}\` must be a finite number ${allowZero ? '>= 0' : '> 0'}`, name, value);
  }
  return value;
}

export function checkFinite(owner: string, value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(owner, `\`${name}\` must be a finite number`, name, value);
  return value;
}

/** Rejects float16/int/bool/string inputs: normalization is defined for float32 here. */
export function checkFloatDtype(owner: string, dtype: string, name = 'dtype'): void {
  if (dtype !== 'float32') {
    fail(owner, `expects a float32 input tensor; cast it first with tf.cast(x, 'float32')`, name, dtype);
  }
}

/** An op's input: a float32 tf.Tensor of rank >= minRank. */
export function checkInput(owner: string, x: tf.Tensor, minRank: number): void {
  if (!(x instanceof tf.Tensor)) fail(owner, '`x` must be a tf.Tensor', 'x', x);
  checkFloatDtype(owner, x.dtype, 'x.dtype');
  if (x.rank < minRank) fail(owner, `\`x\` must have rank >= ${minRank}`, 'x.shape', x.shape);
}

/** Throws unless `shape` has rank >= min (`layout` describes the expected axes). */
export function checkRank(owner: string, shape: ArrayLike<number | null>, min: number, layout: string): void {
  if (shape.length < min) fail(owner, `expects an input of rank >= ${min} (${layout})`, 'input shape', Array.from(shape));
}

/** Resolves a possibly negative axis against `rank`. */
export function resolveAxis(owner: string, axis: unknown, rank: number, name = 'axis'): number {
  if (typeof axis !== 'number' || !Number.isInteger(axis) || axis < -rank || axis >= rank) {
    fail(owner, `\`${name}\` must be an integer in [${-rank}, ${rank - 1}] for an input of rank ${rank}`, name, axis);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Resolves a list of axes (sorted, unique) against `rank`. */
export function resolveAxes(owner: string, axes: number | number[], rank: number, name = 'axis'): number[] {
  const list = Array.isArray(axes) ? axes : [axes];
  if (list.length === 0) fail(owner, `\`${name}\` must name at least one axis`, name, []);
  const out = list.map(a => resolveAxis(owner, a, rank, name));
  if (new Set(out).size !== out.length) fail(owner, `\`${name}\` must not repeat an axis`, name, axes);
  return out.sort((a, b) => a - b);
}

/** Resolves the channel axis of an input whose axis 0 is the batch axis. */
export function resolveChannelAxis(owner: string, axis: unknown, rank: number): number {
  if (typeof axis !== 'number' || !Number.isInteger(axis) || axis < -rank || axis >= rank || axis === 0 || axis === -rank) {
    fail(owner, `\`axis\` (the channel axis) must be an integer in [${-rank + 1}, ${rank - 1}] other than the ` +
                `batch axis 0 for an input of rank ${rank}`, 'axis', axis);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Constructor check of a channel axis argument (its range is checked at build). */
export function checkChannelAxisArg(owner: string, axis: unknown): number {
  if (typeof axis !== 'number' || !Number.isInteger(axis) || axis === 0) {
    fail(owner, '`axis` (the channel axis) must be a non-zero integer: -1 for channels-last, 1 for channels-first',
         'axis', axis);
  }
  return axis;
}

/** Constructor check of a normalized-axes argument (its range is checked at build). */
export function checkAxesArg(owner: string, axis: unknown): number | number[] {
  const list = Array.isArray(axis) ? axis : [axis];
  if (list.length === 0 || !list.every(a => Number.isInteger(a))) {
    fail(owner, '`axis` must be an integer or a non-empty list of integers', 'axis', axis);
  }
  return Array.isArray(axis) ? [...axis] : (axis as number);
}

/** Throws unless numGroups divides the channel count. */
export function checkGroups(owner: string, numGroups: number, channels: number): void {
  if (channels % numGroups !== 0) {
    fail(owner, `\`numGroups\` must divide the number of channels (${channels})`, 'numGroups', numGroups);
  }
}

/** The size of `axis` in `shape`, which must be known (weights are created from it). */
export function knownDim(owner: string, shape: Array<number | null>, axis: number, what: string): number {
  const d = shape[axis];
  if (d == null) fail(owner, `the ${what} (axis ${axis}) must have a known size to create the weights`, 'input shape', shape);
  return d;
}

/**
 * An optional per-parameter tensor (gamma, beta, mean, variance): a float32
 * tf.Tensor with `expected` shape (or its flat form), or null.
 */
export function checkParamTensor(owner: string, t: unknown, expected: number[], name: string): tf.Tensor | null {
  if (t == null) return null;
  if (!(t instanceof tf.Tensor)) fail(owner, `\`${name}\` must be a tf.Tensor`, name, t);
  if (t.size !== expected.reduce((a, b) => a * b, 1) || (t.rank !== expected.length && t.rank !== 1)) {
    fail(owner, `\`${name}\` must have shape ${show(expected)}`, `${name}.shape`, t.shape);
  }
  if (t.dtype !== 'float32') fail(owner, `\`${name}\` must be float32`, `${name}.dtype`, t.dtype);
  return t;
}

/** The tfjs LayerArgs every layer accepts, and customObjects, which tfjs' deserialization adds to every config. */
const LAYER_ARG_KEYS = ['name', 'customObjects', 'trainable', 'inputShape', 'batchInputShape', 'batchSize', 'dtype', 'weights', 'inputDType'];

function checkShapeArg(owner: string, shape: unknown, name: string): void {
  if (shape === undefined) return;
  if (!Array.isArray(shape) || !shape.every(d => d === null || (Number.isInteger(d) && d > 0))) {
    fail(owner, `\`${name}\` must be a list of positive integers or null`, name, shape);
  }
}

/**
 * Checks a layer's constructor argument object: an object (or undefined), no
 * key outside `keys` and tfjs' LayerArgs (a typo in a config must not be
 * ignored), and the LayerArgs tfjs does not check itself. Returns it ({} for undefined).
 */
export function checkLayerArgs<T>(owner: string, args: T | undefined, keys: readonly string[]): T {
  if (args === undefined) return {} as T;
  if (args === null || typeof args !== 'object' || Array.isArray(args)) {
    fail(owner, 'the arguments (config) must be an object', 'config', args);
  }
  const a = args as unknown as Record<string, unknown>;
  for (const key of Object.keys(a)) {
    if (a[key] !== undefined && !keys.includes(key) && !LAYER_ARG_KEYS.includes(key)) {
      fail(owner, `got an unknown argument \`${key}\`; it takes ${[...keys, ...LAYER_ARG_KEYS].join(', ')}`, key, a[key]);
    }
  }
  if (a.trainable !== undefined) checkBoolean(owner, a.trainable, 'trainable');
  if (a.name !== undefined && typeof a.name !== 'string') fail(owner, '`name` must be a string', 'name', a.name);
  checkShapeArg(owner, a.inputShape, 'inputShape');
  checkShapeArg(owner, a.batchInputShape, 'batchInputShape');
  return args;
}
