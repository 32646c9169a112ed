/**
 * An independent float64 reference of every layer, in plain TypeScript: no
 * tfjs and nothing imported from src/. Written from PyTorch's definitions
 * (torch/nn/functional.py and its docs), element by element:
 *
 *   - a "group" is the set of elements one statistic is computed over
 *     (BatchNorm: a channel; InstanceNorm: a sample's channel; GroupNorm: a
 *     sample's group of channels; LayerNorm/RMSNorm: a sample's normalized dims);
 *   - mean and biased variance in two passes over the exact float64 values;
 *   - y = (x - mean) / sqrt(var + eps) * gamma + beta (RMSNorm: no mean);
 *   - gradients of L = sum(y * dy) from the Jacobian of the normalization,
 *     dxhat_j/dx_i = (delta_ij - 1/n - xhat_i xhat_j / n) / std (RMSNorm:
 *     delta_ij - xhat_i xhat_j / n), applied group by group;
 *   - running statistics: running += factor * (batch - running), factor =
 *     momentum or 1 / num_batches_tracked, the variance unbiased (n / (n - 1));
 *     InstanceNorm averages the per-instance statistics over the batch.
 *
 * Each result also carries a magnitude per quantity: the largest sum of
 * absolute values of the terms a float32 computation of it adds up, which is
 * what float32 rounding error is proportional to (see test/properties.test.ts).
 */

/**
 * What one normalization computes, described by axes rather than by layer
 * name (test/catalog.ts maps each layer's arguments to one):
 *
 *   - statistics vary along `statAxes` and, when `channelAxis` is set, along
 *     `numGroups` groups of consecutive channels: BatchNorm: statAxes [],
 *     numGroups = C; InstanceNorm: statAxes [0], numGroups = C; GroupNorm:
 *     statAxes [0]; LayerNorm/RMSNorm: statAxes = the axes not normalized, no
 *     channel axis;
 *   - gamma/beta vary along `paramAxes`;
 *   - `center: false` (RMSNorm) divides by the root mean square, no mean.
 */
export interface NormalizeSpec {
  kind: 'normalize';
  shape: number[];
  /** Non-negative axes the statistics vary along (besides the channel groups), ascending. */
  statAxes: number[];
  /** Non-negative channel axis split into `numGroups` groups, or null. */
  channelAxis: number | null;
  numGroups?: number;
  /** Non-negative axes gamma/beta vary along, ascending. */
  paramAxes: number[];
  center: boolean;
  epsilon: number;
}

/** LocalResponseNorm: a window of `size` channels along `channelAxis` (non-negative). */
export interface WindowSpec {
  kind: 'window';
  shape: number[];
  channelAxis: number;
  size: number;
  alpha: number;
  beta: number;
  k: number;
}

export type RefSpec = NormalizeSpec | WindowSpec;

export interface RunningState {
  mean: number[];
  variance: number[];
  numBatchesTracked: number;
}

export interface RefResult {
  y: Float64Array;
  dx: Float64Array | null;
  dgamma: Float64Array | null;
  dbeta: Float64Array | null;
  /** Batch mean and UNBIASED variance per parameter (BatchNorm; InstanceNorm: averaged over the batch). */
  batchMean: Float64Array | null;
  batchVarUnbiased: Float64Array | null;
  /** Magnitudes float32 rounding error scales with. */
  scale: {y: number; dx: number; dgamma: number; dbeta: number};
}

