/**
 * TfjsNormScaleShift on WebGL: inference with given (running) statistics in
 * ONE program, y = (x - mean) * (inversesqrt(variance + eps) * gamma) + beta,
 * every per-parameter value read in place (no folded scale/shift tensors).
 */
import * as tf from '@tensorflow/tfjs';
import {LayoutAttrs, ScaleShiftAttrs} from '../../kernels';
import {ACT_GLSL, actGlsl} from './activation';
import {elementwise, viewOf} from './layout';
import {Runner, WebGLBackend, WebGLProgram, lit, uploadPacked} from './webgl_backend';

interface Args {
  inputs: Record<string, tf.TensorInfo | undefined>;
  backend: unknown;
  attrs?: unknown;
}

/**
 * The same scale-and-shift on x as the packed texture it is (the output of a
 * packed op, as inside a model): tfjs' packed samplers, the per-parameter
 * inputs broadcast from `paramShape` (tfjs packs those small inputs), four
 * values per texel, the same arithmetic per value; no unpack program for x.
 */
function packedProgram(a: ScaleShiftAttrs, names: string[], withGamma: boolean, withBeta: boolean): WebGLProgram {
  const y = 'y';
  const out = a.activation ? `vec4(${['x', 'y', 'z', 'w'].map(l => actGlsl(a.activation, `${y}.${l}`)).join(', ')})` : y;
  return {
    variableNames: names, outputShape: a.shape, packedInputs: true, packedOutput: true,
    userCode: `${a.activation ? ACT_GLSL : ''}
    void main() {
      vec4 inv = inversesqrt(getVarianceAtOutCoords() + vec4(${lit(a.epsilon)}))${withGamma ? ' * getGammaAtOutCoords()' : ''};
      vec4 ${y} = (getXAtOutCoords() - getMeanAtOutCoords()) * inv${withBeta ? ' + getBetaAtOutCoords()' : ''};
      setOutput(${out});
    }`,
  };
}

export function scaleShiftKernel({inputs, backend, attrs}: Args): tf.TensorInfo {
  const a = attrs as ScaleShiftAttrs;
  // The statistics are per parameter here: the parameters' layout is the statistics' layout.
  const v = viewOf({shape: a.shape, statShape: a.paramShape, paramShape: a.paramShape} as LayoutAttrs);
  const {x, mean, variance, gamma, beta} = inputs;
  uploadPacked(backend as WebGLBackend, x);
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
  const b = backend as WebGLBackend;
  // x (in its own shape) packed, viewed in a's canonical shape where that is a view (tfjs' own isReshapeFree,
  // which its Reshape kernel uses), and the per-parameter inputs unpacked (their reshape to paramShape then
  // free): tfjs' packed samplers.
  const xData = b.texData.get(x!.dataId);
  if (xData.isPacked && !xData.slice && tf.webgl_util.isReshapeFree(x!.shape, a.shape) &&
      ins.slice(1).every(t => !b.texData.get(t.dataId).isPacked)) {
    const y = b.runWebGLProgram(packedProgram(a, names, gamma != null, beta != null),
                                [Runner.reshaped(x!, a.shape), ...ins.slice(1).map(t => Runner.reshaped(t, a.paramShape))],
                                'float32');
    return Runner.reshaped(y, x!.shape);
  }
  // Else one elementwise pass in x's stored shape (no reshape program), reading a packed x's texel at the
  // output texel where it is packed as the output (Runner.packedAt).
  const r = new Runner(b);
  try {
    const param = ['getMean($p)', `inversesqrt(getVariance($p) + ${lit(a.epsilon)})`];
    if (gamma) param.push('getGamma($p)');
    if (beta) param.push('getBeta($p)');
    const shape = r.storedShape(x!);
    const {packedReads, ...ew} = elementwise(v, shape, {
      stat: [], param, elem: ['getX($i)'], packed: [r.packedAt(x!, shape) ? 'x' : null],
      value: ([], [mean, inv, ...gb], [xv]) => actGlsl(a.activation,
        `(${xv} - ${mean}) * (${inv}${gamma ? ` * ${gb[0]}` : ''})${beta ? ` + ${gb[gamma ? 1 : 0]}` : ''}`),
    });
    const y = r.run({variableNames: names, ...ew, userCode: `${a.activation ? ACT_GLSL : ''}${ew.userCode}`}, ins,
                    packedReads.length ? [x!] : []);
    return Runner.reshaped(y, x!.shape);
  } finally {
    r.done();
  }
}
