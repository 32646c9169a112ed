/**
 * tf.customGrad for the package's closed-form gradients, with the plumbing
 * every use repeats (positional inputs, saved tensors) and gradients of
 * gradients (a gradient penalty, tf.grad inside tf.grad).
 *
 * Why second order needs care: tf.customGrad runs its forward with the tape
 * off, so intermediates saved there (xhat, 1/std, a kernel's aux) are not
 * connected to an outer tape; a backward built from them would be
 * differentiated as if they were constants (silently wrong), and a fused
 * backward kernel has no gradient at all. Saved *inputs* are connected (tfjs
 * saves them as clones recorded on the tape). So where the backward may be
 * differentiated (the forward runs under nested tapes) every input is saved
 * first, and when the backward itself runs under a recording tape (only then
 * can it be differentiated: tapeDepth() > 0 at that moment), it recomputes the
 * forward as ops from the saved inputs and runs the op backward on those fresh,
 * connected intermediates. First-order training keeps the fast path, and saves
 * only the inputs its backward reads (`reads`).
 */
import * as tf from '@tensorflow/tfjs';
import {gradientDepth, tapeDepth} from './environment';

/** What a closed-form forward returns: the value, intermediates to save, and the backward. */
export interface ClosedForm {
  value: tf.Tensor;
  /** Intermediates the backward reuses (the inputs it reads are saved too). */
  saved: tf.Tensor[];
  /**
   * Gradients w.r.t. each input, in order. `inputs` holds the inputs `reads`
   * names (the others are undefined unless every input was saved).
   */
  backward: (dy: tf.Tensor, inputs: tf.Tensor[], saved: tf.Tensor[]) => tf.Tensor[] | tf.Tensor;
  /** The indices of the inputs `backward` reads; default every input. */
  reads?: number[];
}

/**
 * Applies `forward` to `inputs` with the gradient it returns. `opForward` is
 * the same function as tfjs ops throughout (forward and backward): it is what
 * a gradient of the gradient differentiates. Default: `forward` itself (when
 * it is already ops).
 */
export function withClosedFormGrad(inputs: tf.Tensor[], forward: (...inputs: tf.Tensor[]) => ClosedForm,
                                   opForward: (...inputs: tf.Tensor[]) => ClosedForm = forward): tf.Tensor {
  const n = inputs.length;
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args[n] as tf.GradSaveFunc;
    const ins = args.slice(0, n) as tf.Tensor[];
    const f = forward(...ins);
    // tfjs saves a clone of each saved tensor (on wasm a copy). A gradient of this gradient needs every input
    // (see above), and is only possible when the forward runs under two tapes or more (nested tf.grad: tfjs
    // backpropagates after closing the tape, so under one tape the backward is never recorded); otherwise
    // only the inputs the backward reads are saved.
    const kept = f.reads == null || gradientDepth() > 1 ? ins.map((_, i) => i) : f.reads;
    save([...kept.map(i => ins[i]), ...f.saved]);
    return {
      value: f.value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const m = kept.length;
        if (tapeDepth() > 0) {
          if (m < n) throw new Error('tfjs-norm: a gradient taken under a tape that was not recording the forward; please report it');
          const r = opForward(...saved.slice(0, n));
          return r.backward(dy, saved.slice(0, n), r.saved);
        }
        const savedInputs: tf.Tensor[] = new Array(n);
        kept.forEach((i, j) => { savedInputs[i] = saved[j]; });
        return f.backward(dy, savedInputs, saved.slice(m));
      },
    };
  });
  return op(...inputs);
}
