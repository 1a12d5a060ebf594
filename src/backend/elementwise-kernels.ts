import * as tf from '@tensorflow/tfjs';
import type { NativeBlas } from './native.ts';
import { asWasmBackend, f32Offset, heapF32 } from './wasm-heap.ts';

/**
 * Native elementwise float32 kernels for the wasm backend, for what batch normalisation's moments
 * and their gradients leave after `batch-norm-kernels.ts`: `Sub`, `Multiply` and `RealDiv` where one
 * operand is the other's shape, one value, or a row broadcast over the leading axes (a `[C]` or
 * `[1, 1, 1, C]` operand over `[N, H, W, C]`), in either order; `Square`; and the gradient of
 * `Square` in one pass ({@link SQUARE_GRAD_KERNEL}, tfjs: `mul(dy, mul(x, 2))`). Plain IEEE float32
 * operations, so the results are the stock kernels' bit for bit. Other broadcasts and dtypes run
 * the stock kernel; the gradient, the stock formula (also while a tape records it).
 */

/** Stock wasm kernels replaced by {@link elementwiseKernelConfigs}. */
export const ELEMENTWISE_KERNELS = ['Sub', 'Multiply', 'RealDiv', 'Square'] as const;
export type ElementwiseKernelName = (typeof ELEMENTWISE_KERNELS)[number];

/** Kernel: inputs `dy`, `x` of one shape (float32); output `dy * (x * 2)`. */
export const SQUARE_GRAD_KERNEL = 'DistillSquareGrad';

type Stock = (name: ElementwiseKernelName, args: Parameters<tf.KernelFunc>[0]) => ReturnType<tf.KernelFunc>;

/** Operation codes of {@link NativeBlas.binaryRows}. */
const OP = { Sub: 1, Multiply: 2, RealDiv: 3 } as const;

function sizeOf(shape: readonly number[]): number {
  let s = 1;
  for (const d of shape) s *= d;
  return s;
}

/** The shape without its leading 1s (which broadcast anyway). */
function stripOnes(shape: readonly number[]): number[] {
  let k = 0;
  while (k < shape.length && shape[k] === 1) k++;
  return shape.slice(k);
}

/**
 * How `a op b` maps onto the native rows x cols loop: each operand's length (rows * cols: the output's
 * shape; cols: a row repeated over the leading axes; 1: one value), or undefined for other broadcasts.
 */
export function planBroadcast(a: readonly number[], b: readonly number[]): { outShape: number[]; rows: number; cols: number; aLen: number; bLen: number } | undefined {
  let outShape: number[];
  try {
    outShape = tf.backend_util.assertAndGetBroadcastShape([...a], [...b]);
  } catch {
    return undefined;
  }
  const n = sizeOf(outShape);
  const kind = (s: readonly number[]): 'full' | 'one' | number | undefined => {
    if (sizeOf(s) === 1) return 'one';
    const rest = stripOnes(s);
    if (rest.length === stripOnes(outShape).length && tf.util.arraysEqual(rest, stripOnes(outShape))) return 'full';
    if (rest.length <= outShape.length && tf.util.arraysEqual(rest, outShape.slice(outShape.length - rest.length))) return sizeOf(rest);
    return undefined;
  };
  const ka = kind(a);
  const kb = kind(b);
  if (ka === undefined || kb === undefined) return undefined;
  const row = typeof ka === 'number' ? ka : typeof kb === 'number' ? kb : undefined;
  if (typeof ka === 'number' && typeof kb === 'number') return undefined; // two different rows: an outer broadcast
  const cols = row ?? n;
  const len = (k: 'full' | 'one' | number): number => (k === 'full' ? n : k === 'one' ? 1 : cols);
  return { outShape, rows: cols === 0 ? 0 : n / cols, cols, aLen: len(ka), bLen: len(kb) };
}

function binaryKernel(blas: NativeBlas, stock: Stock, name: 'Sub' | 'Multiply' | 'RealDiv'): tf.KernelFunc {
  return (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return stock(name, args);
    const plan = planBroadcast(a.shape, b.shape);
    if (!plan) return stock(name, args);
    const be = asWasmBackend(args.backend);
    const out = be.makeOutput(plan.outShape, 'float32');
    if (plan.rows * plan.cols === 0) return out;
    blas.binaryRows(heapF32(be), OP[name], f32Offset(be, a), plan.aLen, f32Offset(be, b), plan.bLen, plan.rows, plan.cols, f32Offset(be, out));
    return out;
  };
}

function squareKernel(blas: NativeBlas, stock: Stock): tf.KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (x.dtype !== 'float32') return stock('Square', args);
    const be = asWasmBackend(args.backend);
    const out = be.makeOutput([...x.shape], 'float32');
    const n = sizeOf(x.shape);
    if (n > 0) blas.square(heapF32(be), f32Offset(be, x), n, f32Offset(be, out), -1);
    return out;
  };
}

/** The {@link SQUARE_GRAD_KERNEL} kernel (float32 `dy`, `x` of one shape; the callers check, misuse throws). */
export function squareGradKernel(blas: NativeBlas): tf.KernelFunc {
  return ({ inputs, backend }) => {
    const { dy, x } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
    if (dy.dtype !== 'float32' || x.dtype !== 'float32' || !tf.util.arraysEqual(dy.shape, x.shape)) {
      throw new Error(`${SQUARE_GRAD_KERNEL}: dy [${dy.shape}] and x [${x.shape}] must be float32 of one shape`);
    }
    const be = asWasmBackend(backend);
    const out = be.makeOutput([...x.shape], 'float32');
    const n = sizeOf(x.shape);
    if (n > 0) blas.square(heapF32(be), f32Offset(be, x), n, f32Offset(be, out), f32Offset(be, dy));
    return out;
  };
}

/** The kernel functions, by name; `stock` runs the stock wasm kernel of that name for what they do not handle. */
export function elementwiseKernelConfigs(blas: NativeBlas, stock: Stock): Record<ElementwiseKernelName, tf.KernelFunc> {
  return {
    Sub: binaryKernel(blas, stock, 'Sub'),
    Multiply: binaryKernel(blas, stock, 'Multiply'),
    RealDiv: binaryKernel(blas, stock, 'RealDiv'),
    Square: squareKernel(blas, stock),
  };
}

/** The stock gradient of `Square`, kept to restore it. */
let stockSquareGrad: tf.GradConfig | undefined;

/**
 * Replaces the gradient of `Square` by one that runs {@link SQUARE_GRAD_KERNEL} where it is
 * registered (float32, no tape recording), and the stock formula anywhere else. Idempotent.
 */
export function installSquareGrad(): void {
  if (stockSquareGrad) return;
  const stock = tf.getGradient('Square');
  if (!stock) throw new Error('tfjs has no gradient for Square to replace');
  stockSquareGrad = stock;
  tf.registerGradient({
    kernelName: 'Square',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      const g = dy as tf.Tensor;
      const native = tf.getKernel(SQUARE_GRAD_KERNEL, tf.getBackend()) !== undefined && !tf.engine().isTapeOn() &&
        x.dtype === 'float32' && g.dtype === 'float32' && tf.util.arraysEqual(g.shape, x.shape);
      if (!native) return stock.gradFunc(dy, saved, attrs);
      return { x: () => tf.engine().runKernel(SQUARE_GRAD_KERNEL, { dy: g, x }) as tf.Tensor };
    },
  });
}

/** Restores the stock gradient of `Square`. */
export function uninstallSquareGrad(): void {
  if (!stockSquareGrad) return;
  tf.registerGradient(stockSquareGrad);
  stockSquareGrad = undefined;
}
