/**
 * The shape grid (test/shape_grid.ts) on cpu (fused kernels against the op
 * path) and wasm (against the cpu op path): every catalog layer, forward and
 * input gradient, with a leak check per cell. The cells run in a plain Node
 * child process (test/shape_grid_node.ts; jest's sandbox makes them ~4x
 * slower); each becomes one test here.
 */
import {spawn} from 'child_process';
import * as path from 'path';
import {CATALOG, describeBackends} from './harness';
import {gridCases, gridCoverage, gridSkipReason} from './shape_grid';
import type {CellReport, LayerReport} from './shape_grid_node';

// eslint-disable-next-line no-console
const log = (...a: unknown[]) => console.log(...a);

const ROOT = path.join(__dirname, '..');
const TS_NODE = path.join(ROOT, 'node_modules', '.bin', 'ts-node');

/** Runs the grid on `backend` in a child process; resolves with its per-cell and per-layer reports. */
function runGrid(backend: string): Promise<{cells: Map<string, CellReport>; layers: LayerReport[]; output: string}> {
  return new Promise((resolve, reject) => {
    const child = spawn(TS_NODE, ['--transpile-only', path.join(__dirname, 'shape_grid_node.ts'), backend], {cwd: ROOT});
    const cells = new Map<string, CellReport>();
    const layers: LayerReport[] = [];
    let output = '';
    let pending = '';
    child.stdout.on('data', d => {
      pending += d;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith('GRID ')) {
          const c = JSON.parse(line.slice(5)) as CellReport;
          cells.set(c.name, c);
        } else if (line.startsWith('GRID-LAYER ')) {
          layers.push(JSON.parse(line.slice(11)) as LayerReport);
        } else {
          output += line + '\n';
        }
      }
    });
    child.stderr.on('data', d => { output += d; });
    child.on('error', reject);
    child.on('close', code => {
      if (code !== 0) reject(new Error(`shape grid on ${backend} exited with ${code}:\n${output.slice(-4000)}`));
      else resolve({cells, layers, output});
    });
  });
}

describe('the shape grid', () => {
  it.each(CATALOG.map(info => [info.name, info] as const))(
    'gives %s every listed batch, spatial size, channel count, rank and layout it can take', (_, info) => {
      const missing = gridCoverage(info, gridCases(info));
      expect(missing).toEqual({batch: [], spatial: [], channels: [], rank: [], layout: []});
    });
});

describeBackends('shape grid against the cpu op path', backend => {
  let run: Awaited<ReturnType<typeof runGrid>>;
  beforeAll(async () => {
    const t0 = Date.now();
    run = await runGrid(backend);
    for (const l of run.layers) {
      log(l.skipped ? `shape grid ${l.layer} [${backend}]: skipped (${l.skipped})` :
        `shape grid ${l.layer} [${backend}]: ${l.cells} cells in ${(l.ms / 1000).toFixed(1)} s ` +
        `(cpu op path ${(l.referenceMs / 1000).toFixed(1)} s, ${backend} ${(l.targetMs / 1000).toFixed(1)} s)`);
    }
    log(`shape grid [${backend}]: ${run.cells.size} cells in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }, 15 * 60_000);

  for (const info of CATALOG) {
    const skipped = gridSkipReason(info, backend);
    if (skipped) {
      it(`${info.name}: skipped (${skipped})`, () => undefined);
      continue;
    }
    describe(info.name, () => {
      it('ran every cell of its grid', () => {
        expect(run.layers.find(l => l.layer === info.name)?.cells).toBe(gridCases(info).length);
      });
      for (const c of gridCases(info)) {
        it(`${c.name} (${c.modes.join(', ')})`, () => {
          const r = run.cells.get(c.name);
          if (!r) throw new Error(`no result for ${c.name}`);
          if (r.leaked !== 0) r.failures.push(`leaked ${r.leaked} tensors`);
          if (r.failures.length) throw new Error(r.failures.join('\n'));
        });
      }
    });
  }
});
