/**
 * Differentiable functional forms of every layer (the layers call these),
 * PyTorch's `torch.nn.functional` counterparts.
 *
 * ```js
 * const y = tfn.ops.layerNorm(x, {axis: -1});
 * ```
 *
 * @packageDocumentation
 */
export {batchNorm, BatchNormOpArgs} from './batch_norm';
export {groupNorm, GroupNormOpArgs} from './group_norm';
export {instanceNorm, InstanceNormOpArgs} from './instance_norm';
export {layerNorm, LayerNormOpArgs} from './layer_norm';
export {moments} from './moments';
export {rmsNorm, RMSNormOpArgs, FLOAT32_EPS} from './rms_norm';
export {localResponseNorm, LocalResponseNormOpArgs} from './local_response_norm';
export {addLayerNorm, AddLayerNormOpArgs, AddNormOpArgs, addRMSNorm, AddRMSNormOpArgs} from './add_norm';
