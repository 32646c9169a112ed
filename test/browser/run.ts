/**
 * The browser suite (`npm run test:browser`, also run by `npm test`).
 *
 * Builds the script-tag bundle (dist/tfjs-norm.min.js) and the in-page suite
 * (test/browser/page.ts), serves them from 127.0.0.1, and drives Debian's
 * headless Chromium with playwright-core:
 *
 *   1. on each of webgl, webgpu, wasm and cpu (a fresh page each): every
 *      PyTorch fixture case, every activation / add-norm fixture case
 *      (test/fixtures/activation.json: op with fused kernels on and off, and
 *      layer; test/activation_runner.ts), the shape grid against the cpu op path (webgl
 *      and webgpu; test/shape_grid.ts), a Sequential fit, an IndexedDB
 *      save/load, with a leak check after every test (page.ts);
 *   2. webgl with WEBGL_FORCE_F16_TEXTURES (mobile precision): fixtures and the grid;
 *   3. the example page (examples/browser/), whose screenshot is kept in
 *      test/browser/artifacts/ and checked for the trained loss curve.
 *
 * A backend that cannot start is reported with its reason; webgl must start.
 * Without Chromium (or playwright-core) the suite prints `SKIPPED browser
 * suite: <reason>` and exits 0, unless CI is set, where that is a failure.
 *
 * Options: --backends=webgl,cpu  --filter=<regexp on fixture and grid cell names; `activation <case>` for the activation fixtures>  --no-f16  --no-example
 * --no-grid  --grid-only (or BROWSER_BACKENDS / BROWSER_FILTER); CHROMIUM_PATH picks the browser.
 */
import * as fs from 'fs';
import * as path from 'path';
import type {Browser, Page} from 'playwright-core';
import type {SuiteOptions, SuiteReport} from './page';
import {decodePng} from './png';
import {serve} from './server';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const {buildBrowser, bundleWithGlobals} = require('../../scripts/build-browser.js');

const ROOT = path.resolve(__dirname, '..', '..');
const BUILD_DIR = path.join(__dirname, '.build');
const ARTIFACTS = path.join(__dirname, 'artifacts');
const ALL_BACKENDS = ['webgl', 'webgpu', 'wasm', 'cpu'];
/** Backends that must start (the others are reported with their reason when they cannot). */
const REQUIRED_BACKENDS = ['webgl', 'wasm', 'cpu'];
const SUITE_TIMEOUT_MS = 6 * 60_000;
const EXAMPLE_TIMEOUT_MS = 3 * 60_000;

const CHROMIUM_ARGS = [
  '--no-sandbox', '--enable-unsafe-swiftshader', '--disable-gpu', '--enable-unsafe-webgpu',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
];

const isCI = !!process.env.CI && !['0', 'false'].includes(process.env.CI.toLowerCase());

