import * as tf from '@tensorflow/tfjs';
import type { NativeBlas } from './native.ts';
import { asWasmBackend, f32Offset, heapF32 } from './wasm-heap.ts';

/**
 * Native batch-normalisation kernels for the wasm backend (channels last, float32): what
 * `tf.layers.batchNormalization` runs in training (`tf.moments` + `tf.batchNorm` and their
 * gradients) in a few native passes instead of some thirty tfjs kernels per layer, among them a
 * full-size `Tile` that the stock wasm backend runs element by element.
 *
 * - `FusedBatchNorm` (forward) in one pass, mean / variance / offset / scale of length 1 or C (the
 *   last axis), in double like the cpu kernel;
 * - `Mean` over leading axes (the moments over N, H, W) in one pass, summed in double;
 * - the gradient of `FusedBatchNorm`: the kernel {@link BATCH_NORM_GRAD_KERNEL} gives dx, d mean,
 *   d variance, d scale and d offset in one pass over x and dy (tfjs's formula: eight full-size
 *   products, a `Tile` and four sums);
 * - the gradient of `Mean` over leading axes: {@link MEAN_GRAD_KERNEL}, dy / n spread in one pass
 *   (tfjs: `Fill` + `Multiply` + `RealDiv`).
 *
 * What they do not cover (other dtypes, statistics per element rather than per channel, other
 * reduction axes, higher-order gradients) runs the stock kernel or the stock gradient formula.
 */

/** Stock wasm kernels replaced by {@link batchNormKernelConfigs}. */
export const BATCH_NORM_KERNELS = ['FusedBatchNorm', 'Mean'] as const;
export type BatchNormKernelName = (typeof BATCH_NORM_KERNELS)[number];

/** Kernel: inputs `x, dy, mean, variance[, scale]`, attr `varianceEpsilon`; outputs `[dx, dmean, dvariance, dscale, doffset]`. */
export const BATCH_NORM_GRAD_KERNEL = 'DistillBatchNormGrad';
/** Kernel: input `dy` (a Mean's output gradient), attrs `shape` (the Mean's input shape) and `reduceSize`. */
export const MEAN_GRAD_KERNEL = 'DistillMeanGrad';

type Stock = (name: BatchNormKernelName, args: Parameters<tf.KernelFunc>[0]) => ReturnType<tf.KernelFunc>;

function sizeOf(shape: readonly number[]): number {
  let s = 1;
  for (const d of shape) s *= d;
  return s;
}

/** Length of a per-channel operand (1: one value; C: one per channel of the last axis), else undefined. */
function channelLength(t: tf.TensorInfo, C: number): number | undefined {
  const n = sizeOf(t.shape);
  if (n === 1) return 1;
  if (n === C && t.shape[t.shape.length - 1] === C) return C;
  return undefined;
}

/**
 * Number of leading axes `axis` names (0..k-1 in any order, each once), or undefined when it names
 * others. `axis` null / undefined: every axis.
 */
function leadingAxes(axis: number | number[] | null | undefined, shape: readonly number[]): number | undefined {
  const axes = tf.util.parseAxisParam(axis ?? shape.map((_, i) => i), [...shape]).sort((p, q) => p - q);
  if (axes.length === 0 || axes.some((a, i) => a !== i)) return undefined;
  return axes.length;
}

function fusedBatchNormKernel(blas: NativeBlas, stock: Stock): tf.KernelFunc {
  return (args) => {
    const { x, mean, variance, offset, scale } = args.inputs as {
      x: tf.TensorInfo; mean: tf.TensorInfo; variance: tf.TensorInfo; offset?: tf.TensorInfo | null; scale?: tf.TensorInfo | null;
    };
    const eps = (args.attrs as { varianceEpsilon?: number } | undefined)?.varianceEpsilon ?? 0.001;
    const rank = x.shape.length;
    if (rank === 0 || [x, mean, variance, offset, scale].some((t) => t && t.dtype !== 'float32')) return stock('FusedBatchNorm', args);
    const C = x.shape[rank - 1]!;
    const n = sizeOf(x.shape);
    const lens = [mean, variance, offset, scale].map((t) => (t ? channelLength(t, C) : 0));
    if (C === 0 || n === 0 || lens.some((l) => l === undefined)) return stock('FusedBatchNorm', args);
    const be = asWasmBackend(args.backend);
    const out = be.makeOutput([...x.shape], 'float32');
    const off = (t: tf.TensorInfo | null | undefined): number => (t ? f32Offset(be, t) : -1);
    blas.bnForward(
      heapF32(be), f32Offset(be, x), n / C, C, off(mean), lens[0]!, off(variance), lens[1]!, off(offset), lens[2]!, off(scale), lens[3]!,
      f32Offset(be, out), eps,
    );
    return out;
  };
}

