/**
 * Forward, backward and scale-and-shift of the normalizations as WebGPU
 * programs (names and attributes: ../../kernels.ts; program plumbing: program.ts).
 *
 * The canonical view (plan.ts), padded to rank 4, has kept axes (statistic s
 * varies along them), reduced axes (element e of a statistic) and parameter
 * axes; every index below is a sum of coordinates times strides (program.ts
 * idx4), with the sizes and strides as uniforms: one compiled pipeline per
 * kind of layout (centered, affine, ...), whatever the shape.
 *
 * Statistics: one thread per statistic when statistics are short (<= 1024
 * values: LayerNorm rows, InstanceNorm planes), one thread per chunk of 512
 * values of a statistic up to 128k values (BatchNorm: 64 channels of 8k
 * values as 16 chunks each), adjacent threads on adjacent statistics; only
 * longer statistics use a workgroup per statistic or chunk (shared-memory
 * tree reduction; its barriers are what SwiftShader runs slowest, see
 * SHORT_STAT). A workgroup reads its elements twice: the sum gives its
 * mean, then the sum of squared deviations from that mean: shifted two-pass
 * statistics in float32, exact for large common offsets. A thread reads its
 * elements once (Welford's update: mean += d / k, M2 += d * (x - mean), as
 * stable against large offsets, with half the loads and index arithmetic),
 * its element offsets carried from one element to the next (walk: no
 * division per element). Index arithmetic is specialized per layout
 * (indexFns: no division for axes of size 1 or stride 0). Chunks combine with
 * Chan's parallel formula; chunked statistics are spread over >= 8
 * workgroups (SwiftShader runs a workgroup on one core). The elementwise
 * passes (y, dx) handle 4 elements a thread as vec4 when the innermost axis
 * is a multiple of 4, or 2 long with an even axis before it.
 *
 * Programs per call (copies out of a packed buffer are buffer copies, not programs):
 *   forward   1. statistics (per chunk)  2. finish: combine chunks, 1/std and
 *             the running statistics (skipped with one chunk and no running
 *             statistics: 1 writes the finished ones)  3. y, elementwise
 *   backward  1. per-statistic sums of g = dy*gamma and g*xhat (per chunk)
 *             2. combine them, and dgamma/dbeta (from the sums of 1 where the
 *             parameters are constant within each statistic: BatchNorm,
 *             InstanceNorm; where they vary within it (GroupNorm), 1 sums
 *             per fine group (sample x channel: fineViewOf) and 2 derives
 *             both from those; else, fine groups shorter than 16 values
 *             (LayerNorm), a workgroup per parameter, or a thread per
 *             parameter when each has <= 2048 values)  3. dx, elementwise
 *   scale-and-shift (inference with running statistics): 1 program
 * A training step (forward + backward) is 5 programs (GroupNorm, LayerNorm,
 * RMSNorm; BatchNorm/InstanceNorm without running statistics and one chunk)
 * or 6 (with running statistics, or chunked statistics), plus buffer copies
 * for the small outputs (mean, variance, aux, running statistics, dgamma, dbeta).
 *
 * Epilogues (kernels.ts): the activation is applied in the y pass and in
 * scale-and-shift; the backward's passes that read dy (sums, per-parameter
 * combine, dx; gamma and beta read once per thread where they are constant
 * within its statistic) use dz = dy * act'(z), z = xhat * gamma + beta recomputed
 * there (ACT_FNS). The residual: one elementwise program writes x + residual
 * first (the stats program has one output buffer, so the sum is not written
 * by the first statistics pass), the forward normalizes it and returns it last.
 *
 * Packed buffers: the forward's [mean (S), variance (S), 1/std (S),
 * runningMean' (P), runningVariance' (P), numBatchesTracked' (1)] as int32
 * (floats stored with bitcast, so the int32 count fits); aux = its first 3S
 * elements. The backward's [c1 (S), c2 (S), dgamma (P), dbeta (P)], where
 * dx = (g - c1 - xhat * c2) / std.
 */
import * as tf from '@tensorflow/tfjs';
import {BackwardAttrs, ForwardAttrs, LayoutAttrs, ScaleShiftAttrs} from '../../kernels';
import {GpuBackend, MAIN, NormProgram, REDUCE, Uniforms, WG, WG_INDEX, copyOut, run, sizeOf} from './program';
import {broadcastStrides, pad4} from '../geometry';

interface KernelArgs {
  inputs: Record<string, tf.TensorInfo | undefined>;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}

/** Sizes of `shape` where `keep`, 1 elsewhere. */
const only = (shape: number[], keep: (d: number) => boolean) => shape.map((s, d) => (keep(d) ? s : 1));

/** Below this many elements per parameter, dgamma/dbeta reduce with one thread per parameter (else a workgroup): adjacent threads read adjacent columns (LayerNorm [1024 rows, 768]: 768 threads), no barriers. */
const THREAD_PER_PARAM = 2048;

/**
 * Statistics of at most this many elements are reduced by one thread each,
 * longer ones (up to MAX_THREAD_CHUNKS times that) in chunks of THREAD_CHUNK
 * elements by one thread each, combined by the finish pass; only longer ones
 * by workgroups. Workgroup tree reductions cost a barrier a level; on
 * SwiftShader (Chromium's CPU WebGPU) each barrier switches every SIMD group
 * of the workgroup, which made the LayerNorm forward 20x slower than one
 * thread a row (932 vs 50 ms, [8,128,768] inference). Adjacent threads take
 * adjacent statistics, so for channels-last layouts (statistic = channel) the
 * threads' reads are coalesced on GPUs.
 */
const SHORT_STAT = 1024;
/** Chunked per-thread statistics aim at this many workgroups (SwiftShader runs a workgroup on one core), in chunks of >= MIN_CHUNK elements. */
const MIN_WORKGROUPS = 8;
const MIN_CHUNK = 128;
const THREAD_CHUNK = 512;
const MAX_THREAD_CHUNKS = 256;

