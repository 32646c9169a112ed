/**
 * Loading the SIMD kernels (wasm/norm.ts, inlined as base64 in norm_wasm.ts).
 *
 * Nothing is compiled on import. The first kernel call compiles the module
 * synchronously; where that is refused (a browser's main thread limits
 * synchronous compilation of larger modules) it compiles asynchronously and the
 * kernels run their JavaScript loops until it is ready. Where WebAssembly is
 * absent, forbidden (a Content-Security-Policy without 'wasm-unsafe-eval') or
 * lacks SIMD, compilation fails once and the loops are used from then on.
 *
 * The module imports its memory, so it is instantiated once per memory: once
 * with a memory of its own (the cpu backend), once per tfjs-backend-wasm
 * heap it works on directly.
 */
import {NORM_WASM_BASE64} from './norm_wasm';

/** The module's exports (wasm/norm.ts). */
export interface NormExports {
  setGeometry(k: number, o1: number, o2: number, rs0: number, rs1: number, rs2: number, rp0: number, rp1: number,
              rp2: number, colStat: number, colParam: number, statVaries: number, paramVaries: number): void;
  resetState(): void;
  setParams(gamma: number, beta: number): void;
  setStats(s64a: number, s64b: number, mean64: number, p64a: number, p64b: number, hi: number, lo: number, is: number,
           c1: number, c2: number): void;
  setColumns(cola: number, colb: number, colc: number, cold: number, colm: number, v0: number, v1: number, v2: number,
             v3: number, v4: number, v5: number): void;
  fwdSum(x: number, r0: number, r1: number, last: number): void;
  fwdSquares(x: number, r0: number, r1: number, last: number): void;
  apply(x: number, y: number, r0: number, r1: number): void;
  applyAct(x: number, y: number, r0: number, r1: number, kind: number): void;
  applyActGrad(x: number, dy: number, out: number, r0: number, r1: number, kind: number): void;
  applyActGradY(x: number, dy: number, y: number, out: number, r0: number, r1: number, kind: number): void;
  bwdSums(dy: number, x: number, r0: number, r1: number, last: number): void;
  bwdDx(dy: number, x: number, dx: number, r0: number, r1: number): void;
  setLrnScratch(acc: number, p: number, t: number): void;
  lrnForward(x: number, y: number, outer: number, c: number, inner: number, before: number, after: number,
             scale: number, k: number, beta: number): void;
  lrnBackward(dy: number, x: number, dx: number, outer: number, c: number, inner: number, before: number,
              after: number, scale: number, k: number, beta: number): void;
  addInto(x: number, r: number, out: number, n: number): void;
}

type State = {kind: 'untried'} | {kind: 'compiling'} | {kind: 'ready'; module: WebAssembly.Module} |
             {kind: 'failed'; why: string};

let state: State = {kind: 'untried'};

/** Base64 to bytes, without atob or Buffer (neither exists in every JavaScript environment tfjs runs in). */
function decode(b64: string): Uint8Array<ArrayBuffer> {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const value = new Uint8Array(128);
  for (let i = 0; i < alphabet.length; i++) value[alphabet.charCodeAt(i)] = i;
  const clean = b64.replace(/=+$/, '');
  const out = new Uint8Array(Math.floor(clean.length * 3 / 4));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (let i = 0; i < clean.length; i++) {
    acc = (acc << 6) | value[clean.charCodeAt(i)];
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

/** The compiled module, or null while compiling asynchronously or where it cannot run. */
export function simdModule(): WebAssembly.Module | null {
  if (state.kind === 'ready') return state.module;
  if (state.kind !== 'untried') return null;
  if (typeof WebAssembly === 'undefined') {
    state = {kind: 'failed', why: 'no WebAssembly'};
    return null;
  }
  const bytes = decode(NORM_WASM_BASE64);
  try {
    state = {kind: 'ready', module: new WebAssembly.Module(bytes)};
    return state.module;
  } catch (e) {
    if (!(e instanceof RangeError)) {
      // A CompileError (no SIMD) or an EvalError/refusal (CSP): the loops from now on.
      state = {kind: 'failed', why: String(e)};
      return null;
    }
  }
  // Synchronous compilation refused (size limit on a browser's main thread): compile in the background.
  state = {kind: 'compiling'};
  WebAssembly.compile(bytes).then(module => {
    state = {kind: 'ready', module};
  }, e => {
    state = {kind: 'failed', why: String(e)};
  });
  return null;
}

/** Why the module is not used ('' when it is, or has not been tried). */
export function simdUnavailableReason(): string {
  return state.kind === 'failed' ? state.why : state.kind === 'compiling' ? 'still compiling' : '';
}

const instances = new WeakMap<WebAssembly.Memory, NormExports | null>();

/** The module instantiated on `memory`, or null (not ready, or the memory cannot be imported: e.g. shared). */
export function instanceOn(memory: WebAssembly.Memory): NormExports | null {
  const module = simdModule();
  if (!module) return null;
  let inst = instances.get(memory);
  if (inst === undefined) {
    try {
      inst = new WebAssembly.Instance(module, {env: {memory, pow: Math.pow}}).exports as unknown as NormExports;
    } catch (e) {
      inst = null;
    }
    instances.set(memory, inst);
  }
  return inst;
}
