import * as tf from '@tensorflow/tfjs';
import { NATIVE_ACTIVATION, type NativeBlas } from './native.ts';
import { asWasmBackend, f32Offset, heapF32, type WasmBackendInternals } from './wasm-heap.ts';

/**
 * Native convolution and max-pooling kernels for the wasm backend (NHWC, float32): `Conv2D`,
 * `FusedConv2D` (conv + bias + activation), `Conv2DBackpropInput`, `Conv2DBackpropFilter` by im2col
 * and OpenBLAS sgemm, `MaxPool` and `MaxPoolGrad` in one pass (`native/src/addon.c`). Any strides,
 * dilations and padding ('same', 'valid', explicit numbers or per-side lists) go through tfjs's own
 * geometry (`computeConv2DInfo` / `computePool2DInfo`), so output shapes are those of the stock
 * kernels. What they do not cover (NCHW data, other dtypes, prelu weights that are
 * not per channel) runs the stock wasm kernel, or throws when the wasm backend has none.
 */

/** Kernel names replaced or added by {@link convKernelConfigs}. */
export const CONV_KERNELS = ['Conv2D', 'FusedConv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'MaxPool', 'MaxPoolGrad'] as const;
export type ConvKernelName = (typeof CONV_KERNELS)[number];

type Stock = (name: ConvKernelName, args: Parameters<tf.KernelFunc>[0]) => ReturnType<tf.KernelFunc>;

type ExplicitPad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;

interface ConvAttrs {
  strides: number | [number, number];
  pad: ExplicitPad;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** The 15-int geometry the native functions take (see addon.c). */
function geometry(info: tf.backend_util.Conv2DInfo, outChannels: number): Int32Array {
  return Int32Array.from([
    info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.filterHeight, info.filterWidth, outChannels,
    info.strideHeight, info.strideWidth, info.dilationHeight, info.dilationWidth, info.padInfo.top, info.padInfo.left,
    info.outHeight, info.outWidth,
  ]);
}

function nhwc(a: ConvAttrs): boolean {
  return a.dataFormat === undefined || a.dataFormat === 'NHWC';
}

function sizeOf(shape: readonly number[]): number {
  let s = 1;
  for (const d of shape) s *= d;
  return s;
}

function convInfo(xShape: readonly number[], filterShape: readonly number[], a: ConvAttrs): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number], filterShape as [number, number, number, number],
    a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, false, 'channelsLast',
  );
}

/** Forward convolution into a new output tensor. */
function runConv(blas: NativeBlas, be: WasmBackendInternals, x: tf.TensorInfo, filter: tf.TensorInfo, info: tf.backend_util.Conv2DInfo): tf.TensorInfo {
  const out = be.makeOutput([...info.outShape], 'float32');
  if (sizeOf(info.outShape) === 0) return out;
  blas.conv2d(heapF32(be), geometry(info, info.outChannels), f32Offset(be, x), f32Offset(be, filter), f32Offset(be, out));
  return out;
}

function conv2dKernel(blas: NativeBlas, stock: Stock): tf.KernelFunc {
  return (args) => {
    const { x, filter } = args.inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
    const a = args.attrs as unknown as ConvAttrs;
    if (!nhwc(a) || x.dtype !== 'float32' || filter.dtype !== 'float32' || x.shape.length !== 4) return stock('Conv2D', args);
    const be = asWasmBackend(args.backend);
    return runConv(blas, be, x, filter, convInfo(x.shape, filter.shape, a));
  };
}

/**
 * Length of a bias / prelu operand that the native epilogue can apply per output channel (1: one
 * value, C: per channel, broadcast over N, H, W), else undefined.
 */
function channelLength(t: tf.TensorInfo, C: number): number | undefined {
  const n = sizeOf(t.shape);
  if (n === 1) return 1;
  if (n === C && t.shape[t.shape.length - 1] === C) return C;
  return undefined;
}

function fusedConv2dKernel(blas: NativeBlas, stock: Stock): tf.KernelFunc {
  return (args) => {
    const { x, filter, bias, preluActivationWeights: prelu } = args.inputs as {
      x: tf.TensorInfo; filter: tf.TensorInfo; bias?: tf.TensorInfo; preluActivationWeights?: tf.TensorInfo;
    };
    const a = args.attrs as unknown as ConvAttrs & { activation?: string; leakyreluAlpha?: number };
    const activation = a.activation ?? 'linear';
    const act = (NATIVE_ACTIVATION as Record<string, number>)[activation];
    if (!nhwc(a) || act === undefined || x.dtype !== 'float32' || filter.dtype !== 'float32' || x.shape.length !== 4) return stock('FusedConv2D', args);
    const info = convInfo(x.shape, filter.shape, a);
    const C = info.outChannels;
    const biasLen = bias ? channelLength(bias, C) : 0;
    const preluLen = activation === 'prelu' ? (prelu ? channelLength(prelu, C) : undefined) : 0;
    if (biasLen === undefined || preluLen === undefined || (bias && bias.dtype !== 'float32') || (activation === 'prelu' && prelu!.dtype !== 'float32')) {
      return stock('FusedConv2D', args);
    }
    const be = asWasmBackend(args.backend);
    const out = runConv(blas, be, x, filter, info);
    const rows = sizeOf(info.outShape) / C;
    if (rows === 0 || (activation === 'linear' && !bias)) return out;
    const heap = heapF32(be);
    blas.biasAct(
      heap, f32Offset(be, out), rows, C,
      bias ? heap : null, bias ? f32Offset(be, bias) : 0, biasLen,
      act, a.leakyreluAlpha ?? 0.2,
      activation === 'prelu' ? heap : null, activation === 'prelu' ? f32Offset(be, prelu!) : 0, preluLen,
    );
    return out;
  };
}

