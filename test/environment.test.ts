/**
 * The tfjs internals and flags the engine depends on (src/engine/environment.ts):
 * fails if tfjs changes the private gradient-depth counter, and checks the
 * TFJS_NORM_FUSED flag is a real tfjs flag that switches the kernel dispatch,
 * and TFJS_NORM_SIMD one that switches the kernels between the SIMD module
 * and the JavaScript loops.
 */
import * as tf from '@tensorflow/tfjs';
import * as tfn from '../src';
import {implUsage} from '../src/engine/backends/simd/select';
import {FUSED_FLAG, SIMD_FLAG, tapeDepth} from '../src/engine/environment';
import {FORWARD_KERNEL, usesKernel} from '../src/engine/kernels';
import {axesPlan} from '../src/engine/plan';

describe('engine environment', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('reads tfjs\' gradient depth: 0 outside, 1 inside tf.grad, 2 inside nested tf.grad', () => {
    const depths: number[] = [tapeDepth()];
    const f = (x: tf.Tensor) => {
      depths.push(tapeDepth());
      return tf.sum(tf.square(x));
    };
    tf.tidy(() => {
      tf.grad(f)(tf.ones([2]));
      tf.grad(x => tf.sum(tf.grad(f)(x)))(tf.ones([2]));
    });
    expect(depths).toEqual([0, 1, 2]);
  });

  it('TFJS_NORM_FUSED is a tfjs flag that switches the dispatch', () => {
    const plan = axesPlan([4, 8], [1]);
    expect(tf.env().getBool(FUSED_FLAG)).toBe(process.env.TFJS_NORM_FUSED !== '0');
    const previous = tf.env().getBool(FUSED_FLAG);
    try {
      tf.env().set(FUSED_FLAG, true);
      expect(usesKernel(FORWARD_KERNEL, plan)).toBe(true);
      tf.env().set(FUSED_FLAG, false);
      expect(usesKernel(FORWARD_KERNEL, plan)).toBe(false);
    } finally {
      tf.env().set(FUSED_FLAG, previous);
    }
  });

  it('TFJS_NORM_SIMD is a tfjs flag that switches the kernels to the JavaScript loops', () => {
    expect(tf.env().getBool(SIMD_FLAG)).toBe(process.env.TFJS_NORM_SIMD !== '0');
    const previous = tf.env().getBool(SIMD_FLAG);
    const ran = (simd: boolean) => {
      tf.env().set(SIMD_FLAG, simd);
      const before = {...implUsage};
      tf.tidy(() => tfn.ops.layerNorm(tf.randomNormal([2, 8])));
      return {js: implUsage.js - before.js, simd: implUsage.simdStreamed - before.simdStreamed};
    };
    try {
      expect(ran(true)).toEqual({js: 0, simd: 1});
      expect(ran(false)).toEqual({js: 1, simd: 0});
    } finally {
      tf.env().set(SIMD_FLAG, previous);
    }
  });

  it('dispatches by registered kernel, not by backend name', () => {
    const plan = axesPlan([4, 8], [1]);
    expect(tf.getKernel(FORWARD_KERNEL, 'cpu')).toBeDefined();
    expect(usesKernel(FORWARD_KERNEL, plan)).toBe(tf.env().getBool(FUSED_FLAG));
    // A rank-5 canonical view stays on the ops.
    expect(usesKernel(FORWARD_KERNEL, {...plan, shape: [2, 3, 2, 3, 2]})).toBe(false);
  });
});