/** The canonical view as the programs need it. */
interface View {
  s: number[];
  size: number;
  /** Statistics, elements per statistic, parameters. */
  S: number;
  count: number;
  P: number;
  /** The parameters vary within a statistic (along a reduced axis: LayerNorm, GroupNorm). */
  paramInStat: boolean;
  chunks: number;
  chunkLen: number;
  /** Short statistics: one thread each, no shared memory (LayerNorm over 16 channels of 16k rows). */
  perThread: boolean;
  uniforms: (floats?: number[]) => Uniforms;
  /** The index functions specialized to which axes are longer than 1 / have non-zero strides (see indexFns). */
  fns: string;
  /** Identifies `fns` (part of every program's key). */
  mask: string;
  /** Sizes of the reduced axes (1 on kept ones) and the parameters' strides, for walk(). */
  redSz: number[];
  ps: number[];
}

/**
 * The epilogue's activations (../../activation.ts): act(z) and act'(z). gelu is
 * the exact erf form, through the same erfc as activation.ts / loops.ts
 * (Numerical Recipes' Chebyshev fit `erfcc`, fractional error < 1.2e-7; WGSL
 * has no erf); exp's argument is clamped to 88 (float32's largest finite exp)
 * so saturated sigmoids give 0 rather than an implementation-defined infinity.
 */
const ACT_FNS = `
fn tfjsnormErfc(x : f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
      t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 +
      t * 0.17087277)))))))));
  return select(2.0 - r, r, x >= 0.0);
}
fn tfjsnormSigmoid(z : f32) -> f32 { return 1.0 / (1.0 + exp(min(-z, 88.0))); }
fn act_relu(z : f32) -> f32 { return select(0.0, z, z > 0.0 || z != z); }
fn act_silu(z : f32) -> f32 { return z * tfjsnormSigmoid(z); }
fn act_gelu(z : f32) -> f32 { return 0.5 * z * tfjsnormErfc(-z * 0.7071067811865476); }
fn actGrad_relu(z : f32) -> f32 { return select(0.0, 1.0, z > 0.0); }
fn actGrad_silu(z : f32) -> f32 { let s = tfjsnormSigmoid(z); return s * (1.0 + z * (1.0 - s)); }
fn actGrad_gelu(z : f32) -> f32 {
  return 0.5 * tfjsnormErfc(-z * 0.7071067811865476) + z * 0.3989422804014327 * exp(-0.5 * z * z);
}`;

/** `expr` through the activation (none: itself). */
const actOf = (act: string | undefined, expr: string) => (act ? `act_${act}(${expr})` : expr);

/** The uniforms every program of the view declares (the data: View.uniforms). */
const VIEW_UNIFORMS = 'shp : vec4<i32>, keptSz : vec4<i32>, redSz : vec4<i32>, parSz : vec4<i32>, ' +
  'othKeptSz : vec4<i32>, othSz : vec4<i32>, xs : vec4<i32>, ss : vec4<i32>, ps : vec4<i32>, dims : vec4<i32>, ' +
  'dims2 : vec4<i32>, rss : vec4<i32>, rKeptSz : vec4<i32>, ipSz : vec4<i32>, rdims : vec4<i32>, fl : vec4<f32>,';

/**
 * What a fine view (fineViewOf) knows of the real statistics: their strides
 * and kept sizes, the sizes of the axes the parameters vary along within a
 * statistic, and [S, fine groups per statistic, elements per statistic].
 */
interface RealStats {
  rss: number[];
  rKeptSz: number[];
  ipSz: number[];
  rdims: number[];
}

function viewOf(a: LayoutAttrs, real?: RealStats): View {
  if (a.shape.length > 4) throw new Error(`fused normalization kernels take rank <= 4. Received: shape [${a.shape}]`);
  const s = pad4(a.shape);
  const st = pad4(a.statShape);
  const pa = pad4(a.paramShape);
  const size = sizeOf(s);
  const S = sizeOf(st);
  const P = sizeOf(pa);
  const count = size / S;
  const kept = (d: number) => st[d] > 1;
  const ps = broadcastStrides(pa);
  // Few statistics over many elements: split each into chunks (aim: ~512 workgroups of >= 2048 elements).
  let chunks = 1;
  const perThread = count <= SHORT_STAT * MAX_THREAD_CHUNKS;
  if (perThread) {
    if (count > SHORT_STAT) chunks = Math.ceil(count / THREAD_CHUNK);
    // Where the chunks are combined anyway (more than one, or a fine view: its combine always runs), enough
    // threads for MIN_WORKGROUPS workgroups: GroupNorm [8, 1024, 32, 2]'s 256 statistics in 8 chunks, not 4.
    if (chunks > 1 || real) chunks = Math.max(chunks, Math.min(Math.ceil(MIN_WORKGROUPS * WG / S), Math.ceil(count / MIN_CHUNK)));
  } else if (count > 4096 && S < 512) {
    chunks = Math.min(64, Math.ceil(512 / S), Math.ceil(count / 2048));
  }
  let chunkLen = Math.ceil(Math.ceil(count / chunks) / 4) * 4;
  chunks = Math.ceil(count / chunkLen);
  if (chunks === 1) chunkLen = count;
  const ints = [
    s, only(s, kept), only(s, d => !kept(d)), only(s, d => ps[d] !== 0), only(s, d => kept(d) && ps[d] === 0),
    only(s, d => ps[d] === 0), broadcastStrides(s), broadcastStrides(st), ps, [S, count, P, chunks], [chunkLen, size, S / P, size / P],
  ];
  const [shp, keptSz, redSz, parSz, othKeptSz, othSz, xs, ss] = ints;
  const sized = (sz: number[]) => sz.map(n => (n > 1 ? 1 : 0)).join('');
  const nz = (st: number[]) => st.map(n => (n !== 0 ? 1 : 0)).join('');
  const extra = real ? [real.rss, real.rKeptSz, real.ipSz, real.rdims] : [[0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1], [S, 1, count, 0]];
  ints.push(...extra);
  // A fine view also maps its groups to the real statistics and back (fineViewOf).
  const fineFns = real ? `
fn fineStat(i : i32) -> i32 ${idxExpr('i', 'keptSz', 'rss', keptSz, real.rss)}
fn statFine(i : i32) -> i32 ${idxExpr('i', 'rKeptSz', 'ss', real.rKeptSz, ss)}
fn inStatFine(i : i32) -> i32 ${idxExpr('i', 'ipSz', 'ss', real.ipSz, ss)}` : '';
  return {
    s, size, S, count, P, chunks, chunkLen, perThread, redSz, ps,
    fns: indexFns(shp, keptSz, redSz, parSz, othKeptSz, othSz, xs, ss, ps) + fineFns,
    mask: [shp, keptSz, redSz, parSz, othKeptSz, othSz].map(sized).join('') + [xs, ss, ps].map(nz).join('') +
      (real ? `f${[real.rKeptSz, real.ipSz].map(sized).join('')}${nz(real.rss)}` : ''),
    paramInStat: [0, 1, 2, 3].some(d => !kept(d) && s[d] > 1 && ps[d] !== 0),
    uniforms: (floats = []) => [
      ...ints.map(data => ({type: 'int32' as const, data})),
      {type: 'float32', data: [0, 1, 2, 3].map(i => floats[i] ?? 0)},
    ],
  };
}

