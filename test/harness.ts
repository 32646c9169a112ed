/**
 * The one harness every layer test goes through: backends, leak checks,
 * fixture access, tolerance-checked comparisons, layer construction.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import * as fs from 'fs';
import * as path from 'path';
import {TOLERANCES} from './fixture_runner';

export {LAYERS, disposeLayer, layerFromCase, trainStep} from './fixture_runner';

/** Tolerance of comparisons with float64 references on cpu/wasm (reasons in fixture_runner.ts). */
export const ATOL = TOLERANCES.cpu.atol;
export const RTOL = TOLERANCES.cpu.rtol;

function tfjsNodeAvailable(): string | null {
  try {
    require.resolve('@tensorflow/tfjs-node');
    return null;
  } catch (e) {
    return '@tensorflow/tfjs-node is not installed (its install step downloads libtensorflow)';
  }
}

/**
 * Backends under test. Default: cpu and wasm. TFJS_BACKEND=tensorflow runs on
 * tfjs-node when it resolves; TFJS_BACKEND=cpu or wasm runs one backend.
 */
export function backendsUnderTest(): string[] {
  const env = process.env.TFJS_BACKEND;
  if (!env) return ['cpu', 'wasm'];
  const list = env.split(',').map(s => s.trim()).filter(Boolean);
  return list.filter(b => {
    if (b !== 'tensorflow') return true;
    const why = tfjsNodeAvailable();
    if (why) {
      // eslint-disable-next-line no-console
      console.warn(`SKIPPED backend tensorflow: ${why}.`);
      return false;
    }
    require('@tensorflow/tfjs-node');
    return true;
  });
}

/** `describe` once per backend, with the backend set and asserted. */
export function describeBackends(name: string, body: (backend: string) => void): void {
  const backends = backendsUnderTest();
  if (backends.length === 0) {
    describe(name, () => {
      it('has no backend to run on (see the printed reason)', () => {
        // eslint-disable-next-line no-console
        console.warn(`SKIPPED ${name}: no backend available for TFJS_BACKEND=${process.env.TFJS_BACKEND}`);
      });
    });
    return;
  }
  for (const backend of backends) {
    describe(`${name} [${backend}]`, () => {
      beforeAll(async () => {
        await tf.setBackend(backend);
        await tf.ready();
        if (tf.getBackend() !== backend) throw new Error(`backend ${backend} did not start (got ${tf.getBackend()})`);
      });
      beforeEach(() => {
        expect(tf.getBackend()).toBe(backend);
      });
      body(backend);
    });
  }
}

/** Runs `fn` and asserts it leaves the number of live tensors unchanged. */
export async function noLeak<T>(fn: () => T | Promise<T>, what = 'call'): Promise<T> {
  const before = tf.memory().numTensors;
  const out = await fn();
  const after = tf.memory().numTensors;
  if (after !== before) throw new Error(`${what} leaked ${after - before} tensors (${before} -> ${after})`);
  return out;
}

/** Max over elements of |a - e| / (atol + rtol |e|); <= 1 means within tolerance. */
export function toleranceRatio(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = ATOL, rtol = RTOL): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != expected ${expected.length}`);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i];
    const a = actual[i];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    const r = Math.abs(a - e) / (atol + rtol * Math.abs(e));
    if (!(r <= worst)) worst = Number.isNaN(r) ? Infinity : r;
  }
  return worst;
}

/** Asserts `actual` matches `expected` within atol + rtol |expected|, naming the worst element. */
export function expectClose(actual: tf.Tensor | ArrayLike<number>, expected: ArrayLike<number>, what: string,
                            atol = ATOL, rtol = RTOL): void {
  const a = actual instanceof tf.Tensor ? actual.dataSync() : actual;
  const ratio = toleranceRatio(a, expected, atol, rtol);
  if (!(ratio <= 1)) {
    let worstI = 0;
    let worst = -1;
    for (let i = 0; i < expected.length; i++) {
      const r = Math.abs(a[i] - expected[i]) / (atol + rtol * Math.abs(expected[i]));
      if (!(r <= worst)) { worst = Number.isNaN(r) ? Infinity : r; worstI = i; }
    }
    throw new Error(`${what}: element ${worstI} is ${a[worstI]}, expected ${expected[worstI]} ` +
                    `(error ${Math.abs(a[worstI] - expected[worstI]).toExponential(2)}, ` +
                    `tolerance ${atol} + ${rtol}*|expected|)`);
  }
}

// ---------------------------------------------------------------- fixtures

export interface FixtureStep {
  x: number[];
  dy: number[];
  y: number[];
  dx: number[];
  dgamma: number[] | null;
  dbeta: number[] | null;
  runningMean: number[] | null;
  runningVar: number[] | null;
  numBatchesTracked: number | null;
}

export interface FixtureCase {
  name: string;
  layer: string;
  args: Record<string, unknown>;
  inputShape: number[];
  gamma: number[] | null;
  beta: number[] | null;
  runningMeanInit: number[] | null;
  runningVarInit: number[] | null;
  steps: FixtureStep[];
  eval: {x: number[]; y: number[]};
}

export function loadTorchFixtures(): {torchVersion: string; cases: FixtureCase[]} {
  const file = path.join(__dirname, 'fixtures', 'torch_reference.json');
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/** A layer's weight by its short name (`gamma`, `moving_mean`, ...), or null; `shortName(w)` is that name. */
export {weightByShortName as weight, shortName} from '../src/weight_names';

/** Disposes every tensor in a list/object (nulls ignored). */
export function disposeAll(...ts: Array<tf.Tensor | null | undefined>): void {
  ts.forEach(t => t?.dispose());
}
