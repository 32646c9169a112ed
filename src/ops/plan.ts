/**
 * Canonical shapes. Every normalization here is "reduce over some axes, scale
 * and shift along others". Before any math, the input is reshaped (a free
 * view) so that neighbouring axes with the same role are merged: BatchNorm on
 * [N, H, W, C] becomes [N*H*W, C], GroupNorm on [N, C, H, W] becomes
 * [N, G, C/G, H*W]. The math then runs on tensors of rank <= 4 with at most
 * two reduction axes, which every backend handles well (rank-5 broadcasts are
 * 10x slower on wasm) and which the fused cpu kernels can loop over directly.
 */
import {ValueError, show} from '../errors';

/** One axis of the canonical view. */
interface Role {
  size: number;
  /** Statistics are computed over this axis. */
  reduced: boolean;
  /** gamma/beta vary along this axis. */
  param: boolean;
}

export interface NormPlan {
  /** The input's shape. */
  inputShape: number[];
  /** The canonical (merged) shape the math runs on. */
  shape: number[];
  /** Axes of `shape` the statistics reduce over. */
  reduceAxes: number[];
  /** Axes of `shape` that are not reduced (statistics vary along them). */
  keptAxes: number[];
  /** Shape of mean/variance in the canonical view (reduced axes kept as 1). */
  statShape: number[];
  /** Shape gamma/beta are reshaped to in the canonical view, null if none. */
  paramShape: number[];
  /** Axes of `shape` along which gamma/beta do NOT vary (their gradients sum over these). */
  nonParamAxes: number[];
  /** Number of elements each statistic is computed from. */
  reduceSize: number;
}

function merge(roles: Role[], inputShape: number[]): NormPlan {
  const merged: Role[] = [];
  for (const r of roles) {
    if (r.size === 1) continue; // size-1 axes play no role
    const last = merged[merged.length - 1];
    if (last && last.reduced === r.reduced && last.param === r.param) {
      last.size *= r.size;
    } else {
      merged.push({...r});
    }
  }
  if (merged.length === 0) merged.push({size: 1, reduced: true, param: false});
  const shape = merged.map(r => r.size);
  const reduceAxes: number[] = [];
  const keptAxes: number[] = [];
  const nonParamAxes: number[] = [];
  merged.forEach((r, i) => {
    (r.reduced ? reduceAxes : keptAxes).push(i);
    if (!r.param) nonParamAxes.push(i);
  });
  return {
    inputShape,
    shape,
    reduceAxes,
    keptAxes,
    statShape: merged.map(r => (r.reduced ? 1 : r.size)),
    paramShape: merged.map(r => (r.param ? r.size : 1)),
    nonParamAxes,
    reduceSize: merged.reduce((p, r) => (r.reduced ? p * r.size : p), 1),
  };
}

/** Resolves a possibly negative axis against `rank`, with a clear error. */
export function resolveAxis(axis: unknown, rank: number, name = 'axis'): number {
  if (typeof axis !== 'number' || !Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new ValueError(
      `\`${name}\` must be an integer in [${-rank}, ${rank - 1}] for an input of rank ${rank}. ` +
      `Received: ${name}=${show(axis)}`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Resolves a list of axes (sorted, unique) against `rank`. */
export function resolveAxes(axes: number | number[], rank: number, name = 'axis'): number[] {
  const list = Array.isArray(axes) ? axes : [axes];
  if (list.length === 0) throw new ValueError(`\`${name}\` must name at least one axis. Received: ${name}=[]`);
  const out = list.map(a => resolveAxis(a, rank, name));
  if (new Set(out).size !== out.length) {
    throw new ValueError(`\`${name}\` must not repeat an axis. Received: ${name}=${show(axes)}`);
  }
  return out.sort((a, b) => a - b);
}

/** Statistics over every axis but `channelAxis`; params along the channel (BatchNorm). */
export function batchPlan(shape: number[], channelAxis: number): NormPlan {
  return merge(shape.map((size, i) => ({size, reduced: i !== channelAxis, param: i === channelAxis})), shape);
}

/** Statistics per sample and channel over the other axes (InstanceNorm). */
export function instancePlan(shape: number[], channelAxis: number): NormPlan {
  return merge(shape.map((size, i) => ({size, reduced: i !== 0 && i !== channelAxis, param: i === channelAxis})), shape);
}

/** Statistics per sample and group of channels (GroupNorm); params per channel. */
export function groupPlan(shape: number[], channelAxis: number, numGroups: number): NormPlan {
  const roles: Role[] = [];
  shape.forEach((size, i) => {
    if (i === channelAxis) {
      roles.push({size: numGroups, reduced: false, param: true});
      roles.push({size: size / numGroups, reduced: true, param: true});
    } else {
      roles.push({size, reduced: i !== 0, param: false});
    }
  });
  return merge(roles, shape);
}

/** Statistics over `axes`; params along the same axes (LayerNorm, RMSNorm). */
export function axesPlan(shape: number[], axes: number[]): NormPlan {
  return merge(shape.map((size, i) => ({size, reduced: axes.includes(i), param: axes.includes(i)})), shape);
}
