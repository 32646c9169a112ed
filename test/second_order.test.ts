/**
 * Second-order gradients (a gradient of a gradient: WGAN-GP's penalty,
 * tf.grad inside tf.grad) of every layer and op, on every backend and path:
 *
 * - against PyTorch 1.13's float64 double backward (fixtures/second_order.py):
 *   L = sum(head(y) * w), G = dL/dx, P = sum(G^2); dP/dx, dP/dgamma, dP/dbeta;
 * - against finite differences of our own first-order gradients (the fast
 *   path): dP/dx = 2 H G and dP/dgamma = 2 d(dL/dgamma)/dx . G are directional
 *   derivatives of the first-order gradients along G;
 * - a third-order smoke check;
 * - first-order training still runs the fused kernels, and only the backward
 *   of a backward recomputes as ops;
 * - a small WGAN-GP critic with LayerNorm trained for a few steps, and one
 *   step's gradients against the same critic with a plain-op LayerNorm.
 *
 * cpu runs twice: fused kernels (default) and `TFJS_NORM_FUSED` off (op path).
 * SECOND_ORDER_REPORT=1 prints the measured worst errors.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as path from 'path';
import * as tfn from '../src';
import type {LayerVariable} from '@tensorflow/tfjs-layers/dist/variables';
import {describeBackends, disposeLayer, noLeak} from './harness';

interface SecondOrderCase {
  name: string;
  layer: string;
  args: Record<string, any>;
  head: 'linear' | 'sin';
  inputShape: number[];
  x: number[];
  w: number[];
  gamma: number[] | null;
  beta: number[] | null;
  runningMean: number[] | null;
  runningVar: number[] | null;
  y: number[];
  G: number[];
  P: number;
  dPdx: number[];
  dPdgamma: number[] | null;
  dPdbeta: number[] | null;
}

const FIXTURE: {torchVersion: string; cases: SecondOrderCase[]} =
  JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'second_order.json'), 'utf8'));
const CASES = FIXTURE.cases;
const REPORT = process.env.SECOND_ORDER_REPORT === '1';

// ------------------------------------------------------------------ helpers

const paramShape = (c: SecondOrderCase): number[] => {
  const rank = c.inputShape.length;
  if (c.layer === 'LayerNorm' || c.layer === 'RMSNorm') {
    const axes = (Array.isArray(c.args.axis) ? c.args.axis : [c.args.axis]).map((a: number) => (a + rank) % rank);
    return axes.sort((a: number, b: number) => a - b).map((a: number) => c.inputShape[a]);
  }
  return [c.inputShape[c.args.axis === 1 ? 1 : rank - 1]];
};

/** The case's op as a function of x, gamma, beta (null where the case has none). */
function opOf(c: SecondOrderCase): (x: tf.Tensor, gamma: tf.Tensor | null, beta: tf.Tensor | null) => tf.Tensor {
  const a = c.args;
  switch (c.layer) {
    case 'BatchNorm':
      if (a.mode === 'inference') {
        return (x, gamma, beta) => tf.tidy(() => tfn.ops.batchNorm(x, {
          axis: a.axis, epsilon: a.epsilon, gamma, beta,
          mean: tf.tensor1d(c.runningMean!), variance: tf.tensor1d(c.runningVar!)}));
      }
      return (x, gamma, beta) => tfn.ops.batchNorm(x, {axis: a.axis, epsilon: a.epsilon, gamma, beta, training: true});
    case 'InstanceNorm':
      return (x, gamma, beta) => tfn.ops.instanceNorm(x, {axis: a.axis, epsilon: a.epsilon, gamma, beta});
    case 'GroupNorm':
      return (x, gamma, beta) => tfn.ops.groupNorm(x, {numGroups: a.numGroups, axis: a.axis, epsilon: a.epsilon, gamma, beta});
    case 'LayerNorm':
      return (x, gamma, beta) => tfn.ops.layerNorm(x, {axis: a.axis, epsilon: a.epsilon, gamma, beta});
    case 'RMSNorm':
      return (x, gamma) => tfn.ops.rmsNorm(x, {axis: a.axis, epsilon: a.epsilon, gamma});
    case 'LocalResponseNorm':
      return x => tfn.ops.localResponseNorm(x, {size: a.size, alpha: a.alpha, beta: a.beta, k: a.k, axis: a.axis});
    default:
      throw new Error(`unknown layer ${c.layer}`);
  }
}

