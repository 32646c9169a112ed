/**
 * Quick measurement for issue #17 (not part of bench/run.ts): a training step
 * (forward + backward w.r.t. x and the weights) of a normalization with its
 * activation / residual add fused, against the same normalization followed by
 * a separate tfjs op (the activations as tfjs-layers computes them, tf.add).
 * The fused variant runs with the epilogue inside the kernels and, for
 * comparison, as tfjs ops around the plain kernels (EPILOGUE_AS_OPS_WITH_SIMD).
 * Variants run interleaved, one run of each per round, and report medians, so
 * a load change on a shared machine hits all of them alike.
 *
 *   npx ts-node --transpile-only bench/epilogue.ts [cpu|wasm] [rounds]
 *
 * GroupNorm rows at two shapes: [4,32,32,64] (1 MiB, in cache) and npm run
 * bench's [8,64,64,128] (32 MiB).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import * as tfn from '../src';
import {EPILOGUE_AS_OPS_WITH_SIMD} from '../src/engine/kernels';

type Act = 'relu' | 'silu' | 'gelu';
type Step = () => tf.Tensor[];

const tfjsAct = (z: tf.Tensor, a: Act): tf.Tensor =>
  a === 'relu' ? tf.relu(z) : a === 'silu' ? tf.mul(z, tf.sigmoid(z))
      : tf.mul(tf.mul(z, 0.5), tf.add(1, tf.erf(tf.mul(z, Math.SQRT1_2))));

/** Medians of `reps` interleaved runs of each step, after two warm-up rounds. */
function timeAll(steps: Step[], reps: number): number[] {
  for (let w = 0; w < 2; w++) steps.forEach(f => tf.dispose(f()));
  const ts = steps.map(() => [] as number[]);
  for (let i = 0; i < reps; i++) {
    steps.forEach((f, j) => {
      const t0 = performance.now();
      tf.dispose(f());
      ts[j].push(performance.now() - t0);
    });
  }
  return ts.map(t => t.sort((a, b) => a - b)[Math.floor(reps / 2)]);
}

/** The plain norm, the fused step (epilogue in the kernels / as ops around them) and norm + separate op. */
function compare(what: string, plain: Step, fused: Step, separate: Step, reps: number): string {
  const b = tf.getBackend();
  const had = EPILOGUE_AS_OPS_WITH_SIMD.has(b);
  const asOps = (on: boolean) => (on ? EPILOGUE_AS_OPS_WITH_SIMD.add(b) : EPILOGUE_AS_OPS_WITH_SIMD.delete(b));
  const [p, k, o, s] = timeAll([plain, () => { asOps(false); return fused(); }, () => { asOps(true); return fused(); },
                                separate], reps);
  if (had) EPILOGUE_AS_OPS_WITH_SIMD.add(b); else EPILOGUE_AS_OPS_WITH_SIMD.delete(b);
  return `${what}: norm alone ${p.toFixed(2)} ms | fused ${k.toFixed(2)} ms (ops around kernels ${o.toFixed(2)}) | ` +
         `norm + separate op ${s.toFixed(2)} ms | separate / fused ${(s / k).toFixed(2)}x`;
}

async function main(): Promise<void> {
  const backend = process.argv[2] ?? 'cpu';
  await tf.setBackend(backend);
  await tf.ready();
  const reps = Number(process.argv[3] ?? (backend === 'cpu' ? 9 : 21));
  const rows: string[] = [];
  // A small block (cache-resident) and npm run bench's GroupNorm shape.
  for (const shape of [[4, 32, 32, 64], [8, 64, 64, 128]]) {
    const C = shape[3];
    const x = tf.randomNormal(shape);
    const g = tf.randomNormal([C], 1, 0.2);
    const b = tf.randomNormal([C], 0, 0.2);
    const dy = tf.randomNormal(shape);
    const gn = (a: Act | null) => (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
      tfn.ops.groupNorm(xx, {numGroups: 32, gamma: gg, beta: bb, activation: a});
    for (const a of ['silu', 'relu', 'gelu'] as Act[]) {
      rows.push(compare(`GroupNorm(32) [${shape}] + ${a}`, () => tf.grads(gn(null))([x, g, b], dy),
                        () => tf.grads(gn(a))([x, g, b], dy),
                        () => tf.grads((xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
                          tfjsAct(gn(null)(xx, gg, bb), a))([x, g, b], dy), reps));
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
    rows.push(compare(`AddLayerNorm [${shape}]`,
                      () => tf.grads((xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
                        tfn.ops.layerNorm(xx, {gamma: gg, beta: bb}))([x, g, b], dy),
                      () => tf.grads((xx: tf.Tensor, rr: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
                        tfn.ops.addLayerNorm(xx, rr, {gamma: gg, beta: bb}))([x, r, g, b], dy),
                      () => tf.grads((xx: tf.Tensor, rr: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
                        tfn.ops.layerNorm(tf.add(xx, rr), {gamma: gg, beta: bb}))([x, r, g, b], dy), reps));
    tf.dispose([x, r, g, b, dy]);
  }
  console.log(`[${backend}] training step (forward + backward), medians of ${reps} interleaved rounds`);
  rows.forEach(row => console.log('  ' + row));
}

main();
