/**
 * Factory functions, tfjs style: `layers.batchNorm(args)` = `new BatchNorm(args)`.
 *
 * ```js
 * model.add(tfn.layers.groupNorm({numGroups: 8}));
 * ```
 *
 * @packageDocumentation
 */
import {AddLayerNorm, AddLayerNormArgs} from './add_layer_norm';
import {AddRMSNorm, AddRMSNormArgs} from './add_rms_norm';
import {BatchNorm, BatchNormArgs} from './batch_norm';
import {GroupNorm, GroupNormArgs} from './group_norm';
import {InstanceNorm, InstanceNormArgs} from './instance_norm';
import {LayerNorm, LayerNormArgs} from './layer_norm';
import {LocalResponseNorm, LocalResponseNormArgs} from './local_response_norm';
import {RMSNorm, RMSNormArgs} from './rms_norm';

/** PyTorch's BatchNorm1d/2d/3d. See {@link BatchNorm}. */
export function batchNorm(args: BatchNormArgs = {}): BatchNorm {
  return new BatchNorm(args);
}

/** PyTorch's LayerNorm. See {@link LayerNorm}. */
export function layerNorm(args: LayerNormArgs = {}): LayerNorm {
  return new LayerNorm(args);
}

/** PyTorch's InstanceNorm1d/2d/3d. See {@link InstanceNorm}. */
export function instanceNorm(args: InstanceNormArgs = {}): InstanceNorm {
  return new InstanceNorm(args);
}

/** PyTorch's GroupNorm. See {@link GroupNorm}. */
export function groupNorm(args: GroupNormArgs): GroupNorm {
  return new GroupNorm(args);
}

/** PyTorch 2.4's RMSNorm. See {@link RMSNorm}. */
export function rmsNorm(args: RMSNormArgs = {}): RMSNorm {
  return new RMSNorm(args);
}

/** PyTorch's LocalResponseNorm. See {@link LocalResponseNorm}. */
export function localResponseNorm(args: LocalResponseNormArgs): LocalResponseNorm {
  return new LocalResponseNorm(args);
}

/** LayerNorm(x + residual) on `[x, residual]`. See {@link AddLayerNorm}. */
export function addLayerNorm(args: AddLayerNormArgs = {}): AddLayerNorm {
  return new AddLayerNorm(args);
}

/** RMSNorm(x + residual) on `[x, residual]`. See {@link AddRMSNorm}. */
export function addRMSNorm(args: AddRMSNormArgs = {}): AddRMSNorm {
  return new AddRMSNorm(args);
}
