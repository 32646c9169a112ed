/**
 * Runs the SIMD module's passes (wasm/norm.ts) for the kernels, on one of two
 * memories:
 *
 * - direct: the tfjs-backend-wasm heap itself (the module instantiated on
 *   that WebAssembly.Memory). Inputs and outputs are tensors already on the
 *   heap, so the passes take their addresses: no copies. Scratch (float64
 *   sums, per-column vectors) comes from tfjs' own malloc.
 * - streamed: a memory of the module's own (the cpu backend, or a wasm heap
 *   the module cannot import, e.g. a shared one). Each pass copies a chunk of
 *   rows in (about 64 KiB, cache-resident; up to 1 MiB to hold a block of
 *   whole statistics), runs on it and copies results out, so the extra memory
 *   stays a few MiB at most whatever the tensor size: the accumulators persist
 *   across chunks, which is what the row-range passes are for.
 *
 * Blocked passes (blockRows): where the statistics come in runs of whole rows,
 * every pass of a kernel runs on one block (direct) or chunk (streamed) before
 * the next, so the tensor is read from memory once per kernel, not once per pass.
 *
 * The steps between passes (statistics from sums, running statistics) are
 * norm_impl.ts' for both this and the JavaScript loops.
 */
import {Activation} from '../../activation';
import {Geometry} from '../geometry';
import {
  BackwardIO, ForwardIO, LrnGeometry, LrnIO, NormImpl, ScaleShiftIO, finishBackward, finishForward, finishMean,
} from '../norm_impl';
import {NormExports} from './module';

/** The module's activation kinds (wasm/norm.ts, epilogues). */
const ACT_KIND: Readonly<Record<Activation, number>> = {relu: 1, silu: 2, gelu: 3};

/** Where a runner's scratch comes from. */
export interface Arena {
  /** Returns the address of `bytes` bytes (16-byte aligned, never 0); may grow the memory. */
  alloc(bytes: number): number;
  /** Frees the last allocation. */
  release(): void;
}

/** Elements per streamed chunk buffer (64 KiB of float32). */
const CHUNK = 16384;
/**
 * Blocked passes (Geometry.units): elements per block on the wasm heap (128 KiB
 * of float32, so a block's x, dy and dx stay in a core's L2 between the
 * passes), and the largest unit a streamed chunk grows to hold (1 MiB).
 */
const BLOCK = 32768;
const MAX_UNIT = 262144;

const align16 = (n: number) => (n + 15) & ~15;

/** Bump-allocates regions from one base; offsets in bytes. */
class Regions {
  size = 0;
  take(bytes: number): number {
    const at = this.size;
    this.size += align16(Math.max(bytes, 0));
    return at;
  }
}

/** Scratch layout of the normalization passes. */
function normRegions(g: Geometry, streamed: boolean) {
  const {K, statSize: S, paramSize: P} = g;
  const r = new Regions();
  const layout = {
    colStat: r.take(K * 4), colParam: r.take(K * 4), gamma: r.take(P * 4), beta: r.take(P * 4),
    s64a: r.take(S * 8), s64b: r.take(S * 8), mean64: r.take(S * 8), p64a: r.take(P * 8), p64b: r.take(P * 8),
    hi: r.take(S * 4), lo: r.take(S * 4), is: r.take(S * 4), c1: r.take(S * 4), c2: r.take(S * 4),
    cols: [0, 1, 2, 3, 4].map(() => r.take(K * 8)), vecs: [0, 1, 2, 3, 4, 5].map(() => r.take(K * 4)),
    /** Everything above is zeroed per call; chunk buffers are not. */
    zeroed: 0,
    chunkRows: 0,
    chunks: [] as number[],
    size: 0,
  };
  layout.zeroed = r.size;
  if (streamed) {
    // Whole units per chunk where they fit, so that the blocked passes can run chunk by chunk.
    const unit = g.units && g.units.rows * K <= MAX_UNIT ? g.units.rows : 0;
    layout.chunkRows = unit ? Math.max(1, Math.floor(CHUNK / (unit * K))) * unit : Math.max(1, Math.floor(CHUNK / K));
    layout.chunks = [0, 1, 2, 3].map(() => r.take(layout.chunkRows * K * 4));
  }
  layout.size = r.size;
  return layout;
}

