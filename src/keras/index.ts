/**
 * Keras-compatible layers, registered on import under Keras' class names so
 * that `tf.loadLayersModel` loads converted Keras models with them. Keras
 * semantics (epsilon placement, defaults, weight names), not PyTorch's.
 */
export {GroupNormalization, GroupNormalizationArgs, AddonsGroupNormalization, AddonsInstanceNormalization} from './group_normalization';
export {InstanceNormalization, InstanceNormalizationArgs} from './instance_normalization';
export {RMSNormalization, RMSNormalizationArgs} from './rms_normalization';
export {UnitNormalization, UnitNormalizationArgs} from './unit_normalization';
export {KerasAffineArgs} from './common';
