/**
 * Canonical shapes. Every normalization here is "reduce over some axes, scale
 * and shift along others". Before any math, the input is reshaped (a free
 * view) so that neighbouring axes with the same role are merged: BatchNorm on
 * [N, H, W, C] becomes [N*H*W, C], GroupNorm on [N, C, H, W] becomes
 * [N, G, C/G, H*W]. The math then runs on tensors of rank <= 4 with at most
 * two reduction axes, which every backend handles well (rank-5 broadcasts are
 * 10x slower on wasm) and which the fused kernels can loop over directly.
 *
 * Each op builds its own plan from roles (ops/group_norm.ts: groupPlan);
 * this file only merges them.
 */
/** One axis of the input and its role. */
export interface Role {
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

/** The plan of an input whose axes have the given roles (one role per input axis, in order). */
export function planFromRoles(roles: Role[], inputShape: number[]): NormPlan {
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

/**
 * Statistics over `axes` (resolved, sorted); params along the same axes:
 * LayerNorm's, RMSNorm's and moments' plan.
 */
export function axesPlan(shape: number[], axes: number[]): NormPlan {
  return planFromRoles(shape.map((size, i) => ({size, reduced: axes.includes(i), param: axes.includes(i)})), shape);
}
