/**
 * The shape grid (test/shape_grid.ts) on one Node backend, run by
 * test/shape_grid.test.ts in a plain Node child process: inside jest's vm
 * sandbox every global lookup in tfjs' cpu kernels and in our loops is slow
 * (the same grid takes ~4x longer there). Prints one `GRID <json>` line per
 * cell (result, leaked tensors, time) and one `GRID-LAYER <json>` line per layer.
 *
 *   npx ts-node --transpile-only test/shape_grid_node.ts cpu|wasm|tensorflow [layer-name-regexp]
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import {CATALOG} from './catalog';
import {toleranceFor} from './fixture_runner';
import {gridCases, gridSkipReason, runGridCase} from './shape_grid';

export interface CellReport {
  layer: string;
  name: string;
  failures: string[];
  leaked: number;
  worstRatio: number;
  ms: number;
}

export interface LayerReport {
  layer: string;
  cells: number;
  ms: number;
  referenceMs: number;
  targetMs: number;
  /** Why the layer's grid does not run on this backend, when it does not. */
  skipped?: string;
}

async function main(): Promise<void> {
  const backend = process.argv[2];
  const only = process.argv[3] ? new RegExp(process.argv[3]) : null;
  tf.enableProdMode();
  if (backend === 'tensorflow') require('@tensorflow/tfjs-node');
  if (!(await tf.setBackend(backend)) || tf.getBackend() !== backend) throw new Error(`backend ${backend} did not start`);
  for (const info of CATALOG) {
    if (only && !only.test(info.name)) continue;
    const layer: LayerReport = {layer: info.name, cells: 0, ms: 0, referenceMs: 0, targetMs: 0};
    const skipped = gridSkipReason(info, backend);
    if (skipped) {
      layer.skipped = skipped;
    } else {
      const t0 = Date.now();
      for (const c of gridCases(info)) {
        const before = tf.memory().numTensors;
        const t = Date.now();
        const r = await runGridCase(c, {tol: toleranceFor(backend)});
        const cell: CellReport = {layer: info.name, name: c.name, failures: r.failures, leaked: tf.memory().numTensors - before,
                                  worstRatio: r.worstRatio, ms: Date.now() - t};
        if (tf.getBackend() !== backend) cell.failures.push(`the active backend changed to ${tf.getBackend()}`);
        console.log(`GRID ${JSON.stringify(cell)}`);
        layer.cells++;
        layer.referenceMs += r.referenceMs;
        layer.targetMs += r.targetMs;
      }
      layer.ms = Date.now() - t0;
    }
    console.log(`GRID-LAYER ${JSON.stringify(layer)}`);
  }
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
