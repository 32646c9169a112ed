/**
 * `npm run bench:browser`: the layers of `npm run bench` in headless Chromium
 * (Debian's chromium through playwright-core, pages served from 127.0.0.1),
 * on webgl, webgpu, wasm and cpu in the page (issue 14). A benchmark, not a
 * test.
 *
 *   npm run bench:browser                      all backends, median of >= 10 runs
 *   npm run bench:browser -- --backends webgl,webgpu --only GroupNorm --runs 5
 *   npm run bench:browser -- --quick           batch 2, 3 runs: a smoke run
 *   npm run bench:browser -- --backends webgl --only LayerNorm --profile
 *                                              also logs each GPU program's time (gl.finish around each)
 *   npm run bench:browser -- --backends webgl --subjects ours,naive   only these subjects
 *   npm run bench:browser -- --backends webgpu --only SiLU --interleave
 *                                              also times the subjects alternately (per-round ratios to ours)
 *   npm run bench:browser -- --backends webgl --interleave --no-read
 *                                              and alternately without the read-back: each call waits until the
 *                                              GPU has finished its outputs, as inside a model (no download)
 *   npm run bench:browser -- --backends webgl --packed   x and dy packed textures (a packed op's output, as
 *                                              inside a model) instead of uploads from the CPU
 *   npm run bench:browser -- --out FILE        the raw results to FILE instead of bench/raw/
 *
 * Chromium's GPU here is SwiftShader (a CPU emulation of the GPU): only ratios
 * within one run mean anything. Each row: ours (fused kernels where the
 * backend registers them), the op path (TFJS_NORM_FUSED off), the tfjs layer
 * and the naive composition; training step = forward + backward with a given
 * dy; programs = GPU programs run per step. Raw results go to the git-ignored
 * bench/raw/browser.json; a full run (all four backends, not --quick or
 * --only, >= 10 runs) rewrites the committed bench/BROWSER.md.
 */
import * as fs from 'fs';
import * as path from 'path';
import type {BenchReport, SubjectResult, Timing} from './page';
import {serve} from '../../test/browser/server';
import {parseArgs} from '../args';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const {buildBrowser, bundleWithGlobals} = require('../../scripts/build-browser.js');

const ROOT = path.resolve(__dirname, '..', '..');
const BUILD_DIR = path.join(__dirname, '.build');
const ALL = ['webgl', 'webgpu', 'wasm', 'cpu'];
const CHROMIUM_ARGS = [
  '--no-sandbox', '--enable-unsafe-swiftshader', '--disable-gpu', '--enable-unsafe-webgpu',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
];
const PAGE_TIMEOUT_MS = 40 * 60_000;

const argv = process.argv.slice(2);
const argOf = parseArgs('bench:browser', argv, {
  flags: ['--quick', '--profile', '--interleave', '--no-read', '--packed'],
  values: ['--backends', '--only', '--subjects', '--runs', '--out'],
}).value;
const QUICK = argv.includes('--quick');
const BACKENDS = (argOf('--backends') ?? ALL.join(',')).split(',').filter(Boolean);
const ONLY = argOf('--only');
const PROFILE = argv.includes('--profile');
const SUBJECTS = argOf('--subjects');
const INTERLEAVE = argv.includes('--interleave');
const NO_READ = argv.includes('--no-read');
const PACKED = argv.includes('--packed');
if (NO_READ && !INTERLEAVE) throw new Error('bench:browser: --no-read times the interleaved rounds; add --interleave');
const RUNS = Number(argOf('--runs') ?? (QUICK ? 3 : 10));
const OUT = path.resolve(argOf('--out') ?? path.join(ROOT, 'bench', 'raw', QUICK ? 'browser.quick.json' : 'browser.json'));
const SUMMARY = path.join(ROOT, 'bench', 'BROWSER.md');
const FULL = !QUICK && !ONLY && !SUBJECTS && !PACKED && RUNS >= 10 && ALL.every(b => BACKENDS.includes(b));

function log(msg: string): void {
  // eslint-disable-next-line no-console
  console.log(msg);
}

