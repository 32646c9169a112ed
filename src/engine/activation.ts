/**
 * The activations a normalization can apply after its affine transform
 * (issue #17: `activation` on BatchNorm, InstanceNorm, GroupNorm, LayerNorm,
 * RMSNorm and the Add* layers), as ops with their closed-form derivatives.
 *
 *   relu  max(z, 0)                      relu'(z) = z > 0 (0 at 0, PyTorch's threshold_backward)
 *   silu  z * sigmoid(z)                 sigmoid(z) * (1 + z * (1 - sigmoid(z)))     (tfjs: 'swish')
 *   gelu  z * Phi(z), exact erf form     Phi(z) + z * phi(z)                         (PyTorch's F.gelu default)
 *
 * Names: the kernels' `activation` attribute and the ops take 'relu' | 'silu'
 * | 'gelu'; configs are written with tfjs-layers' identifiers ('relu',
 * 'swish', 'gelu'), and both 'silu' and 'swish' are accepted, as is 'linear'
 * (= none, what tfjs writes for no activation).
 */
import * as tf from '@tensorflow/tfjs';
import {fail} from '../validate';

/** An activation fused after the affine transform. */
export type Activation = 'relu' | 'silu' | 'gelu';
/** What configs store: tfjs-layers' identifiers ('swish' is PyTorch's SiLU). */
export type ActivationIdentifier = 'relu' | 'swish' | 'gelu';

const ALIASES: Readonly<Record<string, Activation>> = {relu: 'relu', silu: 'silu', swish: 'silu', gelu: 'gelu'};

/** What an `activation` argument takes: an activation, tfjs' 'swish' (= 'silu') or 'linear' (= none), or null. */
export type ActivationArg = Activation | 'swish' | 'linear' | null;

/** An `activation` argument checked: 'relu', 'silu'/'swish', 'gelu', or null / undefined / 'linear' (none). */
export function checkActivation(owner: string, value: unknown): Activation | null {
  if (value == null || value === 'linear') return null;
  if (typeof value === 'string' && Object.prototype.hasOwnProperty.call(ALIASES, value)) return ALIASES[value];
  return fail(owner, "`activation` must be 'relu', 'silu' (tfjs: 'swish'), 'gelu' or null", 'activation', value);
}

/** The identifier a config stores (tfjs-layers' name; null for none). */
export function activationIdentifier(a: Activation | null): ActivationIdentifier | null {
  return a === 'silu' ? 'swish' : a;
}

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** act(z) as tfjs ops (differentiable by autodiff). */
export function activationOps(z: tf.Tensor, a: Activation): tf.Tensor {
  switch (a) {
    case 'relu': return tf.relu(z);
    case 'silu': return tf.mul(z, tf.sigmoid(z));
    case 'gelu': return tf.mul(tf.mul(z, 0.5), tf.add(tf.erf(tf.mul(z, SQRT1_2)), 1));
  }
}

/** dy * act'(z) as tfjs ops (differentiable again, for gradients of gradients). */
export function activationGradOps(dy: tf.Tensor, z: tf.Tensor, a: Activation): tf.Tensor {
  switch (a) {
    case 'relu': return tf.mul(dy, tf.cast(tf.greater(z, 0), 'float32'));
    case 'silu': {
      const s = tf.sigmoid(z);
      return tf.mul(dy, tf.mul(s, tf.add(tf.mul(z, tf.sub(1, s)), 1)));
    }
    case 'gelu': {
      const cdf = tf.mul(tf.add(tf.erf(tf.mul(z, SQRT1_2)), 1), 0.5);
      const pdf = tf.mul(tf.exp(tf.mul(tf.square(z), -0.5)), INV_SQRT_2PI);
      return tf.mul(dy, tf.add(cdf, tf.mul(z, pdf)));
    }
  }
}

// ------------------------------------------------------------ scalar forms (the JS kernel loops)

/**
 * erfc(x) with fractional error < 1.2e-7 everywhere (Numerical Recipes'
 * Chebyshev fit `erfcc`): one exp and ten multiply-adds, float32's precision
 * at a fraction of an exact series' cost. Phi(z) = erfc(-z / sqrt 2) / 2 keeps
 * its relative precision in the negative tail, where 1 + erf(x) would cancel.
 */
export function erfc(x: number): number {
  const z = x < 0 ? -x : x;
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
      t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 +
      t * 0.17087277)))))))));
  return x >= 0 ? r : 2 - r;
}

/** act(z) on one float64 value. */
export function activationScalar(a: Activation): (z: number) => number {
  switch (a) {
    case 'relu': return z => (z > 0 ? z : z !== z ? z : 0);
    case 'silu': return z => z / (1 + Math.exp(-z));
    case 'gelu': return z => 0.5 * z * erfc(-z * SQRT1_2);
  }
}

/** act'(z) on one float64 value. */
export function activationDerivative(a: Activation): (z: number) => number {
  switch (a) {
    case 'relu': return z => (z > 0 ? 1 : 0);
    case 'silu': return z => {
      const s = 1 / (1 + Math.exp(-z));
      return s * (1 + z * (1 - s));
    };
    case 'gelu': return z => 0.5 * erfc(-z * SQRT1_2) + z * INV_SQRT_2PI * Math.exp(-0.5 * z * z);
  }
}