function backpropInputKernel(blas: NativeBlas, stock: Stock): tf.KernelFunc {
  return (args) => {
    const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    const a = args.attrs as unknown as ConvAttrs & { inputShape: [number, number, number, number] };
    if (!nhwc(a) || dy.dtype !== 'float32' || filter.dtype !== 'float32' || a.inputShape.length !== 4) return stock('Conv2DBackpropInput', args);
    const info = convInfo(a.inputShape, filter.shape, { ...a, dilations: 1 });
    if (!tf.util.arraysEqual(info.outShape, dy.shape)) throw new Error(`Conv2DBackpropInput: dy has shape [${dy.shape}], expected [${info.outShape}]`);
    const be = asWasmBackend(args.backend);
    const dx = be.makeOutput([...a.inputShape], 'float32');
    if (sizeOf(a.inputShape) === 0) return dx;
    blas.conv2dBackpropInput(heapF32(be), geometry(info, info.outChannels), f32Offset(be, dy), f32Offset(be, filter), f32Offset(be, dx));
    return dx;
  };
}

function backpropFilterKernel(blas: NativeBlas, stock: Stock): tf.KernelFunc {
  return (args) => {
    const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const a = args.attrs as unknown as ConvAttrs & { filterShape: [number, number, number, number] };
    if (!nhwc(a) || x.dtype !== 'float32' || dy.dtype !== 'float32' || x.shape.length !== 4) return stock('Conv2DBackpropFilter', args);
    const info = convInfo(x.shape, a.filterShape, { ...a, dilations: 1 });
    if (!tf.util.arraysEqual(info.outShape, dy.shape)) throw new Error(`Conv2DBackpropFilter: dy has shape [${dy.shape}], expected [${info.outShape}]`);
    const be = asWasmBackend(args.backend);
    const dw = be.makeOutput([...a.filterShape], 'float32');
    if (sizeOf(a.filterShape) === 0) return dw;
    blas.conv2dBackpropFilter(heapF32(be), geometry(info, info.outChannels), f32Offset(be, x), f32Offset(be, dy), f32Offset(be, dw));
    return dw;
  };
}

interface PoolAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: ExplicitPad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function poolInfo(xShape: readonly number[], a: PoolAttrs): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computePool2DInfo(xShape as [number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
}

function maxPoolKernel(blas: NativeBlas, stock: Stock): tf.KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const a = args.attrs as unknown as PoolAttrs;
    if (x.dtype !== 'float32' || x.shape.length !== 4) return stock('MaxPool', args);
    const info = poolInfo(x.shape, a);
    const be = asWasmBackend(args.backend);
    const out = be.makeOutput([...info.outShape], 'float32');
    if (sizeOf(info.outShape) === 0) return out;
    blas.maxPool(heapF32(be), geometry(info, info.inChannels), f32Offset(be, x), f32Offset(be, out), 0);
    return out;
  };
}

function maxPoolGradKernel(blas: NativeBlas, stock: Stock): tf.KernelFunc {
  return (args) => {
    const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
    const a = args.attrs as unknown as PoolAttrs;
    if (dy.dtype !== 'float32' || input.dtype !== 'float32' || input.shape.length !== 4) return stock('MaxPoolGrad', args);
    const info = poolInfo(input.shape, a);
    if (!tf.util.arraysEqual(info.outShape, dy.shape)) throw new Error(`MaxPoolGrad: dy has shape [${dy.shape}], expected [${info.outShape}]`);
    const be = asWasmBackend(args.backend);
    const dx = be.makeOutput([...input.shape], 'float32');
    if (sizeOf(input.shape) === 0) return dx;
    blas.maxPoolGrad(heapF32(be), geometry(info, info.inChannels), f32Offset(be, dy), f32Offset(be, input), f32Offset(be, dx));
    return dx;
  };
}

/**
 * The kernel functions, by name. `stock` runs the stock wasm kernel of that name for what they do
 * not handle (it should throw a clear error where there is none).
 */
export function convKernelConfigs(blas: NativeBlas, stock: Stock): Record<ConvKernelName, tf.KernelFunc> {
  return {
    Conv2D: conv2dKernel(blas, stock),
    FusedConv2D: fusedConv2dKernel(blas, stock),
    Conv2DBackpropInput: backpropInputKernel(blas, stock),
    Conv2DBackpropFilter: backpropFilterKernel(blas, stock),
    MaxPool: maxPoolKernel(blas, stock),
    MaxPoolGrad: maxPoolGradKernel(blas, stock),
  };
}
