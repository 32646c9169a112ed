/**
 * Errors raised for bad arguments or inputs. Messages follow Keras' style:
 * what is wrong, what was expected, then `Received: name=value`.
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