/** The case's layer, built, with the case's gamma/beta (and running statistics). */
function layerOf(c: SecondOrderCase): {layer: tf.layers.Layer; training: boolean} {
  const {mode, ...args} = c.args;
  const affine = c.gamma != null;
  const ctor: Record<string, () => tf.layers.Layer> = {
    BatchNorm: () => tfn.layers.batchNorm({...args, affine, trackRunningStats: mode === 'inference'}),
    InstanceNorm: () => tfn.layers.instanceNorm({...args, affine}),
    GroupNorm: () => tfn.layers.groupNorm({...args, affine} as tfn.GroupNormArgs),
    LayerNorm: () => tfn.layers.layerNorm({...args, affine, bias: c.beta != null}),
    RMSNorm: () => tfn.layers.rmsNorm({...args, affine}),
    LocalResponseNorm: () => tfn.layers.localResponseNorm(args as tfn.LocalResponseNormArgs),
  };
  const layer = ctor[c.layer]();
  layer.build(c.inputShape);
  const l = layer as unknown as Record<string, {write(t: tf.Tensor): void; shape: number[]} | null>;
  tf.tidy(() => {
    if (c.gamma) l.gamma!.write(tf.tensor(c.gamma, l.gamma!.shape));
    if (c.beta) l.beta!.write(tf.tensor(c.beta, l.beta!.shape));
    if (c.runningMean) l.movingMean!.write(tf.tensor1d(c.runningMean));
    if (c.runningVar) l.movingVariance!.write(tf.tensor1d(c.runningVar));
  });
  return {layer, training: mode !== 'inference'};
}

const headOf = (c: SecondOrderCase) => (y: tf.Tensor) => (c.head === 'sin' ? tf.sin(y) : y);

interface Penalty {
  P: number;
  G: Float32Array;
  dPdx: Float32Array;
  dPdgamma: Float32Array | null;
  dPdbeta: Float32Array | null;
}

/**
 * P = sum(G^2), G = d sum(head(norm(x)) * w) / dx, and dP/d(x, gamma, beta)
 * through tf.variableGrads; a variable P does not depend on gets a zero
 * gradient (PyTorch's allow_unused, filled with zeros).
 */
function penaltyGrads(c: SecondOrderCase, forward: (x: tf.Tensor) => tf.Tensor, xVar: tf.Variable,
                      gamma: tf.Variable | null, beta: tf.Variable | null): Penalty {
  const w = tf.tensor(c.w, c.inputShape);
  const head = headOf(c);
  let G: Float32Array | null = null;
  const vars = [xVar, gamma, beta].filter((v): v is tf.Variable => v != null);
  const {value, grads} = tf.variableGrads(() => {
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(head(forward(x)), w)))(xVar);
    G = g.dataSync() as Float32Array;
    return tf.sum(tf.square(g)) as tf.Scalar;
  }, vars);
  const read = (v: tf.Variable | null) => (v == null ? null : grads[v.name] ? grads[v.name].dataSync() as Float32Array
                                                                         : new Float32Array(v.size));
  const out = {P: value.dataSync()[0], G: G!, dPdx: read(xVar)!, dPdgamma: read(gamma), dPdbeta: read(beta)};
  value.dispose();
  tf.dispose(grads);
  w.dispose();
  return out;
}

/** A variable holding `values` (tidy frees the initial tensor, not the variable). */
const variable = (values: number[], shape: number[]): tf.Variable => tf.tidy(() => tf.variable(tf.tensor(values, shape)));

/** A layer's weight variable by property name (LocalResponseNorm's `beta` is an exponent, not a weight). */
function weightVariable(layer: tf.layers.Layer, name: 'gamma' | 'beta'): tf.Variable | null {
  const w = (layer as unknown as Record<string, unknown>)[name] as {read?: () => tf.Tensor} | null;
  return w != null && typeof w.read === 'function' ? w.read() as tf.Variable : null;
}

