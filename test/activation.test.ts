/**
 * Issue #17: the fused activation (`activation` on every normalization) and
 * the add-and-normalize ops/layers (AddLayerNorm, AddRMSNorm), on cpu and wasm:
 *
 * - PyTorch float64 fixtures (test/fixtures/activation.py): y, the sum, and
 *   the gradients w.r.t. x, residual, gamma and beta, through the op on the
 *   fused kernels and on the op composition, and through the layer;
 * - fused kernels == op composition on larger random inputs, every
 *   activation and layout, with the kernel path asserted (implUsage);
 * - finite-difference gradients (independent of PyTorch);
 * - serialization (tfjs' identifiers; old configs without the key), errors,
 *   foldBatchNorm keeping an activated BatchNorm, and a pre-norm transformer
 *   block built with AddLayerNorm that trains.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import * as tfn from '../src';
import {implUsage} from '../src/engine/backends/simd/select';
import {
  BACKWARD_KERNEL, EPILOGUE_AS_OPS_WITH_SIMD, FORWARD_KERNEL, FUSED_EPILOGUE_BACKENDS, layoutAttrs, runKernel,
} from '../src/engine/kernels';
import {axesPlan, planFromRoles} from '../src/engine/plan';
import {
  ActFixtures, ActInputs, ActOp, RandomCase, disposeAll, randomInputs, runActLayerCase, runActOpCase, runOp,
  valueAndGradTensors,
} from './activation_runner';
import {describeBackends, expectClose, expectValueError, noLeak, shortName} from './harness';
import {randoms, toleranceFor} from './fixture_runner';

const FIXTURES: ActFixtures =
    JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'activation.json'), 'utf8'));

/** Kernel calls so far, on any implementation. */
const kernelCalls = () => implUsage.js + implUsage.simdDirect + implUsage.simdStreamed;

/**
 * The implementations an epilogue runs on: inside the kernels around the SIMD
 * module's passes, inside the kernels on the JS loops (SIMD flag off), and as
 * ops around the plain SIMD kernels (EPILOGUE_AS_OPS_WITH_SIMD).
 */
type Mode = 'around SIMD' | 'JS loops' | 'ops around SIMD';
const MODES: Mode[] = ['around SIMD', 'JS loops', 'ops around SIMD'];

/** Runs `f` in `mode`, restoring the flags after; asserts the implementation that ran. */
function inMode<T>(mode: Mode, f: () => T): T {
  const backend = tf.getBackend();
  const simd = tf.env().getBool('TFJS_NORM_SIMD');
  const asOps = EPILOGUE_AS_OPS_WITH_SIMD.has(backend);
  tf.env().set('TFJS_NORM_SIMD', mode !== 'JS loops');
  if (mode === 'ops around SIMD') EPILOGUE_AS_OPS_WITH_SIMD.add(backend);
  else EPILOGUE_AS_OPS_WITH_SIMD.delete(backend);
  const before = {...implUsage};
  try {
    const r = f();
    if (mode === 'JS loops') expect(implUsage.js).toBeGreaterThan(before.js);
    else expect(implUsage.js).toBe(before.js);
    return r;
  } finally {
    tf.env().set('TFJS_NORM_SIMD', simd);
    if (asOps) EPILOGUE_AS_OPS_WITH_SIMD.add(backend);
    else EPILOGUE_AS_OPS_WITH_SIMD.delete(backend);
  }
}

function setFused(on: boolean): boolean {
  const prev = tf.env().getBool('TFJS_NORM_FUSED');
  tf.env().set('TFJS_NORM_FUSED', on);
  return prev;
}

type Inputs = ActInputs;

/** y (and sum) and the gradients of sum(y * dy) (+ sum(sum * dsum)) w.r.t. x, residual, gamma, beta, read back. */
function valueAndGrads(op: ActOp, args: Record<string, any>, t: Inputs, dy: tf.Tensor, dsum: tf.Tensor | null) {
  const r = valueAndGradTensors(op, args, t, dy, dsum);
  const outs = r.outs.map(o => Array.from(o.dataSync()));
  const g: Record<string, number[]> = {};
  for (const [n, v] of Object.entries(r.grads)) g[n] = Array.from(v!.dataSync());
  disposeAll(r);
  return {y: outs[0], sum: outs[1] ?? null, grads: g};
}

