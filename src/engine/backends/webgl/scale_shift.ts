/**
 * TfjsNormScaleShift on WebGL: inference with given (running) statistics in
 * ONE program, y = (x - mean) * (inversesqrt(variance + eps) * gamma) + beta,
 * every per-parameter value read in place (no folded scale/shift tensors).
 */
import * as tf from '@tensorflow/tfjs';
import {LayoutAttrs, ScaleShiftAttrs} from '../../kernels';
import {ACT_GLSL, actGlsl} from './activation';
import {elementwise, viewOf} from './layout';
import {Runner, WebGLBackend, lit} from './webgl_backend';

interface Args {
  inputs: Record<string, tf.TensorInfo | undefined>;
  backend: unknown;
  attrs?: unknown;
}

export function scaleShiftKernel({inputs, backend, attrs}: Args): tf.TensorInfo {
  const a = attrs as ScaleShiftAttrs;
  // The statistics are per parameter here: the parameters' layout is the statistics' layout.
  const v = viewOf({shape: a.shape, statShape: a.paramShape, paramShape: a.paramShape} as LayoutAttrs);
  const {x, mean, variance, gamma, beta} = inputs;
  const names = ['x', 'mean', 'variance'];
  const ins = [x!, mean!, variance!];
  if (gamma) {
    names.push('gamma');
    ins.push(gamma);
  }
  if (beta) {
    names.push('beta');
    ins.push(beta);
  }
  const r = new Runner(backend as WebGLBackend);
  try {
    const param = ['getMean($p)', `inversesqrt(getVariance($p) + ${lit(a.epsilon)})`];
    if (gamma) param.push('getGamma($p)');
    if (beta) param.push('getBeta($p)');
    const ew = elementwise(v, r.storedShape(x!), {
      stat: [], param, elem: ['getX($i)'],
      value: ([], [mean, inv, ...gb], [xv]) => actGlsl(a.activation,
        `(${xv} - ${mean}) * (${inv}${gamma ? ` * ${gb[0]}` : ''})${beta ? ` + ${gb[gamma ? 1 : 0]}` : ''}`),
    });
    const y = r.run({variableNames: names, ...ew, userCode: `${a.activation ? ACT_GLSL : ''}${ew.userCode}`}, ins);
    return Runner.reshaped(y, x!.shape);
  } finally {
    r.done();
  }
}
