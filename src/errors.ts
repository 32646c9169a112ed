/**
 * Errors raised for bad arguments or inputs. Messages follow Keras' style:
 * what is wrong, what was expected, then `Received: name=value`.
 *
 * ```js
 * try { tfn.layers.groupNorm({numGroups: 0}); } catch (e) { if (e instanceof tfn.ValueError) console.log(e.message); }
 * ```
 */
export class ValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValueError';
    Object.setPrototypeOf(this, ValueError.prototype);
  }
}

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

/** Throws a ValueError `<what>. Received: <name>=<value>`. */
export function fail(what: string, name: string, value: unknown): never {
  throw new ValueError(`${what}. Received: ${name}=${show(value)}`);
}

export function checkEpsilon(epsilon: unknown, name = 'epsilon'): number {
  if (typeof epsilon !== 'number' || !Number.isFinite(epsilon) || epsilon <= 0) {
    fail(`\`${name}\` must be a finite number > 0`, name, epsilon);
  }
  return epsilon;
}

export function checkMomentum(momentum: unknown): number | null {
  if (momentum === null) return null;
  if (typeof momentum !== 'number' || !(momentum >= 0 && momentum <= 1)) {
    fail('`momentum` must be a number in [0, 1], or null for a cumulative average', 'momentum', momentum);
  }
  return momentum;
}

export function checkBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') fail(`\`${name}\` must be a boolean`, name, value);
  return value;
}

export function checkPositiveInt(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    fail(`\`${name}\` must be a positive integer`, name, value);
  }
  return value;
}

export function checkPositiveNumber(value: unknown, name: string, allowZero = false): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || (allowZero ? value < 0 : value <= 0)) {
    fail(`\`${name}\` must be a finite number ${allowZero ? '>= 0' : '> 0'}`, name, value);
  }
  return value;
}

export function checkFinite(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(`\`${name}\` must be a finite number`, name, value);
  return value;
}

/** Rejects float16/int/bool/string inputs: normalization is defined for float32 here. */
export function checkFloatInput(dtype: string, layerName: string): void {
  if (dtype !== 'float32') {
    throw new ValueError(
      `${layerName} expects a float32 input tensor; cast it first with tf.cast(x, 'float32'). Received: dtype=${show(dtype)}`);
  }
}

/** The tfjs LayerArgs every layer accepts, and customObjects, which tfjs' deserialization adds to every config. */
const LAYER_ARG_KEYS = ['name', 'customObjects', 'trainable', 'inputShape', 'batchInputShape', 'batchSize', 'dtype', 'weights', 'inputDType'];

function checkShapeArg(shape: unknown, name: string, layer: string): void {
  if (shape === undefined) return;
  if (!Array.isArray(shape) || !shape.every(d => d === null || (Number.isInteger(d) && d > 0))) {
    fail(`${layer}: \`${name}\` must be a list of positive integers or null`, name, shape);
  }
}

/**
 * Checks a layer's constructor argument object: an object (or undefined), no
 * key outside `keys` and tfjs' LayerArgs (a typo in a config must not be
 * ignored), and the LayerArgs tfjs does not check itself. Returns it ({} for undefined).
 */
export function checkLayerArgs<T>(args: T | undefined, keys: readonly string[], layer: string): T {
  if (args === undefined) return {} as T;
  if (args === null || typeof args !== 'object' || Array.isArray(args)) {
    fail(`${layer}: the arguments (config) must be an object`, 'config', args);
  }
  const a = args as unknown as Record<string, unknown>;
  for (const key of Object.keys(a)) {
    if (a[key] !== undefined && !keys.includes(key) && !LAYER_ARG_KEYS.includes(key)) {
      fail(`${layer} got an unknown argument \`${key}\`; it takes ${[...keys, ...LAYER_ARG_KEYS].join(', ')}`, key, a[key]);
    }
  }
  if (a.trainable !== undefined) checkBoolean(a.trainable, 'trainable');
  if (a.name !== undefined && typeof a.name !== 'string') fail(`${layer}: \`name\` must be a string`, 'name', a.name);
  checkShapeArg(a.inputShape, 'inputShape', layer);
  checkShapeArg(a.batchInputShape, 'batchInputShape', layer);
  return args;
}
