/**
 * The package as npm ships it (issue 15): `npm pack` in a copy of the source
 * tree without dist/ (what a fresh clone has after `npm ci`), so `prepack`
 * must build everything; then the tarball installed into an empty project and
 * used the four ways an app uses a tfjs plugin:
 *
 *   - CommonJS `require` and Node ESM `import` (one shared copy),
 *   - TypeScript under `strict` (nodenext, bundler and node10 resolution),
 *   - an esbuild browser bundle of the bare `import 'tfjs-norm'` (and of
 *     `require`), run in a context without Node's globals or built-ins,
 *   - the script-tag bundle on a page-like global `tf` (the README's CDN file).
 *
 * Offline: the install uses only the tarball (`--offline`; the package has no
 * dependencies of its own), and the project's node_modules/@tensorflow is a
 * link to this repository's, as npm would hoist the app's tfjs there.
 * test/package.test.ts covers the repository's own dist/ through `main`.
 */
import {execFileSync, spawnSync} from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vm from 'vm';
import * as ts from 'typescript';

const ROOT = path.join(__dirname, '..');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

/** Build outputs and local state a fresh clone does not have (the rest of the tree is copied, tests included). */
const NOT_IN_A_CLONE = new Set(['.git', 'node_modules', 'dist', 'coverage', 'demo-model', 'docs/api', 'bench/raw',
                                'test/browser/.build', 'test/browser/artifacts']);

let work: string;
let app: string;
let tarball: string;
let shipped: string[];
const timings: string[] = [];

function timed<T>(label: string, fn: () => T): T {
  const t0 = Date.now();
  try {
    return fn();
  } finally {
    timings.push(`${label} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
}

/** Runs a command; on failure the error carries its output, so a CI log shows why. */
function sh(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, {
    cwd, encoding: 'utf8', maxBuffer: 1 << 26,
    env: {...process.env, FORCE_COLOR: '0', npm_config_update_notifier: 'false', npm_config_audit: 'false',
          npm_config_fund: 'false'},
  });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed: ${r.error ?? `exit code ${r.status}`}\n` +
                    `${r.stdout}\n${r.stderr}`.slice(-6000));
  }
  return r.stdout;
}

/** Runs a script file written into the app with Node; returns the JSON it prints last. */
function nodeJson(file: string, source: string): any {
  fs.writeFileSync(path.join(app, file), source);
  const out = sh(process.execPath, [file], app);
  return JSON.parse(out.trim().split('\n').pop()!);
}

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-norm-pack-'));
  const clone = path.join(work, 'clone');
  timed('copy', () => fs.cpSync(ROOT, clone, {
    recursive: true,
    filter: src => !NOT_IN_A_CLONE.has(path.relative(ROOT, src).split(path.sep).join('/')),
  }));
  expect(fs.existsSync(path.join(clone, 'dist'))).toBe(false);
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(clone, 'node_modules'), 'dir');
  const packed = path.join(work, 'packed');
  fs.mkdirSync(packed);
  timed('npm pack (prepack build)', () => sh(NPM, ['pack', '--pack-destination', packed], clone));
  const tgz = fs.readdirSync(packed).filter(f => f.endsWith('.tgz'));
  expect(tgz).toEqual([`tfjs-norm-${pkg.version}.tgz`]);
  tarball = path.join(packed, tgz[0]);
  shipped = execFileSync('tar', ['-tzf', tarball], {encoding: 'utf8'}).trim().split('\n')
    .map(f => f.replace(/^package\//, '')).sort();

  app = path.join(work, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({name: 'app', private: true}));
  timed('npm install tarball', () => sh(NPM, ['install', '--offline', '--no-package-lock', '--legacy-peer-deps',
                                              '--ignore-scripts', tarball], app));
  fs.symlinkSync(path.join(ROOT, 'node_modules', '@tensorflow'), path.join(app, 'node_modules', '@tensorflow'), 'dir');
}, 180000);

afterAll(() => {
  if (work) fs.rmSync(work, {recursive: true, force: true});
  // eslint-disable-next-line no-console
  if (timings.length) console.log(`pack.test timings: ${timings.join(', ')}`);
});

