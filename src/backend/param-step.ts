import * as tf from '@tensorflow/tfjs';
import type { AdamScalars } from './fused-ops.ts';
import type { NativeBlas } from './native.ts';
import { asWasmBackend, f32Offset, heapF32, soleOwner, type WasmBackendInternals } from './wasm-heap.ts';

/**
 * Native in-place parameter updates for the training loop's optimizer (`ParamOptimizer`) and the
 * max-norm constraint, used when the wasm-blas backend is active: one pass over each weight
 * instead of 5-12 tfjs ops that each allocate a full-size tensor. Each function returns false
 * (and does nothing) when it does not apply, and the caller then runs its tfjs ops; the native
 * arithmetic is the same float32 operation order, so both paths give the same numbers.
 */

let native: NativeBlas | undefined;
const stats = { adam: 0, sgd: 0, maxNorm: 0 };

/** How many updates of each kind ran natively in this process (for tests and benchmarks). */
export function nativeParamStepStats(): { adam: number; sgd: number; maxNorm: number } {
  return { ...stats };
}

/** Turns the native updates on (called by `enableBlasKernels`). */
export function installNativeParamSteps(addon: NativeBlas): void {
  native = addon;
}

/** Turns them off (the tfjs ops run). */
export function uninstallNativeParamSteps(): void {
  native = undefined;
}

/** The active backend's wasm internals when the native path is on and it is a wasm backend. */
function activeWasm(): WasmBackendInternals | undefined {
  if (!native) return undefined;
  try {
    return asWasmBackend(tf.backend());
  } catch {
    return undefined; // another backend: the caller's tfjs ops run
  }
}

/** `t` is a float32 tensor on the wasm backend with `n` values. */
function onHeap(be: WasmBackendInternals, t: tf.Tensor, n: number): boolean {
  return !t.isDisposed && t.dtype === 'float32' && t.size === n && be.dataIdMap.get(t.dataId) !== undefined;
}

/** Updated in place: float32 on the heap, owned by this tensor alone, not aliasing `g`. */
function writable(be: WasmBackendInternals, t: tf.Tensor, g: tf.Tensor): boolean {
  return onHeap(be, t, g.size) && soleOwner(be, t) && t.dataId !== g.dataId;
}

/** Scalars of one Adam step (defined with the dispatch in `fused-ops.ts`). */
export type { AdamScalars };

/**
 * Adam in place: `m = m*b1 + g*omb1; v = v*b2 + (g*g)*omb2; w = w - (m*lrc1) / (sqrt(v*c2) + eps)`.
 * @returns whether it ran (false: the caller must do the update).
 */
export function nativeAdamStep(w: tf.Variable, m: tf.Variable, v: tf.Variable, g: tf.Tensor, k: AdamScalars): boolean {
  const be = activeWasm();
  if (!be || !native || !onHeap(be, g, g.size) || !writable(be, w, g) || !writable(be, m, g) || !writable(be, v, g)) return false;
  if (w.dataId === m.dataId || w.dataId === v.dataId || m.dataId === v.dataId) return false;
  stats.adam++;
  if (g.size === 0) return true;
  native.adam(heapF32(be), f32Offset(be, w), f32Offset(be, m), f32Offset(be, v), f32Offset(be, g), g.size, k.b1, k.omb1, k.b2, k.omb2, k.lrc1, k.c2, k.eps);
  return true;
}

/**
 * SGD in place: without `vel`, `w = w - g*lr`; with it, `vel = vel*mu - g*lr; w = w + vel`
 * (nesterov: `w = (w + vel*mu) - g*lr`).
 * @returns whether it ran.
 */
export function nativeSgdStep(w: tf.Variable, vel: tf.Variable | undefined, g: tf.Tensor, lr: number, mu: number, nesterov: boolean): boolean {
  const be = activeWasm();
  if (!be || !native || !onHeap(be, g, g.size) || !writable(be, w, g) || (vel && (!writable(be, vel, g) || vel.dataId === w.dataId))) return false;
  stats.sgd++;
  if (g.size === 0) return true;
  native.sgdStep(heapF32(be), f32Offset(be, w), vel ? f32Offset(be, vel) : -1, f32Offset(be, g), g.size, lr, mu, nesterov);
  return true;
}

/**
 * Max-norm on axis 0 of a 2-D weight (each column = one unit's incoming weights), in place:
 * columns with norm above `maxValue` are scaled to it, the others left bit-identical.
 * @returns whether it ran (false for other ranks, or when the native path is off).
 */
export function nativeMaxNormCols(w: tf.Variable, maxValue: number): boolean {
  const be = activeWasm();
  if (!be || !native || w.rank !== 2 || !onHeap(be, w, w.size) || !soleOwner(be, w)) return false;
  stats.maxNorm++;
  const [rows, cols] = w.shape as [number, number];
  if (w.size > 0) native.maxNormCols(heapF32(be), f32Offset(be, w), rows, cols, maxValue);
  return true;
}