function viaOp(c: SecondOrderCase): Penalty {
  const x = variable(c.x, c.inputShape);
  const ps = paramShape(c);
  const gamma = c.gamma ? variable(c.gamma, ps) : null;
  const beta = c.beta ? variable(c.beta, ps) : null;
  const op = opOf(c);
  try {
    return penaltyGrads(c, xx => op(xx, gamma, beta), x, gamma, beta);
  } finally {
    tf.dispose([x, gamma, beta].filter((v): v is tf.Variable => v != null));
  }
}

function viaLayer(c: SecondOrderCase): Penalty {
  const {layer, training} = layerOf(c);
  const x = variable(c.x, c.inputShape);
  const gamma = weightVariable(layer, 'gamma');
  const beta = weightVariable(layer, 'beta');
  try {
    return penaltyGrads(c, xx => layer.apply(xx, {training}) as tf.Tensor, x, gamma, beta);
  } finally {
    x.dispose();
    disposeLayer(layer);
  }
}

/** max |a - e| / max(1, max |e|): the error relative to the array's scale. */
function scaledError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let scale = 1;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]) / scale;
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}

const measured: Record<string, number> = {};
function note(key: string, err: number): void {
  measured[key] = Math.max(measured[key] ?? 0, err);
}
afterAll(() => {
  // eslint-disable-next-line no-console
  if (REPORT) console.log(Object.entries(measured).map(([k, v]) => `${k}: ${v.toExponential(2)}`).join('\n'));
});

/** Fused and op path where the backend has fused kernels, else the op path only. */
function pathsOf(backend: string): Array<'fused' | 'ops'> {
  return tf.getKernel('TfjsNormForward', backend) != null ? ['fused', 'ops'] : ['ops'];
}

function withPath<T>(p: 'fused' | 'ops', fn: () => T): T {
  const before = tf.env().getBool('TFJS_NORM_FUSED');
  tf.env().set('TFJS_NORM_FUSED', p === 'fused');
  try {
    return fn();
  } finally {
    tf.env().set('TFJS_NORM_FUSED', before);
  }
}

// ------------------------------------------------------------------ PyTorch fixtures

/**
 * Tolerance on max |ours - PyTorch| / max(1, max |PyTorch|) per array (P, G,
 * dP/dx, dP/dgamma, dP/dbeta), op and layer forms. Measured worst (27 cases):
 * cpu fused 3.6e-7, cpu ops 3.3e-7, wasm 6.2e-7 (float32 round-off); 8x margin.
 * The old second order (backward from saved intermediates) is off by 0.3..1.
 */
const FIXTURE_TOL = 5e-6;

describeBackends('second-order gradients vs PyTorch double backward', backend => {
  for (const p of pathsOf(backend)) {
    for (const form of ['op', 'layer'] as const) {
      describe(`${p} path, ${form}`, () => {
        for (const c of CASES) {
          it(c.name, async () => {
            const r = await noLeak(() => withPath(p, () => (form === 'op' ? viaOp(c) : viaLayer(c))), c.name);
            const key = `${backend}/${p}`;
            const errs: Array<[string, number]> = [
              ['P', scaledError([r.P], [c.P])],
              ['G', scaledError(r.G, c.G)],
              ['dPdx', scaledError(r.dPdx, c.dPdx)],
            ];
            if (c.dPdgamma) errs.push(['dPdgamma', scaledError(r.dPdgamma!, c.dPdgamma)]);
            if (c.dPdbeta) errs.push(['dPdbeta', scaledError(r.dPdbeta!, c.dPdbeta)]);
            for (const [q, e] of errs) {
              note(`${key} ${q}`, e);
              if (!(e <= FIXTURE_TOL)) throw new Error(`${q}: error ${e.toExponential(2)} x max(1, max|expected|)`);
            }
          });
        }
      });
    }
  }
});

// ------------------------------------------------------------------ finite differences

/** tf.tidy for a scope that returns plain arrays (read back inside it). */
const tidyValues = <T>(fn: () => T): T => tf.tidy(fn as unknown as () => tf.TensorContainer) as unknown as T;

