import * as tf from '@tensorflow/tfjs';
import { BackendError } from '../util/errors.ts';

/** Gradient kernels that training a layer class needs beyond its forward kernels. */
const TRAINING_KERNELS: Record<string, string[]> = {
  Conv2D: ['Conv2DBackpropFilter', 'Conv2DBackpropInput'],
  MaxPooling2D: ['MaxPoolGrad'],
};

/**
 * Checks that the active backend has the kernels training `model` needs (e.g. plain `wasm` has no
 * `Conv2DBackpropFilter`, so it cannot train a convolution), before the first step fails deep
 * inside tfjs.
 * @throws BackendError naming the layer, the missing kernel and the backends that have it.
 */
export function checkTrainingKernels(model: tf.LayersModel): void {
  const backend = tf.getBackend();
  for (const layer of model.layers) {
    for (const kernel of TRAINING_KERNELS[layer.getClassName()] ?? []) {
      if (!tf.getKernel(kernel, backend)) {
        throw new BackendError(
          `training layer '${layer.name}' (${layer.getClassName()}) needs the kernel ${kernel}, which backend '${backend}' does not have: ` +
            `use --backend wasm-blas (the native addon; npm rebuild builds it), tensorflow or cpu`,
        );
      }
    }
  }
}
