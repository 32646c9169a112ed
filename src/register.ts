/**
 * Every registration the package makes, in one place (like tfjs'
 * register_all_kernels.ts); index.ts imports it, and nothing else in the
 * package has an effect on import:
 * - the `TFJS_NORM_FUSED` and `TFJS_NORM_SIMD` flags (engine/environment.ts);
 * - each backend's fused kernels, unless that backend already has a kernel of
 *   the name (a second copy of the package, or a user's own);
 * - the container `trainable` setter wrapped so freezing a model freezes our
 *   layers inside it, at any depth (layers/freezing.ts: Keras' fine-tuning rule);
 * - the layer classes under their names (BatchNorm, ...), and the Keras
 *   classes under Keras' names (GroupNormalization, ...) unless another
 *   library already owns a name, which is kept with a warning.
 */
import * as tf from '@tensorflow/tfjs';
import {cpuKernels} from './engine/backends/cpu';
import {wasmKernels} from './engine/backends/wasm';
import {webglKernels} from './engine/backends/webgl';
import {webgpuKernels} from './engine/backends/webgpu';
import {registerFlags} from './engine/environment';
import {
  AddonsGroupNormalization, AddonsInstanceNormalization, GroupNormalization, InstanceNormalization, RMSNormalization,
  UnitNormalization,
} from './keras';
import {registerKerasClass} from './keras/common';
import {NormLayer} from './layers/base';
import {installContainerFreezing} from './layers/freezing';
import {BatchNorm} from './layers/batch_norm';
import {GroupNorm} from './layers/group_norm';
import {InstanceNorm} from './layers/instance_norm';
import {LayerNorm} from './layers/layer_norm';
import {LocalResponseNorm} from './layers/local_response_norm';
import {RMSNorm} from './layers/rms_norm';
import {AddLayerNorm} from './layers/add_layer_norm';
import {AddRMSNorm} from './layers/add_rms_norm';

/** Every backend's kernels (one file per backend under engine/backends/). */
const KERNELS: tf.KernelConfig[] = [...cpuKernels, ...wasmKernels, ...webglKernels, ...webgpuKernels];

registerFlags();

for (const kernel of KERNELS) {
  if (!tf.getKernel(kernel.kernelName, kernel.backendName)) tf.registerKernel(kernel);
}

installContainerFreezing(layer => layer instanceof NormLayer);

for (const cls of [BatchNorm, GroupNorm, InstanceNorm, LayerNorm, LocalResponseNorm, RMSNorm]) {
  tf.serialization.registerClass(cls);
}

for (const cls of [AddLayerNorm, AddRMSNorm]) tf.serialization.registerClass(cls);

for (const cls of [GroupNormalization, AddonsGroupNormalization, AddonsInstanceNormalization, InstanceNormalization,
                   RMSNormalization, UnitNormalization]) {
  try {
    registerKerasClass(cls);
  } catch (e) {
    console.warn(`tfjs-norm: ${(e as Error).message}; models using ${cls.className} load with that class.`);
  }
}