/** dL/dx, dL/dgamma, dL/dbeta at x (first order: the fast path), as float64 arrays. */
function firstOrder(c: SecondOrderCase, x: ArrayLike<number>): Float64Array[] {
  return tidyValues(() => {
    const op = opOf(c);
    const head = headOf(c);
    const w = tf.tensor(c.w, c.inputShape);
    const ps = paramShape(c);
    const inputs = [tf.tensor(Array.from(x), c.inputShape)];
    if (c.gamma) inputs.push(tf.tensor(c.gamma, ps));
    if (c.beta) inputs.push(tf.tensor(c.beta, ps));
    const f = (...ins: tf.Tensor[]) => {
      const gamma = c.gamma ? ins[1] : null;
      const beta = c.beta ? ins[c.gamma ? 2 : 1] : null;
      return tf.sum(tf.mul(head(op(ins[0], gamma, beta)), w));
    };
    return tf.grads(f)(inputs).map(g => Float64Array.from(g.dataSync()));
  });
}

/**
 * Finite differences of the first-order gradients along G0 = G(x): with
 * D(h) = (F(x + s G0) - F(x - s G0)) / s, s = h / max|G0|, and F each of
 * dL/dx, dL/dgamma, dL/dbeta, D -> 2 H G0 = dP/dx (resp. dP/dgamma, dP/dbeta)
 * as h -> 0. Richardson's (4 D(h/2) - D(h)) / 3 cancels the h^2 term.
 * Measured (27 cases, cpu fused/ops, wasm; error relative to max(1, max|AD|)):
 * plain D worst 5e-3 at h = 3e-2, 5e-4 at h = 3e-3 (float32 round-off /
 * h takes over below); Richardson at h = 3e-2 worst 7.2e-5 (5.7e-5 cpu
 * fused, 4.2e-5 cpu ops, 7.2e-5 wasm). A second order that drops a term
 * (the saved-intermediates bug) is off by O(1).
 */
const FD_H = 3e-2;
const FD_TOL = 5e-4;

function directional(f: (x: number[]) => Float64Array[], x: number[], dir: ArrayLike<number>, h: number): Float64Array[] {
  let dmax = 0;
  for (let i = 0; i < dir.length; i++) dmax = Math.max(dmax, Math.abs(dir[i]));
  const D = (hh: number) => {
    const s = hh / dmax;
    const plus = f(x.map((v, i) => v + s * dir[i]));
    const minus = f(x.map((v, i) => v - s * dir[i]));
    return plus.map((p, k) => p.map((v, i) => (v - minus[k][i]) / (2 * s)));
  };
  const d1 = D(h);
  const d2 = D(h / 2);
  return d2.map((a, k) => a.map((v, i) => (4 * v - d1[k][i]) / 3));
}

describeBackends('second-order gradients vs finite differences of first-order gradients', backend => {
  for (const p of pathsOf(backend)) {
    describe(`${p} path`, () => {
      for (const c of CASES) {
        it(c.name, async () => {
          await noLeak(() => withPath(p, () => {
            const ad = viaOp(c);
            const g0 = firstOrder(c, c.x)[0];
            const fd = directional(x => firstOrder(c, x), c.x, g0, FD_H).map(d => d.map(v => 2 * v));
            const expected = [ad.dPdx, ad.dPdgamma, ad.dPdbeta].filter((a): a is Float32Array => a != null);
            ['dPdx', 'dPdgamma', 'dPdbeta'].slice(0, expected.length).forEach((q, k) => {
              const e = scaledError(fd[k], expected[k]);
              note(`${backend}/${p} FD ${q}`, e);
              if (!(e <= FD_TOL)) throw new Error(`${q}: finite differences differ by ${e.toExponential(2)} x scale`);
            });
          }), c.name);
        });
      }
    });
  }
});

// ------------------------------------------------------------------ third order

/** dP/dx at x as a function of x (op form), for differentiating once more. */
function penaltyGradFn(c: SecondOrderCase): (x: tf.Tensor) => tf.Tensor {
  const op = opOf(c);
  const head = headOf(c);
  const ps = paramShape(c);
  return x => {
    const w = tf.tensor(c.w, c.inputShape);
    const gamma = c.gamma ? tf.tensor(c.gamma, ps) : null;
    const beta = c.beta ? tf.tensor(c.beta, ps) : null;
    const G = (xx: tf.Tensor) => tf.grad((x2: tf.Tensor) => tf.sum(tf.mul(head(op(x2, gamma, beta)), w)))(xx);
    return tf.grad((xx: tf.Tensor) => tf.sum(tf.square(G(xx))))(x);
  };
}