/**
 * The backward's fine groups as a view of their own: the statistics' kept
 * axes and the parameters' axes together (GroupNorm [N, HW, G, C/G]: one
 * group per sample and channel), so the parameters are constant within each
 * group. Per-group sums of dz and dz * xhat give both the statistics' sums
 * (gamma-weighted, over a statistic's groups) and dgamma/dbeta (over a
 * parameter's groups) without a pass over the elements per parameter. Null
 * where the groups would be short (LayerNorm: one element each) or long enough for workgroups (> 256k values).
 */
function fineViewOf(a: LayoutAttrs): View | null {
  const s = pad4(a.shape);
  const st = pad4(a.statShape);
  const pa = pad4(a.paramShape);
  const fine = s.map((n, d) => (st[d] > 1 || pa[d] > 1 ? n : 1));
  const S = sizeOf(st);
  const F = sizeOf(fine);
  if (sizeOf(s) / F < FINE_MIN) return null;
  const fv = viewOf({shape: s, statShape: fine, paramShape: pa}, {
    rss: broadcastStrides(st),
    rKeptSz: only(s, d => st[d] > 1),
    ipSz: only(s, d => st[d] === 1 && pa[d] > 1),
    rdims: [S, F / S, sizeOf(s) / S, 0],
  });
  // Groups of over 256k values would take the workgroup reduction, which no test reaches with fine groups: the old path.
  return fv.perThread ? fv : null;
}

/** Fine groups (fineViewOf) need at least this many elements each. */
const FINE_MIN = 16;

const AXES = ['x', 'y', 'z', 'w'];

/**
 * idx(i, sz, st) as WGSL for uniforms `szName`, `stName`, specialized to the
 * axes that matter: axes of size 1 drop out, the outermost axis with a
 * non-zero stride needs no modulo, and nothing outside it is computed. Integer
 * division is slow (emulated per lane on SwiftShader, tens of cycles on GPUs),
 * and these run once or twice per element.
 */
function idxExpr(i: string, szName: string, stName: string, sz: number[], st: number[]): string {
  const axes = [0, 1, 2, 3].filter(d => sz[d] > 1);
  const nzAxes = axes.filter(d => st[d] !== 0);
  if (nzAxes.length === 0) return `{ return 0; }`;
  const outer = nzAxes[0];
  const lines: string[] = [];
  for (let n = axes.length - 1; n >= 0 && axes[n] >= outer; n--) {
    const d = axes[n];
    const a = AXES[d];
    const isOuter = d === outer;
    const coord = isOuter && n === 0 ? 'r' : `(r % uniforms.${szName}.${a})`;
    if (st[d] !== 0) lines.push(`o = o + ${coord} * uniforms.${stName}.${a};`);
    if (!isOuter) lines.push(`r = r / uniforms.${szName}.${a};`);
  }
  return `{\n  var r = ${i};\n  var o = 0;\n  ${lines.join('\n  ')}\n  return o;\n}`;
}

function indexFns(shp: number[], keptSz: number[], redSz: number[], parSz: number[], othKeptSz: number[],
                  othSz: number[], xs: number[], ss: number[], ps: number[]): string {
  const fn = (name: string, sz: string, szv: number[], st: string, stv: number[]) =>
    `fn ${name}(i : i32) -> i32 ${idxExpr('i', sz, st, szv, stv)}`;
  return `
${fn('statX', 'keptSz', keptSz, 'xs', xs)}
${fn('statP', 'keptSz', keptSz, 'ps', ps)}
${fn('elemX', 'redSz', redSz, 'xs', xs)}
${fn('elemP', 'redSz', redSz, 'ps', ps)}
${fn('iStat', 'shp', shp, 'ss', ss)}
${fn('iParam', 'shp', shp, 'ps', ps)}
${fn('pStat', 'parSz', parSz, 'ss', ss)}
${fn('okStat', 'othKeptSz', othKeptSz, 'ss', ss)}
${fn('pX', 'parSz', parSz, 'xs', xs)}
${fn('oX', 'othSz', othSz, 'xs', xs)}
${fn('oStat', 'othSz', othSz, 'ss', ss)}
// The j-th statistic of parameter p (parameters constant within statistics: S / P statistics each).
fn statOfParam(p : i32, j : i32) -> i32 { return pStat(p) + okStat(j); }
// Element j of parameter p (over the axes the parameters do not vary along) and its statistic.
fn paramElemX(p : i32, j : i32) -> i32 { return pX(p) + oX(j); }
fn paramElemS(p : i32, j : i32) -> i32 { return pStat(p) + oStat(j); }`;
}
/** The view's other helpers. */
const VIEW_FNS = `fn nS() -> i32 { return uniforms.dims.x; }
fn nCount() -> i32 { return uniforms.dims.y; }
fn nP() -> i32 { return uniforms.dims.z; }
fn nChunks() -> i32 { return uniforms.dims.w; }
fn chunkLen() -> i32 { return uniforms.dims2.x; }
fn nSize() -> i32 { return uniforms.dims2.y; }
fn wgTotal() -> i32 { return i32(numWorkgroups.x * numWorkgroups.y * numWorkgroups.z); }
${ACT_FNS}`;