describe('npm pack', () => {
  it('ships the CommonJS build, the ESM builds, the script-tag bundle, declarations, README, CHANGELOG and LICENSE', () => {
    for (const f of ['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts', 'dist/index.mjs',
                     'dist/index.d.mts', 'dist/tfjs-norm.esm.js', 'dist/tfjs-norm.min.js', 'dist/layers/batch_norm.js',
                     'dist/layers/batch_norm.d.ts']) {
      expect(shipped).toContain(f);
    }
    const unexpected = shipped.filter(f => !/^(dist|src)\//.test(f) &&
                                           !['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE'].includes(f));
    expect(unexpected).toEqual([]);
    expect(shipped.filter(f => /\.test\.|(^|\/)(test|bench|examples|scripts)\//.test(f))).toEqual([]);
    // Every .js of the CommonJS build has its declarations.
    const js = shipped.filter(f => /^dist\/(?!tfjs-norm\.).*\.js$/.test(f));
    expect(js.filter(f => !shipped.includes(f.replace(/\.js$/, '.d.ts')))).toEqual([]);
  });

  it('every file package.json points to is in the tarball', () => {
    const targets: string[] = [pkg.main, pkg.module, pkg.types, pkg.jsdelivr, pkg.unpkg];
    const walk = (v: unknown): void => {
      if (typeof v === 'string') targets.push(v);
      else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(pkg.exports['.']);
    expect(targets.length).toBeGreaterThan(8);
    expect(targets.map(t => t.replace(/^\.\//, '')).filter(t => !shipped.includes(t))).toEqual([]);
    expect(pkg.exports['.'].import.types).toBe('./dist/index.d.mts');
    expect(pkg.jsdelivr).toBe('dist/tfjs-norm.min.js');
  });

  it('sideEffects lists every shipped file that registers classes or kernels when imported', () => {
    const dist = path.join(app, 'node_modules', 'tfjs-norm');
    // A top-level (unindented) register...( call in the CommonJS build: registerFlags, registerKernel,
    // registerClass, installContainerFreezing's caller... (all in dist/register.js).
    const registering = shipped.filter(f => /^dist\/(?!tfjs-norm\.).*\.js$/.test(f) &&
      /^(?!function |exports\.|\/\/)\S.*\bregister[A-Za-z]*\)?\(/m.test(fs.readFileSync(path.join(dist, f), 'utf8')));
    expect(registering.length).toBeGreaterThan(0);
    const mustList = [...registering, 'dist/index.js', 'dist/index.mjs', 'dist/tfjs-norm.esm.js', 'dist/tfjs-norm.min.js',
                      ...shipped.filter(f => f === 'dist/register.js')];
    const globs = (pkg.sideEffects as string[]).map(g =>
      new RegExp(`^${g.replace(/^\.\//, '').replace(/[.]/g, '\\.').replace(/\*/g, '[^/]*')}$`));
    expect(mustList.filter(f => !globs.some(re => re.test(f)))).toEqual([]);
  });
});

describe('installed from the tarball', () => {
  it('require(): the CommonJS build, registered in the app\'s tfjs', () => {
    const r = nodeJson('cjs.js', `
      const tf = require('@tensorflow/tfjs');
      const tfn = require('tfjs-norm');
      const y = tfn.layers.batchNorm().apply(tf.tensor2d([[1, 2], [3, 6]]), {training: true});
      console.log(JSON.stringify({
        resolved: require('path').relative(__dirname, require.resolve('tfjs-norm')),
        registered: tf.serialization.SerializationMap.getMap().classNameMap.BatchNorm[0] === tfn.BatchNorm,
        y: Array.from(y.dataSync()),
      }));`);
    expect(r.resolved).toBe(path.join('node_modules', 'tfjs-norm', 'dist', 'index.js'));
    expect(r.registered).toBe(true);
    expect(r.y.map((v: number) => Math.round(v * 1e4) / 1e4)).toEqual([-1, -1, 1, 1]);
  });

  it('import from Node ESM: every export by name, the same copy as require(), fileSystem on real fs', () => {
    const r = nodeJson('esm.mjs', `
      import * as tf from '@tensorflow/tfjs';
      import tfnorm, {BatchNorm, layers, fileSystem} from 'tfjs-norm';
      import * as ns from 'tfjs-norm';
      import {createRequire} from 'module';
      import {fileURLToPath} from 'url';
      const require = createRequire(import.meta.url);
      const cjs = require('tfjs-norm');
      const model = tf.sequential({layers: [layers.batchNorm({inputShape: [3]}), layers.groupNorm({numGroups: 3})]});
      const dir = fileURLToPath(new URL('./model', import.meta.url));
      await model.save(fileSystem(dir));
      const loaded = await tf.loadLayersModel(fileSystem(dir));
      console.log(JSON.stringify({
        resolved: import.meta.resolve('tfjs-norm'),
        esmNames: Object.keys(ns).filter(k => k !== 'default').sort(),
        cjsNames: Object.keys(cjs).filter(k => k !== '__esModule').sort(),
        sameAsRequire: BatchNorm === cjs.BatchNorm && tfnorm === cjs,
        loaded: loaded.layers.map(l => l.getClassName()),
        loadedIsOurClass: loaded.layers[0] instanceof BatchNorm,
      }));`);
    expect(r.resolved).toMatch(/\/node_modules\/tfjs-norm\/dist\/index\.mjs$/);
    expect(r.esmNames).toEqual(r.cjsNames);
    expect(r.esmNames).toEqual(expect.arrayContaining(['BatchNorm', 'layers', 'ops', 'fileSystem', 'foldBatchNorm']));
    expect(r.sameAsRequire).toBe(true);
    expect(r.loaded).toEqual(['BatchNorm', 'GroupNorm']);
    expect(r.loadedIsOurClass).toBe(true);
  });

  it('TypeScript strict: the declarations resolve and type-check under nodenext, bundler and node10', () => {
    const esmSource = `
      import * as tf from '@tensorflow/tfjs';
      import tfnorm, {BatchNorm, BatchNormArgs, layers, fileSystem} from 'tfjs-norm';
      const args: BatchNormArgs = {momentum: null, axis: 1};
      const bn: BatchNorm = layers.batchNorm(args);
      // @ts-expect-error momentum is a number or null
      layers.batchNorm({momentum: 'fast'});
      // @ts-expect-error numGroups is required
      new tfnorm.GroupNorm({});
      const handler: tf.io.IOHandler = fileSystem('model');
      export const model: tf.Sequential = tf.sequential({layers: [bn]});
      export {handler};`;
    const cjsSource = `
      import tf = require('@tensorflow/tfjs');
      import tfn = require('tfjs-norm');
      const bn: tfn.BatchNorm = tfn.layers.batchNorm({momentum: null});
      // @ts-expect-error momentum is a number or null
      tfn.layers.batchNorm({momentum: 'fast'});
      export const model: tf.Sequential = tf.sequential({layers: [bn, tfn.layers.rmsNorm({epsilon: null})]});`;
    fs.writeFileSync(path.join(app, 'use.mts'), esmSource);
    fs.writeFileSync(path.join(app, 'use.cts'), cjsSource);
    const strict: ts.CompilerOptions = {strict: true, noEmit: true, target: ts.ScriptTarget.ES2020, types: [],
                                        skipLibCheck: false};
    const configs: Array<{name: string; files: string[]; options: ts.CompilerOptions; resolves: Record<string, string>}> = [
      {name: 'nodenext', files: ['use.mts', 'use.cts'],
       options: {...strict, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext},
       resolves: {'use.mts': 'index.d.mts', 'use.cts': 'index.d.ts'}},
      {name: 'bundler', files: ['use.mts'],
       options: {...strict, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler},
       resolves: {'use.mts': 'index.d.mts'}},
      {name: 'node10', files: ['use.cts'],
       options: {...strict, module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10},
       resolves: {'use.cts': 'index.d.ts'}},
    ];
    // tfjs' own .d.ts do not pass strict without skipLibCheck, so every file but those is checked: the
    // app's and tfjs-norm's declarations (skipLibCheck stays off for them).
    const parsed = new Map<string, ts.SourceFile | undefined>();
    const problems: string[] = [];
    for (const c of configs) {
      const host = ts.createCompilerHost(c.options);
      const read = host.getSourceFile.bind(host);
      host.getSourceFile = (file, lang, ...rest) => {
        const key = `${file}\0${JSON.stringify(lang)}`;
        if (!parsed.has(key)) parsed.set(key, read(file, lang, ...rest));
        return parsed.get(key);
      };
      const files = c.files.map(f => path.join(app, f));
      const program = timed(`tsc ${c.name}`, () => ts.createProgram(files, c.options, host));
      for (const [file, decl] of Object.entries(c.resolves)) {
        // use.mts imports, use.cts requires (import = require).
        const mode = file.endsWith('.mts') ? ts.ModuleKind.ESNext : ts.ModuleKind.CommonJS;
        const r = ts.resolveModuleName('tfjs-norm', path.join(app, file), c.options, ts.sys, undefined, undefined, mode);
        expect({config: c.name, file, resolved: r.resolvedModule?.resolvedFileName})
          .toEqual({config: c.name, file, resolved: path.join(app, 'node_modules', 'tfjs-norm', 'dist', decl)});
      }
      const ownFiles = program.getSourceFiles().filter(sf => !sf.fileName.includes('/@tensorflow/') &&
                                                              !program.isSourceFileDefaultLibrary(sf));
      expect(ownFiles.filter(sf => sf.fileName.includes('/node_modules/tfjs-norm/dist/')).length).toBeGreaterThan(10);
      const diagnostics = timed(`tsc ${c.name} check`, () => [
        ...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics(),
        ...ownFiles.flatMap(sf => [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)]),
      ]);
      if (diagnostics.length > 0) {
        problems.push(`${c.name}:\n` + ts.formatDiagnostics(diagnostics, {
          getCanonicalFileName: f => f, getCurrentDirectory: () => app, getNewLine: () => '\n'}));
      }
    }
    expect(problems.join('\n')).toBe('');
  });

  /** Bundles `source` with esbuild for the browser; returns the code and the package files it took. */
  async function browserBundle(file: string, source: string): Promise<{code: string; inputs: string[]}> {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const esbuild = require('esbuild') as typeof import('esbuild');
    fs.writeFileSync(path.join(app, file), source);
    const t0 = Date.now();
    const r = await esbuild.build({entryPoints: [path.join(app, file)], absWorkingDir: app, bundle: true,
                                   platform: 'browser', format: 'iife', write: false, metafile: true,
                                   logLevel: 'silent', outfile: path.join(app, 'out.js')});
    timings.push(`esbuild ${file} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect(r.errors).toEqual([]);
    return {code: r.outputFiles[0].text,
            inputs: Object.keys(r.metafile!.inputs).filter(f => f.startsWith('node_modules/tfjs-norm/'))};
  }

  /** A page-like global scope: no require, process, Buffer or Node built-ins. Returns globalThis.result. */
  async function runInPage(...scripts: string[]): Promise<any> {
    const logs: string[] = [];
    const quiet = (...a: unknown[]) => { logs.push(a.join(' ')); };
    const page: Record<string, unknown> = {
      document: {}, performance, setTimeout, clearTimeout, TextEncoder, TextDecoder,
      console: {log: quiet, info: quiet, warn: quiet, error: quiet, debug: quiet},
    };
    page.window = page.self = page;
    const context = vm.createContext(page);
    for (const s of scripts) vm.runInContext(s, context);
    return await (context as any).result;
  }

  const pageSource = (imports: string) => `${imports}
    globalThis.result = (async () => {
      await tf.setBackend('cpu');
      const model = tf.sequential({layers: [tf.layers.dense({inputShape: [2], units: 3}), tfn.layers.batchNorm()]});
      const y = model.apply(tf.tensor2d([[1, 2], [3, 5]]), {training: true});
      let fsError = null;
      try { await tfn.fileSystem('model').save({modelTopology: {}}); } catch (e) { fsError = e.message; }
      return {
        ours: model.layers[1] instanceof tfn.BatchNorm,
        registered: tf.serialization.SerializationMap.getMap().classNameMap.BatchNorm[0] === tfn.BatchNorm,
        shape: y.shape, backend: tf.getBackend(), fsError,
      };
    })();`;

  it('esbuild browser bundle of `import ... from \'tfjs-norm\'`: the ESM build, no Node built-ins, runs', async () => {
    const {code, inputs} = await browserBundle('entry.mjs', pageSource(
        `import * as tf from '@tensorflow/tfjs';\nimport * as tfn from 'tfjs-norm';`));
    expect(inputs).toEqual(['node_modules/tfjs-norm/dist/tfjs-norm.esm.js']);
    const r = await runInPage(code);
    expect(r).toEqual({ours: true, registered: true, shape: [2, 3], backend: 'cpu', fsError: expect.any(String)});
    expect(r.fsError).toMatch(/Node-only/);
  });

  it('esbuild browser bundle of require(\'tfjs-norm\'): fs and path mapped away, fileSystem() says it needs Node', async () => {
    const {code, inputs} = await browserBundle('entry.cjs', pageSource(
        `const tf = require('@tensorflow/tfjs');\nconst tfn = require('tfjs-norm');`));
    expect(inputs).toContain('node_modules/tfjs-norm/dist/io/file_system.js');
    const r = await runInPage(code);
    expect(r).toEqual({ours: true, registered: true, shape: [2, 3], backend: 'cpu', fsError: expect.any(String)});
    expect(r.fsError).toMatch(/^tfjs-norm: fileSystem\(\) needs Node/);
  });

  it('the script-tag bundle (unpkg/jsdelivr) uses the page\'s tf and defines tfnorm', async () => {
    const tfMin = fs.readFileSync(path.join(app, 'node_modules', '@tensorflow', 'tfjs', 'dist', 'tf.min.js'), 'utf8');
    const ours = fs.readFileSync(path.join(app, 'node_modules', 'tfjs-norm', pkg.unpkg), 'utf8');
    const r = await runInPage(tfMin, ours, pageSource('const tfn = globalThis.tfnorm;'));
    expect(r).toEqual({ours: true, registered: true, shape: [2, 3], backend: 'cpu', fsError: expect.any(String)});
    await expect(runInPage(ours)).rejects.toThrow(/load @tensorflow\/tfjs \(global tf\) before this script/);
  });
});