function strides(shape: number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** For each flat element: its statistic group and its parameter (gamma/beta) index. */
export function layout(spec: NormalizeSpec): {group: Int32Array; param: Int32Array; numGroups: number; numParams: number} {
  const {shape, statAxes, paramAxes, channelAxis} = spec;
  const st = strides(shape);
  const n = sizeOf(shape);
  const group = new Int32Array(n);
  const param = new Int32Array(n);
  const coord = (i: number, a: number) => Math.floor(i / st[a]) % shape[a];
  const C = channelAxis === null ? 1 : shape[channelAxis];
  const G = channelAxis === null ? 1 : spec.numGroups!;
  const numParams = sizeOf(paramAxes.map(a => shape[a]));
  const numGroups = sizeOf(statAxes.map(a => shape[a])) * G;
  for (let i = 0; i < n; i++) {
    let p = 0;
    for (const a of paramAxes) p = p * shape[a] + coord(i, a);
    let g = 0;
    for (const a of statAxes) g = g * shape[a] + coord(i, a);
    if (channelAxis !== null) g = g * G + Math.floor(coord(i, channelAxis) / (C / G));
    param[i] = p;
    group[i] = g;
  }
  return {group, param, numGroups, numParams};
}

/** Number of elements each statistic is computed over. */
export function groupSize(spec: NormalizeSpec): number {
  const perChannelGroup = spec.channelAxis === null ? 1 : spec.shape[spec.channelAxis] / spec.numGroups!;
  const other = spec.shape.filter((_, a) => a !== spec.channelAxis && !spec.statAxes.includes(a));
  return sizeOf(other) * perChannelGroup;
}

/**
 * Training-mode forward and backward (batch statistics; LayerNorm/GroupNorm/
 * RMSNorm are the same in both modes) of L = sum(y * dy).
 * gamma/beta: flat, null when absent.
 */
export function referenceTrain(spec: RefSpec, x: ArrayLike<number>, dy: ArrayLike<number> | null,
                               gamma: ArrayLike<number> | null, beta: ArrayLike<number> | null): RefResult {
  if (spec.kind === 'window') return referenceLRN(spec, x, dy);
  const n = x.length;
  const {group, param, numGroups, numParams} = layout(spec);
  const {center} = spec;
  const count = new Float64Array(numGroups);
  const mean = new Float64Array(numGroups);
  const variance = new Float64Array(numGroups);
  for (let i = 0; i < n; i++) count[group[i]]++;
  if (center) {
    for (let i = 0; i < n; i++) mean[group[i]] += x[i];
    for (let g = 0; g < numGroups; g++) mean[g] /= count[g];
  }
  for (let i = 0; i < n; i++) variance[group[i]] += (x[i] - mean[group[i]]) ** 2;
  for (let g = 0; g < numGroups; g++) variance[g] /= count[g];
  const invStd = variance.map(v => 1 / Math.sqrt(v + spec.epsilon));
  const xhat = new Float64Array(n);
  const y = new Float64Array(n);
  let yScale = 0;
  for (let i = 0; i < n; i++) {
    const g = group[i];
    const p = param[i];
    xhat[i] = (x[i] - mean[g]) * invStd[g];
    const gm = gamma ? gamma[p] : 1;
    const bt = beta ? beta[p] : 0;
    y[i] = xhat[i] * gm + bt;
    yScale = Math.max(yScale, Math.abs(xhat[i] * gm) + Math.abs(bt));
  }

  let dx: Float64Array | null = null;
  let dgamma: Float64Array | null = null;
  let dbeta: Float64Array | null = null;
  const scale = {y: yScale, dx: 0, dgamma: 0, dbeta: 0};
  if (dy) {
    // g = dy * gamma; dx_i = invStd (g_i - mean(g) - xhat_i mean(g xhat)) per group (RMSNorm: no mean(g)).
    const sumG = new Float64Array(numGroups);
    const sumGX = new Float64Array(numGroups);
    const gAbsMax = new Float64Array(numGroups);
    const gv = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      gv[i] = dy[i] * (gamma ? gamma[param[i]] : 1);
      sumG[group[i]] += gv[i];
      sumGX[group[i]] += gv[i] * xhat[i];
      gAbsMax[group[i]] = Math.max(gAbsMax[group[i]], Math.abs(gv[i]));
    }
    dx = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const g = group[i];
      const c = count[g];
      dx[i] = invStd[g] * (gv[i] - (center ? sumG[g] / c : 0) - xhat[i] * sumGX[g] / c);
    }
    // |g_i| + mean|g| + |xhat_i| mean|g xhat| <= max|g| (2 + max xhat^2), times invStd.
    const xhatMax = xhat.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    for (let g = 0; g < numGroups; g++) scale.dx = Math.max(scale.dx, invStd[g] * gAbsMax[g] * (2 + xhatMax ** 2));
    if (gamma) {
      dgamma = new Float64Array(numParams);
      const mag = new Float64Array(numParams);
      for (let i = 0; i < n; i++) {
        dgamma[param[i]] += dy[i] * xhat[i];
        mag[param[i]] += Math.abs(dy[i] * xhat[i]);
      }
      scale.dgamma = Math.max(...mag);
    }
    if (beta) {
      dbeta = new Float64Array(numParams);
      const mag = new Float64Array(numParams);
      for (let i = 0; i < n; i++) {
        dbeta[param[i]] += dy[i];
        mag[param[i]] += Math.abs(dy[i]);
      }
      scale.dbeta = Math.max(...mag);
    }
  }

  let batchMean: Float64Array | null = null;
  let batchVarUnbiased: Float64Array | null = null;
  if (spec.channelAxis !== null && spec.numGroups === spec.shape[spec.channelAxis]) {
    // Per parameter (channel), where each group is one channel: BatchNorm has one group per channel,
    // InstanceNorm averages N groups.
    batchMean = new Float64Array(numParams);
    batchVarUnbiased = new Float64Array(numParams);
    const perParam = numGroups / numParams;
    for (let g = 0; g < numGroups; g++) {
      const p = g % numParams;
      batchMean[p] += mean[g] / perParam;
      batchVarUnbiased[p] += variance[g] * count[g] / (count[g] - 1) / perParam;
    }
  }
  return {y, dx, dgamma, dbeta, batchMean, batchVarUnbiased, scale};
}