/** Chunk bounds of workgroup wg: statistic, first and last element (empty past the end). */
const CHUNK = `let valid = wg < nS() * nChunks();
  let st = select(0, wg / nChunks(), valid);
  let start = (wg % nChunks()) * chunkLen();
  let end = select(start, min(start + chunkLen(), nCount()), valid);
  let n = f32(max(end - start, 1));
  let base = statX(st);
  let pbase = statP(st);`;

/** The same for one thread per (statistic, chunk). */
const PER_THREAD = `if (index >= nS() * nChunks()) { return; }
  let valid = true;
  // Adjacent threads: adjacent statistics (coalesced reads for channels-last).
  let st = index % nS();
  let chunk = index / nS();
  let wg = st * nChunks() + chunk;
  let start = chunk * chunkLen();
  let end = min(start + chunkLen(), nCount());
  let n = f32(max(end - start, 1));
  let base = statX(st);
  let pbase = statP(st);`;

/** Chan's combination of the chunks' (mean, M2) of statistic s from `part`: n, m, m2. */
const COMBINE = `var n = 0.0;
    var m = 0.0;
    var m2 = 0.0;
    for (var c = 0; c < nChunks(); c = c + 1) {
      let nc = f32(min(chunkLen(), nCount() - c * chunkLen()));
      let k = 2 * (s * nChunks() + c);
      let d = part[k] - m;
      let tot = n + nc;
      m = m + d * (nc / tot);
      m2 = m2 + part[k + 1] + d * d * (n * nc / tot);
      n = tot;
    }`;

const program = (key: string, v: View, outputSize: number, names: string[], workgroups: number, code: string) =>
  new NormProgram(`${key}_${v.mask}`, outputSize, names, workgroups, `${v.fns}\n${VIEW_FNS}\n${code}`, VIEW_UNIFORMS);

/**
 * The activation epilogue in the backward: dz = dy * act'(z), z = xhat * gamma
 * + beta at parameter index `pi` (WGSL expression; none: dy itself).
 */
function dzExpr(act: string | undefined, hasGamma: boolean, hasBeta: boolean, dy: string, xhat: string, pi: string,
                hoisted = false): string {
  if (!act) return dy;
  // hoisted: gamma and beta read once before the loop (HOISTED_PARAMS), as gm and bt.
  const z = `${xhat}${hasGamma ? ` * ${hoisted ? 'gm' : `gamma[${pi}]`}` : ''}${hasBeta ? ` + ${hoisted ? 'bt' : `beta[${pi}]`}` : ''}`;
  return `${dy} * actGrad_${act}(${z})`;
}

/**
 * WGSL: `body` for each element e in [start, end) of statistic st (one
 * thread: step 1) with `eo` = elemX(e) and `ep` = elemP(e) carried from one
 * element to the next (coordinates over the reduced axes, innermost first)
 * instead of recomputed with a division and a modulo per axis and element
 * (emulated per lane on SwiftShader). Specialized like idxExpr: the mask
 * names the reduced axes longer than 1 and the non-zero parameter strides.
 */
function walk(v: View, body: string): string {
  const axes = [0, 1, 2, 3].filter(d => v.redSz[d] > 1).reverse();
  if (axes.length === 0) {
    return `{
    let eo = 0;
    let ep = 0;
    for (var e = start; e < end; e = e + 1) {
${body}
    }
  }`;
  }
  const sz = (d: number) => `uniforms.redSz.${AXES[d]}`;
  const xs = (d: number) => `uniforms.xs.${AXES[d]}`;
  const ps = (d: number) => `uniforms.ps.${AXES[d]}`;
  const hasP = (d: number) => v.ps[d] !== 0;
  const init = axes.map((d, n) => (n === axes.length - 1 ? `var c${d} = r;` : `var c${d} = r % ${sz(d)};
    r = r / ${sz(d)};`));
  const eo = axes.map(d => `c${d} * ${xs(d)}`).join(' + ');
  const ep = axes.filter(hasP).map(d => `c${d} * ${ps(d)}`).join(' + ') || '0';
  // Step axis n (innermost: 0) by one; on wrapping, step the next one out (the outermost never wraps inside [start, end)).
  const step = (n: number): string => {
    const d = axes[n];
    const inc = `c${d} = c${d} + 1;
      eo = eo + ${xs(d)};${hasP(d) ? `
      ep = ep + ${ps(d)};` : ''}`;
    if (n === axes.length - 1) return inc;
    return `${inc}
      if (c${d} == ${sz(d)}) {
      c${d} = 0;
      eo = eo - ${sz(d)} * ${xs(d)};${hasP(d) ? `
      ep = ep - ${sz(d)} * ${ps(d)};` : ''}
      ${step(n + 1)}
      }`;
  };
  return `{
    var r = start;
    ${init.join(`
    `)}
    var eo = ${eo};
    var ep = ${ep};
    for (var e = start; e < end; e = e + 1) {
${body}
      ${step(0)}
    }
  }`;
}

/** Where the parameters are constant within a statistic: the activation's gamma and beta, read once (dzExpr's hoisted). */
const hoistedParams = (hasGamma: boolean, hasBeta: boolean) =>
  `${hasGamma ? 'let gm = gamma[pbase];' : ''}${hasBeta ? ' let bt = beta[pbase];' : ''}`;

/** The epilogue's parameter inputs (gamma, beta where present) added to `names` without repeats. */
function withActParams(names: string[], act: string | undefined, hasGamma: boolean, hasBeta: boolean): string[] {
  if (!act) return names;
  const extra = [...(hasGamma ? ['gamma'] : []), ...(hasBeta ? ['beta'] : [])].filter(n => !names.includes(n));
  return [...names, ...extra];
}

// ---------------------------------------------------------------- forward

