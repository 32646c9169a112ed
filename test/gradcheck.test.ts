/**
 * Finite-difference gradient checks, independent of PyTorch: for a random
 * direction v, (L(p + h v) - L(p - h v)) / 2h must match <dL/dp, v> for the
 * input and for gamma and beta, with L = sum(y * dy) summed in float64.
 */
import * as tf from '@tensorflow/tfjs';
import {randoms} from './fixture_runner';
import {CATALOG, describeBackends, disposeLayer, layerFromCase, noLeak, trainStep, weight, FixtureCase} from './harness';

/** Every catalog layer's gradient-check configurations, in catalog order. */
const CASES = CATALOG.flatMap(info => info.gradcheck.map(g => ({layer: info.name, ...g})));

const H = 1e-2;

describeBackends('finite-difference gradients', () => {
  CASES.forEach((g, idx) => {
    it(`${g.layer} ${JSON.stringify(g.args)} on ${JSON.stringify(g.shape)}`, async () => {
      await noLeak(() => {
        const n = g.shape.reduce((a, b) => a * b, 1);
        const c = {layer: g.layer, args: g.args, inputShape: g.shape, gamma: null, beta: null} as unknown as FixtureCase;
        const layer = layerFromCase(c);
        const gammaV = weight(layer, 'gamma');
        const betaV = weight(layer, 'beta');
        // Non-trivial affine parameters.
        tf.tidy(() => {
          for (const [w, seed, offset] of [[gammaV, 7, 1], [betaV, 11, 0]] as const) {
            if (!w) continue;
            const shape = w.shape as number[];
            w.write(tf.tensor(randoms(shape.reduce((a, b) => a * b, 1), seed + idx, 0.5, offset), shape));
          }
        });
        const xs = randoms(n, 101 + idx, 1.5, 0.7);
        const dys = randoms(n, 202 + idx);
        const dy = tf.tensor(dys, g.shape);
        const loss = (xv: number[]): number => {
          const x = tf.tensor(xv, g.shape);
          const y = layer.apply(x, {training: true}) as tf.Tensor;
          const yv = y.dataSync();
          tf.dispose([x, y]);
          let s = 0;
          for (let i = 0; i < n; i++) s += yv[i] * dys[i];
          return s;
        };
        const x = tf.tensor(xs, g.shape);
        const r = trainStep(layer, x, dy);

        const check = (analytic: tf.Tensor, perturb: (sign: number, v: number[]) => number, size: number, what: string) => {
          const v = randoms(size, 303 + idx + what.length);
          const a = analytic.dataSync();
          let directional = 0;
          for (let i = 0; i < size; i++) directional += a[i] * v[i];
          const numeric = (perturb(1, v) - perturb(-1, v)) / (2 * H);
          const err = Math.abs(numeric - directional);
          const tol = 2e-3 * Math.max(1, Math.abs(directional));
          if (!(err <= tol)) throw new Error(`${what}: analytic ${directional}, finite difference ${numeric} (error ${err})`);
        };
        check(r.dx, (sign, v) => loss(xs.map((xi, i) => xi + sign * H * v[i])), n, 'dx');
        for (const [name, grad] of [['gamma', r.dgamma], ['beta', r.dbeta]] as const) {
          const w = weight(layer, name);
          if (!w) continue;
          const orig = Array.from(w.read().dataSync());
          check(grad!, (sign, v) => {
            tf.tidy(() => { w.write(tf.tensor(orig.map((p, i) => p + sign * H * v[i]), w.shape as number[])); });
            const l = loss(xs);
            tf.tidy(() => { w.write(tf.tensor(orig, w.shape as number[])); });
            return l;
          }, orig.length, `d${name}`);
        }
        tf.dispose([x, dy, r.y, r.dx, r.dgamma, r.dbeta].filter(t => t) as tf.Tensor[]);
        disposeLayer(layer);
      });
    });
  });
});
