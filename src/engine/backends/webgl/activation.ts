/**
 * The epilogue's activations in GLSL (issue #17; ../../activation.ts): act(z)
 * and act'(z), the same formulas as the webgpu kernels' (gelu: the exact erf
 * form through Numerical Recipes' erfcc, fractional error < 1.2e-7, GLSL has no
 * erf; exp's argument clamped to 88 so a saturated sigmoid gives 0).
 */
import {KernelActivation} from '../../kernels';

export const ACT_GLSL = `
    float nm_erfc(float x) {
      float z = abs(x);
      float t = 1.0 / (1.0 + 0.5 * z);
      float r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
          t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 +
          t * 0.17087277)))))))));
      return x >= 0.0 ? r : 2.0 - r;
    }
    float nm_sigmoid(float z) { return 1.0 / (1.0 + exp(min(-z, 88.0))); }
    float nm_act_relu(float z) { return z > 0.0 || z != z ? z : 0.0; }
    float nm_act_silu(float z) { return z * nm_sigmoid(z); }
    float nm_act_gelu(float z) { return 0.5 * z * nm_erfc(-z * 0.7071067811865476); }
    float nm_actd_relu(float z) { return z > 0.0 ? 1.0 : 0.0; }
    float nm_actd_silu(float z) { float s = nm_sigmoid(z); return s * (1.0 + z * (1.0 - s)); }
    float nm_actd_gelu(float z) {
      return 0.5 * nm_erfc(-z * 0.7071067811865476) + z * 0.3989422804014327 * exp(-0.5 * z * z);
    }`;

/** `z` through the activation (none: z itself). */
export const actGlsl = (act: KernelActivation | undefined, z: string): string => (act ? `nm_act_${act}(${z})` : z);

/** `dy * act'(z)`. */
export const actGradGlsl = (act: KernelActivation, dy: string, z: string): string => `(${dy} * nm_actd_${act}(${z}))`;
