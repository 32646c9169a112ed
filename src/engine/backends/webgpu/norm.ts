/**
 * Forward, backward and scale-and-shift of the normalizations as WebGPU
 * programs (names and attributes: ../../kernels.ts; program plumbing: program.ts).
 *
 * The canonical view (plan.ts), padded to rank 4, has kept axes (statistic s
 * varies along them), reduced axes (element e of a statistic) and parameter
 * axes; every index below is a sum of coordinates times strides, generated as
 * WGSL with the sizes baked in (indexFn).
 *
 * Statistics: one workgroup per statistic, or per chunk of a statistic when
 * there are few statistics over many elements (BatchNorm: 64 channels of 32k
 * values run as 8 chunks each), so the GPU has enough workgroups. A workgroup
 * reads its elements twice: the sum (shared-memory tree reduction) gives its
 * mean, then the sum of squared deviations from that mean: shifted two-pass
 * statistics in float32, exact for large common offsets. Chunks combine with
 * Chan's parallel formula.
 *
 * Programs per call (copies out of a packed buffer are buffer copies, not programs):
 *   forward   1. statistics (per chunk)  2. finish: combine chunks, 1/std and
 *             the running statistics (skipped with one chunk and no running
 *             statistics: 1 writes the finished ones)  3. y, elementwise
 *   backward  1. per-statistic sums of g = dy*gamma and g*xhat (per chunk)
 *             2. combine them, and dgamma/dbeta (from the sums of 1 where the
 *             parameters are constant within each statistic: BatchNorm,
 *             InstanceNorm; else one workgroup per parameter)  3. dx, elementwise
 *   scale-and-shift (inference with running statistics): 1 program
 * A training step (forward + backward) is 5 or 6 programs.
 *
 * Packed buffers: the forward's [mean (S), variance (S), 1/std (S),
 * runningMean' (P), runningVariance' (P), numBatchesTracked' (1)] as int32
 * (floats stored with bitcast, so the int32 count fits); aux = its first 3S
 * elements. The backward's [c1 (S), c2 (S), dgamma (P), dbeta (P)], where
 * dx = (g - c1 - xhat * c2) / std.
 */
import * as tf from '@tensorflow/tfjs';
import {BackwardAttrs, ForwardAttrs, LayoutAttrs, ScaleShiftAttrs} from '../../kernels';
import {GpuBackend, MAIN, NormProgram, REDUCE, WG, WG_INDEX, copyOut, f32, indexFn, run, sizeOf} from './program';

interface KernelArgs {
  inputs: Record<string, tf.TensorInfo | undefined>;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}

function pad4(s: number[]): number[] {
  return [1, 1, 1, 1].slice(s.length).concat(s);
}

/** Row-major strides with 0 along axes of size 1 (broadcast). */
function strides(shape: number[]): number[] {
  const out = [0, 0, 0, 0];
  let acc = 1;
  for (let i = 3; i >= 0; i--) {
    out[i] = shape[i] === 1 ? 0 : acc;
    acc *= shape[i];
  }
  return out;
}

/** Sizes of `shape` along `axes`, 1 elsewhere. */
const only = (shape: number[], keep: (d: number) => boolean) => shape.map((s, d) => (keep(d) ? s : 1));

/** The canonical view as the programs need it. */
interface View {
  key: string;
  s: number[];
  size: number;
  /** Statistics, elements per statistic, parameters. */
  S: number;
  count: number;
  P: number;
  xs: number[];
  ss: number[];
  ps: number[];
  kept: (d: number) => boolean;
  /** The parameters vary within a statistic (along a reduced axis: LayerNorm, GroupNorm). */
  paramInStat: boolean;
  chunks: number;
  chunkLen: number;
}

function viewOf(a: LayoutAttrs): View {
  if (a.shape.length > 4) throw new Error(`fused normalization kernels take rank <= 4. Received: shape [${a.shape}]`);
  const s = pad4(a.shape);
  const st = pad4(a.statShape);
  const pa = pad4(a.paramShape);
  const size = sizeOf(s);
  const S = sizeOf(st);
  const count = size / S;
  const kept = (d: number) => st[d] > 1;
  const reduced = (d: number) => st[d] === 1 && s[d] > 1;
  const ps = strides(pa);
  // Few statistics over many elements: split each into chunks (aim: ~512 workgroups of >= 2048 elements).
  let chunks = 1;
  if (count > 4096 && S < 512) chunks = Math.min(64, Math.ceil(512 / S), Math.ceil(count / 2048));
  let chunkLen = Math.ceil(Math.ceil(count / chunks) / 4) * 4;
  chunks = Math.ceil(count / chunkLen);
  if (chunks === 1) chunkLen = count;
  return {
    key: `${s.join('x')}_${st.join('x')}_${pa.join('x')}`,
    s, size, S, count, P: sizeOf(pa), xs: strides(s).map((v, d) => (s[d] === 1 ? 0 : v)), ss: strides(st), ps,
    kept, paramInStat: [0, 1, 2, 3].some(d => reduced(d) && ps[d] !== 0), chunks, chunkLen,
  };
}

