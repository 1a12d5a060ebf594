import * as tf from '@tensorflow/tfjs';
import { NATIVE_ACTIVATION, type NativeBlas } from './native.ts';
import type { FusedDenseLayer, FusedLossSpec, FusedMlpStep } from './fused-ops.ts';
import { asWasmBackend, f32Offset, heapF32, type WasmBackendInternals } from './wasm-heap.ts';

/**
 * A small MLP's whole gradient step without the tfjs engine, for the wasm-blas backend: the batch
 * is written straight into scratch memory on the wasm heap, then forward (sgemm + bias/ReLU per
 * layer), the fused softmax cross-entropy (value and gradient), and backward (sgemm for the kernel
 * and input gradients, column sums for the biases, the ReLU gradient, the accuracy count) run as native calls on that
 * memory: about 4 calls per layer instead of ~45 tfjs kernels with their tensor bookkeeping. The
 * gradients land in kept tensors, which the optimizer's (native, in-place) step then reads.
 * The arithmetic is the same as the tfjs kernels' on this backend (the same sgemm, bias-add, ReLU,
 * ReLU-gradient and softmax cross-entropy kernels), so both paths agree up to float32 rounding.
 */

let native: NativeBlas | undefined;
let runs = 0;

/** How many fused MLP steps ran in this process (for tests and benchmarks). */
export function nativeMlpStepRuns(): number {
  return runs;
}

/**
 * Turns the fused MLP step on (called by `enableBlasKernels`), unless `DISTILL_NO_FUSED_STEP=1`
 * is set: that switch keeps the generic tfjs path, to time a stage with and without the step.
 */
export function installNativeMlpStep(addon: NativeBlas): void {
  native = process.env.DISTILL_NO_FUSED_STEP === '1' ? undefined : addon;
}

/** Turns it off (the generic tfjs path runs). */
export function uninstallNativeMlpStep(): void {
  native = undefined;
}

function onHeapF32(be: WasmBackendInternals, t: tf.Tensor): boolean {
  return !t.isDisposed && t.dtype === 'float32' && be.dataIdMap.get(t.dataId) !== undefined;
}

/**
 * Prepares the fused step of the dense chain `layers` (the last one linear: its outputs are the
 * logits) for batches of at most `maxRows` rows, or returns null when it does not apply (the
 * native path is off, another backend, shapes that do not chain, a ReLU on the logits).
 */
