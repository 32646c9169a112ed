import * as tf from '@tensorflow/tfjs';
import {checkActivation} from '../engine/activation';
import {NormSpec, normalize} from '../engine/normalize';
import {axesPlan} from '../engine/plan';
import {checkEpsilon, checkFloatDtype, checkInput, fail, resolveAxes, show} from '../validate';
import {LayerNormOpArgs} from './layer_norm';
import {FLOAT32_EPS, RMSNormOpArgs} from './rms_norm';

/** What the add-and-normalize ops take beyond their norm's arguments. */
export interface AddNormOpArgs {
  /** Also return x + residual: `[norm(x + residual), x + residual]`. Default false. */
  returnSum?: boolean;
}

/** Arguments of {@link addLayerNorm}. */
export type AddLayerNormOpArgs = LayerNormOpArgs & AddNormOpArgs;
/** Arguments of {@link addRMSNorm}. */
export type AddRMSNormOpArgs = RMSNormOpArgs & AddNormOpArgs;

/** Checks the residual against x: a float32 tf.Tensor of x's shape. */
export function checkResidual(owner: string, x: tf.Tensor, residual: unknown): tf.Tensor {
  if (!(residual instanceof tf.Tensor)) fail(owner, '`residual` must be a tf.Tensor', 'residual', residual);
  checkFloatDtype(owner, residual.dtype, 'residual.dtype');
  if (!tf.util.arraysEqual(residual.shape, x.shape)) {
    fail(owner, `\`residual\` must have the shape of \`x\` (${show(x.shape)})`, 'residual.shape', residual.shape);
  }
  return residual;
}

function addNorm(owner: string, x: tf.Tensor, residual: tf.Tensor, spec: Omit<NormSpec, 'owner' | 'plan' | 'paramShape'>,
                 axis: number | number[] | undefined, affine: {gamma?: tf.Tensor | null; beta?: tf.Tensor | null},
                 returnSum: unknown): tf.Tensor | [tf.Tensor, tf.Tensor] {
  checkInput(owner, x, 1);
  checkResidual(owner, x, residual);
  if (returnSum !== undefined && typeof returnSum !== 'boolean') {
    fail(owner, '`returnSum` must be a boolean', 'returnSum', returnSum);
  }
  const axes = resolveAxes(owner, axis ?? -1, x.rank);
  const r = normalize(x, {owner, plan: axesPlan(x.shape, axes), paramShape: axes.map(a => x.shape[a]), ...spec},
                      affine, false, null, residual, returnSum === true);
  return returnSum === true ? [r.output, r.sum!] : r.output;
}

/**
 * `layerNorm(x + residual)` (a pre-norm transformer's residual add and
 * LayerNorm in one): the fused kernels compute the sum and its statistics in
 * one pass. With `returnSum: true`, returns `[norm(x + residual), x + residual]`
 * (the residual stream continues from the sum). Gradients: d(x) = d(residual).
 *
 * ```js
 * const [h, stream] = tfn.ops.addLayerNorm(x, attnOut, {gamma, beta, returnSum: true});
 * ```
 */
export function addLayerNorm(x: tf.Tensor, residual: tf.Tensor, args: AddLayerNormOpArgs & {returnSum: true}): [tf.Tensor, tf.Tensor];
export function addLayerNorm(x: tf.Tensor, residual: tf.Tensor, args?: AddLayerNormOpArgs): tf.Tensor;
export function addLayerNorm(x: tf.Tensor, residual: tf.Tensor, args: AddLayerNormOpArgs = {}): tf.Tensor | [tf.Tensor, tf.Tensor] {
  const owner = 'addLayerNorm';
  return addNorm(owner, x, residual, {epsilon: checkEpsilon(owner, args.epsilon ?? 1e-5), center: true,
                                      activation: checkActivation(owner, args.activation)},
                 args.axis, args, args.returnSum);
}

/**
 * `rmsNorm(x + residual)` in one: see {@link addLayerNorm}.
 *
 * ```js
 * const y = tfn.ops.addRMSNorm(x, residual, {gamma, epsilon: 1e-6});
 * ```
 */
export function addRMSNorm(x: tf.Tensor, residual: tf.Tensor, args: AddRMSNormOpArgs & {returnSum: true}): [tf.Tensor, tf.Tensor];
export function addRMSNorm(x: tf.Tensor, residual: tf.Tensor, args?: AddRMSNormOpArgs): tf.Tensor;
export function addRMSNorm(x: tf.Tensor, residual: tf.Tensor, args: AddRMSNormOpArgs = {}): tf.Tensor | [tf.Tensor, tf.Tensor] {
  const owner = 'addRMSNorm';
  const epsilon = args.epsilon == null ? FLOAT32_EPS : checkEpsilon(owner, args.epsilon);
  return addNorm(owner, x, residual, {epsilon, center: false, activation: checkActivation(owner, args.activation)},
                 args.axis, {gamma: args.gamma}, args.returnSum);
}
