/**
 * The SIMD WebAssembly module (wasm/norm.ts): the committed binary
 * (src/engine/backends/simd/norm_wasm.ts) is the build of the sources with the
 * npm-installed AssemblyScript, it compiles in this Node, and it writes
 * nothing into the memory it imports (it runs on the tfjs heap).
 */
import {execFileSync} from 'child_process';
import * as path from 'path';
import {simdModule, simdUnavailableReason} from '../src/engine/backends/simd/module';
import {NORM_WASM_BASE64} from '../src/engine/backends/simd/norm_wasm';

const ROOT = path.resolve(__dirname, '..');

describe('SIMD module', () => {
  it('the committed binary is the build of wasm/norm.ts (npm run build:wasm)', () => {
    // A child process: the AssemblyScript compiler is an ES module.
    const out = execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build-wasm.js'), '--check'],
                             {cwd: ROOT}).toString();
    expect(out).toContain('is the build of wasm/norm.ts');
  }, 120000);

  it('compiles here, imports only env.memory and env.pow, exports the passes', () => {
    const module = simdModule();
    expect(simdUnavailableReason()).toBe('');
    expect(module).not.toBeNull();
    expect(WebAssembly.Module.imports(module!).map(i => `${i.module}.${i.name}:${i.kind}`).sort())
      .toEqual(['env.memory:memory', 'env.pow:function']);
    const exports = WebAssembly.Module.exports(module!).map(e => e.name);
    for (const name of ['fwdSum', 'fwdSquares', 'apply', 'bwdSums', 'bwdDx', 'lrnForward', 'lrnBackward']) {
      expect(exports).toContain(name);
    }
  });

  it('instantiating it leaves the imported memory untouched (no data segments)', () => {
    const memory = new WebAssembly.Memory({initial: 2});
    new Uint8Array(memory.buffer).fill(0xab);
    new WebAssembly.Instance(simdModule()!, {env: {memory, pow: Math.pow}});
    expect(new Uint8Array(memory.buffer).every(b => b === 0xab)).toBe(true);
    expect(NORM_WASM_BASE64.length).toBeGreaterThan(1000);
  });
});