const fmt = (t: Timing | undefined) => {
  if (!t) return '-';
  const v = t.ms;
  const s = v >= 10000 ? Math.round(v).toLocaleString('en-US') : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${s}${t.runs === 0 ? '*' : ''}`;
};
const ratio = (a: Timing | undefined, ours: Timing | undefined) =>
  (a && ours ? `${(a.ms / ours.ms).toFixed(a.ms / ours.ms >= 10 ? 0 : 1)}x` : '');
const cell = (s: SubjectResult | undefined, mode: 'train' | 'infer', ours: SubjectResult | undefined) => {
  if (!s) return '-';
  if (s.error) return `error: ${s.error.slice(0, 60)}`;
  const r = ratio(s[mode], ours?.[mode]);
  return `${fmt(s[mode])}${r ? ` (${r})` : ''}`;
};

function table(reports: BenchReport[]): string {
  const lines = [
    '| backend | layer | shape | train ours | programs (k) | train op path | train tfjs | train naive | ' +
    'infer ours | programs | infer op path | infer tfjs | infer naive |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const rep of reports) {
    if (!rep.started) {
      lines.push(`| ${rep.backend} | not started: ${rep.reason} |||||||||||`);
      continue;
    }
    for (const r of rep.rows) {
      const o = r.subjects.ours;
      const tfjs = r.subjects['tfjs layer'] ?? r.subjects['tfjs op'];
      lines.push(`| ${rep.backend} | ${r.name} | [${r.shape.join(',')}] | ${o?.error ? `error: ${o.error.slice(0, 60)}` : fmt(o?.train)} | ` +
                 `${o?.programs ?? '-'} (${o?.kernels ?? '-'}) | ${cell(r.subjects['op path'], 'train', o)} | ` +
                 `${cell(tfjs, 'train', o)} | ${cell(r.subjects.naive, 'train', o)} | ${fmt(o?.infer)} | ` +
                 `${o?.inferPrograms ?? '-'} | ${cell(r.subjects['op path'], 'infer', o)} | ${cell(tfjs, 'infer', o)} | ` +
                 `${cell(r.subjects.naive, 'infer', o)} |`);
    }
  }
  return lines.join('\n');
}

function summary(reports: BenchReport[], chromium: string): string {
  return [
    '# Browser benchmark results',
    '',
    'Written by `npm run bench:browser` (bench/browser/run.ts) at the end of a full run (all four backends, ' +
    '>= 10 runs); the raw results go to the git-ignored bench/raw/browser.json.',
    '',
    `- Date: ${new Date().toISOString().slice(0, 10)}`,
    `- Browser: ${chromium}, headless, pages on 127.0.0.1; tfjs ${reports.length ? '4.22 (the page\'s tf.min.js)' : ''}`,
    `- GPU: ${[...new Set(reports.filter(r => r.started && /gl|gpu/.test(r.backend)).map(r => `${r.backend}: ${r.device}`))].join('; ')} ` +
    '(SwiftShader runs shaders on the CPU: compare times only as ratios within this run)',
    `- Machine: the 2-core development VM (CPU shared with other jobs)`,
    `- Median of >= ${RUNS} calls after a warm-up (* = one cold call: a call over 8 s is not repeated)`,
    '',
    'Times in ms. train: forward + backward with a given dy (gradients w.r.t. x, gamma, beta; running statistics ' +
    'updated). infer: forward with training = false (BatchNorm: running statistics; the others compute their ' +
    'statistics). (Nx) = that time / ours, higher is better. programs: GPU programs run by one call ' +
    '(runWebGLProgram / runWebGPUProgram; 0 on cpu and wasm); k: kernels of a training step (tf.profile). ' +
    'op path: our layer with `TFJS_NORM_FUSED` off. tfjs: `tf.layers.batchNormalization` (BatchNorm rows, on the ' +
    'channels-last twin), `tf.layers.layerNormalization` (LayerNorm and RMSNorm rows), ' +
    '`tf.localResponseNormalization` (LocalResponseNorm). naive: moments + broadcast arithmetic with autodiff.',
    '',
    table(reports),
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!fs.existsSync(chromiumPath)) throw new Error(`Chromium not found at ${chromiumPath} (apt-get install chromium)`);
  const playwright: typeof import('playwright-core') = require('playwright-core');
  fs.mkdirSync(BUILD_DIR, {recursive: true});
  await buildBrowser();
  await bundleWithGlobals(path.join(__dirname, 'page.ts'), path.join(BUILD_DIR, 'page.js'),
                          {[path.join(ROOT, 'src', 'index.ts')]: 'tfnorm'});
  const server = await serve();
  // --profile: timestamp queries on webgpu (tfjs requests the feature where the adapter offers it).
  const args = PROFILE ? [...CHROMIUM_ARGS, '--enable-dawn-features=allow_unsafe_apis'] : CHROMIUM_ARGS;
  const browser = await playwright.chromium.launch({executablePath: chromiumPath, headless: true, args});
  const chromium = `Chromium ${browser.version()}`;
  log(`bench:browser: ${chromium} on ${server.origin}; backends ${BACKENDS.join(', ')}; >= ${RUNS} runs${QUICK ? ' (QUICK)' : ''}`);
  const reports: BenchReport[] = [];
  try {
    for (const backend of BACKENDS) {
      const context = await browser.newContext();
      const page = await context.newPage();
      page.on('console', m => {
        const t = m.text();
        if (t.startsWith('[bench] ')) log(`  ${t.slice(8)}`);
        else if (m.type() === 'error') log(`  [${backend} console.error] ${t}`);
      });
      page.on('pageerror', e => log(`  [${backend} page error] ${e.message}`));
      try {
        await page.goto(`${server.origin}/bench/browser/index.html`);
        page.setDefaultTimeout(PAGE_TIMEOUT_MS);
        const rep = await page.evaluate(o => (window as any).runBench(o),
                                        {backend, runs: RUNS, only: ONLY, quick: QUICK, profile: PROFILE, subjects: SUBJECTS, interleave: INTERLEAVE, noRead: NO_READ, packed: PACKED}) as BenchReport;
        if (!rep.started) log(`  ${backend} did not start: ${rep.reason}`);
        reports.push(rep);
      } catch (e) {
        reports.push({backend, started: false, reason: `page crashed: ${(e as Error).message.split('\n')[0]}`, rows: [], ms: 0});
      } finally {
        await context.close();
      }
      fs.mkdirSync(path.dirname(OUT), {recursive: true});
      fs.writeFileSync(OUT, JSON.stringify({date: new Date().toISOString(), chromium, quick: QUICK, runs: RUNS, reports}, null, 1));
    }
  } finally {
    await browser.close();
    await server.close();
  }
  log('\n' + table(reports));
  log(`\nraw results: ${path.relative(ROOT, OUT)}`);
  if (FULL) {
    fs.writeFileSync(SUMMARY, summary(reports, chromium));
    log(`wrote ${path.relative(ROOT, SUMMARY)}`);
  } else {
    log(`${path.relative(ROOT, SUMMARY)} not updated: only a full run (all backends, >= 10 runs, no --quick/--only) rewrites it`);
  }
}

main().catch(e => {
  // eslint-disable-next-line no-console
  console.error(e);
  process.exit(1);
});
