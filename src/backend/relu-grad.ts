import * as tf from '@tensorflow/tfjs';
import type { NativeBlas } from './native.ts';
import { asWasmBackend, f32Offset, heapF32 } from './wasm-heap.ts';

/** Name of the fused relu-gradient kernel registered on the wasm backend by `enableBlasKernels`. */
export const RELU_GRAD_KERNEL = 'DistillReluGrad';

/** The stock gradient of `Relu` (`mul(dy, cast(step(x)))`), kept to restore it. */
let stockReluGrad: tf.GradConfig | undefined;

function sizeOf(shape: readonly number[]): number {
  let s = 1;
  for (const d of shape) s *= d;
  return s;
}

/**
 * The `DistillReluGrad` kernel: `dx = dy * step(x)` in one native pass (inputs `dy`, `x` of the
 * same shape, float32), instead of three tfjs kernels (Step, Cast, Multiply) and two temporary
 * tensors. Same float32 results as the stock formula, NaN and infinities included.
 */
export function reluGradKernel(blas: NativeBlas): tf.KernelFunc {
  return ({ inputs, backend }) => {
    const be = asWasmBackend(backend);
    const { dy, x } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
    if (dy.dtype !== 'float32' || x.dtype !== 'float32') throw new Error(`${RELU_GRAD_KERNEL}: dy and x must be float32, got ${dy.dtype} and ${x.dtype}`);
    if (!tf.util.arraysEqual(dy.shape, x.shape)) throw new Error(`${RELU_GRAD_KERNEL}: dy [${dy.shape}] and x [${x.shape}] must have the same shape`);
    const out = be.makeOutput([...x.shape], 'float32');
    const n = sizeOf(x.shape);
    if (n > 0) blas.reluGrad(heapF32(be), f32Offset(be, dy), f32Offset(be, x), f32Offset(be, out), n);
    return out;
  };
}

/** The stock relu gradient, as tfjs defines it. */
function stockFormula(dy: tf.Tensor, x: tf.Tensor): tf.Tensor {
  return tf.mul(dy, tf.cast(tf.step(x), 'float32'));
}

/** Whether the fused kernel can run for these tensors on the active backend. */
function fusedApplies(dy: tf.Tensor, x: tf.Tensor): boolean {
  return (
    tf.getKernel(RELU_GRAD_KERNEL, tf.getBackend()) !== undefined &&
    dy.dtype === 'float32' && x.dtype === 'float32' && tf.util.arraysEqual(dy.shape, x.shape)
  );
}

/**
 * Replaces the gradient of `Relu` by one that runs {@link RELU_GRAD_KERNEL} on the wasm backend
 * (and the stock formula anywhere else), and gives that kernel a gradient of its own (d/d(dy) is
 * `step(x)`, d/dx is 0) so that higher-order gradients still work. Idempotent.
 */
export function installReluGrad(): void {
  if (stockReluGrad) return;
  stockReluGrad = tf.getGradient('Relu');
  tf.registerGradient({
    kernelName: 'Relu',
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => {
      const [x] = saved as [tf.Tensor];
      const g = dy as tf.Tensor;
      return {
        x: () => (fusedApplies(g, x) ? tf.engine().runKernel(RELU_GRAD_KERNEL, { dy: g, x }) : stockFormula(g, x)),
      };
    },
  });
  tf.registerGradient({
    kernelName: RELU_GRAD_KERNEL,
    inputsToSave: ['x'],
    gradFunc: (ddx, saved) => {
      const [x] = saved as [tf.Tensor];
      return { dy: () => stockFormula(ddx as tf.Tensor, x), x: () => tf.zerosLike(x) };
    },
  });
}

/** Restores the stock gradient of `Relu`. */
export function uninstallReluGrad(): void {
  if (!stockReluGrad) return;
  tf.registerGradient(stockReluGrad);
  tf.unregisterGradient(RELU_GRAD_KERNEL);
  stockReluGrad = undefined;
}