/** Per chunk: mean and sum of squared deviations; `finished` (one chunk): the packed statistics directly. */
function statsProgram(v: View, center: boolean, finished: boolean): NormProgram {
  const write = finished
    ? `result[st] = bitcast<i32>(m);
    let variance = r2.y / n;
    result[nS() + st] = bitcast<i32>(variance);
    result[2 * nS() + st] = bitcast<i32>(1.0 / sqrt(variance + uniforms.fl.x));`
    : `result[2 * wg] = m;
    result[2 * wg + 1] = r2.y;`;
  const t = v.perThread;
  return program(`stats_${center}_${finished}_${t}`, v, finished ? 3 * v.S : 2 * v.S * v.chunks, ['x'],
                 t ? Math.ceil(v.S * v.chunks / WG) : v.S * v.chunks, `
${t ? '' : REDUCE}
${MAIN} {
  ${t ? PER_THREAD : `${WG_INDEX}\n  ${CHUNK}`}
  let first = start + ${t ? '0' : 'tid'};
  let step = ${t ? 1 : WG};
  var m = 0.0;
  var q = 0.0;
  ${t && center ? 'var k = 0.0;' : ''}
  ${t ? walk(v, center ? `      let xv = x[base + eo];
      k = k + 1.0;
      let d = xv - m;
      m = m + d / k;
      q = q + d * (xv - m);` : `      let xv = x[base + eo];
      q = q + xv * xv;`) : `${center ? `var a = 0.0;
  for (var e = first; e < end; e = e + step) { a = a + x[base + elemX(e)]; }
  m = reduce2(tid, a, 0.0).x / n;` : ''}
  for (var e = first; e < end; e = e + step) {
    let d = x[base + elemX(e)] - m;
    q = q + d * d;
  }`}
  let r2 = ${t ? 'vec2<f32>(0.0, q)' : 'reduce2(tid, 0.0, q)'};
  if (${t ? 'true' : 'tid == 0 && valid'}) {
    ${write}
  }
}`);
}

/** Combines the chunks; with running statistics (one workgroup) also updates them (uniforms fl: eps, momentum, unbias). */
function finishProgram(v: View, running: boolean, cumulative: boolean): NormProgram {
  const runningCode = running ? `
  storageBarrier();
  workgroupBarrier();
  let factor = ${cumulative ? '1.0 / f32(nbt[0] + 1)' : 'uniforms.fl.y'};
  let per = uniforms.dims2.z;
  for (var p = tid; p < nP(); p = p + ${WG}) {
    var sm = 0.0;
    var sv = 0.0;
    for (var j = 0; j < per; j = j + 1) {
      let s = statOfParam(p, j);
      sm = sm + bitcast<f32>(result[s]);
      sv = sv + bitcast<f32>(result[nS() + s]) * uniforms.fl.z;
    }
    let bm = sm / f32(per);
    let bv = sv / f32(per);
    let rm = runningMean[p];
    let rv = runningVariance[p];
    result[3 * nS() + p] = bitcast<i32>(rm + (bm - rm) * factor);
    result[3 * nS() + nP() + p] = bitcast<i32>(rv + (bv - rv) * factor);
  }
  if (tid == 0) { result[3 * nS() + 2 * nP()] = nbt[0] + 1; }` : '';
  return program(`finish_${running}_${cumulative}`, v, 3 * v.S + (running ? 2 * v.P + 1 : 0),
                 running ? ['part', 'runningMean', 'runningVariance', 'nbt'] : ['part'],
                 running ? 1 : Math.ceil(v.S / WG), `
${MAIN} {
  ${WG_INDEX}
  for (var s = ${running ? 'tid' : 'index'}; s < nS(); s = s + ${running ? WG : `${WG} * wgTotal()`}) {
    ${COMBINE}
    let variance = m2 / f32(nCount());
    result[s] = bitcast<i32>(m);
    result[nS() + s] = bitcast<i32>(variance);
    result[2 * nS() + s] = bitcast<i32>(1.0 / sqrt(variance + uniforms.fl.x));
  }${runningCode}
}`);
}

/**
 * Elementwise programs read and write 4 consecutive elements as one vec4 when
 * they share the statistic and parameter index arithmetic of the first: the
 * innermost axis a multiple of 4 long (the 4 share a row: indices step by the
 * innermost strides), or 2 long with an even axis before it (the 4 are two
 * rows of 2: GroupNorm channels-last with 2 channels a group, [N, HW, G, 2]),
 * else one element.
 */
function vectorized(v: View): boolean {
  return v.s[3] % 4 === 0 || (v.s[3] === 2 && v.s[2] % 2 === 0);
}

/** Statistic / parameter of component k of a vec4 whose first element has s, p. */
function lane(v: View, k: number, what: 's' | 'p'): string {
  const st = `uniforms.${what}s`;
  if (v.s[3] % 4 === 0) return k === 0 ? what : `${what} + ${k} * ${st}.w`;
  return [what, `${what} + ${st}.w`, `${what} + ${st}.z`, `${what} + ${st}.z + ${st}.w`][k];
}

/** An elementwise program over 1 or 4 elements per thread: `body(k, xv, ...)` gives component k's value. */
function elementwise(v: View, key: string, names: string[], vecNames: string[],
                     body: (k: number, at: (name: string) => string) => string, prelude = ''): NormProgram {
  const vec = vectorized(v);
  const n = vec ? v.size / 4 : v.size;
  const at = (k: number) => (name: string) => (vec && vecNames.includes(name) ? `${name}[index][${k}]` : `${name}[index]`);
  const code = vec ? `
${MAIN} {
  if (index < nSize() / 4) {
    let s = iStat(4 * index);
    let p = iParam(4 * index);
    ${prelude}
    result[index] = vec4<f32>(${[0, 1, 2, 3].map(k => `comp${k}(${lane(v, k, 's')}, ${lane(v, k, 'p')}, ${at(k)('x')})`).join(', ')});
  }
}` : `
${MAIN} {
  if (index < nSize()) {
    let s = iStat(index);
    let p = iParam(index);
    ${prelude}
    result[index] = comp0(s, p, x[index]);
  }
}`;
  const comps = (vec ? [0, 1, 2, 3] : [0]).map(k => `
fn comp${k}(s : i32, p : i32, xv : f32) -> f32 {
  let index = getGlobalIndex();
  ${body(k, at(k))}
}`).join('');
  // The key names the lane arithmetic (rows of 4, or two rows of 2): the mask does not tell them apart.
  const prog = program(`${key}_${vec ? (v.s[3] % 4 === 0 ? 'v4' : 'v22') : 'v1'}`, v, v.size, names, Math.ceil(n / WG), `
${comps}
${code}`);
  if (vec) {
    prog.outputComponent = 4;
    prog.variableComponents = names.map(name => (vecNames.includes(name) ? 4 : 1));
  }
  return prog;
}

