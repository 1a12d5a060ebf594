import * as tf from '@tensorflow/tfjs';
import type { NativeBlas } from './native.ts';
import { asWasmBackend, f32Offset, heapF32 } from './wasm-heap.ts';

/** Name of the fused softmax cross-entropy kernel registered on the wasm backend by `enableBlasKernels`. */
export const SOFTMAX_XENT_KERNEL = 'DistillSoftmaxXent';

/** What the teacher rows of the soft term are: 0 logits, 1 probabilities (as in `NativeBlas.softmaxXent`). */
export type XentTeacherKind = 'logits' | 'probabilities';

/**
 * The `DistillSoftmaxXent` kernel: inputs `z` (`[B, C]` float32 student logits), `t` (teacher rows,
 * `[B, C]` float32; only when alpha > 0), `y` (`[B]` int32 labels, -1 = none; only when alpha < 1);
 * attrs `T`, `alpha`, `kind` (0 logits, 1 probabilities). Outputs `[loss (scalar), grad ([B, C])]`:
 * the batch mean of `alpha T^2 CE(pT, softmax(z/T)) + (1 - alpha) CE(y, softmax(z))` and its gradient
 * with respect to `z`, one native pass per row (`native/src/addon.c`, `js_softmax_xent`).
 */
export function softmaxXentKernel(blas: NativeBlas): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const be = asWasmBackend(backend);
    const { z, t, y } = inputs as { z: tf.TensorInfo; t?: tf.TensorInfo; y?: tf.TensorInfo };
    const { T, alpha, kind } = attrs as unknown as { T: number; alpha: number; kind: number };
    if (z.dtype !== 'float32' || z.shape.length !== 2) throw new Error(`${SOFTMAX_XENT_KERNEL}: z must be a float32 matrix`);
    const [B, C] = z.shape as [number, number];
    if (alpha > 0 && (!t || t.dtype !== 'float32' || !tf.util.arraysEqual(t.shape, z.shape))) throw new Error(`${SOFTMAX_XENT_KERNEL}: t must be float32 [${B}, ${C}]`);
    if (alpha < 1 && (!y || y.dtype !== 'int32' || y.shape.length !== 1 || y.shape[0] !== B)) throw new Error(`${SOFTMAX_XENT_KERNEL}: y must be int32 [${B}]`);
    const grad = be.makeOutput([B, C], 'float32');
    const loss = be.makeOutput([], 'float32');
    const H = heapF32(be); // after the allocations: the heap may have grown
    const value = blas.softmaxXent(H, f32Offset(be, z), alpha > 0 ? f32Offset(be, t!) : -1, alpha < 1 ? f32Offset(be, y!) : -1, B, C, T, alpha, kind, f32Offset(be, grad));
    H[f32Offset(be, loss)] = value;
    return [loss, grad];
  };
}

/** Whether the fused kernel is registered on the active backend (tfjs's kernel registry). */
export function fusedXentAvailable(): boolean {
  return tf.getKernel(SOFTMAX_XENT_KERNEL, tf.getBackend()) !== undefined;
}

/**
 * The distillation loss of a batch through the fused native kernel, or null when it does not
 * apply (the kernel is not registered on the active backend, or inputs of another dtype/shape: the
 * caller then uses the tfjs ops, which also report bad inputs). Gradient flows into `z` only (the
 * teacher rows and labels get none). Value and gradient equal the tfjs formulation (up to
 * float32 rounding; sums in double).
 * @param z `[B, C]` student logits
 * @param t teacher rows `[B, C]` (logits or probabilities per `kind`); null when alpha = 0
 * @param y labels `[B]` int32 (-1: no hard term on that row); null when alpha = 1
 */
export function fusedSoftmaxXent(z: tf.Tensor2D, t: tf.Tensor | null | undefined, y: tf.Tensor | null | undefined, T: number, alpha: number, kind: XentTeacherKind): tf.Scalar | null {
  if (!fusedXentAvailable() || z.rank !== 2 || z.dtype !== 'float32') return null;
  const needT = alpha > 0;
  const needY = alpha < 1;
  if (needT && (!t || t.dtype !== 'float32' || !tf.util.arraysEqual(t.shape, z.shape))) return null;
  if (needY && (!y || y.dtype !== 'int32' || y.rank !== 1 || y.shape[0] !== z.shape[0])) return null;
  const op = tf.customGrad((...args: Array<tf.Tensor | ((save: tf.Tensor[]) => void)>) => {
    const zz = args[0] as tf.Tensor2D;
    const save = args[1] as (s: tf.Tensor[]) => void;
    const inputs: tf.NamedTensorMap = { z: zz };
    if (needT) inputs.t = t!;
    if (needY) inputs.y = y!;
    const [loss, grad] = tf.engine().runKernel(SOFTMAX_XENT_KERNEL, inputs, { T, alpha, kind: kind === 'logits' ? 0 : 1 }) as tf.Tensor[];
    save([grad!]);
    return { value: loss as tf.Scalar, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(saved[0]!, dy)] };
  });
  return op(z) as tf.Scalar;
}
