#!/usr/bin/env node
/**
 * Browser builds of tfjs-norm (esbuild), `@tensorflow/tfjs` never bundled inside:
 *
 *   dist/tfjs-norm.esm.js   ESM for browser bundlers; every `@tensorflow/*` import stays external.
 *   dist/tfjs-norm.min.js   script-tag bundle (IIFE): uses the page's global `tf`
 *                           (load tf.min.js first, as with other tfjs plugins) and
 *                           exposes our exports on the global `tfnorm`.
 *
 * Node built-ins used by the Node-only file helpers are stubbed in both (see
 * nodeBuiltinStubsPlugin); Node apps use the CommonJS build (`main`, tsc).
 *
 * `node scripts/build-browser.js` (npm run build:browser). The browser test
 * runner calls `buildBrowser()` and `bundleWithGlobals()` from here.
 */
'use strict';
const path = require('path');
const esbuild = require('esbuild');

const ROOT = path.resolve(__dirname, '..');
const ENTRY = path.join(ROOT, 'src', 'index.ts');
/** The global the script-tag bundle defines. */
const GLOBAL_NAME = 'tfnorm';
const TARGET = 'es2017';

/**
 * esbuild plugin: `@tensorflow/tfjs` (and any `@tensorflow/*` package) resolves
 * to the page's global `tf`; `extra` maps more absolute module paths to
 * globals (the test page maps src/index.ts to the `tfnorm` bundle global).
 */
function globalsPlugin(extra = {}) {
  return {
    name: 'globals',
    setup(build) {
      build.onResolve({filter: /^@tensorflow\//}, args => ({path: args.path, namespace: 'global-tf'}));
      build.onLoad({filter: /.*/, namespace: 'global-tf'}, args => ({
        contents: `if (typeof globalThis.tf === 'undefined') {\n` +
                  `  throw new Error('tfjs-norm: load @tensorflow/tfjs (global tf) before this script (needed for ${args.path})');\n` +
                  `}\nmodule.exports = globalThis.tf;`,
        loader: 'js',
      }));
      const mapped = Object.keys(extra);
      if (mapped.length === 0) return;
      build.onResolve({filter: /^\./}, args => {
        const abs = path.resolve(args.resolveDir, args.path);
        for (const m of mapped) {
          if (abs === m || abs + '.ts' === m || path.join(abs, 'index.ts') === m) {
            return {path: m, namespace: 'global-mapped'};
          }
        }
        return undefined;
      });
      build.onLoad({filter: /.*/, namespace: 'global-mapped'}, args => ({
        contents: `module.exports = globalThis.${extra[args.path]};`,
        loader: 'js',
      }));
    },
  };
}

/**
 * esbuild plugin: Node built-ins (`fs`, `path`, ...; only the Node-only file
 * helpers such as `fileSystem()` use them) become stubs whose every export
 * (and property path, e.g. `fs.promises.stat`) throws a clear error when
 * called, so the rest of the library loads in a page.
 */
function nodeBuiltinStubsPlugin() {
  const builtins = new Set(require('module').builtinModules);
  return {
    name: 'node-builtin-stubs',
    setup(build) {
      build.onResolve({filter: /^[a-z_:/]+$/}, args => {
        const name = args.path.replace(/^node:/, '');
        return builtins.has(name) ? {path: name, namespace: 'node-stub'} : undefined;
      });
      build.onLoad({filter: /.*/, namespace: 'node-stub'}, args => {
        const names = Object.keys(require(args.path)).filter(k => /^[A-Za-z_$][\w$]*$/.test(k) && k !== 'default');
        const lines = [
          `const fail = (what) => new Error('tfjs-norm: ' + what + ' is Node-only (the file-system helpers need Node) and not in this browser build');`,
          `const stub = (what) => new Proxy(function () {}, {`,
          `  apply() { throw fail(what); },`,
          `  construct() { throw fail(what); },`,
          `  get(target, key) {`,
          `    if (typeof key === 'symbol' || key === 'then' || key === '__esModule' || key === 'prototype') return undefined;`,
          `    return stub(what + '.' + key);`,
          `  },`,
          `});`,
          ...names.map(k => `export const ${k} = stub(${JSON.stringify(`${args.path}.${k}`)});`),
          `export default {${names.join(', ')}};`,
        ];
        return {contents: lines.join('\n'), loader: 'js'};
      });
    },
  };
}

/** Builds both browser bundles into `outdir` (default dist/). Returns the written files. */
async function buildBrowser({outdir = path.join(ROOT, 'dist'), logLevel = 'warning'} = {}) {
  const common = {entryPoints: [ENTRY], bundle: true, sourcemap: true, target: TARGET, logLevel,
                  legalComments: 'none', keepNames: true};
  const esm = path.join(outdir, 'tfjs-norm.esm.js');
  const iife = path.join(outdir, 'tfjs-norm.min.js');
  await Promise.all([
    esbuild.build({...common, format: 'esm', platform: 'browser', outfile: esm, external: ['@tensorflow/*'],
                   plugins: [nodeBuiltinStubsPlugin()]}),
    esbuild.build({...common, format: 'iife', platform: 'browser', globalName: GLOBAL_NAME, minify: true,
                   outfile: iife, plugins: [globalsPlugin(), nodeBuiltinStubsPlugin()]}),
  ]);
  return [esm, iife];
}

/** Bundles a browser entry (IIFE) with tfjs and `mapped` modules taken from page globals. */
async function bundleWithGlobals(entry, outfile, mapped = {}) {
  await esbuild.build({entryPoints: [entry], outfile, bundle: true, format: 'iife', platform: 'browser',
                       target: TARGET, sourcemap: 'inline', logLevel: 'warning',
                       plugins: [globalsPlugin(mapped), nodeBuiltinStubsPlugin()]});
  return outfile;
}

module.exports = {buildBrowser, bundleWithGlobals, GLOBAL_NAME, ENTRY, ROOT};

if (require.main === module) {
  const t0 = Date.now();
  buildBrowser({logLevel: 'info'}).then(files => {
    for (const f of files) console.log(`built ${path.relative(ROOT, f)}`);
    console.log(`browser build done in ${Date.now() - t0} ms`);
  }, err => {
    console.error(err);
    process.exit(1);
  });
}
