/**
 * The fused kernels for tfjs' 'cpu' backend (names and attributes: ../kernels.ts).
 *
 * tfjs' cpu kernels are plain JavaScript loops, one full pass over the tensor
 * per op (and a transpose before every reduction over a non-innermost axis).
 * The closed-form normalization is a handful of passes over one tensor, so on
 * cpu it runs as three kernels that loop over the canonical view (plan.ts)
 * directly: forward 3 passes, backward 2, scale-and-shift 1.
 *
 * Statistics and gradient sums accumulate in float64 (JS numbers), so results
 * match PyTorch's float64 references as closely as the float32 op path does.
 * A test holds these kernels and the op composition to the same numbers
 * (test/fused_kernels.test.ts).
 */
import * as tf from '@tensorflow/tfjs';

import {
  BACKWARD_KERNEL, BackwardAttrs, FORWARD_KERNEL, ForwardAttrs, LayoutAttrs, SCALE_SHIFT_KERNEL, ScaleShiftAttrs,
} from '../kernels';

/** The part of tfjs' cpu backend the kernels use. */
interface CpuBackend {
  data: {get(dataId: tf.DataId): {values: ArrayLike<number>}};
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

/**
 * Loop geometry: the shape padded to rank 4, seen as `rows` rows of `inner`
 * elements. Row r starts at stat index rowStat[r] and param index rowParam[r];
 * along a row the stat/param index advances by statStep/paramStep (0 or 1).
 */
interface Layout {
  size: number;
  rows: number;
  inner: number;
  rowStat: Int32Array;
  rowParam: Int32Array;
  statStep: number;
  paramStep: number;
  statSize: number;
  paramSize: number;
}

function pad4(s: number[]): number[] {
  return [1, 1, 1, 1].slice(s.length).concat(s);
}

/** Row-major strides of `shape` with 0 for axes of size 1 (broadcast). */
function broadcastStrides(shape: number[]): number[] {
  const strides = [0, 0, 0, 0];
  let acc = 1;
  for (let i = 3; i >= 0; i--) {
    strides[i] = shape[i] === 1 ? 0 : acc;
    acc *= shape[i];
  }
  return strides;
}

function layoutOf(a: LayoutAttrs): Layout {
  if (a.shape.length > 4) throw new Error(`fused normalization kernels take rank <= 4, got shape [${a.shape}]`);
  const s = pad4(a.shape);
  const ss = broadcastStrides(pad4(a.statShape));
  const ps = broadcastStrides(pad4(a.paramShape));
  const rows = s[0] * s[1] * s[2];
  const rowStat = new Int32Array(rows);
  const rowParam = new Int32Array(rows);
  let r = 0;
  for (let i0 = 0; i0 < s[0]; i0++) {
    for (let i1 = 0; i1 < s[1]; i1++) {
      for (let i2 = 0; i2 < s[2]; i2++, r++) {
        rowStat[r] = i0 * ss[0] + i1 * ss[1] + i2 * ss[2];
        rowParam[r] = i0 * ps[0] + i1 * ps[1] + i2 * ps[2];
      }
    }
  }
  return {
    size: rows * s[3], rows, inner: s[3], rowStat, rowParam, statStep: ss[3], paramStep: ps[3],
    statSize: a.statShape.reduce((p, d) => p * d, 1),
    paramSize: a.paramShape.reduce((p, d) => p * d, 1),
  };
}

function valuesOf(backend: CpuBackend, t: tf.TensorInfo | undefined): Float32Array | null {
  return t ? backend.data.get(t.dataId).values as Float32Array : null;
}

/** Per-stat reduction size (the layout's size over the number of statistics). */
function countOf(l: Layout): number {
  return l.size / l.statSize;
}

// ---------------------------------------------------------------- forward


function forwardKernel({inputs, backend, attrs}: {inputs: tf.NamedTensorInfoMap; backend: unknown;
                                                   attrs?: tf.NamedAttrMap}): tf.TensorInfo[] {
  const cpu = backend as CpuBackend;
  const a = attrs as unknown as ForwardAttrs;
  const l = layoutOf(a);
  const x = valuesOf(cpu, inputs.x)!;
  const gamma = valuesOf(cpu, inputs.gamma);
  const beta = valuesOf(cpu, inputs.beta);
  const {rows, inner, rowStat, statStep, statSize} = l;
  const n = countOf(l);

  const mean = new Float64Array(statSize);
  if (a.center) {
    for (let r = 0, i = 0; r < rows; r++) {
      const sb = rowStat[r];
      if (statStep === 0) {
        let acc = 0;
        for (let j = 0; j < inner; j++, i++) acc += x[i];
        mean[sb] += acc;
      } else {
        for (let j = 0; j < inner; j++, i++) mean[sb + j] += x[i];
      }
    }
    for (let s = 0; s < statSize; s++) mean[s] /= n;
  }
  // Second pass: sum of squared deviations (exact two-pass in float64).
  const variance = new Float64Array(statSize);
  for (let r = 0, i = 0; r < rows; r++) {
    const sb = rowStat[r];
    if (statStep === 0) {
      const m = mean[sb];
      let acc = 0;
      for (let j = 0; j < inner; j++, i++) {
        const d = x[i] - m;
        acc += d * d;
      }
      variance[sb] += acc;
    } else {
      for (let j = 0; j < inner; j++, i++) {
        const d = x[i] - mean[sb + j];
        variance[sb + j] += d * d;
      }
    }
  }
  const meanOut = new Float32Array(statSize);
  const varOut = new Float32Array(statSize);
  const aux = new Float32Array(3 * statSize);
  const invStd = new Float64Array(statSize);
  for (let s = 0; s < statSize; s++) {
    const v = variance[s] / n;
    invStd[s] = 1 / Math.sqrt(v + a.epsilon);
    varOut[s] = v;
    meanOut[s] = mean[s];
    aux[s] = meanOut[s];
    aux[statSize + s] = mean[s] - meanOut[s];
    aux[2 * statSize + s] = invStd[s];
  }
  const y = new Float32Array(l.size);
  applyAffine(x, y, l, mean, invStd, gamma, beta);
  return [
    cpu.makeTensorInfo(a.shape, 'float32', y),
    cpu.makeTensorInfo(a.statShape, 'float32', meanOut),
    cpu.makeTensorInfo(a.statShape, 'float32', varOut),
    cpu.makeTensorInfo([3, statSize], 'float32', aux),
  ];
}

/** y = (x - shift[s]) * scale[s] * gamma[p] + beta[p]. */
function applyAffine(x: Float32Array, y: Float32Array, l: Layout, shift: Float64Array, scale: Float64Array,
                     gamma: Float32Array | null, beta: Float32Array | null): void {
  const {rows, inner, rowStat, rowParam, statStep, paramStep} = l;
  for (let r = 0, i = 0; r < rows; r++) {
    const sb = rowStat[r];
    const pb = rowParam[r];
    for (let j = 0; j < inner; j++, i++) {
      const s = sb + j * statStep;
      const p = pb + j * paramStep;
      let v = (x[i] - shift[s]) * scale[s];
      if (gamma !== null) v *= gamma[p];
      if (beta !== null) v += beta[p];
      y[i] = v;
    }
  }
}

// ---------------------------------------------------------------- backward


function backwardKernel({inputs, backend, attrs}: {inputs: tf.NamedTensorInfoMap; backend: unknown;
                                                    attrs?: tf.NamedAttrMap}): tf.TensorInfo[] {
  const cpu = backend as CpuBackend;
  const a = attrs as unknown as BackwardAttrs;
  const l = layoutOf(a);
  const dy = valuesOf(cpu, inputs.dy)!;
  const x = valuesOf(cpu, inputs.x)!;
  const aux = valuesOf(cpu, inputs.aux)!;
  const gamma = valuesOf(cpu, inputs.gamma);
  const {rows, inner, rowStat, rowParam, statStep, paramStep, statSize, paramSize} = l;
  const n = countOf(l);

  const mean = new Float64Array(statSize);
  const invStd = new Float64Array(statSize);
  for (let s = 0; s < statSize; s++) {
    mean[s] = a.center ? aux[s] + aux[statSize + s] : 0;
    invStd[s] = aux[2 * statSize + s];
  }
  // Pass 1: per-stat sums of g and g*xhat (g = dy*gamma), per-param sums of dy*xhat and dy.
  const sumG = new Float64Array(statSize);
  const sumGX = new Float64Array(statSize);
  const dgamma = new Float64Array(paramSize);
  const dbeta = new Float64Array(paramSize);
  for (let r = 0, i = 0; r < rows; r++) {
    const sb = rowStat[r];
    const pb = rowParam[r];
    for (let j = 0; j < inner; j++, i++) {
      const s = sb + j * statStep;
      const p = pb + j * paramStep;
      const d = dy[i];
      const xhat = (x[i] - mean[s]) * invStd[s];
      const g = gamma !== null ? d * gamma[p] : d;
      sumG[s] += g;
      sumGX[s] += g * xhat;
      dgamma[p] += d * xhat;
      dbeta[p] += d;
    }
  }
  for (let s = 0; s < statSize; s++) {
    sumG[s] = a.center ? sumG[s] / n : 0;
    sumGX[s] /= n;
  }
  // Pass 2: dx = invStd * (g - mean(g) - xhat * mean(g*xhat)).
  const dx = new Float32Array(l.size);
  for (let r = 0, i = 0; r < rows; r++) {
    const sb = rowStat[r];
    const pb = rowParam[r];
    for (let j = 0; j < inner; j++, i++) {
      const s = sb + j * statStep;
      const p = pb + j * paramStep;
      const is = invStd[s];
      const xhat = (x[i] - mean[s]) * is;
      const g = gamma !== null ? dy[i] * gamma[p] : dy[i];
      dx[i] = is * (g - sumG[s] - xhat * sumGX[s]);
    }
  }
  const out = [cpu.makeTensorInfo(a.shape, 'float32', dx)];
  if (a.withGamma) out.push(cpu.makeTensorInfo(a.paramShape, 'float32', Float32Array.from(dgamma)));
  if (a.withBeta) out.push(cpu.makeTensorInfo(a.paramShape, 'float32', Float32Array.from(dbeta)));
  return out;
}

// ---------------------------------------------------------------- inference


/** y = (x - mean) / sqrt(variance + eps) * gamma + beta with mean/variance/gamma/beta in paramShape. */
function scaleShiftKernel({inputs, backend, attrs}: {inputs: tf.NamedTensorInfoMap; backend: unknown;
                                                      attrs?: tf.NamedAttrMap}): tf.TensorInfo {
  const cpu = backend as CpuBackend;
  const a = attrs as unknown as ScaleShiftAttrs;
  // Statistics vary along the param axes here: use paramShape as the stat layout.
  const l = layoutOf({shape: a.shape, statShape: a.paramShape, paramShape: a.paramShape});
  const mean = valuesOf(cpu, inputs.mean)!;
  const variance = valuesOf(cpu, inputs.variance)!;
  const scale = new Float64Array(l.paramSize);
  const shift = Float64Array.from(mean);
  for (let p = 0; p < l.paramSize; p++) scale[p] = 1 / Math.sqrt(variance[p] + a.epsilon);
  const y = new Float32Array(l.size);
  applyAffine(valuesOf(cpu, inputs.x)!, y, l, shift, scale, valuesOf(cpu, inputs.gamma), valuesOf(cpu, inputs.beta));
  return cpu.makeTensorInfo(a.shape, 'float32', y);
}

/** The cpu backend's kernels, registered by register.ts. */
export const cpuKernels: tf.KernelConfig[] = [
  {kernelName: FORWARD_KERNEL, backendName: 'cpu', kernelFunc: forwardKernel as tf.KernelFunc},
  {kernelName: BACKWARD_KERNEL, backendName: 'cpu', kernelFunc: backwardKernel as tf.KernelFunc},
  {kernelName: SCALE_SHIFT_KERNEL, backendName: 'cpu', kernelFunc: scaleShiftKernel as tf.KernelFunc},
];