function meanKernel(blas: NativeBlas, stock: Stock): tf.KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { axis, keepDims } = (args.attrs ?? {}) as { axis?: number | number[] | null; keepDims?: boolean };
    if (x.dtype !== 'float32' || x.shape.length === 0) return stock('Mean', args);
    const k = leadingAxes(axis, x.shape);
    if (k === undefined) return stock('Mean', args);
    const rows = sizeOf(x.shape.slice(0, k));
    const cols = sizeOf(x.shape.slice(k));
    const be = asWasmBackend(args.backend);
    const out = be.makeOutput(keepDims ? x.shape.map((d, i) => (i < k ? 1 : d)) : x.shape.slice(k), 'float32');
    if (cols === 0) return out;
    // The mean over no rows is 0, as on cpu (the stock wasm kernel leaves the memory as it was).
    if (rows === 0) heapF32(be).fill(0, f32Offset(be, out), f32Offset(be, out) + cols);
    else blas.colMean(heapF32(be), f32Offset(be, x), rows, cols, f32Offset(be, out));
    return out;
  };
}

/**
 * The {@link BATCH_NORM_GRAD_KERNEL} kernel: x `[..., C]`, dy of x's shape, mean, variance and scale
 * (optional) of shape `[C]`, all float32 (the callers check; misuse throws).
 */
export function batchNormGradKernel(blas: NativeBlas): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { x, dy, mean, variance, scale } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo; mean: tf.TensorInfo; variance: tf.TensorInfo; scale?: tf.TensorInfo };
    const eps = (attrs as { varianceEpsilon?: number } | undefined)?.varianceEpsilon ?? 0.001;
    const C = x.shape[x.shape.length - 1] ?? 0;
    const stats = scale ? [mean, variance, scale] : [mean, variance];
    if (![x, dy, ...stats].every((t) => t.dtype === 'float32') || !tf.util.arraysEqual(dy.shape, x.shape) || C === 0 || !stats.every((t) => t.shape.length === 1 && t.shape[0] === C)) {
      throw new Error(`${BATCH_NORM_GRAD_KERNEL}: expected float32 x and dy of one shape [..., C] and mean, variance (and scale) of shape [C], got x [${x.shape}], dy [${dy.shape}], mean [${mean.shape}]`);
    }
    const be = asWasmBackend(backend);
    const outs = [be.makeOutput([...x.shape], 'float32'), ...[0, 1, 2, 3].map(() => be.makeOutput([C], 'float32'))];
    const [dx, dmean, dvar, dscale, doffset] = outs as [tf.TensorInfo, tf.TensorInfo, tf.TensorInfo, tf.TensorInfo, tf.TensorInfo];
    blas.bnGrad(
      heapF32(be), f32Offset(be, x), f32Offset(be, dy), sizeOf(x.shape) / C, C, f32Offset(be, mean), f32Offset(be, variance), scale ? f32Offset(be, scale) : -1,
      f32Offset(be, dx), f32Offset(be, dmean), f32Offset(be, dvar), f32Offset(be, dscale), f32Offset(be, doffset), eps,
    );
    return outs;
  };
}

/** The {@link MEAN_GRAD_KERNEL} kernel: `dx[i, j] = dy[j] / reduceSize`, dx of `shape`, dy its trailing part (float32). */
export function meanGradKernel(blas: NativeBlas): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { dy } = inputs as { dy: tf.TensorInfo };
    const { shape, reduceSize } = attrs as unknown as { shape: number[]; reduceSize: number };
    const cols = sizeOf(dy.shape);
    const n = sizeOf(shape);
    if (dy.dtype !== 'float32' || (cols === 0 ? n !== 0 : n % cols !== 0)) throw new Error(`${MEAN_GRAD_KERNEL}: dy [${dy.shape}] (float32) must tile the shape [${shape}]`);
    const be = asWasmBackend(backend);
    const out = be.makeOutput([...shape], 'float32');
    if (n > 0) blas.spreadRows(heapF32(be), f32Offset(be, dy), n / cols, cols, reduceSize, f32Offset(be, out));
    return out;
  };
}

