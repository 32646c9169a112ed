/**
 * The fused kernels once for every backend that stores float32 tensors as
 * flat arrays (cpu: JavaScript arrays; wasm: its heap). A backend supplies a
 * {@link Storage}: how to read an input, make an output, and which
 * implementation (SIMD module or JavaScript loops) runs. Outputs are made and
 * scratch reserved before any array is read, because on the wasm backend both
 * can grow the heap, which detaches earlier views.
 */
import * as tf from '@tensorflow/tfjs';
import {
  BackwardAttrs, ForwardAttrs, LayoutAttrs, LrnAttrs, ScaleShiftAttrs,
} from '../kernels';
import {geometryOf, statToParam} from './geometry';
import {jsEpilogue, updateRunning} from './norm_impl';
import {Selected} from './simd/select';

type TypedArray = Float32Array | Int32Array;

/** What a backend gives the kernels. */
export interface Storage {
  /** A new output tensor. */
  output(shape: number[], dtype: 'float32' | 'int32'): tf.TensorInfo;
  /** The flat values of a tensor (input, or output made by `output`). Valid until the next `output` or reserve. */
  view(t: tf.TensorInfo): TypedArray;
  /** The implementation to run. */
  select(): Selected;
}

/** Arguments of a kernel function (inputs by name; absent optional ones are undefined). */
export interface KernelArgs {
  inputs: Record<string, tf.TensorInfo>;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function f32(st: Storage, t: tf.TensorInfo | null | undefined): Float32Array | null {
  return t ? st.view(t) as Float32Array : null;
}

export function forwardBody(st: Storage, {inputs, attrs}: KernelArgs): tf.TensorInfo[] {
  const a = attrs as unknown as ForwardAttrs;
  const g = geometryOf(a);
  const running = inputs.runningMean != null;
  const outs = [
    st.output(inputs.x.shape, 'float32'), st.output(a.statShape, 'float32'), st.output(a.statShape, 'float32'),
    st.output([3, g.statSize], 'float32'),
  ];
  if (running) {
    outs.push(st.output(inputs.runningMean.shape, 'float32'), st.output(inputs.runningVariance.shape, 'float32'),
              st.output([], 'int32'));
  }
  const residual = inputs.residual != null;
  if (residual) {
    if (size(inputs.residual.shape) !== size(inputs.x.shape)) throw new Error('TfjsNormForward: residual size mismatch');
    outs.push(st.output(inputs.x.shape, 'float32'));
  }
  const epilogue = residual || a.activation != null;
  const sel = st.select();
  sel.runner?.reserve(g);
  try {
    const io = {
      x: f32(st, inputs.x)!, gamma: f32(st, inputs.gamma), beta: f32(st, inputs.beta), y: f32(st, outs[0])!,
      mean: f32(st, outs[1])!, variance: f32(st, outs[2])!, aux: f32(st, outs[3])!,
    };
    if (epilogue) {
      // On the SIMD module: the epilogue as its elementwise passes around its passes; on the JS loops, inside them.
      const sum = residual ? f32(st, outs[outs.length - 1]) : null;
      if (sel.runner) {
        sel.runner.forwardEpilogue(g, io, a.epsilon, a.center, a.activation ?? null, f32(st, inputs.residual), sum);
      } else {
        jsEpilogue.forward(g, io, a.epsilon, a.center, a.activation ?? null, f32(st, inputs.residual), sum);
      }
    } else {
      sel.impl.forward(g, io, a.epsilon, a.center);
    }
    if (running) {
      const batches = st.view(inputs.numBatchesTracked)[0];
      updateRunning({
        mean: f32(st, inputs.runningMean)!, variance: f32(st, inputs.runningVariance)!, batches,
        momentum: a.momentum ?? null, statToParam: statToParam(a), newMean: f32(st, outs[4])!,
        newVariance: f32(st, outs[5])!,
      }, io.mean, io.variance, g.count);
      st.view(outs[6])[0] = batches + 1;
    }
  } finally {
    sel.runner?.release();
  }
  return outs;
}

export function backwardBody(st: Storage, {inputs, attrs}: KernelArgs): tf.TensorInfo[] {
  const a = attrs as unknown as BackwardAttrs;
  const g = geometryOf(a);
  const outs = [st.output(inputs.dy.shape, 'float32')];
  if (a.withGamma) outs.push(st.output(inputs.gamma.shape, 'float32'));
  if (a.withBeta) outs.push(st.output(a.betaShape ?? a.paramShape, 'float32'));
  const act = a.activation ?? null;
  const sel = st.select();
  sel.runner?.reserve(g);
  try {
    const io = {
      dy: f32(st, inputs.dy)!, x: f32(st, inputs.x)!, aux: f32(st, inputs.aux)!, gamma: f32(st, inputs.gamma),
      dx: f32(st, outs[0])!, dgamma: a.withGamma ? f32(st, outs[1]) : null,
      dbeta: a.withBeta ? f32(st, outs[outs.length - 1]) : null,
    };
    if (act && sel.runner) sel.runner.backwardEpilogue(g, io, a.center, act, f32(st, inputs.beta), f32(st, inputs.y));
    else if (act) jsEpilogue.backward(g, io, a.center, act, f32(st, inputs.beta));
    else sel.impl.backward(g, io, a.center);
  } finally {
    sel.runner?.release();
  }
  return outs;
}

export function scaleShiftBody(st: Storage, {inputs, attrs}: KernelArgs): tf.TensorInfo {
  const a = attrs as unknown as ScaleShiftAttrs;
  // Statistics vary along the param axes here: the parameters' layout is the statistics' layout.
  const g = geometryOf({shape: a.shape, statShape: a.paramShape, paramShape: a.paramShape} as LayoutAttrs);
  const y = st.output(inputs.x.shape, 'float32');
  const act = a.activation ?? null;
  const sel = st.select();
  sel.runner?.reserve(g);
  try {
    const io = {
      x: f32(st, inputs.x)!, mean: f32(st, inputs.mean)!, variance: f32(st, inputs.variance)!,
      gamma: f32(st, inputs.gamma), beta: f32(st, inputs.beta), y: f32(st, y)!,
    };
    if (act && sel.runner) sel.runner.scaleShiftEpilogue(g, io, a.epsilon, act);
    else if (act) jsEpilogue.scaleShift(g, io, a.epsilon, act);
    else sel.impl.scaleShift(g, io, a.epsilon);
  } finally {
    sel.runner?.release();
  }
  return y;
}

export function lrnBody(st: Storage, {inputs, attrs}: KernelArgs, backward: boolean): tf.TensorInfo {
  const l = attrs as unknown as LrnAttrs;
  if (size(inputs.x.shape) !== l.outer * l.C * l.inner) throw new Error('LocalResponseNorm kernel: size mismatch');
  const out = st.output(inputs.x.shape, 'float32');
  const sel = st.select();
  sel.runner?.lrnReserve(l);
  try {
    sel.impl.lrn(l, {x: f32(st, inputs.x)!, dy: backward ? f32(st, inputs.dy)! : undefined, out: f32(st, out)!});
  } finally {
    sel.runner?.release();
  }
  return out;
}