/**
 * Smoke check of a third derivative: Q = sum(T(x) * u) with T = dP/dx and
 * u = T(x0); dQ/dx = Hess(P) u, the directional derivative of T along u.
 * Measured (Richardson, h = 3e-2): worst 7.4e-6 cpu fused, 5.8e-6 cpu ops, 8.7e-6 wasm.
 */
const THIRD_ORDER_CASES = ['layernorm_2x3x5_axis-1_sin', 'groupnorm_3x4x3_axis1_numGroups2_sin',
                           'batchnorm_2x3x4_modetraining_axis1_sin', 'localresponsenorm_2x2x2x4_axis-1_size3_sin'];

describeBackends('third-order gradients (smoke)', backend => {
  for (const p of pathsOf(backend)) {
    for (const name of THIRD_ORDER_CASES) {
      it(`${p} path, ${name}`, async () => {
        const c = CASES.find(k => k.name === name)!;
        await noLeak(() => withPath(p, () => {
          const T = penaltyGradFn(c);
          const at = (x: number[]) => tidyValues(() => [Float64Array.from(T(tf.tensor(x, c.inputShape)).dataSync())]);
          const u = at(c.x)[0];
          const third = tidyValues(() => {
            const uT = tf.tensor(Array.from(u), c.inputShape);
            return Float64Array.from(tf.grad((x: tf.Tensor) => tf.sum(tf.mul(T(x), uT)))(tf.tensor(c.x, c.inputShape))
                                       .dataSync());
          });
          if (!third.every(Number.isFinite)) throw new Error('non-finite third derivative');
          const fd = directional(at, c.x, u, FD_H)[0];
          const e = scaledError(third, fd);
          note(`${backend}/${p} third order`, e);
          if (!(e <= FD_TOL)) throw new Error(`third order: finite differences differ by ${e.toExponential(2)} x scale`);
        }), name);
      });
    }
  }
});

// ------------------------------------------------------------------ moments

describeBackends('tfn.ops.moments: gradient of a gradient', () => {
  it('matches tf.moments (autodiff of tfjs ops) at second order', async () => {
    await noLeak(() => {
      const x = tf.tensor3d([1.5, -2, 4, 0.25, 3, 5, 9, -1, 2, 7, 0.5, -3], [2, 2, 3]);
      const grads = [tfn.ops.moments, tf.moments].map(m => tidyValues(() => {
        const L = (y: tf.Tensor) => {
          const {mean, variance} = m(y, [1, 2]);
          return tf.sum(tf.sin(tf.add(variance, tf.mul(mean, 2))));
        };
        return Array.from(tf.grad((z: tf.Tensor) => tf.sum(tf.square(tf.grad(L)(z))))(x).dataSync());
      }));
      x.dispose();
      const e = scaledError(grads[0], grads[1]);
      note('moments second order vs tf.moments', e);
      expect(e).toBeLessThan(1e-5);
    });
  });
});

// ------------------------------------------------------------------ fused first order

/** Layers with fused kernels, each with an input: a first-order training step must use them. */
const FUSED_LAYERS: Array<[string, () => tf.layers.Layer, number[]]> = [
  ['BatchNorm', () => tfn.layers.batchNorm({axis: 1}), [4, 3, 5]],
  ['InstanceNorm', () => tfn.layers.instanceNorm({affine: true}), [2, 5, 3]],
  ['GroupNorm', () => tfn.layers.groupNorm({numGroups: 2}), [2, 3, 4]],
  ['LayerNorm', () => tfn.layers.layerNorm(), [3, 8]],
  ['RMSNorm', () => tfn.layers.rmsNorm(), [3, 8]],
];