/**
 * Index functions of a view: statistic s -> its first element's offset
 * (statX) and parameter contribution (statP); element e of a statistic ->
 * offset (elemX) and parameter (elemP); flat element i -> statistic (iStat)
 * and parameter (iParam).
 */
function viewFns(v: View): string {
  const keptSizes = only(v.s, v.kept);
  const redSizes = only(v.s, d => !v.kept(d));
  return [
    indexFn('statX', keptSizes, v.xs), indexFn('statP', keptSizes, v.ps), indexFn('elemX', redSizes, v.xs),
    indexFn('elemP', redSizes, v.ps), indexFn('iStat', v.s, v.ss), indexFn('iParam', v.s, v.ps),
  ].join('\n');
}

/**
 * statOfParam(p, j): the j-th statistic of parameter p, for views whose
 * parameters are constant within each statistic (S / P statistics each: the
 * kept axes the parameters do not vary along).
 */
function statOfParamFn(v: View): string {
  const paramSizes = only(v.s, d => v.ps[d] !== 0);
  const otherSizes = only(v.s, d => v.kept(d) && v.ps[d] === 0);
  return `${indexFn('paramStat', paramSizes, v.ss)}
${indexFn('otherStat', otherSizes, v.ss)}
fn statOfParam(p : i32, j : i32) -> i32 { return paramStat(p) + otherStat(j); }`;
}

/** Chunk bounds of workgroup wg: statistic, first and last element (empty past the end). */
function chunkCode(v: View): string {
  return `let valid = wg < ${v.S * v.chunks};
  let st = select(0, wg / ${v.chunks}, valid);
  let start = (wg % ${v.chunks}) * ${v.chunkLen};
  let end = select(start, min(start + ${v.chunkLen}, ${v.count}), valid);
  let n = f32(max(end - start, 1));
  let base = statX(st);
  let pbase = statP(st);`;
}

/** Chan's combination of the chunks' (mean, M2) of statistic s in `part`. */
function combineCode(v: View, part: string): string {
  return `var n = 0.0;
    var m = 0.0;
    var m2 = 0.0;
    for (var c = 0; c < ${v.chunks}; c = c + 1) {
      let nc = f32(min(${v.chunkLen}, ${v.count} - c * ${v.chunkLen}));
      let k = 2 * (s * ${v.chunks} + c);
      let d = ${part}[k] - m;
      let tot = n + nc;
      m = m + d * (nc / tot);
      m2 = m2 + ${part}[k + 1] + d * d * (n * nc / tot);
      n = tot;
    }`;
}

// ---------------------------------------------------------------- forward

function statsProgram(v: View, center: boolean, finished: boolean, epsilon: number): NormProgram {
  const write = finished
    ? `result[st] = bitcast<i32>(m);
    let variance = r2.y / n;
    result[${v.S} + st] = bitcast<i32>(variance);
    result[${2 * v.S} + st] = bitcast<i32>(1.0 / sqrt(variance + ${f32(epsilon)}));`
    : `result[2 * wg] = m;
    result[2 * wg + 1] = r2.y;`;
  const code = `${viewFns(v)}
${REDUCE}
${MAIN} {
  ${WG_INDEX}
  ${chunkCode(v)}
  var m = 0.0;
  ${center ? `var a = 0.0;
  for (var e = start + tid; e < end; e = e + ${WG}) { a = a + x[base + elemX(e)]; }
  m = reduce2(tid, a, 0.0).x / n;` : ''}
  var q = 0.0;
  for (var e = start + tid; e < end; e = e + ${WG}) {
    let d = x[base + elemX(e)] - m;
    q = q + d * d;
  }
  let r2 = reduce2(tid, 0.0, q);
  if (tid == 0 && valid) {
    ${write}
  }
}`;
  const key = `stats_${v.key}_${v.chunks}_${center}_${finished}_${finished ? epsilon : ''}`;
  return new NormProgram(key, finished ? 3 * v.S : 2 * v.S * v.chunks, ['x'], v.S * v.chunks, code);
}

