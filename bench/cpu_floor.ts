/**
 * What one fresh output array costs on tfjs' cpu backend, next to our training
 * step: the measurement behind README's "why cpu GroupNorm and LayerNorm stay
 * above 3x PyTorch's time". Not a test, and not part of `npm run bench`:
 *
 *   npx ts-node --transpile-only bench/cpu_floor.ts [--runs 40]
 *
 * Every cpu kernel (tfjs' own and ours) returns its result in a new
 * Float32Array that the backend keeps, so each output's pages are written for
 * the first time by the kernel. Per shape, medians and means (the page faults
 * come as outliers, which a median hides and a training loop pays):
 *   fresh array: `new Float32Array(n).fill(1)`, the first write of one output;
 *   tf.relu:     one of the cheapest tfjs ops (a unary loop) with an output of that size;
 *   ours cpu:    our training step (forward + backward with a given dy, no read-back): two outputs of that size (y, dx);
 *   ours wasm:   the same step on the wasm backend, whose outputs come from its heap (pages reused).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import * as tfn from '../src';
import {parseArgs} from './args';

const RUNS = Number(parseArgs('cpu_floor', process.argv.slice(2), {values: ['--runs']}).value('--runs') ?? 40);

interface Stat { median: number; mean: number; }

function timeIt(fn: () => void): Stat {
  for (let i = 0; i < 3; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return {median: ts[ts.length >> 1], mean: ts.reduce((a, b) => a + b, 0) / ts.length};
}

function stepOf(make: () => tf.layers.Layer, shape: number[]): {step: () => void; dispose: () => void} {
  const layer = make();
  layer.build(shape);
  const x = tf.variable(tf.randomNormal(shape, 1, 2, 'float32', 1), true);
  const dy = tf.randomNormal(shape, 0, 1, 'float32', 2);
  const weights = layer.trainableWeights.map(w => (w as unknown as {val: tf.Variable}).val);
  return {
    step: () => {
      const {value, grads} = tf.engine().gradients(() => layer.apply(x, {training: true}) as tf.Tensor, [x, ...weights], dy);
      value.dispose();
      tf.dispose(grads);
    },
    dispose: () => tf.dispose([x, dy, ...weights]),
  };
}

const CASES: Array<[string, () => tf.layers.Layer, number[]]> = [
  ['BatchNorm cl', () => new tfn.BatchNorm({axis: -1}), [32, 32, 32, 64]],
  ['GroupNorm(32) cl', () => new tfn.GroupNorm({numGroups: 32, axis: -1}), [8, 64, 64, 128]],
  ['GroupNorm(32) cf', () => new tfn.GroupNorm({numGroups: 32, axis: 1}), [8, 128, 64, 64]],
  ['LayerNorm', () => new tfn.LayerNorm({axis: -1}), [64, 128, 768]],
];

async function main() {
  tf.enableProdMode();
  const rows: string[] = [];
  const fmt = (s: Stat) => `${s.median.toFixed(1)} / ${s.mean.toFixed(1)}`;
  for (const [name, make, shape] of CASES) {
    const n = shape.reduce((a, b) => a * b, 1);
    await tf.setBackend('cpu');
    const fresh = timeIt(() => { new Float32Array(n).fill(1); });
    const x = tf.randomNormal(shape);
    const relu = timeIt(() => tf.relu(x).dispose());
    x.dispose();
    let s = stepOf(make, shape);
    const cpu = timeIt(s.step);
    s.dispose();
    if (!(await tf.setBackend('wasm')) || tf.getBackend() !== 'wasm') throw new Error('the wasm backend did not start');
    s = stepOf(make, shape);
    const wasm = timeIt(s.step);
    s.dispose();
    rows.push(`| ${name} | [${shape}] | ${(n * 4 / 2 ** 20).toFixed(1)} | ${fmt(fresh)} | ${fmt(relu)} | ${fmt(cpu)} | ${fmt(wasm)} |`);
    console.log(rows[rows.length - 1]);
  }
  console.log(`\ntfjs ${tf.version.tfjs}, Node ${process.version}, ${RUNS} runs after 3 warm-ups; ms, median / mean\n`);
  console.log('| layer | shape | MiB | fresh array (1 output) | tf.relu (cpu) | ours cpu, train step | ours wasm, train step |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  console.log(rows.join('\n'));
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