const ACTIVATIONS = ['relu', 'silu', 'gelu'] as const;

describeBackends(`activation and add-norm: PyTorch ${FIXTURES.torchVersion} fixtures`, backend => {
  const tol = toleranceFor(backend);
  it('has the fixture cases', () => {
    expect(FIXTURES.cases.length).toBeGreaterThanOrEqual(15);
  });
  for (const c of FIXTURES.cases) {
    for (const fused of [true, false]) {
      it(`${c.name} (op, ${fused ? 'fused kernels' : 'op composition'})`, async () => {
        const prev = setFused(fused);
        try {
          await noLeak(async () => {
            const calls0 = kernelCalls();
            const r = await runActOpCase(c, tol);
            // The path that ran: kernels where fused (cpu, wasm), none on the op composition.
            if (fused && FUSED_EPILOGUE_BACKENDS.has(backend)) expect(kernelCalls()).toBeGreaterThan(calls0);
            if (!fused) expect(kernelCalls()).toBe(calls0);
            if (r.failures.length) throw new Error(r.failures.join('\n'));
          }, c.name);
        } finally {
          setFused(prev);
        }
      });
    }
    it(`${c.name} (layer)`, async () => {
      await noLeak(async () => {
        const r = await runActLayerCase(c, tol);
        if (r.failures.length) throw new Error(r.failures.join('\n'));
      }, c.name);
    });
  }
});

const RANDOM_CASES: RandomCase[] = [
  ...ACTIVATIONS.flatMap((activation): RandomCase[] => [
    {name: `GroupNorm channels-last ${activation}`, op: 'groupNorm', shape: [2, 6, 5, 8],
     args: {numGroups: 4, axis: -1, activation}, param: [8]},
    {name: `GroupNorm channels-first ${activation}`, op: 'groupNorm', shape: [2, 8, 5, 7],
     args: {numGroups: 2, axis: 1, activation}, param: [8]},
    {name: `BatchNorm channels-last ${activation}`, op: 'batchNorm', shape: [6, 5, 40],
     args: {axis: -1, training: true, activation}, param: [40]},
    {name: `BatchNorm inference ${activation}`, op: 'batchNorm', shape: [6, 5, 12],
     args: {axis: -1, activation}, param: [12], stats: true},
    {name: `InstanceNorm channels-first ${activation}`, op: 'instanceNorm', shape: [3, 4, 9],
     args: {axis: 1, activation}, param: [4]},
    {name: `LayerNorm ${activation}`, op: 'layerNorm', shape: [4, 3, 48], args: {activation}, param: [48]},
    {name: `LayerNorm no affine ${activation}`, op: 'layerNorm', shape: [4, 33], args: {activation}, param: null},
    {name: `RMSNorm ${activation}`, op: 'rmsNorm', shape: [5, 40], args: {activation}, param: [40], beta: false},
    {name: `AddLayerNorm ${activation}`, op: 'addLayerNorm', shape: [3, 7, 32], args: {activation}, param: [32]},
    {name: `AddRMSNorm ${activation} returnSum`, op: 'addRMSNorm', shape: [3, 7, 32],
     args: {activation, returnSum: true}, param: [32], beta: false},
  ]),
  {name: 'AddLayerNorm returnSum, long rows', op: 'addLayerNorm', shape: [3, 3001], args: {returnSum: true}, param: [3001]},
  {name: 'AddLayerNorm over two axes, gamma only', op: 'addLayerNorm', shape: [2, 5, 6, 7],
   args: {axis: [-2, -1]}, param: [6, 7], beta: false},
  {name: 'AddRMSNorm no affine', op: 'addRMSNorm', shape: [4, 50], args: {}, param: null},
  // Larger than one block of the SIMD module's blocked passes (32768 elements on the wasm heap, 16384 streamed):
  // statistics finished block by block, dz inside each block.
  {name: 'GroupNorm channels-first silu, several blocks', op: 'groupNorm', shape: [2, 16, 40, 40],
   args: {numGroups: 8, axis: 1, activation: 'silu'}, param: [16]},
  {name: 'GroupNorm channels-last silu, several blocks', op: 'groupNorm', shape: [3, 40, 40, 16],
   args: {numGroups: 4, axis: -1, activation: 'silu'}, param: [16]},
  {name: 'AddLayerNorm gelu returnSum, several blocks', op: 'addLayerNorm', shape: [48, 1030],
   args: {activation: 'gelu', returnSum: true}, param: [1030]},
  {name: 'AddRMSNorm relu, several blocks', op: 'addRMSNorm', shape: [40, 1000], args: {activation: 'relu'},
   param: [1000], beta: false},
  // z up to +-300: exp's clamping, erfc's tails, sigmoid saturating.
  ...ACTIVATIONS.map((activation): RandomCase => ({name: `LayerNorm ${activation}, |z| up to 300`, op: 'layerNorm',
                                                   shape: [3, 64], args: {activation}, param: [64], gammaScale: 100})),
];