/** Combines the chunks; with running statistics (one workgroup) also updates them. */
function finishProgram(v: View, epsilon: number, running: boolean, momentum: number | null): NormProgram {
  const S = v.S;
  const P = v.P;
  const per = S / P;
  const unbias = v.count / (v.count - 1);
  const runningCode = running ? `
  storageBarrier();
  workgroupBarrier();
  let factor = ${momentum == null ? '1.0 / f32(nbt[0] + 1)' : f32(momentum)};
  for (var p = tid; p < ${P}; p = p + ${WG}) {
    var sm = 0.0;
    var sv = 0.0;
    for (var j = 0; j < ${per}; j = j + 1) {
      let s = statOfParam(p, j);
      sm = sm + bitcast<f32>(result[s]);
      sv = sv + bitcast<f32>(result[${S} + s]) * ${f32(unbias)};
    }
    let bm = sm / ${f32(per)};
    let bv = sv / ${f32(per)};
    let rm = runningMean[p];
    let rv = runningVariance[p];
    result[${3 * S} + p] = bitcast<i32>(rm + (bm - rm) * factor);
    result[${3 * S + P} + p] = bitcast<i32>(rv + (bv - rv) * factor);
  }
  if (tid == 0) { result[${3 * S + 2 * P}] = nbt[0] + 1; }` : '';
  const code = `${running ? statOfParamFn(v) : ''}
${MAIN} {
  ${WG_INDEX}
  for (var s = ${running ? 'tid' : 'index'}; s < ${S}; s = s + ${running ? WG : 'numWorkgroupsTotal()'}) {
    ${combineCode(v, 'part')}
    let variance = m2 / ${f32(v.count)};
    result[s] = bitcast<i32>(m);
    result[${S} + s] = bitcast<i32>(variance);
    result[${2 * S} + s] = bitcast<i32>(1.0 / sqrt(variance + ${f32(epsilon)}));
  }${runningCode}
}
fn numWorkgroupsTotal() -> i32 { return i32(numWorkgroups.x * numWorkgroups.y * numWorkgroups.z) * ${WG}; }`;
  const key = `finish_${v.key}_${v.chunks}_${epsilon}_${running}_${momentum}`;
  return new NormProgram(key, 3 * S + (running ? 2 * P + 1 : 0),
                         running ? ['part', 'runningMean', 'runningVariance', 'nbt'] : ['part'],
                         running ? 1 : Math.ceil(S / WG), code);
}

function applyProgram(v: View, hasGamma: boolean, hasBeta: boolean): NormProgram {
  const names = ['x', 'stats', ...(hasGamma ? ['gamma'] : []), ...(hasBeta ? ['beta'] : [])];
  const code = `${viewFns(v)}
${MAIN} {
  if (index < ${v.size}) {
    let s = iStat(index);
    var y = (x[index] - bitcast<f32>(stats[s])) * bitcast<f32>(stats[${2 * v.S} + s]);
    ${hasGamma || hasBeta ? 'let p = iParam(index);' : ''}
    ${hasGamma ? 'y = y * gamma[p];' : ''}
    ${hasBeta ? 'y = y + beta[p];' : ''}
    result[index] = y;
  }
}`;
  return new NormProgram(`apply_${v.key}_${hasGamma}_${hasBeta}`, v.size, names, Math.ceil(v.size / WG), code);
}