export function nativeMlpGradStep(layers: FusedDenseLayer[], loss: FusedLossSpec, maxRows: number): FusedMlpStep | null {
  const addon = native;
  if (!addon || layers.length === 0 || !(maxRows >= 1)) return null;
  let be: WasmBackendInternals;
  try {
    be = asWasmBackend(tf.backend());
  } catch {
    return null;
  }
  const dims: number[] = [];
  for (let l = 0; l < layers.length; l++) {
    const { kernel, bias } = layers[l]!;
    if (kernel.rank !== 2 || !onHeapF32(be, kernel)) return null;
    const [i, o] = kernel.shape as [number, number];
    if (l === 0) dims.push(i);
    else if (dims[l] !== i) return null;
    if (bias && (bias.rank !== 1 || bias.shape[0] !== o || !onHeapF32(be, bias))) return null;
    dims.push(o);
  }
  if (layers[layers.length - 1]!.relu) return null;
  const L = layers.length;
  const C = dims[L]!;
  const needT = loss.alpha > 0;
  const needY = loss.alpha < 1;
  const scale = loss.scale ?? 1;
  if (!(scale > 0 && Number.isFinite(scale))) return null;
  // Scratch: inputs, labels, teacher rows, each layer's output, its delta, and the gradients.
  const x = tf.keep(tf.zeros([maxRows, dims[0]!], 'float32'));
  const y = tf.keep(tf.zeros([maxRows], 'int32'));
  const t = needT ? tf.keep(tf.zeros([maxRows, C], 'float32')) : null;
  const acts = layers.map((_, l) => tf.keep(tf.zeros([maxRows, dims[l + 1]!], 'float32')));
  const deltas = layers.map((_, l) => tf.keep(tf.zeros([maxRows, dims[l + 1]!], 'float32')));
  const grads: tf.Tensor[] = [];
  const kGrad: tf.Tensor[] = [];
  const bGrad: (tf.Tensor | null)[] = [];
  for (const { kernel, bias } of layers) {
    const gk = tf.keep(tf.zeros(kernel.shape, 'float32'));
    kGrad.push(gk);
    grads.push(gk);
    const gb = bias ? tf.keep(tf.zeros(bias.shape, 'float32')) : null;
    bGrad.push(gb);
    if (gb) grads.push(gb);
  }
  const scratch: tf.Tensor[] = [x, y, ...(t ? [t] : []), ...acts, ...deltas, ...grads];
  let disposed = false;
  const relu = NATIVE_ACTIVATION.relu;
  const linear = NATIVE_ACTIVATION.linear;
  return {
    grads,
    run(rows, xb, yb, tb) {
      if (disposed) throw new Error('fused MLP step: used after dispose');
      if (!(rows >= 1 && rows <= maxRows) || xb.length < rows * dims[0]! || yb.length < rows || (needT && (!tb || tb.length < rows * C))) {
        throw new Error(`fused MLP step: a batch of ${rows} rows does not fit (at most ${maxRows}; x ${xb.length}, y ${yb.length}, t ${tb?.length ?? 0} values)`);
      }
      runs++;
      const H = heapF32(be);
      const xOff = f32Offset(be, x);
      const yOff = f32Offset(be, y);
      H.set(xb.subarray(0, rows * dims[0]!), xOff);
      new Int32Array(H.buffer, H.byteOffset + yOff * 4, rows).set(yb.subarray(0, rows));
      const tOff = t ? f32Offset(be, t) : -1;
      if (t) H.set(tb!.subarray(0, rows * C), tOff);
      const aOff = acts.map((a) => f32Offset(be, a));
      const dOff = deltas.map((d) => f32Offset(be, d));
      // Forward: a_l = act(a_{l-1} W_l + b_l).
      for (let l = 0; l < L; l++) {
        const { kernel, bias } = layers[l]!;
        const inOff = l === 0 ? xOff : aOff[l - 1]!;
        const [i, o] = [dims[l]!, dims[l + 1]!];
        addon.sgemm(false, false, rows, o, i, 1, H, inOff, i, H, f32Offset(be, kernel), o, 0, H, aOff[l]!, o);
        addon.biasAct(H, aOff[l]!, rows, o, bias ? H : null, bias ? f32Offset(be, bias) : 0, bias ? o : 0, layers[l]!.relu ? relu : linear, 0, null, 0, 0);
      }
      // Accuracy: rows whose first maximal logit is the label (tf.argMax's tie rule).
      const zOff = aOff[L - 1]!;
      const correct = addon.argmaxHits(H, zOff, yOff, rows, C);
      let value = addon.softmaxXent(H, zOff, needT ? tOff : -1, needY ? yOff : -1, rows, C, loss.T, loss.alpha, loss.kind === 'logits' ? 0 : 1, dOff[L - 1]!);
      if (scale !== 1) {
        value *= scale;
        const g = dOff[L - 1]!;
        for (let k = 0; k < rows * C; k++) H[g + k]! *= scale;
      }
      // Backward: dW_l = a_{l-1}^T d_l, db_l = colsum(d_l), d_{l-1} = relu'(a_{l-1}) * (d_l W_l^T).
      for (let l = L - 1; l >= 0; l--) {
        const { kernel, bias } = layers[l]!;
        const inOff = l === 0 ? xOff : aOff[l - 1]!;
        const [i, o] = [dims[l]!, dims[l + 1]!];
        addon.sgemm(true, false, i, o, rows, 1, H, inOff, i, H, dOff[l]!, o, 0, H, f32Offset(be, kGrad[l]!), o);
        if (bias) addon.colSum(H, dOff[l]!, rows, o, f32Offset(be, bGrad[l]!));
        if (l === 0) continue;
        addon.sgemm(false, true, rows, i, o, 1, H, dOff[l]!, o, H, f32Offset(be, kernel), o, 0, H, dOff[l - 1]!, i);
        if (layers[l - 1]!.relu) addon.reluGrad(H, dOff[l - 1]!, aOff[l - 1]!, dOff[l - 1]!, rows * i);
      }
      return { loss: value, correct };
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      tf.dispose(scratch);
    },
  };
}