/** PyTorch's running-statistics update after one training batch; returns the new state. */
export function updateRunning(state: RunningState, r: RefResult, momentum: number | null): RunningState {
  const count = state.numBatchesTracked + 1;
  const factor = momentum === null ? 1 / count : momentum;
  return {
    mean: state.mean.map((m, p) => (1 - factor) * m + factor * r.batchMean![p]),
    variance: state.variance.map((v, p) => (1 - factor) * v + factor * r.batchVarUnbiased![p]),
    numBatchesTracked: count,
  };
}

/** Inference with running statistics (BatchNorm/InstanceNorm with trackRunningStats), and its error magnitude. */
export function referenceEval(spec: NormalizeSpec, x: ArrayLike<number>, state: RunningState,
                              gamma: ArrayLike<number> | null, beta: ArrayLike<number> | null): {y: Float64Array; scale: number} {
  const {param} = layout(spec);
  const y = new Float64Array(x.length);
  let scale = 0;
  for (let i = 0; i < x.length; i++) {
    const p = param[i];
    const s = (gamma ? gamma[p] : 1) / Math.sqrt(state.variance[p] + spec.epsilon);
    const b = beta ? beta[p] : 0;
    y[i] = (x[i] - state.mean[p]) * s + b;
    scale = Math.max(scale, (Math.abs(x[i]) + Math.abs(state.mean[p])) * Math.abs(s) + Math.abs(b));
  }
  return {y, scale};
}

/**
 * LocalResponseNorm: b_c = a_c d_c^-beta, d_c = k + alpha/size sum_{c' = c - floor(size/2)}^{c + floor((size-1)/2)} a_c'^2
 * (zero outside the channels), and its gradient.
 */
function referenceLRN(spec: WindowSpec, x: ArrayLike<number>, dy: ArrayLike<number> | null): RefResult {
  const {shape, channelAxis: ch, size, alpha, beta, k} = spec;
  const C = shape[ch];
  const inner = sizeOf(shape.slice(ch + 1));
  const outer = sizeOf(shape.slice(0, ch));
  const lo = Math.floor(size / 2);
  const hi = Math.floor((size - 1) / 2);
  const n = x.length;
  const y = new Float64Array(n);
  const dx = dy ? new Float64Array(n) : null;
  const scale = {y: 0, dx: 0, dgamma: 0, dbeta: 0};
  const idx = (o: number, c: number, i: number) => (o * C + c) * inner + i;
  const d = new Float64Array(C);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let c2 = Math.max(0, c - lo); c2 <= Math.min(C - 1, c + hi); c2++) s += x[idx(o, c2, i)] ** 2;
        d[c] = k + alpha / size * s;
        const e = idx(o, c, i);
        y[e] = x[e] * d[c] ** -beta;
        scale.y = Math.max(scale.y, Math.abs(y[e]));
      }
      if (dx && dy) {
        // dL/da_j = g_j d_j^-beta + sum_{c: j in W(c)} g_c a_c (-beta) d_c^(-beta-1) (2 alpha / size) a_j
        for (let j = 0; j < C; j++) {
          const e = idx(o, j, i);
          let v = dy[e] * d[j] ** -beta;
          let mag = Math.abs(v);
          for (let c = Math.max(0, j - hi); c <= Math.min(C - 1, j + lo); c++) {
            const ec = idx(o, c, i);
            const t = dy[ec] * x[ec] * -beta * d[c] ** (-beta - 1) * 2 * alpha / size * x[e];
            v += t;
            mag += Math.abs(t);
          }
          dx[e] = v;
          scale.dx = Math.max(scale.dx, mag);
        }
      }
    }
  }
  return {y, dx, dgamma: null, dbeta: null, batchMean: null, batchVarUnbiased: null, scale};
}