describeBackends('first-order training keeps the fused kernels', backend => {
  const fused = tf.getKernel('TfjsNormForward', backend) != null;
  for (const [name, make, shape] of FUSED_LAYERS) {
    // Without fused kernels on this backend the op path is all there is: then both steps run it.
    it(`${name}: a training step runs ${fused ? 'TfjsNormForward/Backward; a penalty recomputes as ops' :
                                                  'the op path (no fused kernel registered)'}`, async () => {
      const layer = make();
      layer.build(shape);
      const x = tf.randomNormal(shape, 1, 2, 'float32', 7);
      const w = tf.randomNormal(shape, 0, 1, 'float32', 8);
      const vars = layer.trainableWeights.map(v => v.read() as tf.Variable);
      const opt = tf.train.sgd(0.01);
      const loss = () => tf.sum(tf.mul(layer.apply(x, {training: true}) as tf.Tensor, w)) as tf.Scalar;
      const penalty = () => {
        const g = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(layer.apply(xx, {training: true}) as tf.Tensor, w)))(x);
        return tf.sum(tf.square(g)) as tf.Scalar;
      };
      try {
        // tf.profile returns one shared object per engine: copy the names before profiling again.
        const first = {kernelNames: [...(await noLeak(() => tf.profile(() => { opt.minimize(loss); }), 'training step')).kernelNames]};
        const second = await noLeak(() => tf.profile(() => { opt.minimize(penalty); }), 'penalty step');
        // The op path's forward (and so its recomputation) takes an Rsqrt; the fused step has none.
        expect(second.kernelNames).toContain('Rsqrt');
        if (fused) {
          expect(first.kernelNames).toEqual(expect.arrayContaining(['TfjsNormForward', 'TfjsNormBackward']));
          expect(first.kernelNames).not.toContain('Rsqrt');
          expect(second.kernelNames).toContain('TfjsNormForward');
        } else {
          expect(first.kernelNames).not.toContain('TfjsNormForward');
          expect(first.kernelNames).toContain('Rsqrt');
        }
      } finally {
        tf.dispose([x, w]);
        opt.dispose();
        disposeLayer(layer);
      }
    });
  }
});

// ------------------------------------------------------------------ a WGAN-GP critic

/** LayerNorm over the last axis written with tf.moments: plain tfjs ops, differentiated by tfjs' autodiff. */
class PlainLayerNorm extends tf.layers.Layer {
  static className = 'PlainLayerNormForSecondOrderTest';
  private gamma: LayerVariable | null = null;
  private beta: LayerVariable | null = null;

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = inputShape as tf.Shape;
    const d = shape[shape.length - 1] as number;
    this.gamma = this.addWeight('gamma', [d], 'float32', tf.initializers.ones());
    this.beta = this.addWeight('beta', [d], 'float32', tf.initializers.zeros());
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const {mean, variance} = tf.moments(x, -1, true);
      return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), this.gamma!.read()), this.beta!.read());
    });
  }
}

/**
 * dense -> LayerNorm -> relu -> dense(1). tfjs' Relu and MatMul gradients are
 * differentiable again; LeakyReLU's is not (its gradient builds greater(x, 0),
 * and Greater has no gradient: a tfjs limit), nor are tanh/sigmoid/elu/exp
 * exactly (their gradients reuse the saved output, tfjs issue #3252).
 */
function critic(norm: tf.layers.Layer): tf.Sequential {
  return tf.sequential({layers: [
    tf.layers.dense({units: 16, inputShape: [4], kernelInitializer: tf.initializers.glorotNormal({seed: 1})}),
    norm,
    tf.layers.activation({activation: 'relu'}),
    tf.layers.dense({units: 1, kernelInitializer: tf.initializers.glorotNormal({seed: 2})}),
  ]});
}

const LAMBDA = 10;

/** WGAN-GP critic loss: mean D(fake) - mean D(real) + lambda mean((|dD/dx at interpolates| - 1)^2). */
function criticLoss(model: tf.Sequential, real: tf.Tensor, fake: tf.Tensor, t: tf.Tensor): tf.Scalar {
  const D = (x: tf.Tensor) => model.apply(x, {training: true}) as tf.Tensor;
  const interp = tf.add(tf.mul(t, real), tf.mul(tf.sub(1, t), fake));
  const g = tf.grad((x: tf.Tensor) => tf.sum(D(x)))(interp);
  const gp = tf.mean(tf.square(tf.sub(tf.sqrt(tf.sum(tf.square(g), 1)), 1)));
  return tf.add(tf.sub(tf.mean(D(fake)), tf.mean(D(real))), tf.mul(gp, LAMBDA)) as tf.Scalar;
}