function applyProgram(v: View, hasGamma: boolean, hasBeta: boolean, act?: string): NormProgram {
  const names = ['x', 'stats', ...(hasGamma ? ['gamma'] : []), ...(hasBeta ? ['beta'] : [])];
  return elementwise(v, `apply_${hasGamma}_${hasBeta}_${act ?? 'none'}`, names, ['x'], () => `
  var y = (xv - bitcast<f32>(stats[s])) * bitcast<f32>(stats[2 * nS() + s]);
  ${hasGamma ? 'y = y * gamma[p];' : ''}
  ${hasBeta ? 'y = y + beta[p];' : ''}
  return ${actOf(act, 'y')};`);
}

/** The residual epilogue's sum x + residual (the forward then normalizes it, and returns it last). */
function addProgram(v: View): NormProgram {
  return elementwise(v, 'residual_sum', ['x', 'residual'], ['x', 'residual'], (k, at) => `
  return xv + ${at('residual')};`);
}

export function forwardKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo[] {
  const b = backend as GpuBackend;
  const a = attrs as unknown as ForwardAttrs;
  const v = viewOf(a);
  const {gamma, beta, runningMean, runningVariance, numBatchesTracked, residual} = inputs;
  const running = runningMean != null;
  // The residual epilogue: everything below normalizes x + residual.
  const sum = residual ? run(b, addProgram(v), [inputs.x!, residual], 'float32', v.uniforms()) : null;
  const x = sum ?? inputs.x;
  if (running && v.paramInStat) throw new Error('running statistics need parameters constant within each statistic');
  const momentum = a.momentum ?? null;
  const u = v.uniforms([a.epsilon, momentum ?? 0, v.count / (v.count - 1), v.count]);
  let packed: tf.TensorInfo;
  if (v.chunks === 1 && !running) {
    packed = run(b, statsProgram(v, a.center, true), [x!], 'int32', u);
  } else {
    const part = run(b, statsProgram(v, a.center, false), [x!], 'float32', u);
    const ins = running ? [part, runningMean!, runningVariance!, numBatchesTracked!] : [part];
    packed = run(b, finishProgram(v, running, momentum == null), ins, 'int32', u);
    b.disposeData(part.dataId);
  }
  const params = [gamma, beta].filter((t): t is tf.TensorInfo => t != null);
  const y = run(b, applyProgram(v, gamma != null, beta != null, a.activation), [x!, packed, ...params], 'float32', u);
  const S = v.S;
  const outs = [
    {dataId: y.dataId, shape: inputs.x!.shape, dtype: 'float32' as tf.DataType},
    copyOut(b, packed, 0, a.statShape, 'float32'),
    copyOut(b, packed, S, a.statShape, 'float32'),
    copyOut(b, packed, 0, [3, S], 'float32'),
  ];
  if (running) {
    outs.push(copyOut(b, packed, 3 * S, runningMean!.shape, 'float32'),
              copyOut(b, packed, 3 * S + v.P, runningVariance!.shape, 'float32'),
              copyOut(b, packed, 3 * S + 2 * v.P, [], 'int32'));
  }
  b.disposeData(packed.dataId);
  if (sum) outs.push({dataId: sum.dataId, shape: inputs.x!.shape, dtype: 'float32'});
  return outs;
}

// --------------------------------------------------------------- backward

/**
 * Per (statistic, chunk): sums of g and g * xhat, where g = dy * gamma when
 * the parameters vary within the statistic, else dy (gamma, constant, is
 * applied in the combine, which also needs the plain sums for dgamma/dbeta).
 */
function backwardSumsProgram(v: View, gammaHere: boolean, act?: string, hasGamma = false, hasBeta = false,
                             fine = false): NormProgram {
  const t = v.perThread;
  const names = withActParams(['dy', 'x', 'aux', ...(gammaHere ? ['gamma'] : [])], act, hasGamma, hasBeta);
  // A fine view's groups read their real statistic's mean and 1/std.
  const rs = fine ? 'fineStat(st)' : 'st';
  const rS = fine ? 'uniforms.rdims.x' : 'nS()';
  // Parameters constant within the statistic (or fine group): the activation's gamma and beta read once.
  const hoist = !!act && !v.paramInStat;
  return program(`bsums_${gammaHere}_${t}_${act ?? 'none'}_${hasGamma}_${hasBeta}_${fine}`, v, 2 * v.S * v.chunks, names,
                 t ? Math.ceil(v.S * v.chunks / WG) : v.S * v.chunks, `
${t ? '' : REDUCE}
${MAIN} {
  ${t ? PER_THREAD : `${WG_INDEX}\n  ${CHUNK}`}
  let mean = aux[${rs}];
  let inv = aux[2 * ${rS} + ${rs}];
  ${hoist ? hoistedParams(hasGamma, hasBeta) : ''}
  var sg = 0.0;
  var sgx = 0.0;
  ${t ? walk(v, `      let o = base + eo;
      let pi = pbase + ep;
      let xh = (x[o] - mean) * inv;
      let g = ${dzExpr(act, hasGamma, hasBeta, 'dy[o]', 'xh', 'pi', hoist)}${gammaHere ? ' * gamma[pi]' : ''};
      sg = sg + g;
      sgx = sgx + g * xh;`) : `for (var e = start + tid; e < end; e = e + ${WG}) {
    let o = base + elemX(e);
    let pi = pbase + elemP(e);
    let xh = (x[o] - mean) * inv;
    let g = ${dzExpr(act, hasGamma, hasBeta, 'dy[o]', 'xh', 'pi', hoist)}${gammaHere ? ' * gamma[pi]' : ''};
    sg = sg + g;
    sgx = sgx + g * xh;
  }`}
  let r = ${t ? 'vec2<f32>(sg, sgx)' : 'reduce2(tid, sg, sgx)'};
  if (${t ? 'true' : 'tid == 0 && valid'}) {
    result[2 * wg] = r.x;
    result[2 * wg + 1] = r.y;
  }
}`);
}

