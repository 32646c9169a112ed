/**
 * What the engine reads from tfjs' environment: the `TFJS_NORM_FUSED` flag,
 * and the one private tfjs internal the package depends on.
 *
 * Nothing here runs on import: register.ts calls {@link registerFlags}.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * The tfjs flag that turns the fused kernels on (default) or off. Off forces
 * the op composition on every backend (tests compare the two):
 * `tf.env().set('TFJS_NORM_FUSED', false)`. Its default honours the
 * environment variable `TFJS_NORM_FUSED=0` in Node, and `?tfjsflags=TFJS_NORM_FUSED:false`
 * in a page's URL like every tfjs flag.
 */
export const FUSED_FLAG = 'TFJS_NORM_FUSED';

/** Registers the package's tfjs flags (re-registering keeps a value already set). */
export function registerFlags(): void {
  tf.env().registerFlag(FUSED_FLAG, () => !(typeof process !== 'undefined' && process.env?.TFJS_NORM_FUSED === '0'));
}

/** Whether the fused kernels may be used (the flag). */
export function fusedKernelsEnabled(): boolean {
  return tf.env().getBool(FUSED_FLAG);
}

/**
 * How many gradient tapes record the ops run now: 0 outside tf.grad & co.,
 * and inside a kernel's forward (tfjs records no ops there); 1 inside a
 * tf.grad/tf.variableGrads/model.fit forward, or inside the backward of a
 * gradient that is itself being differentiated. tfjs has no public accessor;
 * this reads the engine's private `state.gradientDepth` and `state.kernelDepth`,
 * here and nowhere else. test/environment.test.ts fails if tfjs changes them.
 */
export function tapeDepth(): number {
  const state = (tf.engine() as unknown as {state?: {gradientDepth?: unknown; kernelDepth?: unknown}}).state;
  const depth = state?.gradientDepth;
  const kernelDepth = state?.kernelDepth;
  if (typeof depth !== 'number' || typeof kernelDepth !== 'number') {
    throw new Error('tfjs-norm: this tfjs version has no engine().state.gradientDepth/kernelDepth; please report it');
  }
  return kernelDepth > 0 ? 0 : depth;
}