/**
 * One step's gradients w.r.t. every critic weight, tfjs-norm's LayerNorm vs
 * the tf.moments one. Measured worst |a - e| / max|e| per weight:
 * 1.6e-7 cpu fused, 1.6e-7 cpu ops, 4.2e-7 wasm.
 */
const CRITIC_TOL = 1e-5;

describeBackends('WGAN-GP critic with LayerNorm', backend => {
  for (const p of pathsOf(backend)) {
    it(`${p} path: gradients match a plain-op LayerNorm; trains a few steps without leaks`, async () => {
      const real = tf.randomNormal([8, 4], 1, 1, 'float32', 11);
      const fake = tf.randomNormal([8, 4], 0, 1.5, 'float32', 12);
      const t = tf.randomUniform([8, 1], 0, 1, 'float32', 13);
      const ours = critic(tfn.layers.layerNorm());
      const plain = critic(new PlainLayerNorm({}));
      // Same weights, with gamma/beta moved off ones/zeros so their gradients are not special.
      tf.tidy(() => {
        const ws = ours.getWeights().map((w, i) => (i === 2 ? tf.add(1, tf.randomNormal(w.shape, 0, 0.3, 'float32', 14))
                                                   : i === 3 ? tf.randomNormal(w.shape, 0, 0.3, 'float32', 15) : w));
        ours.setWeights(ws);
        plain.setWeights(ws);
      });
      const varsOf = (m: tf.Sequential) => m.trainableWeights.map(w => w.read() as tf.Variable);
      try {
        await withPath(p, async () => {
          // One step's gradients, ours vs plain ops.
          const gradsOf = (m: tf.Sequential) => tidyValues(() => {
            const vars = varsOf(m);
            const {value, grads} = tf.variableGrads(() => criticLoss(m, real, fake, t), vars);
            return {loss: value.dataSync()[0], grads: vars.map(v => grads[v.name].dataSync() as Float32Array)};
          });
          const a = await noLeak(() => gradsOf(ours), 'critic gradients');
          const e = gradsOf(plain);
          expect(Math.abs(a.loss - e.loss)).toBeLessThan(1e-5 * Math.max(1, Math.abs(e.loss)));
          e.grads.forEach((eg, i) => {
            // The output bias cancels out of the loss: its gradient is 0 in both; hence the floor on the scale.
            const scale = Math.max(1e-6, eg.reduce((m, v) => Math.max(m, Math.abs(v)), 0));
            const err = eg.reduce((m, v, j) => Math.max(m, Math.abs(a.grads[i][j] - v)), 0) / scale;
            note(`${backend}/${p} critic gradient`, err);
            if (!(err <= CRITIC_TOL)) throw new Error(`weight ${ours.trainableWeights[i].name}: relative error ${err}`);
          });

          // A few Adam steps on the WGAN-GP loss: finite, the weights move, no tensor left behind.
          const opt = tf.train.adam(1e-2);
          const before = ours.getWeights().map(w => w.dataSync().slice());
          const step = () => {
            const cost = opt.minimize(() => criticLoss(ours, real, fake, t), true, varsOf(ours))!;
            const v = cost.dataSync()[0];
            cost.dispose();
            return v;
          };
          const losses = [step()]; // the first step creates Adam's slots
          for (let i = 0; i < 4; i++) losses.push(await noLeak(step, `training step ${i + 2}`));
          opt.dispose();
          expect(losses.every(Number.isFinite)).toBe(true);
          // Every weight moves but the output bias, whose gradient is exactly 0 (it cancels out of the loss).
          const last = before.length - 1;
          ours.getWeights().forEach((w, i) => {
            const moved = w.dataSync().some((v, j) => v !== before[i][j]);
            expect(`${ours.trainableWeights[i].name} moved: ${moved}`).toBe(`${ours.trainableWeights[i].name} moved: ${i !== last}`);
          });
        });
      } finally {
        tf.dispose([real, fake, t]);
        ours.dispose();
        plain.dispose();
      }
    });
  }
});
