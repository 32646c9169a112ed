/**
 * Quick measurement for issue #17 (not part of bench/run.ts): a training step
 * (forward + backward w.r.t. x and the weights) of a normalization with its
 * activation / residual add fused, against the same normalization followed by
 * a separate tfjs op (tf swish/relu/gelu as tfjs-layers computes them, tf.add).
 *
 *   npx ts-node --transpile-only bench/epilogue.ts [cpu|wasm]
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import * as tfn from '../src';
import {EPILOGUE_AS_OPS_WITH_SIMD} from '../src/engine/kernels';

/** Times `f` with the epilogue inside the kernels and as ops around the SIMD kernels. */
function both(f: () => tf.Tensor[], reps: number): [number, number] {
  const b = tf.getBackend();
  const had = EPILOGUE_AS_OPS_WITH_SIMD.has(b);
  EPILOGUE_AS_OPS_WITH_SIMD.delete(b);
  const inKernel = time(f, reps);
  EPILOGUE_AS_OPS_WITH_SIMD.add(b);
  const asOps = time(f, reps);
  if (!had) EPILOGUE_AS_OPS_WITH_SIMD.delete(b);
  return [inKernel, asOps];
}

const fmt = ([k, o]: [number, number], sep: number) =>
  `fused: in kernel ${k.toFixed(1)} ms, ops around SIMD kernel ${o.toFixed(1)} ms; separate ${sep.toFixed(1)} ms ` +
  `(separate / in kernel ${(sep / k).toFixed(2)}x, / around ${(sep / o).toFixed(2)}x)`;

type Act = 'relu' | 'silu' | 'gelu';

const tfjsAct = (z: tf.Tensor, a: Act): tf.Tensor =>
  a === 'relu' ? tf.relu(z) : a === 'silu' ? tf.mul(z, tf.sigmoid(z))
      : tf.mul(tf.mul(z, 0.5), tf.add(1, tf.erf(tf.mul(z, Math.SQRT1_2))));

/** Median of `reps` timed runs after two warm-ups (the machine is shared: the median resists noise). */
function time(f: () => tf.Tensor[], reps: number): number {
  tf.dispose(f());
  tf.dispose(f());
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    tf.dispose(f());
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(reps / 2)];
}

async function main(): Promise<void> {
  const backend = process.argv[2] ?? 'cpu';
  await tf.setBackend(backend);
  await tf.ready();
  const rows: string[] = [];
  const reps = Number(process.argv[3] ?? (backend === 'cpu' ? 9 : 21));
  {
    const shape = [4, 32, 32, 64];
    const x = tf.randomNormal(shape);
    const g = tf.randomNormal([64], 1, 0.2);
    const b = tf.randomNormal([64], 0, 0.2);
    const dy = tf.randomNormal(shape);
    for (const a of ['silu', 'relu', 'gelu'] as Act[]) {
      const fused = both(() => tf.grads((xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
        tfn.ops.groupNorm(xx, {numGroups: 32, gamma: gg, beta: bb, activation: a}))([x, g, b], dy), reps);
      const separate = time(() => tf.grads((xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
        tfjsAct(tfn.ops.groupNorm(xx, {numGroups: 32, gamma: gg, beta: bb}), a))([x, g, b], dy), reps);
      if (a === 'silu') {
        const plain = time(() => tf.grads((xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
          tfn.ops.groupNorm(xx, {numGroups: 32, gamma: gg, beta: bb}))([x, g, b], dy), reps);
        rows.push(`GroupNorm(32) ${shape} alone (no activation): ${plain.toFixed(1)} ms`);
      }
      rows.push(`GroupNorm(32) ${shape} + ${a}: ${fmt(fused, separate)}`);
    }
    tf.dispose([x, g, b, dy]);
  }
  {
    const shape = [8, 128, 512];
    const x = tf.randomNormal(shape);
    const r = tf.randomNormal(shape);
    const g = tf.randomNormal([512], 1, 0.2);
    const b = tf.randomNormal([512], 0, 0.2);
    const dy = tf.randomNormal(shape);
    const fused = both(() => tf.grads((xx: tf.Tensor, rr: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
      tfn.ops.addLayerNorm(xx, rr, {gamma: gg, beta: bb}))([x, r, g, b], dy), reps);
    const separate = time(() => tf.grads((xx: tf.Tensor, rr: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
      tfn.ops.layerNorm(tf.add(xx, rr), {gamma: gg, beta: bb}))([x, r, g, b], dy), reps);
    const plain = time(() => tf.grads((xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
      tfn.ops.layerNorm(xx, {gamma: gg, beta: bb}))([x, g, b], dy), reps);
    rows.push(`LayerNorm ${shape} alone (no add): ${plain.toFixed(1)} ms`);
    rows.push(`AddLayerNorm ${shape}: ${fmt(fused, separate)}`);
    tf.dispose([x, r, g, b, dy]);
  }
  console.log(`[${backend}] training step (forward + backward), median of ${reps}`);
  rows.forEach(r => console.log('  ' + r));
}

main();
