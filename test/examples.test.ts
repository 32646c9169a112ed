/**
 * Every example runs as written, in its quick mode: `npm run demo` (train,
 * save, reload, identical predictions), `npm run sweep -- --quick`
 * (results.json + SVG chart) and examples/precise-bn.ts --quick. Each runs in
 * a child process from the repository root, as a user would run it.
 *
 * The committed full-sweep artifacts (examples/results/) are checked too: the
 * full grid over all seeds, a chart that is the rendering of that data, a
 * README table that is the table of that data, and norms.svg as
 * examples/draw-norms.ts draws it.
 */
import {spawn} from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type {SweepResults} from '../examples/batch-size-sweep';
import {normsSvg} from '../examples/draw-norms';

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

function checkResults(results: SweepResults, norms: string[], batchSizes: number[], seeds: number): void {
  expect(results.config.norms).toEqual(norms);
  expect(results.config.batchSizes).toEqual(batchSizes);
  expect(results.config.seeds).toBe(seeds);
  expect(results.runs).toHaveLength(norms.length * batchSizes.length * seeds);
  expect(results.cells).toHaveLength(norms.length * batchSizes.length);
  for (const norm of norms) {
    for (const batchSize of batchSizes) {
      const cell = results.cells.find(c => c.norm === norm && c.batchSize === batchSize);
      expect(cell).toBeDefined();
      for (const s of [cell!.error, cell!.trainModeError, cell!.trainError]) {
        expect(s.min).toBeGreaterThanOrEqual(0);
        expect(s.max).toBeLessThanOrEqual(1);
        expect(s.mean).toBeGreaterThanOrEqual(s.min);
        expect(s.mean).toBeLessThanOrEqual(s.max);
        expect(s.std).toBeGreaterThanOrEqual(0);
      }
      expect(cell!.steps).toBeGreaterThan(0);
      const runs = results.runs.filter(r => r.norm === norm && r.batchSize === batchSize);
      expect(runs.map(r => r.seed).sort()).toEqual(Array.from({length: seeds}, (_, i) => i + 1));
      // Only BatchNorm uses batch statistics: for the others train mode is inference mode, on the same images.
      if (norm !== 'batch') for (const r of runs) expect(r.trainModeAccuracy).toBe(r.accuracy);
    }
  }
}

function checkSvg(svg: string): void {
  expect(svg.startsWith('<svg')).toBe(true);
  expect(svg.trim().endsWith('</svg>')).toBe(true);
  for (const label of ['BatchNorm', 'GroupNorm', 'LayerNorm', 'no norm', 'batch size', 'inference mode', 'train mode']) {
    expect(svg).toContain(label);
  }
  expect((svg.match(/<path/g) ?? []).length).toBeGreaterThanOrEqual(8);
}

const NORMS = ['batch', 'group', 'layer', 'none'];
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
  expect(r.output).toContain('| BatchNorm, inference mode |');
  expect(r.output).toContain('| BatchNorm, train mode |');
  const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as SweepResults;
  expect(results.quick).toBe(true);
  checkResults(results, NORMS, [2, 32], 1);
  checkSvg(fs.readFileSync(path.join(out, 'batch-size-sweep.svg'), 'utf8'));
});

test('npm run sweep -- --quick writes to a git-ignored folder by default', async () => {
  const {defaultOutDir} = await import('../examples/batch-size-sweep');
  const quickDir = path.relative(ROOT, defaultOutDir(true)).split(path.sep).join('/');
  expect(quickDir).toBe('examples/results/quick');
  expect(path.relative(ROOT, defaultOutDir(false)).split(path.sep).join('/')).toBe('examples/results');
  const ignored = fs.readFileSync(path.join(ROOT, '.gitignore'), 'utf8').split('\n').map(l => l.trim());
  expect(ignored).toContain(`/${quickDir}/`);
});

test('examples/precise-bn.ts --quick', async () => {
  const r = await run(TS_NODE, ['--transpile-only', 'examples/precise-bn.ts', '--quick']);
  expectSuccess(r);
  expect(r.output).toContain('after recomputeBatchNormStats');
});

describe('committed full sweep (examples/results/)', () => {
  const dir = path.join(ROOT, 'examples', 'results');
  const results = JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8')) as SweepResults;

  test('is the full grid: 4 norms x batch sizes 2 to 32 x 3 seeds', () => {
    expect(results.quick).toBe(false);
    checkResults(results, NORMS, [2, 4, 8, 16, 32], 3);
  });

  test('the README table is the table of results.json', async () => {
    const {table} = await import('../examples/batch-size-sweep');
    expect(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')).toContain(table(results));
  });

  test('norms.svg is what examples/draw-norms.ts draws', () => {
    expect(fs.readFileSync(path.join(dir, 'norms.svg'), 'utf8')).toBe(normsSvg());
  });

  test('the chart is the rendering of results.json', async () => {
    const {chartSvg} = await import('../examples/batch-size-sweep');
    const committed = fs.readFileSync(path.join(dir, 'batch-size-sweep.svg'), 'utf8');
    checkSvg(committed);
    expect(await chartSvg(results)).toBe(committed);
  });
});
