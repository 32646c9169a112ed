/**
 * tfjs-norm: PyTorch's normalization layers for TensorFlow.js.
 * Importing this module registers (register.ts) every layer class for
 * serialization, the Keras-compatible classes under Keras' class names
 * (GroupNormalization, Addons>GroupNormalization, Addons>InstanceNormalization,
 * InstanceNormalization, RMSNormalization, UnitNormalization), the fused
 * kernels and the `TFJS_NORM_FUSED` and `TFJS_NORM_SIMD` flags.
 */
import './register';
export {BatchNorm, BatchNormArgs} from './layers/batch_norm';
export {GroupNorm, GroupNormArgs} from './layers/group_norm';
export {InstanceNorm, InstanceNormArgs} from './layers/instance_norm';
export {LayerNorm, LayerNormArgs} from './layers/layer_norm';
export {LocalResponseNorm, LocalResponseNormArgs} from './layers/local_response_norm';
export {RMSNorm, RMSNormArgs} from './layers/rms_norm';
export {AddLayerNorm, AddLayerNormArgs} from './layers/add_layer_norm';
export {AddRMSNorm, AddRMSNormArgs} from './layers/add_rms_norm';
export {Activation, ActivationArg, ActivationIdentifier} from './engine/activation';
export {NormLayer, AffineArgs, RunningStatsArgs} from './layers/base';
export {ValueError} from './errors';
import * as layers from './layers/index';
import * as ops from './ops/index';
export {layers, ops};
export {
  fileSystem, FileSystemOptions, loadWeights, LoadWeightsOptions, readSafetensors, readSafetensorsFile, SafetensorsFile,
  loadTorchStateDict, LoadTorchOptions, LoadTorchResult,
} from './io';
export {
  GroupNormalization, GroupNormalizationArgs, AddonsGroupNormalization, AddonsInstanceNormalization,
  InstanceNormalization, InstanceNormalizationArgs, RMSNormalization, RMSNormalizationArgs, UnitNormalization,
  UnitNormalizationArgs,
} from './keras';
export {
  foldBatchNorm, FoldBatchNormResult, FoldReport, FoldedPair, KeptNorm,
  recomputeBatchNormStats, RecomputeStatsOptions, RecomputeStatsResult, StatsBatch, BatchInputs,
} from './tools';