/**
 * [c1, c2, dgamma, dbeta]: the statistics' chunk sums combined, thread per
 * statistic. dgamma/dbeta: where the parameters are constant within each
 * statistic, thread per parameter over its statistics' sums; otherwise over
 * each parameter's elements, a workgroup per parameter (a thread per
 * parameter when it has few elements: LayerNorm on a small batch).
 */
function combineProgram(v: View, center: boolean, hasGamma: boolean, paramSums: boolean, act?: string,
                        hasBeta = false): NormProgram {
  const {S, P} = v;
  const gammaAfter = hasGamma && !v.paramInStat;
  const stat = `
  for (var s = index; s < nS(); s = s + ${WG} * wgTotal()) {
    var a = 0.0;
    var bb = 0.0;
    for (var c = 0; c < nChunks(); c = c + 1) {
      a = a + part[2 * (s * nChunks() + c)];
      bb = bb + part[2 * (s * nChunks() + c) + 1];
    }
    ${gammaAfter ? 'let gm = gamma[statP(s)];' : 'let gm = 1.0;'}
    result[s] = ${center ? 'gm * a / f32(nCount())' : '0.0'};
    result[nS() + s] = gm * bb / f32(nCount());
  }`;
  let params = '';
  let workgroups = Math.ceil(S / WG);
  let names = ['part', ...(gammaAfter ? ['gamma'] : [])];
  let mode = 'none';
  const perElems = v.size / P;
  if (paramSums && !v.paramInStat) {
    mode = 'stats';
    // dgamma[p] = sum of sum(dy * xhat), dbeta[p] = sum of sum(dy) over p's statistics.
    params = `
  for (var p = index; p < nP(); p = p + ${WG} * wgTotal()) {
    var dg = 0.0;
    var db = 0.0;
    for (var j = 0; j < uniforms.dims2.z; j = j + 1) {
      let s = statOfParam(p, j);
      for (var c = 0; c < nChunks(); c = c + 1) {
        db = db + part[2 * (s * nChunks() + c)];
        dg = dg + part[2 * (s * nChunks() + c) + 1];
      }
    }
    result[2 * nS() + p] = dg;
    result[2 * nS() + nP() + p] = db;
  }`;
    workgroups = Math.max(workgroups, Math.ceil(P / WG));
  } else if (paramSums && perElems <= THREAD_PER_PARAM) {
    mode = 'thread';
    names = [...names, 'dy', 'x', 'aux'];
    params = `
  for (var p = index; p < nP(); p = p + ${WG} * wgTotal()) {
    var dg = 0.0;
    var db = 0.0;
    for (var j = 0; j < uniforms.dims2.w; j = j + 1) {
      let o = paramElemX(p, j);
      let s = paramElemS(p, j);
      let xh = (x[o] - aux[s]) * aux[2 * nS() + s];
      let g = ${dzExpr(act, hasGamma, hasBeta, 'dy[o]', 'xh', 'p')};
      db = db + g;
      dg = dg + g * xh;
    }
    result[2 * nS() + p] = dg;
    result[2 * nS() + nP() + p] = db;
  }`;
    workgroups = Math.max(workgroups, Math.ceil(P / WG));
  } else if (paramSums) {
    mode = 'workgroup';
    names = [...names, 'dy', 'x', 'aux'];
    params = `
  let pv = wg < nP();
  let p = select(0, wg, pv);
  var dg = 0.0;
  var db = 0.0;
  for (var j = select(uniforms.dims2.w, tid, pv); j < uniforms.dims2.w; j = j + ${WG}) {
    let o = paramElemX(p, j);
    let s = paramElemS(p, j);
    let xh = (x[o] - aux[s]) * aux[2 * nS() + s];
    let g = ${dzExpr(act, hasGamma, hasBeta, 'dy[o]', 'xh', 'p')};
    db = db + g;
    dg = dg + g * xh;
  }
  let r = reduce2(tid, dg, db);
  if (tid == 0 && pv) {
    result[2 * nS() + p] = r.x;
    result[2 * nS() + nP() + p] = r.y;
  }`;
    workgroups = Math.max(workgroups, P);
  }
  if (mode === 'thread' || mode === 'workgroup') names = withActParams(names, act, hasGamma, hasBeta);
  return program(`bcombine_${center}_${gammaAfter}_${mode}_${mode === 'thread' || mode === 'workgroup' ? act ?? 'none' : 'none'}_${hasBeta}`,
                 v, 2 * S + 2 * P, names, workgroups, `
${mode === 'workgroup' ? REDUCE : ''}
${MAIN} {
  ${WG_INDEX}
  ${stat}
  ${params}
}`);
}

/**
 * [c1, c2, dgamma, dbeta] from the fine groups' sums (fv: fineViewOf; `part`:
 * backwardSumsProgram on it): thread per real statistic over its groups
 * (gamma-weighted), thread per parameter over its groups.
 */
