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

/**
 * The tfjs flag that lets the fused kernels of the cpu and wasm backends run
 * on the package's SIMD WebAssembly module (default, where WebAssembly with
 * SIMD is available) or, off, on their JavaScript loops:
 * `tf.env().set('TFJS_NORM_SIMD', false)`, or `TFJS_NORM_SIMD=0` in Node.
 * Same numbers either way (tests compare them); the loops are the fallback.
 */
export const SIMD_FLAG = 'TFJS_NORM_SIMD';

function envOff(name: string): boolean {
  return typeof process !== 'undefined' && process.env?.[name] === '0';
}

/** Registers the package's tfjs flags (re-registering keeps a value already set). */
export function registerFlags(): void {
  tf.env().registerFlag(FUSED_FLAG, () => !envOff(FUSED_FLAG));
  tf.env().registerFlag(SIMD_FLAG, () => !envOff(SIMD_FLAG));
}

/** Whether the SIMD module may be used (the flag). */
export function simdEnabled(): boolean {
  return tf.env().getBool(SIMD_FLAG);
}

/** Whether the fused kernels may be used (the flag). */
export function fusedKernelsEnabled(): boolean {
  return tf.env().getBool(FUSED_FLAG);
}

/**
 * The number of gradient tapes recording now (tf.grad inside tf.grad: 2),
 * counted also inside a kernel or a custom gradient's forward, where
 * tapeDepth() is 0.
 */
export function gradientDepth(): number {
  const depth = (tf.engine() as unknown as {state?: {gradientDepth?: unknown}}).state?.gradientDepth;
  if (typeof depth !== 'number') {
    throw new Error('tfjs-norm: this tfjs version has no engine().state.gradientDepth; please report it');
  }
  return depth;
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
