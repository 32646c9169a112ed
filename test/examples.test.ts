/**
 * Every example runs as written, in its quick mode: `npm run demo` (train,
 * save, reload, identical predictions), `npm run sweep -- --quick`
 * (results.json + SVG chart) and examples/precise-bn.ts --quick. Each runs in
 * a child process from the repository root, as a user would run it.
 *
 * The committed full-sweep artifacts (examples/results/) are checked too: the
 * grid the README quotes, and a chart that is the rendering of that data.
 */
import {spawn} from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type {SweepResults} from '../examples/batch-size-sweep';

const ROOT = path.join(__dirname, '..');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const TS_NODE = path.join(ROOT, 'node_modules', '.bin', 'ts-node');

interface Run {
  code: number | null;
  output: string;
}

function run(command: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {cwd: ROOT, env: {...process.env, FORCE_COLOR: '0'}});
    let output = '';
    child.stdout.on('data', d => { output += d; });
    child.stderr.on('data', d => { output += d; });
    child.on('error', reject);
    child.on('close', code => resolve({code, output}));
  });
}

/** The run's output in the failure message, so a CI log shows why. */
function expectSuccess(r: Run): void {
  if (r.code !== 0) throw new Error(`exit code ${r.code}; output:\n${r.output.slice(-4000)}`);
}

function checkResults(results: SweepResults, norms: string[], batchSizes: number[]): void {
  expect(results.config.norms).toEqual(norms);
  expect(results.config.batchSizes).toEqual(batchSizes);
  expect(results.cells).toHaveLength(norms.length * batchSizes.length);
  for (const norm of norms) {
    for (const batchSize of batchSizes) {
      const cell = results.cells.find(c => c.norm === norm && c.batchSize === batchSize);
      expect(cell).toBeDefined();
      expect(cell!.accuracy).toBeGreaterThanOrEqual(0);
      expect(cell!.accuracy).toBeLessThanOrEqual(1);
      expect(Number.isFinite(cell!.loss)).toBe(true);
      expect(cell!.steps).toBeGreaterThan(0);
    }
  }
}

function checkSvg(svg: string): void {
  expect(svg.startsWith('<svg')).toBe(true);
  expect(svg.trim().endsWith('</svg>')).toBe(true);
  for (const label of ['BatchNorm', 'GroupNorm', 'LayerNorm', 'InstanceNorm', 'no norm', 'batch size']) {
    expect(svg).toContain(label);
  }
  expect((svg.match(/<path/g) ?? []).length).toBeGreaterThanOrEqual(5);
}

const NORMS = ['batch', 'group', 'layer', 'instance', 'none'];
let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-norm-examples-')); });
afterAll(() => fs.rmSync(tmp, {recursive: true, force: true}));

test('npm run demo: trains, saves, reloads with identical predictions', async () => {
  const out = path.join(tmp, 'demo-model');
  const r = await run(NPM, ['run', 'demo', '--', '--epochs', '1', '--train', '20', '--test', '10', '--out', out]);
  expectSuccess(r);
  expect(r.output).toMatch(/test: loss [\d.]+, accuracy [\d.]+%/);
  expect(r.output).toMatch(/reloaded model: GroupNorm, BatchNorm; max \|prediction difference\| = 0 -> identical/);
  expect(fs.existsSync(path.join(out, 'model.json'))).toBe(true);
});

test('npm run sweep -- --quick: results.json and the SVG chart', async () => {
  const out = path.join(tmp, 'sweep');
  const r = await run(NPM, ['run', 'sweep', '--', '--quick', '--out', out]);
  expectSuccess(r);
  expect(r.output).toContain('| BatchNorm |');
  const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as SweepResults;
  expect(results.quick).toBe(true);
  checkResults(results, NORMS, [2, 32]);
  checkSvg(fs.readFileSync(path.join(out, 'batch-size-sweep.svg'), 'utf8'));
});

test('examples/precise-bn.ts --quick', async () => {
  const r = await run(TS_NODE, ['--transpile-only', 'examples/precise-bn.ts', '--quick']);
  expectSuccess(r);
  expect(r.output).toContain('after recomputeBatchNormStats');
});

describe('committed full sweep (examples/results/)', () => {
  const dir = path.join(ROOT, 'examples', 'results');
  const results = JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8')) as SweepResults;

  test('is the full grid: 5 norms x batch sizes 2 to 32', () => {
    expect(results.quick).toBe(false);
    checkResults(results, NORMS, [2, 4, 8, 16, 32]);
  });

  test('the chart is the rendering of results.json', async () => {
    const {chartSvg} = await import('../examples/batch-size-sweep');
    const committed = fs.readFileSync(path.join(dir, 'batch-size-sweep.svg'), 'utf8');
    checkSvg(committed);
    expect(await chartSvg(results)).toBe(committed);
  });
});