describeBackends('activation and add-norm: fused kernels == op composition', () => {
  RANDOM_CASES.forEach((c, idx) => MODES.forEach(mode => {
    it(`${c.name} (${mode})`, async () => {
      await noLeak(() => {
        const t = randomInputs(c, 1000 + idx * 17);
        const prev = setFused(true);
        let fused;
        let ops;
        try {
          const calls0 = kernelCalls();
          fused = inMode(mode, () => valueAndGrads(c.op, c.args, t, t.dy, t.dsum));
          expect(kernelCalls()).toBeGreaterThan(calls0);
          setFused(false);
          ops = valueAndGrads(c.op, c.args, t, t.dy, t.dsum);
        } finally {
          setFused(prev);
        }
        // Both float32 results of the same math: a few ulps, amplified by 1/std in the gradients. The ulps are
        // those of z = xhat * gamma + beta (|z| up to 3 * gammaScale), not of the (maybe much smaller) output.
        const zScale = Math.max(1, 3 * (c.gammaScale ?? 1));
        expectClose(fused.y, ops.y, 'y', 1e-5 * zScale, 1e-5);
        if (ops.sum) expect(fused.sum).toEqual(ops.sum);
        for (const k of Object.keys(ops.grads)) expectClose(fused.grads[k], ops.grads[k], `d${k}`, 1e-4 * zScale, 1e-4);
        tf.dispose(Object.values(t).filter((v): v is tf.Tensor => v instanceof tf.Tensor));
      }, c.name);
    });
  }));
});

describeBackends('activation and add-norm: finite-difference gradients', () => {
  const H = 1e-2;
  const cases = RANDOM_CASES.filter(c => c.shape.reduce((a, b) => a * b, 1) <= 1200 && !c.args.activation?.startsWith('relu') &&
                                         c.gammaScale === undefined);
  cases.forEach((c, idx) => {
    it(c.name, async () => {
      await noLeak(() => {
        const t = randomInputs(c, 77 + idx);
        const dys = Array.from(t.dy.dataSync());
        const dss = t.dsum ? Array.from(t.dsum.dataSync()) : null;
        const r = valueAndGrads(c.op, c.args, t, t.dy, t.dsum);
        const loss = (tt: Inputs): number => tf.tidy(() => {
          const outs = runOp(c.op, c.args, tt);
          const y = outs[0].dataSync();
          let s = 0;
          for (let i = 0; i < y.length; i++) s += y[i] * dys[i];
          if (dss) {
            const sm = outs[1].dataSync();
            for (let i = 0; i < sm.length; i++) s += sm[i] * dss[i];
          }
          return s;
        });
        for (const name of ['x', 'residual', 'gamma', 'beta'] as const) {
          const base = t[name];
          if (!base) continue;
          const orig = Array.from(base.dataSync());
          const v = randoms(orig.length, 303 + idx + name.length);
          const at = (sign: number) => {
            const moved = tf.tensor(orig.map((p, i) => p + sign * H * v[i]), base.shape);
            const l = loss({...t, [name]: moved});
            moved.dispose();
            return l;
          };
          const numeric = (at(1) - at(-1)) / (2 * H);
          const a = r.grads[name];
          let directional = 0;
          for (let i = 0; i < a.length; i++) directional += a[i] * v[i];
          const err = Math.abs(numeric - directional);
          if (!(err <= 2e-3 * Math.max(1, Math.abs(directional)))) {
            throw new Error(`d${name}: analytic ${directional}, finite difference ${numeric} (error ${err})`);
          }
        }
        tf.dispose(Object.values(t).filter((v): v is tf.Tensor => v instanceof tf.Tensor));
      }, c.name);
    });
  });
});