/**
 * The forward kernel functions, by name. `stock` runs the stock wasm kernel of that name for what
 * they do not handle.
 */
export function batchNormKernelConfigs(blas: NativeBlas, stock: Stock): Record<BatchNormKernelName, tf.KernelFunc> {
  return { FusedBatchNorm: fusedBatchNormKernel(blas, stock), Mean: meanKernel(blas, stock) };
}

/** The stock gradients replaced by {@link installBatchNormGrads}, kept to restore them. */
let stockGrads: { bn: tf.GradConfig; mean: tf.GradConfig } | undefined;

/** Whether the native gradient kernel `name` may run now: registered on the active backend, and no tape recording (no higher-order gradient). */
function nativeNow(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined && !tf.engine().isTapeOn();
}

/**
 * Replaces the gradients of `FusedBatchNorm` and `Mean` by ones that run {@link BATCH_NORM_GRAD_KERNEL}
 * and {@link MEAN_GRAD_KERNEL} where those are registered and apply (per-channel statistics of shape
 * `[C]`; a mean over leading axes; float32), and the stock formulas anywhere else: other backends,
 * other shapes, and while a tape records (a higher-order gradient differentiates the stock ops).
 * Idempotent.
 */
export function installBatchNormGrads(): void {
  if (stockGrads) return;
  const bn = tf.getGradient('FusedBatchNorm');
  const mean = tf.getGradient('Mean');
  if (!bn || !mean) throw new Error('tfjs has no gradient for FusedBatchNorm or Mean to replace');
  stockGrads = { bn, mean };
  tf.registerGradient({
    kernelName: 'FusedBatchNorm',
    inputsToSave: bn.inputsToSave ?? ['x', 'mean', 'variance', 'scale'],
    gradFunc: (dy, saved, attrs) => {
      const [x, m, v, scale] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined];
      const g = dy as tf.Tensor;
      const C = x.shape[x.rank - 1];
      const stats = scale ? [m, v, scale] : [m, v];
      const applies = nativeNow(BATCH_NORM_GRAD_KERNEL) && x.rank >= 1 && C !== undefined && C > 0 &&
        [x, g, ...stats].every((t) => t.dtype === 'float32') && tf.util.arraysEqual(g.shape, x.shape) &&
        stats.every((t) => t.rank === 1 && t.shape[0] === C);
      if (!applies) return bn.gradFunc(dy, saved, attrs);
      const inputs: tf.NamedTensorMap = scale ? { x, dy: g, mean: m, variance: v, scale } : { x, dy: g, mean: m, variance: v };
      const [dx, dmean, dvar, dscale, doffset] = tf.engine().runKernel(BATCH_NORM_GRAD_KERNEL, inputs, attrs as tf.NamedAttrMap) as tf.Tensor[];
      return { x: () => dx!, mean: () => dmean!, variance: () => dvar!, scale: () => dscale!, offset: () => doffset! };
    },
  });
  tf.registerGradient({
    kernelName: 'Mean',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      const g = dy as tf.Tensor;
      const { axis } = attrs as { axis?: number | number[] | null };
      const k = x.rank > 0 ? leadingAxes(axis, x.shape) : undefined;
      if (k === undefined || !nativeNow(MEAN_GRAD_KERNEL) || x.dtype !== 'float32' || g.dtype !== 'float32' || g.size !== sizeOf(x.shape.slice(k))) {
        return mean.gradFunc(dy, saved, attrs);
      }
      const reduceSize = sizeOf(x.shape.slice(0, k));
      return { x: () => tf.engine().runKernel(MEAN_GRAD_KERNEL, { dy: g }, { shape: [...x.shape], reduceSize }) as tf.Tensor };
    },
  });
}

/** Restores the stock gradients of `FusedBatchNorm` and `Mean`. */
export function uninstallBatchNormGrads(): void {
  if (!stockGrads) return;
  tf.registerGradient(stockGrads.bn);
  tf.registerGradient(stockGrads.mean);
  stockGrads = undefined;
}