function arg(name: string, env: string): string | undefined {
  const a = process.argv.find(s => s.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : process.env[env] || undefined;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

function log(msg: string): void {
  // eslint-disable-next-line no-console
  console.log(msg);
}

/** Exits: 0 with a SKIPPED line locally, 1 under CI. */
function skip(reason: string): never {
  if (isCI) {
    // eslint-disable-next-line no-console
    console.error(`FAILED browser suite: ${reason} (CI is set, so the browser suite must run)`);
    process.exit(1);
  }
  log(`SKIPPED browser suite: ${reason}`);
  process.exit(0);
}

/** CHROMIUM_PATH when set, else Debian's chromium (or another usual path). */
function findChromium(): string | null {
  const candidates = process.env.CHROMIUM_PATH ? [process.env.CHROMIUM_PATH]
    : ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
  return candidates.find(p => fs.existsSync(p)) ?? null;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000} s`)), ms);
    }),
  ]);
}

function pipeConsole(page: Page, label: string): void {
  page.on('console', m => {
    const text = m.text();
    if (text.startsWith('[suite] ')) log(`  ${text.slice(8)}`);
    else if (m.type() === 'error') log(`  [${label} console.error] ${text}`);
  });
  page.on('pageerror', e => log(`  [${label} page error] ${e.message}`));
}

async function runSuite(browser: Browser, origin: string, opts: SuiteOptions): Promise<SuiteReport> {
  const label = opts.f16 ? `${opts.backend}-f16` : opts.backend;
  const context = await browser.newContext();
  const page = await context.newPage();
  pipeConsole(page, label);
  try {
    await page.goto(`${origin}/test/browser/index.html`);
    return await withTimeout(page.evaluate(o => (window as any).runSuite(o), opts), SUITE_TIMEOUT_MS, `${label} suite`);
  } catch (e) {
    return {backend: opts.backend, label, started: false, reason: `suite crashed: ${(e as Error).message}`,
            tests: [], ms: 0, env: {}};
  } finally {
    await context.close();
  }
}

interface ExampleResult {
  ok: boolean;
  errors: string[];
  result?: Record<string, unknown>;
  screenshot?: string;
}

/**
 * Loads examples/browser/ (webgl), waits for training to finish, keeps a
 * screenshot and checks it: DOM (final loss < first loss / 2, accuracy) and
 * pixels (the loss curve, drawn in #7048e8, ends lower than it starts).
 */
async function runExample(browser: Browser, origin: string): Promise<ExampleResult> {
  const errors: string[] = [];
  const context = await browser.newContext({viewport: {width: 1000, height: 820}, deviceScaleFactor: 1});
  const page = await context.newPage();
  pipeConsole(page, 'example');
  try {
    await page.goto(`${origin}/examples/browser/index.html?backend=webgl`);
    await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state ?? ''), null,
                               {timeout: EXAMPLE_TIMEOUT_MS, polling: 500});
    const result = await page.evaluate(() => (window as any).exampleResult) as Record<string, any>;
    const screenshot = path.join(ARTIFACTS, 'example-page.png');
    const png = await page.screenshot({path: screenshot, fullPage: true});
    if (result.error) {
      errors.push(`example failed: ${result.error}`);
      return {ok: false, errors, result, screenshot};
    }
    const dom = await page.evaluate(() => ({
      backend: document.getElementById('backend')!.textContent,
      first: Number(document.getElementById('first-loss')!.textContent),
      final: Number(document.getElementById('final-loss')!.textContent),
      rows: document.querySelectorAll('#predictions tbody tr').length,
    }));
    if (dom.backend !== 'webgl') errors.push(`example ran on ${dom.backend}, not webgl`);
    if (!(dom.final < dom.first / 2)) errors.push(`final loss ${dom.final} is not below half the first ${dom.first}`);
    if (!((result.accuracy as number) >= 0.9)) errors.push(`accuracy ${result.accuracy} < 0.9`);
    if (dom.rows < 3) errors.push(`only ${dom.rows} prediction rows shown`);

    // Pixel evidence from the screenshot itself.
    const box = await page.locator('#loss-canvas').boundingBox();
    const img = decodePng(png);
    const curve = {left: [] as number[], right: [] as number[]};
    for (let y = Math.ceil(box!.y); y < box!.y + box!.height; y++) {
      for (let x = Math.ceil(box!.x); x < box!.x + box!.width; x++) {
        const i = (y * img.width + x) * 4;
        const [r, g, b] = [img.data[i], img.data[i + 1], img.data[i + 2]];
        // LOSS_COLOR #7048e8 = (112, 72, 232), anti-aliasing tolerated.
        if (Math.abs(r - 112) < 40 && Math.abs(g - 72) < 40 && b > 190) {
          const fx = (x - box!.x) / box!.width;
          if (fx < 0.25) curve.left.push(y);
          if (fx > 0.75) curve.right.push(y);
        }
      }
    }
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
    if (curve.left.length < 10 || curve.right.length < 10) {
      errors.push(`screenshot: loss curve not found (${curve.left.length} left, ${curve.right.length} right pixels)`);
    } else if (!(mean(curve.right) - mean(curve.left) > 0.3 * box!.height)) {
      errors.push(`screenshot: the loss curve does not fall (mean row ${mean(curve.left).toFixed(0)} -> ${mean(curve.right).toFixed(0)})`);
    }
    log(`  example: webgl, loss ${dom.first} -> ${dom.final}, accuracy ${(100 * (result.accuracy as number)).toFixed(1)} %, ` +
        `${(result.seconds as number).toFixed(1)} s; screenshot curve rows ${mean(curve.left).toFixed(0)} -> ` +
        `${mean(curve.right).toFixed(0)} (canvas height ${box!.height})`);
    return {ok: errors.length === 0, errors, result, screenshot: path.relative(ROOT, screenshot)};
  } catch (e) {
    errors.push(`example: ${(e as Error).message}`);
    await page.screenshot({path: path.join(ARTIFACTS, 'example-page.png'), fullPage: true}).catch(() => undefined);
    return {ok: false, errors};
  } finally {
    await context.close();
  }
}

/** Worst absolute error per quantity over a suite's fixture cases. */
function worstErrors(r: SuiteReport, which: (t: SuiteReport['tests'][number]) => boolean = () => true): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of r.tests.filter(which)) {
    for (const [q, v] of Object.entries(t.maxAbs ?? {})) out[q] = Math.max(out[q] ?? 0, v as number);
  }
  return out;
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const chromiumPath = findChromium();
  if (!chromiumPath) skip(`Chromium not found at ${process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'} (apt-get install chromium, or set CHROMIUM_PATH)`);
  let playwright: typeof import('playwright-core');
  try {
    playwright = require('playwright-core');
  } catch (e) {
    skip(`playwright-core is not installed (${(e as Error).message.split('\n')[0]})`);
  }
  const backends = (arg('backends', 'BROWSER_BACKENDS') ?? ALL_BACKENDS.join(',')).split(',').filter(Boolean);
  const filter = arg('filter', 'BROWSER_FILTER');

  fs.mkdirSync(BUILD_DIR, {recursive: true});
  fs.mkdirSync(ARTIFACTS, {recursive: true});
  await buildBrowser();
  await bundleWithGlobals(path.join(__dirname, 'page.ts'), path.join(BUILD_DIR, 'page.js'),
                          {[path.join(ROOT, 'src', 'index.ts')]: 'tfnorm'});
  log(`browser suite: built dist/tfjs-norm.min.js and the page in ${Date.now() - t0} ms`);

  const server = await serve();
  let browser: Browser;
  try {
    browser = await playwright!.chromium.launch({executablePath: chromiumPath!, headless: true, args: CHROMIUM_ARGS});
  } catch (e) {
    await server.close();
    skip(`Chromium failed to launch: ${(e as Error).message.split('\n')[0]}`);
  }
  log(`browser suite: Chromium ${browser!.version()} on ${server.origin}`);

  const failures: string[] = [];
  const reports: SuiteReport[] = [];
  let example: ExampleResult | null = null;
  try {
    const grid = flag('no-grid') ? {grid: false} : {};
    const gridOnly = flag('grid-only');
    const runs: SuiteOptions[] = backends.map(backend => ({backend, filter, gridOnly, ...grid}));
    if (!flag('no-f16') && backends.includes('webgl')) runs.push({backend: 'webgl', f16: true, filter, gridOnly, ...grid});
    for (const opts of runs) {
      const label = opts.f16 ? `${opts.backend}-f16` : opts.backend;
      log(`\n[${label}]`);
      const r = await runSuite(browser!, server.origin, opts);
      reports.push(r);
      if (!r.started) {
        log(`  ${label}: did not start: ${r.reason}`);
        if (REQUIRED_BACKENDS.includes(opts.backend)) failures.push(`${label} did not start: ${r.reason}`);
        continue;
      }
      for (const t of r.tests.filter(x => !x.ok)) failures.push(`${label} / ${t.name}: ${t.error}`);
    }
    if (!flag('no-example')) {
      log('\n[example page]');
      example = await runExample(browser!, server.origin);
      failures.push(...example.errors);
    }
  } finally {
    await browser!.close();
    await server.close();
  }

  log('\nbrowser suite summary');
  for (const r of reports) {
    if (!r.started) {
      log(`  ${r.label.padEnd(10)} not started: ${r.reason}`);
      continue;
    }
    const run = r.tests.filter(t => !t.skipped);
    const failed = run.filter(t => !t.ok).length;
    const grid = r.tests.filter(t => t.name.startsWith('grid '));
    const skipped = r.tests.length - run.length;
    const fmt = (w: Record<string, number>) => Object.entries(w).map(([q, v]) => `${q} ${v.toExponential(1)}`).join(', ');
    log(`  ${r.label.padEnd(10)} ${run.length - failed}/${run.length} passed${skipped ? `, ${skipped} skipped` : ''}, ` +
        `${(r.ms / 1000).toFixed(1)} s, tolerance ${r.tolerance!.atol} + ${r.tolerance!.rtol}|e|; worst |error|: ${fmt(worstErrors(r))}`);
    if (r.tests.some(t => t.unitScale === false)) {
      const n = r.tests.filter(t => t.unitScale === false).length;
      log(`             unit-scale cases only: ${fmt(worstErrors(r, t => t.unitScale !== false))}; ` +
          `${n} cases with sqrt(var + eps) < 0.1 (finite, closeness measured): ${fmt(worstErrors(r, t => t.unitScale === false))}`);
    }
    if (grid.length) {
      log(`             shape grid: ${grid.filter(t => t.ok).length}/${grid.length} cells passed in ` +
          `${(grid.reduce((s, t) => s + t.ms, 0) / 1000).toFixed(1)} s`);
    }
    for (const reason of new Set(r.tests.filter(t => t.skipped).map(t => t.skipped))) log(`             skipped: ${reason}`);
  }
  if (example) log(`  example    ${example.ok ? 'ok' : 'FAILED'}${example.screenshot ? `, screenshot ${example.screenshot}` : ''}`);
  fs.writeFileSync(path.join(ARTIFACTS, 'report.json'),
                   JSON.stringify({chromium: chromiumPath, reports, example, failures}, null, 1));
  log(`  total ${((Date.now() - t0) / 1000).toFixed(0)} s; report test/browser/artifacts/report.json`);

  if (failures.length) {
    // eslint-disable-next-line no-console
    console.error(`\nFAILED browser suite (${failures.length}):\n` + failures.map(f => `  - ${f}`).join('\n'));
    process.exit(1);
  }
  log('browser suite passed');
}

main().catch(e => {
  // eslint-disable-next-line no-console
  console.error(e);
  process.exit(1);
});