describeBackends('activation and add-norm: layers, serialization, errors', () => {
  const LAYERS: Array<[string, () => tf.layers.Layer, number[]]> = [
    ['BatchNorm', () => tfn.layers.batchNorm({activation: 'silu'}), [4, 6]],
    ['InstanceNorm', () => tfn.layers.instanceNorm({activation: 'gelu', affine: true}), [3, 4, 6]],
    ['GroupNorm', () => tfn.layers.groupNorm({numGroups: 2, activation: 'relu'}), [3, 4, 6]],
    ['LayerNorm', () => tfn.layers.layerNorm({activation: 'swish'}), [3, 6]],
    ['RMSNorm', () => tfn.layers.rmsNorm({activation: 'gelu', epsilon: 1e-6}), [3, 6]],
  ];

  for (const [name, make, shape] of LAYERS) {
    it(`${name}: activation in getConfig with tfjs' identifier, fromConfig round-trip`, () => {
      const layer = make();
      const config = layer.getConfig();
      expect(['relu', 'swish', 'gelu']).toContain(config.activation);
      const cls = layer.constructor as any;
      const copy = cls.fromConfig(cls, JSON.parse(JSON.stringify(config))) as tf.layers.Layer;
      expect(copy.getConfig()).toEqual(config);
      // A config saved before issue #17 has no activation key: none.
      const {activation, ...old} = config;
      expect((cls.fromConfig(cls, old) as tfn.NormLayer).activation).toBeNull();
      const x = tf.randomNormal(shape);
      const y = layer.apply(x, {training: true}) as tf.Tensor;
      expect(y.shape).toEqual(shape);
      tf.dispose([x, y]);
    });
  }

  it("'silu' and 'swish' are the same activation; 'linear' and null are none", () => {
    expect(tfn.layers.layerNorm({activation: 'silu'}).activation).toBe('swish');
    expect(tfn.layers.layerNorm({activation: 'swish'}).getConfig().activation).toBe('swish');
    expect(tfn.layers.layerNorm({activation: 'linear'}).activation).toBeNull();
    expect(tfn.layers.layerNorm().getConfig().activation).toBeNull();
  });

  it('unknown activations throw a ValueError naming the value', () => {
    expectValueError(() => tfn.layers.groupNorm({numGroups: 1, activation: 'tanh' as any}), 'GroupNorm', '`activation`',
                     'Received: activation="tanh"');
    expectValueError(() => tfn.layers.batchNorm({activation: 3 as any}), 'Received: activation=3');
    const x = tf.ones([2, 4]);
    expectValueError(() => tfn.ops.layerNorm(x, {activation: 'Relu' as any}), 'layerNorm', 'Received: activation="Relu"');
    expectValueError(() => tfn.ops.addRMSNorm(x, x, {activation: 'mish' as any}), 'Received: activation="mish"');
    x.dispose();
  });

  it('Add* layers and ops reject a residual of another shape and bad returnSum', () => {
    const x = tf.ones([2, 4]);
    const r = tf.ones([2, 5]);
    expectValueError(() => tfn.ops.addLayerNorm(x, r), 'addLayerNorm', 'Received: residual.shape=[2, 5]');
    expectValueError(() => tfn.ops.addRMSNorm(x, tf.ones([4]) as tf.Tensor), 'Received: residual.shape=[4]');
    expectValueError(() => tfn.layers.addLayerNorm().apply([x, r]), 'AddLayerNorm', 'Received: residual shape=[2, 5]');
    expectValueError(() => tfn.layers.addRMSNorm().apply(x), 'AddRMSNorm', 'two inputs');
    expectValueError(() => tfn.layers.addLayerNorm({returnSum: 'yes' as any}), 'Received: returnSum="yes"');
    expectValueError(() => tfn.layers.addLayerNorm({sum: true} as any), '`sum`');
    tf.dispose([x, r]);
  });

  it('AddLayerNorm / AddRMSNorm: LayerNorm / RMSNorm weight names, configs, model.json round-trip', async () => {
    const a = tf.input({shape: [5, 8]});
    const b = tf.input({shape: [5, 8]});
    const aln = tfn.layers.addLayerNorm({returnSum: true, activation: 'gelu', name: 'aln'});
    const [h, s] = aln.apply([a, b]) as tf.SymbolicTensor[];
    const arms = tfn.layers.addRMSNorm({epsilon: 1e-6, name: 'arms'});
    const out = arms.apply([h, s]) as tf.SymbolicTensor;
    const model = tf.model({inputs: [a, b], outputs: out});
    // LayerNorm's / RMSNorm's weight names (tfjs suffixes them when a name repeats in one process: shortName).
    expect(aln.weights.map(w => shortName(w))).toEqual(['gamma', 'beta']);
    expect(arms.weights.map(w => shortName(w))).toEqual(['gamma']);
    expect(aln.weights[0].name.startsWith('aln/gamma')).toBe(true);
    expect(aln.getConfig()).toMatchObject({returnSum: true, activation: 'gelu', axis: -1, bias: true, epsilon: 1e-5});
    expect(arms.getConfig()).toMatchObject({returnSum: false, activation: null, epsilon: 1e-6});
    tf.tidy(() => {
      aln.setWeights([tf.randomNormal([8], 1, 0.3), tf.randomNormal([8], 0, 0.3)]);
      arms.setWeights([tf.randomNormal([8], 1, 0.3)]);
    });
    const saved: tf.io.ModelArtifacts[] = [];
    await model.save(tf.io.withSaveHandler(async art => { saved.push(art); return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}}; }));
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved[0]));
    expect(loaded.layers.map(l => l.getClassName())).toEqual(['InputLayer', 'InputLayer', 'AddLayerNorm', 'AddRMSNorm']);
    const xa = tf.randomNormal([3, 5, 8]);
    const xb = tf.randomNormal([3, 5, 8]);
    const y0 = model.predict([xa, xb]) as tf.Tensor;
    const y1 = loaded.predict([xa, xb]) as tf.Tensor;
    expect(Array.from(y1.dataSync())).toEqual(Array.from(y0.dataSync()));
    tf.dispose([xa, xb, y0, y1]);
    model.dispose();
    loaded.dispose();
  });

  it('gradients of gradients through an activation and a residual match autodiff of plain tfjs ops', async () => {
    await noLeak(() => {
      const x = tf.tensor(randoms(2 * 3 * 8, 9, 1.5, 0.3), [2, 3, 8]);
      const r = tf.tensor(randoms(2 * 3 * 8, 10), [2, 3, 8]);
      const g = tf.tensor(randoms(8, 11, 0.5, 1), [8]);
      const b = tf.tensor(randoms(8, 12, 0.5), [8]);
      const reference = (xx: tf.Tensor, rr: tf.Tensor) => {
        const s = tf.add(xx, rr);
        const m = tf.mean(s, -1, true);
        const v = tf.mean(tf.square(tf.sub(s, m)), -1, true);
        const z = tf.add(tf.mul(tf.div(tf.sub(s, m), tf.sqrt(tf.add(v, 1e-5))), g), b);
        return tf.mul(tf.mul(z, 0.5), tf.add(1, tf.erf(tf.mul(z, Math.SQRT1_2))));
      };
      const ours = (xx: tf.Tensor, rr: tf.Tensor) => tfn.ops.addLayerNorm(xx, rr, {gamma: g, beta: b, activation: 'gelu'});
      // A gradient penalty: d/dx of sum((d sum(y^2 * w) / dx)^2).
      const penalty = (f: (a: tf.Tensor, c: tf.Tensor) => tf.Tensor) => tf.tidy(() => tf.grad((xx: tf.Tensor) => {
        const inner = tf.grad((x2: tf.Tensor) => tf.sum(tf.mul(tf.square(f(x2, r)), tf.linspace(0.5, 1.5, 8))))(xx);
        return tf.sum(tf.square(inner));
      })(x));
      const a = penalty(ours);
      const e = penalty(reference);
      const scale = Math.max(...Array.from(e.dataSync()).map(Math.abs));
      expectClose(a, e.dataSync(), 'second-order dx', 1e-4 * scale, 1e-3);
      tf.dispose([x, r, g, b, a, e]);
    }, 'second order');
  });

  it('an empty batch: empty outputs and sum, zero weight gradients', async () => {
    await noLeak(() => {
      const x = tf.zeros([0, 6]);
      const g = tf.ones([6]);
      const b = tf.zeros([6]);
      const [dx, dr, dg, db] = tf.grads((xx: tf.Tensor, rr: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => {
        const [y, s] = tfn.ops.addLayerNorm(xx, rr, {gamma: gg, beta: bb, activation: 'silu', returnSum: true});
        expect(y.shape).toEqual([0, 6]);
        expect(s.shape).toEqual([0, 6]);
        return tf.add(tf.sum(y), tf.sum(s));
      })([x, x, g, b]);
      expect(dx.shape).toEqual([0, 6]);
      expect(dr.shape).toEqual([0, 6]);
      expect(Array.from(dg.dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
      expect(Array.from(db.dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
      tf.dispose([x, g, b, dx, dr, dg, db]);
    }, 'empty batch');
  });

  it('foldBatchNorm keeps a BatchNorm with an activation, with the reason', async () => {
    const model = tf.sequential({layers: [
      tf.layers.conv2d({inputShape: [6, 6, 3], filters: 4, kernelSize: 3}),
      tfn.layers.batchNorm({activation: 'relu', name: 'bn_relu'}),
      tf.layers.conv2d({filters: 4, kernelSize: 1}),
      tfn.layers.batchNorm({name: 'bn_plain'}),
    ]});
    const {model: folded, report} = await tfn.foldBatchNorm(model);
    expect(report.folded.map(f => f.norm)).toEqual(['bn_plain']);
    expect(report.kept).toEqual([{layer: 'bn_relu', reason: expect.stringContaining('activation "relu"')}]);
    const x = tf.randomNormal([2, 6, 6, 3]);
    const y0 = model.predict(x) as tf.Tensor;
    const y1 = folded.predict(x) as tf.Tensor;
    expectClose(y1, y0.dataSync(), 'folded', 1e-5, 1e-5);
    tf.dispose([x, y0, y1]);
    model.dispose();
    folded.dispose();
  });

  it('a pre-norm transformer block with AddLayerNorm (functional API) trains: the loss decreases', async () => {
    const T = 6;
    const D = 16;
    const inp = tf.input({shape: [T, D]});
    // Attention stand-in: a token-wise projection of LayerNorm(x).
    const attn = tf.layers.dense({units: D, name: 'attn'}).apply(tfn.layers.layerNorm().apply(inp)) as tf.SymbolicTensor;
    // h = LayerNorm(x + attn), and the residual stream continues from x + attn.
    const [h, stream] = tfn.layers.addLayerNorm({returnSum: true, name: 'ln2'}).apply([inp, attn]) as tf.SymbolicTensor[];
    const mlp = tf.layers.dense({units: D, name: 'fc2'}).apply(
        tf.layers.dense({units: 2 * D, activation: 'gelu', name: 'fc1'}).apply(h)) as tf.SymbolicTensor;
    const out = tf.layers.add().apply([stream, mlp]) as tf.SymbolicTensor;
    const model = tf.model({inputs: inp, outputs: out});
    model.compile({optimizer: tf.train.adam(1e-2), loss: 'meanSquaredError'});
    const x = tf.tensor(randoms(8 * T * D, 5), [8, T, D]);
    const target = tf.tidy(() => tf.tanh(tf.mul(tf.reverse(x, -1), 0.7)));
    // The first step creates Adam's slots; then no tensor may stay behind.
    const first = (await model.fit(x, target, {epochs: 1, batchSize: 8, verbose: 0})).history.loss as number[];
    const before = tf.memory().numTensors;
    const h1 = await model.fit(x, target, {epochs: 11, batchSize: 8, verbose: 0});
    const losses = [...first, ...h1.history.loss as number[]];
    expect(losses[losses.length - 1]).toBeLessThan(0.8 * losses[0]);
    for (let i = 1; i < losses.length; i++) expect(Number.isFinite(losses[i])).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, target]);
    model.dispose();
  });
});

/**
 * The SIMD module takes silu's and gelu's act'(z) from the forward's output
 * y = act(z) when the backward kernel gets it (sigmoid(z), Phi(z) = y / z, a
 * series near z = 0). Held here to the backward that recomputes act'(z)
 * (no `y` input) and, for silu, to a float64 reference, with z = beta exactly
 * in the channels whose gamma is 0: z = 0, tiny, around the series' switch at
 * 2^-10, and where exp saturates.
 */
describeBackends('activation backward from the forward output == recomputed', () => {
  const SPECIAL = [0, 1e-30, -1e-8, 9e-4, -(2 ** -10) * (1 - 2 ** -20), 2 ** -10, -(2 ** -10), 2 ** -10 * (1 + 2 ** -20),
                   1e-3, -0.5, 5, -5, -20, 30,
                   -90, 100];
  const C = SPECIAL.length + 6;
  const N = 48;
  // [N, C], statistics per channel (column mode), and [N, C] statistics per row (rows, blocked passes).
  const plans = {
    'per channel': planFromRoles([{size: N, reduced: true, param: false}, {size: C, reduced: false, param: true}],
                                 [N, C]),
    'per row': axesPlan([N, C], [1]),
  };
  const siluGrad = (z: number) => {
    const s = 1 / (1 + Math.exp(-z));
    return s * (1 + z * (1 - s));
  };
  (['silu', 'gelu'] as const).forEach(act => Object.entries(plans).forEach(([which, plan]) => {
    it(`${act}, statistics ${which}`, async () => {
      await noLeak(() => {
        const u = randoms(C, 4243, 0.5);
        const xs = randoms(N * C, 4242, 2);
        // Channels < SPECIAL.length: gamma 0, beta the special z (per channel plan: z = beta exactly).
        const perChannel = which === 'per channel';
        const gamma = Array.from({length: C}, (_, c) => (perChannel && c < SPECIAL.length ? 0 : 1 + u[c]));
        const beta = Array.from({length: C}, (_, c) => (c < SPECIAL.length ? SPECIAL[c] : u[c]));
        const dys = randoms(N * C, 4244);
        const paramShape = plan.paramShape;
        const [x, g, b, dy] = [tf.tensor2d(xs, [N, C]), tf.tensor(gamma, paramShape), tf.tensor(beta, paramShape),
                               tf.tensor2d(dys, [N, C])];
        const attrs = {...layoutAttrs(plan), epsilon: 1e-5, center: true, activation: act};
        const [y, mean, variance, aux] = runKernel(FORWARD_KERNEL, {x, gamma: g, beta: b}, attrs) as tf.Tensor[];
        const back = {...layoutAttrs(plan), center: true, withGamma: true, withBeta: true, activation: act};
        const calls0 = implUsage.simdDirect + implUsage.simdStreamed;
        const fromY = runKernel(BACKWARD_KERNEL, {dy, x, aux, gamma: g, beta: b, y}, back) as tf.Tensor[];
        expect(implUsage.simdDirect + implUsage.simdStreamed).toBeGreaterThan(calls0);
        const recomputed = runKernel(BACKWARD_KERNEL, {dy, x, aux, gamma: g, beta: b}, back) as tf.Tensor[];
        ['dx', 'dgamma', 'dbeta'].forEach((name, i) =>
          expectClose(fromY[i], Array.from(recomputed[i].dataSync()), `${act} ${which} ${name}`, 1e-6, 2e-6));
        if (act === 'silu' && perChannel) {
          // dbeta of a gamma-0 channel: sum over the batch of dy * silu'(beta), in float64.
          const db = fromY[2].dataSync();
          SPECIAL.forEach((z, c) => {
            let ref = 0;
            for (let n = 0; n < N; n++) ref += dys[n * C + c] * siluGrad(Math.fround(z));
            expectClose([db[c]], [ref], `silu dbeta at z = ${z}`, 1e-6, 1e-6);
          });
        }
        tf.dispose([x, g, b, dy, y, mean, variance, aux, ...fromY, ...recomputed]);
      });
    });
  }));
});