type NormRegions = ReturnType<typeof normRegions>;

/** The SIMD module as a NormImpl on one memory. */
export class SimdRunner implements NormImpl {
  constructor(private readonly exp: NormExports, private readonly memory: WebAssembly.Memory,
              private readonly arena: Arena, readonly streamed: boolean) {}

  private base = 0;
  private layout: NormRegions | null = null;

  /**
   * Reserves scratch for a normalization kernel on `g` (for LocalResponseNorm:
   * lrnReserve). Call before taking views of a heap that may grow (the wasm
   * backend's); pair with release().
   */
  reserve(g: Geometry): void {
    this.layout = normRegions(g, this.streamed);
    this.base = this.arena.alloc(this.layout.size);
    new Uint8Array(this.memory.buffer, this.base, this.layout.zeroed).fill(0);
  }

  release(): void {
    this.arena.release();
    this.layout = null;
    this.lrnLayout = null;
  }

  private f32(offset: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, this.base + offset, length);
  }

  private f64(offset: number, length: number): Float64Array {
    return new Float64Array(this.memory.buffer, this.base + offset, length);
  }

  /** The address of a big array on this memory (direct mode). */
  private addr(a: Float32Array): number {
    if (a.buffer !== this.memory.buffer) throw new Error('tfjs-norm: a tensor is not on the heap the kernels run on');
    return a.byteOffset;
  }

  /** Geometry, parameters and scratch addresses into the module's globals. */
  private setup(g: Geometry, gamma: Float32Array | null, beta: Float32Array | null): NormRegions {
    const L = this.layout!;
    const b = this.base;
    new Int32Array(this.memory.buffer, b + L.colStat, g.K).set(g.colStat);
    new Int32Array(this.memory.buffer, b + L.colParam, g.K).set(g.colParam);
    if (gamma) this.f32(L.gamma, g.paramSize).set(gamma);
    if (beta) this.f32(L.beta, g.paramSize).set(beta);
    const e = this.exp;
    e.setGeometry(g.K, g.o[1], g.o[2], g.rs[0], g.rs[1], g.rs[2], g.rp[0], g.rp[1], g.rp[2], b + L.colStat,
                  b + L.colParam, g.statVaries ? 1 : 0, g.paramVaries ? 1 : 0);
    e.setParams(gamma ? b + L.gamma : 0, beta ? b + L.beta : 0);
    e.setStats(b + L.s64a, b + L.s64b, b + L.mean64, b + L.p64a, b + L.p64b, b + L.hi, b + L.lo, b + L.is, b + L.c1,
               b + L.c2);
    e.setColumns(b + L.cols[0], b + L.cols[1], b + L.cols[2], b + L.cols[3], b + L.cols[4], b + L.vecs[0],
                 b + L.vecs[1], b + L.vecs[2], b + L.vecs[3], b + L.vecs[4], b + L.vecs[5]);
    return L;
  }

  /**
   * Runs `pass(rows r0..r1, addresses of the inputs' and outputs' row r0)` over
   * every row: once (direct) or chunk by chunk, copying inputs in and outputs out.
   */
  private sweep(g: Geometry, ins: Float32Array[], outs: Float32Array[],
                pass: (r0: number, r1: number, ptrs: number[], last: boolean) => void): void {
    this.exp.resetState();
    if (!this.streamed) {
      pass(0, g.rows, [...ins, ...outs].map(a => this.addr(a)), true);
      return;
    }
    const L = this.layout!;
    const heap = new Float32Array(this.memory.buffer);
    const ptrs = [...ins, ...outs].map((_, i) => this.base + L.chunks[i]);
    for (let r0 = 0; r0 < g.rows; r0 += L.chunkRows) {
      const r1 = Math.min(g.rows, r0 + L.chunkRows);
      const a = r0 * g.K;
      const n = (r1 - r0) * g.K;
      ins.forEach((arr, i) => heap.set(arr.subarray(a, a + n), ptrs[i] >>> 2));
      pass(r0, r1, ptrs, r1 === g.rows);
      outs.forEach((arr, i) => {
        const p = ptrs[ins.length + i] >>> 2;
        arr.set(heap.subarray(p, p + n), a);
      });
    }
  }

  /**
   * Rows per block when the statistics come in units of rows (Geometry.units):
   * then each block of whole units runs every pass of a kernel while it is in
   * cache (streamed: in the chunk copied in once), instead of one sweep over
   * the tensor per pass. 0: the sweeps.
   */
  private blockRows(g: Geometry): number {
    const u = g.units;
    if (!u) return 0;
    if (this.streamed) return this.layout!.chunkRows % u.rows === 0 ? this.layout!.chunkRows : 0;
    return Math.max(1, Math.floor(BLOCK / (u.rows * g.K))) * u.rows;
  }

  /** `sweep` by blocks of `n` rows (streamed: the chunks, which normRegions made whole units). */
  private sweepBlocks(g: Geometry, n: number, ins: Float32Array[], outs: Float32Array[],
                      pass: (r0: number, r1: number, ptrs: number[]) => void): void {
    if (this.streamed) {
      this.sweep(g, ins, outs, pass);
      return;
    }
    const ptrs = [...ins, ...outs].map(a => this.addr(a));
    for (let r0 = 0; r0 < g.rows; r0 += n) {
      const off = r0 * g.K * 4;
      pass(r0, Math.min(g.rows, r0 + n), ptrs.map(p => p + off));
    }
  }

  /** The apply pass over rows [r0, r1): y = xhat * gamma + beta, through the activation (kind 0: none). */
  private applyRows(x: number, y: number, r0: number, r1: number, kind: number): void {
    if (kind) this.exp.applyAct(x, y, r0, r1, kind);
    else this.exp.apply(x, y, r0, r1);
  }

  /** dgamma and dbeta out of the module's float64 parameter sums. */
  private paramGrads(g: Geometry, L: NormRegions, io: BackwardIO): void {
    if (io.dgamma) io.dgamma.set(this.f64(L.p64a, g.paramSize));
    if (io.dbeta) io.dbeta.set(this.f64(L.p64b, g.paramSize));
  }

  forward(g: Geometry, io: ForwardIO, epsilon: number, center: boolean): void {
    this.forwardOf(g, io, epsilon, center, null, null, null);
  }

  /**
   * The forward of x, or of x + residual (written to `sum`): then the first
   * statistics pass (sums, or RMSNorm's squares) runs in the same pass as the
   * add, block by cache-sized block of rows (each block summed while it is in
   * cache).
   */
  private forwardOf(g: Geometry, io: ForwardIO, epsilon: number, center: boolean, residual: Float32Array | null,
                    sum: Float32Array | null, act: Activation | null): void {
    const L = this.setup(g, io.gamma, io.beta);
    const e = this.exp;
    const S = g.statSize;
    const n = this.blockRows(g);
    if (n) {
      this.forwardBlocked(g, L, n, io, epsilon, center, residual, sum, act);
      return;
    }
    const mean64 = this.f64(L.mean64, S);
    let xs = io.x;
    let squared = false;
    if (residual && sum) {
      const block = Math.max(1, Math.floor(CHUNK / g.K));
      const first = center ? e.fwdSum : e.fwdSquares;
      this.sweep(g, [io.x, residual], [sum], (r0, r1, [x, r, s], last) => {
        for (let a = r0; a < r1; a += block) {
          const b = Math.min(r1, a + block);
          const off = (a - r0) * g.K * 4;
          e.addInto(x + off, r + off, s + off, (b - a) * g.K);
          first(s + off, a, b, last && b === r1 ? 1 : 0);
        }
      });
      xs = sum;
      squared = !center;
      if (center) finishMean(this.f64(L.s64a, S), mean64, g.count);
    } else if (center) {
      this.sweep(g, [xs], [], (r0, r1, [x], last) => e.fwdSum(x, r0, r1, last ? 1 : 0));
      finishMean(this.f64(L.s64a, S), mean64, g.count);
    }
    if (!squared) this.sweep(g, [xs], [], (r0, r1, [x], last) => e.fwdSquares(x, r0, r1, last ? 1 : 0));
    finishForward(mean64, this.f64(L.s64b, S), g.count, epsilon, io);
    this.f32(L.hi, S).set(io.aux.subarray(0, S));
    this.f32(L.lo, S).set(io.aux.subarray(S, 2 * S));
    this.f32(L.is, S).set(io.aux.subarray(2 * S, 3 * S));
    const kind = act ? ACT_KIND[act] : 0;
    this.sweep(g, [xs], [io.y], (r0, r1, [x, y]) => this.applyRows(x, y, r0, r1, kind));
  }

  /** forwardOf by blocks: per block, the sums (after the residual add), mean, squares, statistics and y. */
  private forwardBlocked(g: Geometry, L: NormRegions, n: number, io: ForwardIO, epsilon: number, center: boolean,
                         residual: Float32Array | null, sum: Float32Array | null, act: Activation | null): void {
    const e = this.exp;
    const S = g.statSize;
    const {rows: U, stats: W} = g.units!;
    const [s64a, s64b, mean64] = [L.s64a, L.s64b, L.mean64].map(o => this.f64(o, S));
    const [hi, lo, is] = [L.hi, L.lo, L.is].map(o => this.f32(o, S));
    const aux = io.aux;
    const kind = act ? ACT_KIND[act] : 0;
    const add = residual && sum;
    this.sweepBlocks(g, n, add ? [io.x, residual] : [io.x], add ? [sum, io.y] : [io.y], (r0, r1, ptrs) => {
      const s0 = (r0 / U) * W;
      const s1 = (r1 / U) * W;
      let x = ptrs[0];
      if (add) {
        e.addInto(x, ptrs[1], ptrs[2], (r1 - r0) * g.K);
        x = ptrs[2];
      }
      if (center) {
        e.resetState();
        e.fwdSum(x, r0, r1, 1);
        finishMean(s64a, mean64, g.count, s0, s1);
      }
      e.resetState();
      e.fwdSquares(x, r0, r1, 1);
      finishForward(mean64, s64b, g.count, epsilon, io, s0, s1);
      hi.set(aux.subarray(s0, s1), s0);
      lo.set(aux.subarray(S + s0, S + s1), s0);
      is.set(aux.subarray(2 * S + s0, 2 * S + s1), s0);
      e.resetState();
      this.applyRows(x, ptrs[ptrs.length - 1], r0, r1, kind);
    });
  }

  /**
   * The backward by blocks: per block, dz = dy * act'(z) (with an activation,
   * into dx), the sums, c1/c2 of the block's statistics and dx.
   */
  private backwardBlocked(g: Geometry, L: NormRegions, n: number, io: BackwardIO, center: boolean,
                          act: Activation | null, y: Float32Array | null = null): void {
    const e = this.exp;
    const S = g.statSize;
    const {rows: U, stats: W} = g.units!;
    const [s64a, s64b] = [L.s64a, L.s64b].map(o => this.f64(o, S));
    const [c1, c2] = [L.c1, L.c2].map(o => this.f32(o, S));
    const kind = act ? ACT_KIND[act] : 0;
    this.sweepBlocks(g, n, y ? [io.dy, io.x, y] : [io.dy, io.x], [io.dx], (r0, r1, ptrs) => {
      const [dy, x] = ptrs;
      const dx = ptrs[ptrs.length - 1];
      const s0 = (r0 / U) * W;
      const s1 = (r1 / U) * W;
      let d = dy;
      if (kind) {
        e.resetState();
        this.actGradRows(x, dy, y ? ptrs[2] : 0, dx, r0, r1, kind);
        d = dx;
      }
      e.resetState();
      e.bwdSums(d, x, r0, r1, 1);
      finishBackward(s64a, s64b, g.count, center, c1, c2, s0, s1);
      e.resetState();
      e.bwdDx(d, x, dx, r0, r1);
    });
    this.paramGrads(g, L, io);
  }

  /**
   * The epilogues (issue #17) inside the module's passes: forward on
   * x + residual (the sum written in the first statistics pass), the
   * activation in the apply pass; backward: dz = dy * act'(z) in one pass (z
   * recomputed from x and the statistics, written to dx), then the backward
   * reading dy = dx (its dx pass is elementwise, so in place is exact).
   */
  forwardEpilogue(g: Geometry, io: ForwardIO, epsilon: number, center: boolean, act: Activation | null,
                  residual: Float32Array | null, sum: Float32Array | null): void {
    this.forwardOf(g, io, epsilon, center, residual, sum, act);
  }

  /**
   * `y`: the forward's output act(z), when the caller has it (silu and gelu
   * then take act'(z) from it: a division instead of an exp or an erfc).
   */
  backwardEpilogue(g: Geometry, io: BackwardIO, center: boolean, act: Activation, beta: Float32Array | null,
                   y: Float32Array | null = null): void {
    const L = this.setupBackward(g, io, beta, true);
    const n = this.blockRows(g);
    const fy = act === 'relu' ? null : y;
    if (n) {
      this.backwardBlocked(g, L, n, io, center, act, fy);
      return;
    }
    const kind = ACT_KIND[act];
    this.sweep(g, fy ? [io.x, io.dy, fy] : [io.x, io.dy], [io.dx], (r0, r1, ptrs) =>
      this.actGradRows(ptrs[0], ptrs[1], fy ? ptrs[2] : 0, ptrs[ptrs.length - 1], r0, r1, kind));
    this.backward(g, {...io, dy: io.dx}, center);
  }

  /** dz = dy * act'(z) over rows [r0, r1) into `out`, from the forward's output at `y` when not 0. */
  private actGradRows(x: number, dy: number, y: number, out: number, r0: number, r1: number, kind: number): void {
    if (y) this.exp.applyActGradY(x, dy, y, out, r0, r1, kind);
    else this.exp.applyActGrad(x, dy, out, r0, r1, kind);
  }

  /** Setup for a backward: parameters, and the forward's hi, lo (when centred) and 1/std. */
  private setupBackward(g: Geometry, io: BackwardIO, beta: Float32Array | null, center: boolean): NormRegions {
    const L = this.setup(g, io.gamma, beta);
    const S = g.statSize;
    if (center) {
      this.f32(L.hi, S).set(io.aux.subarray(0, S));
      this.f32(L.lo, S).set(io.aux.subarray(S, 2 * S));
    }
    this.f32(L.is, S).set(io.aux.subarray(2 * S, 3 * S));
    return L;
  }

  backward(g: Geometry, io: BackwardIO, center: boolean): void {
    const L = this.setupBackward(g, io, null, center);
    const n = this.blockRows(g);
    if (n) {
      this.backwardBlocked(g, L, n, io, center, null);
      return;
    }
    const e = this.exp;
    const S = g.statSize;
    this.sweep(g, [io.dy, io.x], [], (r0, r1, [dy, x], last) => e.bwdSums(dy, x, r0, r1, last ? 1 : 0));
    finishBackward(this.f64(L.s64a, S), this.f64(L.s64b, S), g.count, center, this.f32(L.c1, S), this.f32(L.c2, S));
    this.sweep(g, [io.dy, io.x], [io.dx], (r0, r1, [dy, x, dx]) => e.bwdDx(dy, x, dx, r0, r1));
    this.paramGrads(g, L, io);
  }

  scaleShift(g: Geometry, io: ScaleShiftIO, epsilon: number): void {
    this.scaleShiftEpilogue(g, io, epsilon, null);
  }

  /** Inference with running statistics, the activation (if any) in the same pass. */
  scaleShiftEpilogue(g: Geometry, io: ScaleShiftIO, epsilon: number, act: Activation | null): void {
    const L = this.setup(g, io.gamma, io.beta);
    const P = io.mean.length;
    this.f32(L.hi, P).set(io.mean);
    const is = this.f32(L.is, P);
    for (let p = 0; p < P; p++) is[p] = 1 / Math.sqrt(io.variance[p] + epsilon);
    const kind = act ? ACT_KIND[act] : 0;
    this.sweep(g, [io.x], [io.y], (r0, r1, [x, y]) => this.applyRows(x, y, r0, r1, kind));
  }

  // ---------------------------------------------------------------- LocalResponseNorm

  private lrnLayout: {acc: number; p: number; t: number; blocks: number; chunks: number[]} | null = null;

  /** Reserves scratch for a LocalResponseNorm kernel; pair with release(). */
  lrnReserve(l: LrnGeometry): void {
    const block = l.C * l.inner;
    const r = new Regions();
    const acc = r.take(Math.max(l.inner * 8, (l.C + l.before + l.after + 8) * 4));
    const p = r.take(block * 4);
    const t = r.take(block * 4);
    const blocks = this.streamed ? Math.max(1, Math.floor(CHUNK / block)) : 0;
    const chunks = this.streamed ? [0, 1, 2].map(() => r.take(blocks * block * 4)) : [];
    this.base = this.arena.alloc(r.size);
    this.lrnLayout = {acc, p, t, blocks, chunks};
  }

  lrn(l: LrnGeometry, io: LrnIO): void {
    const L = this.lrnLayout!;
    const b = this.base;
    const e = this.exp;
    e.setLrnScratch(b + L.acc, b + L.p, b + L.t);
    const run = (x: number, dy: number, out: number, outer: number) => {
      if (io.dy) e.lrnBackward(dy, x, out, outer, l.C, l.inner, l.before, l.after, l.scale, l.k, l.beta);
      else e.lrnForward(x, out, outer, l.C, l.inner, l.before, l.after, l.scale, l.k, l.beta);
    };
    if (!this.streamed) {
      run(this.addr(io.x), io.dy ? this.addr(io.dy) : 0, this.addr(io.out), l.outer);
      return;
    }
    const block = l.C * l.inner;
    const heap = new Float32Array(this.memory.buffer);
    const [px, pdy, pout] = L.chunks.map(c => b + c);
    for (let o0 = 0; o0 < l.outer; o0 += L.blocks) {
      const o1 = Math.min(l.outer, o0 + L.blocks);
      const a = o0 * block;
      const n = (o1 - o0) * block;
      heap.set(io.x.subarray(a, a + n), px >>> 2);
      if (io.dy) heap.set(io.dy.subarray(a, a + n), pdy >>> 2);
      run(px, pdy, pout, o1 - o0);
      io.out.set(heap.subarray(pout >>> 2, (pout >>> 2) + n), a);
    }
  }
}

/** An arena on a memory of the module's own: one region from address 16, grown as needed, never shrunk. */
export function ownArena(memory: WebAssembly.Memory): Arena {
  return {
    alloc(bytes) {
      const need = 16 + bytes;
      const have = memory.buffer.byteLength;
      if (need > have) memory.grow(Math.ceil((need - have) / 65536));
      return 16;
    },
    release() {},
  };
}