export function forwardKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo[] {
  const b = backend as GpuBackend;
  const a = attrs as unknown as ForwardAttrs;
  const v = viewOf(a);
  const {x, gamma, beta, runningMean, runningVariance, numBatchesTracked} = inputs;
  const running = runningMean != null;
  if (running && v.paramInStat) throw new Error('running statistics need parameters constant within each statistic');
  let packed: tf.TensorInfo;
  if (v.chunks === 1 && !running) {
    packed = run(b, statsProgram(v, a.center, true, a.epsilon), [x!], 'int32');
  } else {
    const part = run(b, statsProgram(v, a.center, false, a.epsilon), [x!]);
    const ins = running ? [part, runningMean!, runningVariance!, numBatchesTracked!] : [part];
    packed = run(b, finishProgram(v, a.epsilon, running, a.momentum ?? null), ins, 'int32');
    b.disposeData(part.dataId);
  }
  const params = [gamma, beta].filter((t): t is tf.TensorInfo => t != null);
  const y = run(b, applyProgram(v, gamma != null, beta != null), [x!, packed, ...params]);
  const S = v.S;
  const outs = [
    {dataId: y.dataId, shape: x!.shape, dtype: 'float32' as tf.DataType},
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
  return outs;
}

// --------------------------------------------------------------- backward

/**
 * Per (statistic, chunk): sums of g and g * xhat, where g = dy * gamma when
 * the parameters vary within the statistic, else dy (gamma, constant, is
 * applied in the combine, which also needs the plain sums for dgamma/dbeta).
 */
function backwardSumsProgram(v: View, gammaHere: boolean): NormProgram {
  const code = `${viewFns(v)}
${REDUCE}
${MAIN} {
  ${WG_INDEX}
  ${chunkCode(v)}
  let mean = aux[st];
  let inv = aux[${2 * v.S} + st];
  var sg = 0.0;
  var sgx = 0.0;
  for (var e = start + tid; e < end; e = e + ${WG}) {
    let o = base + elemX(e);
    let g = dy[o]${gammaHere ? ' * gamma[pbase + elemP(e)]' : ''};
    sg = sg + g;
    sgx = sgx + g * (x[o] - mean) * inv;
  }
  let r = reduce2(tid, sg, sgx);
  if (tid == 0 && valid) {
    result[2 * wg] = r.x;
    result[2 * wg + 1] = r.y;
  }
}`;
  return new NormProgram(`bsums_${v.key}_${v.chunks}_${gammaHere}`, 2 * v.S * v.chunks,
                         ['dy', 'x', 'aux', ...(gammaHere ? ['gamma'] : [])], v.S * v.chunks, code);
}

/**
 * [c1, c2, dgamma, dbeta]. Parameters constant within statistics: thread per
 * statistic, then per parameter (over its statistics' sums). Otherwise the
 * first P workgroups reduce dgamma/dbeta over each parameter's elements, and
 * the statistics combine in the threads of every workgroup.
 */
function combineProgram(v: View, center: boolean, hasGamma: boolean, paramSums: boolean): NormProgram {
  const {S, P} = v;
  const gammaAfter = hasGamma && !v.paramInStat;
  const stat = `
  for (var s = index; s < ${S}; s = s + ${WG} * wgs) {
    var a = 0.0;
    var bb = 0.0;
    for (var c = 0; c < ${v.chunks}; c = c + 1) {
      a = a + part[2 * (s * ${v.chunks} + c)];
      bb = bb + part[2 * (s * ${v.chunks} + c) + 1];
    }
    ${gammaAfter ? 'let gm = gamma[statP(s)];' : 'let gm = 1.0;'}
    result[s] = ${center ? `gm * a / ${f32(v.count)}` : '0.0'};
    result[${S} + s] = gm * bb / ${f32(v.count)};
  }`;
  let params = '';
  let workgroups = Math.ceil(S / WG);
  let names = ['part', ...(gammaAfter ? ['gamma'] : [])];
  let extra = '';
  if (paramSums && !v.paramInStat) {
    // dgamma[p] = sum of sum(dy * xhat), dbeta[p] = sum of sum(dy) over p's statistics.
    extra = statOfParamFn(v);
    params = `
  for (var p = index; p < ${P}; p = p + ${WG} * wgs) {
    var dg = 0.0;
    var db = 0.0;
    for (var j = 0; j < ${S / P}; j = j + 1) {
      let s = statOfParam(p, j);
      for (var c = 0; c < ${v.chunks}; c = c + 1) {
        db = db + part[2 * (s * ${v.chunks} + c)];
        dg = dg + part[2 * (s * ${v.chunks} + c) + 1];
      }
    }
    result[${2 * S} + p] = dg;
    result[${2 * S + P} + p] = db;
  }`;
    workgroups = Math.max(workgroups, Math.ceil(P / WG));
  } else if (paramSums) {
    // One workgroup per parameter over its elements: the other axes, kept or reduced.
    const paramSizes = only(v.s, d => v.ps[d] !== 0);
    const otherSizes = only(v.s, d => v.ps[d] === 0);
    extra = `${indexFn('paramX', paramSizes, v.xs)}
${indexFn('paramS', paramSizes, v.ss)}
${indexFn('otherX', otherSizes, v.xs)}
${indexFn('otherS', otherSizes, v.ss)}
${REDUCE}`;
    names = [...names, 'dy', 'x', 'aux'];
    const per = v.size / P;
    params = `
  let pv = wg < ${P};
  let p = select(0, wg, pv);
  let xb = paramX(p);
  let sb = paramS(p);
  var dg = 0.0;
  var db = 0.0;
  for (var j = select(${per}, tid, pv); j < ${per}; j = j + ${WG}) {
    let o = xb + otherX(j);
    let s = sb + otherS(j);
    let g = dy[o];
    db = db + g;
    dg = dg + g * (x[o] - aux[s]) * aux[${2 * S} + s];
  }
  let r = reduce2(tid, dg, db);
  if (tid == 0 && pv) {
    result[${2 * S} + p] = r.x;
    result[${2 * S + P} + p] = r.y;
  }`;
    workgroups = Math.max(workgroups, P);
  }
  const code = `${viewFns(v)}
${extra}
${MAIN} {
  ${WG_INDEX}
  let wgs = i32(numWorkgroups.x * numWorkgroups.y * numWorkgroups.z);
  ${stat}
  ${params}
}`;
  return new NormProgram(`bcombine_${v.key}_${v.chunks}_${center}_${hasGamma}_${paramSums}`, 2 * S + 2 * P, names,
                         workgroups, code);
}

function dxProgram(v: View, hasGamma: boolean): NormProgram {
  const S = v.S;
  const code = `${viewFns(v)}
${MAIN} {
  if (index < ${v.size}) {
    let s = iStat(index);
    let inv = aux[${2 * S} + s];
    let xhat = (x[index] - aux[s]) * inv;
    let g = dy[index]${hasGamma ? ' * gamma[iParam(index)]' : ''};
    result[index] = (g - coef[s] - xhat * coef[${S} + s]) * inv;
  }
}`;
  return new NormProgram(`dx_${v.key}_${hasGamma}`, v.size, ['dy', 'x', 'aux', 'coef', ...(hasGamma ? ['gamma'] : [])],
                         Math.ceil(v.size / WG), code);
}

export function backwardKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo[] {
  const b = backend as GpuBackend;
  const a = attrs as unknown as BackwardAttrs;
  const v = viewOf(a);
  const {dy, x, aux, gamma} = inputs;
  const hasGamma = gamma != null;
  const gammaHere = hasGamma && v.paramInStat;
  const part = run(b, backwardSumsProgram(v, gammaHere), [dy!, x!, aux!, ...(gammaHere ? [gamma!] : [])]);
  const paramSums = a.withGamma || a.withBeta;
  const gammaAfter = hasGamma && !v.paramInStat;
  const combineInputs = [part, ...(gammaAfter ? [gamma!] : []), ...(paramSums && v.paramInStat ? [dy!, x!, aux!] : [])];
  const coef = run(b, combineProgram(v, a.center, hasGamma, paramSums), combineInputs);
  b.disposeData(part.dataId);
  const dx = run(b, dxProgram(v, hasGamma), [dy!, x!, aux!, coef, ...(hasGamma ? [gamma!] : [])]);
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
  const s = pad4(a.shape);
  const ps = strides(pad4(a.paramShape));
  const {x, mean, variance, gamma, beta} = inputs;
  const size = sizeOf(s);
  const names = ['x', 'mean', 'variance', ...(gamma ? ['gamma'] : []), ...(beta ? ['beta'] : [])];
  const code = `${indexFn('iParam', s, ps)}
${MAIN} {
  if (index < ${size}) {
    let p = iParam(index);
    var y = (x[index] - mean[p]) * (1.0 / sqrt(variance[p] + ${f32(a.epsilon)}));
    ${gamma ? 'y = y * gamma[p];' : ''}
    ${beta ? 'y = y + beta[p];' : ''}
    result[index] = y;
  }
}`;
  const program = new NormProgram(`scaleshift_${s.join('x')}_${pad4(a.paramShape).join('x')}_${a.epsilon}_${!!gamma}_${!!beta}`,
                                  size, names, Math.ceil(size / WG), code);
  const ins = [x!, mean!, variance!, ...(gamma ? [gamma] : []), ...(beta ? [beta] : [])];
  const y = run(b, program, ins);
  return {dataId: y.dataId, shape: x!.shape, dtype: 'float32'};
}
