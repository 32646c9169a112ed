/**
 * Which implementation a kernel call runs on: the SIMD module on the
 * tfjs-backend-wasm heap (direct), the SIMD module on its own memory
 * (streamed copies: the cpu backend, or a heap it cannot import), or the
 * JavaScript loops (the `TFJS_NORM_SIMD` flag off, or no usable WebAssembly).
 */
import {simdEnabled} from '../../environment';
import {NormImpl, jsNorm} from '../norm_impl';
import {instanceOn} from './module';
import {SimdRunner, ownArena} from './runner';

/**
 * Internal switches for tests and benchmarks (not public API):
 * `wasmHeap: 'copy'` makes the wasm backend's kernels stream through the
 * module's own memory instead of working on the tfjs heap in place.
 */
export const simdOptions: {wasmHeap: 'direct' | 'copy'} = {wasmHeap: 'direct'};

/** What a kernel runs on; `runner` is set when it is the SIMD module (reserve/release around the call). */
export interface Selected {
  impl: NormImpl;
  runner: SimdRunner | null;
}

const JS: Selected = {impl: jsNorm, runner: null};

/** How many kernel calls ran on each implementation (tests assert the path they meant to test). */
export const implUsage = {js: 0, simdDirect: 0, simdStreamed: 0};

function counted(s: Selected): Selected {
  if (!s.runner) implUsage.js++;
  else if (s.runner.streamed) implUsage.simdStreamed++;
  else implUsage.simdDirect++;
  return s;
}

let own: SimdRunner | null | undefined;

/** The SIMD module on a memory of its own (streamed), or null where it cannot run. */
function ownRunner(): SimdRunner | null {
  if (own) return own;
  if (typeof WebAssembly === 'undefined') return null;
  const memory = new WebAssembly.Memory({initial: 4});
  const exp = instanceOn(memory);
  if (!exp) return null; // not compiled (yet), or unusable: retried next call
  own = new SimdRunner(exp, memory, ownArena(memory), true);
  return own;
}

/** The cpu backend's implementation. */
export function cpuImpl(): Selected {
  if (!simdEnabled()) return counted(JS);
  const r = ownRunner();
  return counted(r ? {impl: r, runner: r} : JS);
}

/** The part of tfjs-backend-wasm's emscripten module the kernels use. */
export interface WasmModule {
  HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  asm?: {memory?: unknown};
  wasmMemory?: unknown;
}

const heapRunners = new WeakMap<object, SimdRunner | null>();

/** The SIMD module instantiated on the tfjs heap of `wasm`, or null where that heap cannot be imported. */
function heapRunner(wasm: WasmModule): SimdRunner | null {
  let r = heapRunners.get(wasm);
  if (r !== undefined) return r;
  const memory = wasm.asm?.memory ?? wasm.wasmMemory;
  r = null;
  if (typeof WebAssembly !== 'undefined' && memory instanceof WebAssembly.Memory &&
      memory.buffer === wasm.HEAPU8.buffer) {
    const exp = instanceOn(memory);
    if (!exp) return null; // not compiled yet: retried next call
    let allocated: number[] = [];
    r = new SimdRunner(exp, memory, {
      alloc: bytes => {
        const p = wasm._malloc(bytes + 16) >>> 0;
        if (!p) throw new Error(`tfjs-norm: the wasm heap has no room for ${bytes} bytes of kernel scratch`);
        allocated.push(p);
        return ((p + 15) & ~15) >>> 0;
      },
      release: () => {
        allocated.forEach(p => wasm._free(p));
        allocated = [];
      },
    }, false);
  }
  heapRunners.set(wasm, r);
  return r;
}

/** The wasm backend's implementation for the emscripten module `wasm`. */
export function wasmImpl(wasm: WasmModule): Selected {
  if (!simdEnabled()) return counted(JS);
  const r = (simdOptions.wasmHeap === 'direct' ? heapRunner(wasm) : null) ?? ownRunner();
  return counted(r ? {impl: r, runner: r} : JS);
}