function fineCombineProgram(fv: View, realS: number, center: boolean, hasGamma: boolean): NormProgram {
  const sum = (k: number) => `part[2 * (f * nChunks() + c)${k ? ' + 1' : ''}]`;
  return program(`bcombine_fine_${center}_${hasGamma}`, fv, 2 * realS + 2 * fv.P, ['part', ...(hasGamma ? ['gamma'] : [])],
                 Math.ceil(Math.max(realS, fv.P) / WG), `
fn rS() -> i32 { return uniforms.rdims.x; }
${MAIN} {
  ${WG_INDEX}
  for (var s = index; s < rS(); s = s + ${WG} * wgTotal()) {
    var a = 0.0;
    var bb = 0.0;
    let f0 = statFine(s);
    for (var j = 0; j < uniforms.rdims.y; j = j + 1) {
      let f = f0 + inStatFine(j);
      let gm = ${hasGamma ? 'gamma[statP(f)]' : '1.0'};
      for (var c = 0; c < nChunks(); c = c + 1) {
        a = a + gm * ${sum(0)};
        bb = bb + gm * ${sum(1)};
      }
    }
    result[s] = ${center ? 'a / f32(uniforms.rdims.z)' : '0.0'};
    result[rS() + s] = bb / f32(uniforms.rdims.z);
  }
  for (var p = index; p < nP(); p = p + ${WG} * wgTotal()) {
    var dg = 0.0;
    var db = 0.0;
    for (var j = 0; j < uniforms.dims2.z; j = j + 1) {
      let f = statOfParam(p, j);
      for (var c = 0; c < nChunks(); c = c + 1) {
        db = db + ${sum(0)};
        dg = dg + ${sum(1)};
      }
    }
    result[2 * rS() + p] = dg;
    result[2 * rS() + nP() + p] = db;
  }
}`);
}

function dxProgram(v: View, hasGamma: boolean, act?: string, hasBeta = false): NormProgram {
  const names = withActParams(['dy', 'x', 'aux', 'coef', ...(hasGamma ? ['gamma'] : [])], act, hasGamma, hasBeta);
  return elementwise(v, `dx_${hasGamma}_${act ?? 'none'}_${hasBeta}`, names, ['dy', 'x'],
                     (k, at) => `
  let inv = aux[2 * nS() + s];
  let xhat = (xv - aux[s]) * inv;
  let g = ${dzExpr(act, hasGamma, hasBeta, at('dy'), 'xhat', 'p')}${hasGamma ? ' * gamma[p]' : ''};
  return (g - coef[s] - xhat * coef[nS() + s]) * inv;`);
}

export function backwardKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo[] {
  const b = backend as GpuBackend;
  const a = attrs as unknown as BackwardAttrs;
  const v = viewOf(a);
  const u = v.uniforms();
  const {dy, x, aux, gamma} = inputs;
  const hasGamma = gamma != null;
  // The activation epilogue: every pass that reads dy uses dz = dy * act'(z), z recomputed (dzExpr).
  const act = a.activation;
  const beta = act ? inputs.beta : undefined;
  const hasBeta = beta != null;
  // Each program's inputs, by the names it declares.
  const pool: Record<string, tf.TensorInfo | undefined> = {dy, x, aux, gamma, beta};
  const ins = (names: string[]) => names.map(n => pool[n]!);
  const gammaHere = hasGamma && v.paramInStat;
  const paramSums = a.withGamma || a.withBeta;
  // Parameters varying within the statistics (GroupNorm): sums per fine group, where they are long enough.
  const fv = paramSums && v.paramInStat ? fineViewOf(a) : null;
  let coef: tf.TensorInfo;
  if (fv) {
    const fu = fv.uniforms();
    const sums = backwardSumsProgram(fv, false, act, hasGamma, hasBeta, true);
    const part = run(b, sums, ins(sums.variableNames), 'float32', fu);
    pool.part = part;
    const combine = fineCombineProgram(fv, v.S, a.center, hasGamma);
    coef = run(b, combine, ins(combine.variableNames), 'float32', fu);
    b.disposeData(part.dataId);
  } else {
    const sums = backwardSumsProgram(v, gammaHere, act, hasGamma, hasBeta);
    const part = run(b, sums, ins(sums.variableNames), 'float32', u);
    pool.part = part;
    const combine = combineProgram(v, a.center, hasGamma, paramSums, act, hasBeta);
    coef = run(b, combine, ins(combine.variableNames), 'float32', u);
    b.disposeData(part.dataId);
  }
  pool.coef = coef;
  const dxp = dxProgram(v, hasGamma, act, hasBeta);
  const dx = run(b, dxp, ins(dxp.variableNames), 'float32', u);
  const outs: tf.TensorInfo[] = [{dataId: dx.dataId, shape: dy!.shape, dtype: 'float32'}];
  if (a.withGamma) outs.push(copyOut(b, coef, 2 * v.S, gamma!.shape, 'float32'));
  if (a.withBeta) outs.push(copyOut(b, coef, 2 * v.S + v.P, a.betaShape ?? a.paramShape, 'float32'));
  b.disposeData(coef.dataId);
  return outs;
}

// -------------------------------------------------------- scale and shift

export function scaleShiftKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo {
  const b = backend as GpuBackend;
  const a = attrs as unknown as ScaleShiftAttrs;
  // The statistics are per parameter here: the parameters' layout is the statistics' layout.
  const v = viewOf({shape: a.shape, statShape: a.paramShape, paramShape: a.paramShape});
  const {x, mean, variance, gamma, beta} = inputs;
  const names = ['x', 'mean', 'variance', ...(gamma ? ['gamma'] : []), ...(beta ? ['beta'] : [])];
  // Elementwise, 4 elements a thread where the innermost axis allows (vec4 reads and writes of x and y).
  const p = elementwise(v, `scaleshift_${!!gamma}_${!!beta}_${a.activation ?? 'none'}`, names, ['x'], () => `
  var y = (xv - mean[p]) * (1.0 / sqrt(variance[p] + uniforms.fl.x));
  ${gamma ? 'y = y * gamma[p];' : ''}
  ${beta ? 'y = y + beta[p];' : ''}
  return ${actOf(a.activation, 'y')};`);
  const ins = [x!, mean!, variance!, ...(gamma ? [gamma] : []), ...(beta ? [beta] : [])];
  const y = run(b, p, ins, 'float32', v.uniforms([a.epsilon]));
  return {dataId: y.dataId, shape: x!.shape, dtype: 'float32'};
}
