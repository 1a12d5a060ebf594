import * as tf from '@tensorflow/tfjs';
import { installBufferPool, uninstallBufferPool } from './buffer-pool.ts';
import { BATCH_NORM_GRAD_KERNEL, BATCH_NORM_KERNELS, batchNormGradKernel, batchNormKernelConfigs, installBatchNormGrads, MEAN_GRAD_KERNEL, meanGradKernel, uninstallBatchNormGrads } from './batch-norm-kernels.ts';
import { CONV_KERNELS, convKernelConfigs } from './conv-kernels.ts';
import { ELEMENTWISE_KERNELS, elementwiseKernelConfigs, installSquareGrad, SQUARE_GRAD_KERNEL, squareGradKernel, uninstallSquareGrad } from './elementwise-kernels.ts';
import { installFastMomentum, uninstallFastMomentum } from './fast-optimizer.ts';
import { installHugePages, uninstallHugePages } from './huge-pages.ts';
import { loadNative, NATIVE_ACTIVATION, type NativeBlas } from './native.ts';
import { registerFusedOps, unregisterFusedOps } from './fused-ops.ts';
import { installNativeMlpStep, nativeMlpGradStep, uninstallNativeMlpStep } from './mlp-step.ts';
import { installNativeParamSteps, nativeAdamStep, nativeMaxNormCols, nativeSgdStep, uninstallNativeParamSteps } from './param-step.ts';
import { installReluGrad, RELU_GRAD_KERNEL, reluGradKernel, uninstallReluGrad } from './relu-grad.ts';
import { fusedSoftmaxXent, SOFTMAX_XENT_KERNEL, softmaxXentKernel } from './softmax-xent.ts';
import { asWasmBackend, f32Offset, heapF32, type WasmBackendInternals } from './wasm-heap.ts';

/** Outcome of {@link enableBlasKernels}. */
export type BlasEnableResult = { ok: true; detail: string } | { ok: false; reason: string };

const BACKEND = 'wasm';
const KERNELS = ['BatchMatMul', '_FusedMatMul', 'Identity', 'Cast', 'Sum', 'Slice', 'Add', 'Relu'] as const;
type KernelName = (typeof KERNELS)[number];

/** The stock wasm kernel configs we replaced, to restore them in {@link disableBlasKernels}. */
const stock = new Map<string, tf.KernelConfig>();
/**
 * Kernel families, each a file of kernels by name that fall back to the stock wasm kernel of the
 * same name for what they do not handle (`stock` throws a clear error where there is none).
 */
type StockCall<N extends string> = (name: N, args: Parameters<tf.KernelFunc>[0]) => ReturnType<tf.KernelFunc>;
interface KernelFamily<N extends string = string> {
  names: readonly N[];
  configs(blas: NativeBlas, stock: StockCall<N>): Record<N, tf.KernelFunc>;
}
const FAMILIES: KernelFamily[] = [
  { names: CONV_KERNELS, configs: convKernelConfigs },
  { names: BATCH_NORM_KERNELS, configs: batchNormKernelConfigs },
  { names: ELEMENTWISE_KERNELS, configs: elementwiseKernelConfigs },
];
/** The stock wasm kernels the families replaced (the wasm backend has no Conv2DBackpropFilter). */
const stockFamily = new Map<string, tf.KernelConfig>();
let enabledDetail: string | undefined;

/** Shapes of one (batched) matrix product `op(a) op(b)`, as tfjs defines them. */
interface MatMulPlan {
  M: number;
  N: number;
  K: number;
  outShape: number[];
  /** Per output batch, the batch index into a and into b (broadcasting). */
  aIndex: Int32Array;
  bIndex: Int32Array;
  aBatch: number;
  bBatch: number;
}

function sizeOf(shape: readonly number[]): number {
  let s = 1;
  for (const d of shape) s *= d;
  return s;
}

function planMatMul(aShape: readonly number[], bShape: readonly number[], ta: boolean, tb: boolean): MatMulPlan {
  const ar = aShape.length;
  const br = bShape.length;
  if (ar < 2 || br < 2) throw new Error(`matMul: inputs must have rank >= 2, got shapes [${aShape}] and [${bShape}]`);
  const M = ta ? aShape[ar - 1]! : aShape[ar - 2]!;
  const K = ta ? aShape[ar - 2]! : aShape[ar - 1]!;
  const Kb = tb ? bShape[br - 1]! : bShape[br - 2]!;
  const N = tb ? bShape[br - 2]! : bShape[br - 1]!;
  if (K !== Kb) {
    throw new Error(`Error in matMul: inner shapes (${K}) and (${Kb}) of Tensors with shapes ${aShape} and ${bShape} and transposeA=${ta} and transposeB=${tb} must match.`);
  }
  const aOuter = aShape.slice(0, -2);
  const bOuter = bShape.slice(0, -2);
  const outOuter = tf.backend_util.assertAndGetBroadcastShape(aOuter, bOuter);
  const outBatch = sizeOf(outOuter);
  const aBatch = sizeOf(aOuter);
  const bBatch = sizeOf(bOuter);
  const aIndex = new Int32Array(outBatch);
  const bIndex = new Int32Array(outBatch);
  if (outBatch > 1) {
    const r = outOuter.length;
    // Strides of a's and b's batch dims aligned to the right of the output's, 0 where broadcast.
    const aStr = new Array<number>(r).fill(0);
    const bStr = new Array<number>(r).fill(0);
    let sa = 1;
    for (let i = aOuter.length - 1, j = r - 1; i >= 0; i--, j--) {
      aStr[j] = aOuter[i] === 1 ? 0 : sa;
      sa *= aOuter[i]!;
    }
    let sb = 1;
    for (let i = bOuter.length - 1, j = r - 1; i >= 0; i--, j--) {
      bStr[j] = bOuter[i] === 1 ? 0 : sb;
      sb *= bOuter[i]!;
    }
    for (let o = 0; o < outBatch; o++) {
      let rem = o;
      let ia = 0;
      let ib = 0;
      for (let j = r - 1; j >= 0; j--) {
        const d = outOuter[j]!;
        const k = rem % d;
        rem = (rem - k) / d;
        ia += k * aStr[j]!;
        ib += k * bStr[j]!;
      }
      aIndex[o] = ia;
      bIndex[o] = ib;
    }
  }
  return { M, N, K, outShape: [...outOuter, M, N], aIndex, bIndex, aBatch, bBatch };
}

/** Runs the planned product into a new output tensor and returns it. */
function runMatMul(blas: NativeBlas, be: WasmBackendInternals, a: tf.TensorInfo, b: tf.TensorInfo, ta: boolean, tb: boolean): { out: tf.TensorInfo; plan: MatMulPlan } {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') throw new Error('BatchMatMul for non-float32 tensors is not supported');
  const plan = planMatMul(a.shape, b.shape, ta, tb);
  const { M, N, K } = plan;
  const out = be.makeOutput(plan.outShape, 'float32');
  const outBatch = plan.aIndex.length;
  if (M * N * outBatch === 0) return { out, plan };
  const heap = heapF32(be); // after makeOutput: the heap may have grown
  const aOff = f32Offset(be, a);
  const bOff = f32Offset(be, b);
  const cOff = f32Offset(be, out);
  const lda = ta ? M : K;
  const ldb = tb ? K : N;
  if (outBatch === 1) {
    blas.sgemm(ta, tb, M, N, K, 1, heap, aOff, lda, heap, bOff, ldb, 0, heap, cOff, N);
  } else if (plan.bBatch === 1 && plan.aBatch === outBatch && !ta) {
    // b is shared by all batches and a's rows are contiguous: one product with M * batch rows.
    blas.sgemm(false, tb, M * outBatch, N, K, 1, heap, aOff, lda, heap, bOff, ldb, 0, heap, cOff, N);
  } else {
    const aStride = M * K;
    const bStride = K * N;
    const cStride = M * N;
    for (let o = 0; o < outBatch; o++) {
      blas.sgemm(ta, tb, M, N, K, 1, heap, aOff + plan.aIndex[o]! * aStride, lda, heap, bOff + plan.bIndex[o]! * bStride, ldb, 0, heap, cOff + o * cStride, N);
    }
  }
  return { out, plan };
}

/**
 * Length of `t` when it broadcasts against `[..., N]` as one value or one value per column (the
 * cases the native epilogue handles), else undefined.
 */
function columnBroadcastLength(t: tf.TensorInfo, N: number): number | undefined {
  const size = sizeOf(t.shape);
  if (size === 1) return 1;
  if (size === N && t.shape.length >= 1 && t.shape[t.shape.length - 1] === N) return N;
  return undefined;
}

/** Index into a broadcast operand for every element of `outShape` (general, slow path). */
function broadcastIndexer(shape: readonly number[], outShape: readonly number[]): (flat: number) => number {
  const r = outShape.length;
  const str = new Array<number>(r).fill(0);
  let s = 1;
  for (let i = shape.length - 1, j = r - 1; i >= 0; i--, j--) {
    str[j] = shape[i] === 1 ? 0 : s;
    s *= shape[i]!;
  }
  return (flat: number) => {
    let rem = flat;
    let idx = 0;
    for (let j = r - 1; j >= 0; j--) {
      const d = outShape[j]!;
      const k = rem % d;
      rem = (rem - k) / d;
      idx += k * str[j]!;
    }
    return idx;
  };
}

function applyActivationJs(x: number, act: string, alpha: number, w: number): number {
  switch (act) {
    case 'relu': return x < 0 ? 0 : x;
    case 'relu6': return Math.min(Math.max(x, 0), 6);
    case 'elu': return x >= 0 ? x : Math.expm1(x);
    case 'prelu': return x < 0 ? w * x : x;
    case 'leakyrelu': return x < 0 ? alpha * x : x;
    case 'sigmoid': return 1 / (1 + Math.exp(-x));
    default: return x;
  }
}

function batchMatMulKernel(blas: NativeBlas): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const be = asWasmBackend(backend);
    const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = (attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
    return runMatMul(blas, be, a, b, !!transposeA, !!transposeB).out;
  };
}

function fusedMatMulKernel(blas: NativeBlas): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const be = asWasmBackend(backend);
    const { a, b, bias, preluActivationWeights: prelu } = inputs as {
      a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo; preluActivationWeights?: tf.TensorInfo;
    };
    const at = (attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean; activation?: string; leakyreluAlpha?: number };
    const activation = at.activation ?? 'linear';
    const actCode = (NATIVE_ACTIVATION as Record<string, number>)[activation];
    if (actCode === undefined) throw new Error(`_FusedMatMul: unknown activation '${activation}'`);
    if (activation === 'prelu' && !prelu) throw new Error('_FusedMatMul: prelu activation needs preluActivationWeights');
    const alpha = at.leakyreluAlpha ?? 0.2;
    if (bias && bias.dtype !== 'float32') throw new Error('_FusedMatMul: bias must be float32');
    if (activation === 'prelu' && prelu && prelu.dtype !== 'float32') throw new Error('_FusedMatMul: prelu weights must be float32');
    const { out, plan } = runMatMul(blas, be, a, b, !!at.transposeA, !!at.transposeB);
    const rows = sizeOf(plan.outShape) / (plan.N || 1);
    if (rows * plan.N === 0) return out;
    const biasLen = bias ? columnBroadcastLength(bias, plan.N) : 0;
    const preluLen = activation === 'prelu' && prelu ? columnBroadcastLength(prelu, plan.N) : 0;
    const heap = heapF32(be);
    const cOff = f32Offset(be, out);
    if (biasLen !== undefined && preluLen !== undefined) {
      if (activation === 'linear' && !bias) return out;
      blas.biasAct(
        heap, cOff, rows, plan.N,
        bias ? heap : null, bias ? f32Offset(be, bias) : 0, biasLen ?? 0,
        actCode, alpha,
        activation === 'prelu' && prelu ? heap : null, activation === 'prelu' && prelu ? f32Offset(be, prelu) : 0, preluLen ?? 0,
      );
      return out;
    }
    // General broadcasting of bias / prelu weights (rare): elementwise in JS.
    const total = rows * plan.N;
    const biasIdx = bias ? broadcastIndexer(bias.shape, plan.outShape) : undefined;
    const preluIdx = prelu ? broadcastIndexer(prelu.shape, plan.outShape) : undefined;
    const bOff = bias ? f32Offset(be, bias) : 0;
    const pOff = prelu ? f32Offset(be, prelu) : 0;
    for (let i = 0; i < total; i++) {
      let v = heap[cOff + i]!;
      if (biasIdx) v = Math.fround(v + heap[bOff + biasIdx(i)]!);
      const w = preluIdx ? heap[pOff + preluIdx(i)]! : 0;
      heap[cOff + i] = applyActivationJs(v, activation, alpha, w);
    }
    return out;
  };
}

/**
 * `Identity` that shares the input's memory (like the cpu backend's) instead of copying it: the
 * engine clones every tensor it saves for the backward pass, so the stock wasm kernel copied each
 * activation and weight once per training step. Safe because wasm tensor memory is immutable
 * (Reshape already shares it); the in-place momentum update checks that memory is not shared.
 */
function identityKernel(): tf.KernelFunc {
  return (args) => {
    const be = asWasmBackend(args.backend);
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (x.dtype === 'string') return callStock('Identity', args);
    be.incRef(x.dataId);
    return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
  };
}

/** Calls the stock wasm kernel that {@link enableBlasKernels} replaced. */
function callStock(name: KernelName, args: Parameters<tf.KernelFunc>[0]): ReturnType<tf.KernelFunc> {
  const k = stock.get(name);
  if (!k) throw new Error(`${name}: no stock wasm kernel to fall back to`);
  return k.kernelFunc(args);
}

/**
 * `Cast` to the same dtype (relu's gradient casts float32 to float32) shares memory; numbers to
 * bool give `x != 0` (as on cpu); other casts run the stock kernel.
 */
function castKernel(): tf.KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { dtype } = (args.attrs ?? {}) as { dtype?: tf.DataType };
    if (dtype === 'bool' && (x.dtype === 'float32' || x.dtype === 'int32')) {
      // The stock wasm kernel copies the numbers into a Uint8Array (-2 becomes 254); cpu gives x != 0.
      const be = asWasmBackend(args.backend);
      const out = be.makeOutput([...x.shape], 'bool');
      const d = be.dataIdMap.get(x.dataId)!;
      const n = sizeOf(x.shape);
      const buf = be.wasm.HEAPU8.buffer;
      const src = x.dtype === 'float32' ? new Float32Array(buf, d.memoryOffset, n) : new Int32Array(buf, d.memoryOffset, n);
      const dst = new Uint8Array(buf, be.dataIdMap.get(out.dataId)!.memoryOffset, n);
      for (let i = 0; i < n; i++) dst[i] = src[i] !== 0 ? 1 : 0;
      return out;
    }
    if (dtype !== x.dtype || x.dtype === 'string') return callStock('Cast', args);
    asWasmBackend(args.backend).incRef(x.dataId);
    return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
  };
}

/**
 * `Sum` over leading axes of a float32 tensor (the bias gradient of a dense layer: sum over the
 * batch) as one native column-sum pass; the stock wasm kernel transposes first. Other reductions
 * run the stock kernel.
 */
function sumKernel(blas: NativeBlas): tf.KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { axis, keepDims } = (args.attrs ?? {}) as { axis?: number | number[]; keepDims?: boolean };
    const rank = x.shape.length;
    if (x.dtype !== 'float32' || axis === undefined || rank < 2) return callStock('Sum', args);
    const axes = tf.util.parseAxisParam(axis, x.shape).sort((p, q) => p - q);
    const k = axes.length;
    if (k === 0 || k >= rank || axes.some((a, i) => a !== i)) return callStock('Sum', args);
    const be = asWasmBackend(args.backend);
    const rows = sizeOf(x.shape.slice(0, k));
    const cols = sizeOf(x.shape.slice(k));
    const outShape = keepDims ? x.shape.map((d, i) => (i < k ? 1 : d)) : x.shape.slice(k);
    const out = be.makeOutput(outShape, 'float32');
    if (cols === 0) return out;
    blas.colSum(heapF32(be), f32Offset(be, x), rows, cols, f32Offset(be, out));
    return out;
  };
}

/**
 * `Slice` that covers the whole tensor (what `model.predict` does when the batch fits in one
 * batch) shares memory instead of copying; other slices run the stock kernel.
 */
function sliceKernel(): tf.KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { begin, size } = (args.attrs ?? {}) as { begin?: number | number[]; size?: number | number[] };
    if (x.dtype === 'string' || begin === undefined || size === undefined) return callStock('Slice', args);
    const [b, sz] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
    if (b.some((v) => v !== 0) || sz.some((v, i) => v !== x.shape[i])) return callStock('Slice', args);
    asWasmBackend(args.backend).incRef(x.dataId);
    return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
  };
}

/**
 * Number of trailing elements `small` repeats over when it broadcasts against `big` as one value,
 * one row over the leading axes (a bias) or the same shape, else undefined.
 */
function rowBroadcastLength(small: readonly number[], big: readonly number[]): number | undefined {
  let k = 0;
  while (k < small.length && small[k] === 1) k++; // leading 1s broadcast anyway
  const rest = small.slice(k);
  if (rest.length > big.length) return undefined;
  const tail = big.slice(big.length - rest.length);
  return rest.every((d, i) => d === tail[i]) ? sizeOf(rest) : undefined;
}

/**
 * `Add` of two float32 tensors where one is the other's shape, a row broadcast over its leading
 * axes (the bias of a dense layer in training, where tfjs does not fuse it into the matMul) or a
 * scalar: one native pass. Float32 addition commutes, so the operands may come in either order.
 * Everything else runs the stock kernel.
 */
function addKernel(blas: NativeBlas): tf.KernelFunc {
  return (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return callStock('Add', args);
    const [big, small] = sizeOf(a.shape) >= sizeOf(b.shape) ? [a, b] : [b, a];
    const n = sizeOf(big.shape);
    const bLen = rowBroadcastLength(small.shape, big.shape);
    if (bLen === undefined || small.shape.length > big.shape.length || n === 0 || bLen === 0) return callStock('Add', args);
    const be = asWasmBackend(args.backend);
    const out = be.makeOutput([...big.shape], 'float32');
    blas.addRows(heapF32(be), f32Offset(be, big), n / bLen, bLen, f32Offset(be, small), bLen, f32Offset(be, out));
    return out;
  };
}

/** `Relu` of a float32 tensor in one native pass (the stock wasm kernel is not vectorised); other dtypes run the stock kernel. */
function reluKernel(blas: NativeBlas): tf.KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (x.dtype !== 'float32') return callStock('Relu', args);
    const be = asWasmBackend(args.backend);
    const out = be.makeOutput([...x.shape], 'float32');
    const n = sizeOf(x.shape);
    if (n > 0) blas.relu(heapF32(be), f32Offset(be, x), f32Offset(be, out), n);
    return out;
  };
}

/** Whether the native kernels are currently registered (and a description of them if so). */
export function blasKernelsEnabled(): string | undefined {
  return enabledDetail;
}

/**
 * Replaces the wasm backend's `BatchMatMul` and `_FusedMatMul` kernels by OpenBLAS sgemm (native
 * addon, working directly on the wasm heap): any batch dims with broadcasting, both transposes,
 * fused bias and every fused activation. Gradients of matMul are matMuls, so training uses them
 * too. Convolutions (`Conv2D`, `FusedConv2D` and both gradients, which the stock wasm backend
 * lacks in part) run as im2col + sgemm and max-pooling with its gradient natively
 * (`conv-kernels.ts`), batch normalisation's forward and gradient and `Mean` over leading axes in
 * one native pass each (`batch-norm-kernels.ts`), and `Sub` / `Multiply` / `RealDiv` with a
 * same-shape, scalar or row-broadcast operand, `Square` and its gradient (`elementwise-kernels.ts`). Also makes `Identity`, same-dtype `Cast` and whole-tensor `Slice` zero-copy, `Sum` over
 * leading axes (bias gradients), bias-broadcast `Add` and `Relu` one native pass each, number-to-bool
 * `Cast` correct (x != 0), relu's gradient one fused kernel (`relu-grad.ts`), the softmax
 * cross-entropy of the hard and distillation losses one native pass per row with its gradient
 * (`softmax-xent.ts`), `tf.train.momentum`
 * updates one native in-place pass (see `fast-optimizer.ts`), likewise the training loop's Adam/SGD
 * steps and max-norm (`param-step.ts`), and backs the wasm heap with
 * transparent huge pages (`huge-pages.ts`) and large buffers reused (`buffer-pool.ts`). Idempotent.
 * Does not change the active backend.
 * @returns `{ ok: true, detail }` describing the native library, or `{ ok: false, reason }`.
 */
export function enableBlasKernels(): BlasEnableResult {
  if (enabledDetail) return { ok: true, detail: enabledDetail };
  const l = loadNative();
  if (!l.ok) return { ok: false, reason: l.reason };
  const missing = KERNELS.filter((k) => !tf.getKernel(k, BACKEND));
  if (missing.length > 0) {
    return { ok: false, reason: `the wasm backend's kernels are not registered (${missing.join(', ')}): import @tensorflow/tfjs-backend-wasm first` };
  }
  const funcs: Record<KernelName, tf.KernelFunc> = {
    BatchMatMul: batchMatMulKernel(l.addon),
    _FusedMatMul: fusedMatMulKernel(l.addon),
    Identity: identityKernel(),
    Cast: castKernel(),
    Sum: sumKernel(l.addon),
    Slice: sliceKernel(),
    Add: addKernel(l.addon),
    Relu: reluKernel(l.addon),
  };
  for (const name of KERNELS) {
    stock.set(name, tf.getKernel(name, BACKEND)!);
    tf.unregisterKernel(name, BACKEND);
    tf.registerKernel({ kernelName: name, backendName: BACKEND, kernelFunc: funcs[name] });
  }
  const stockCall = (name: string, args: Parameters<tf.KernelFunc>[0]): ReturnType<tf.KernelFunc> => {
    const k = stockFamily.get(name);
    if (!k) throw new Error(`${name}: this case (e.g. NCHW data or another dtype) has no kernel on the wasm backend; use channels-last float32 data, or --backend cpu`);
    return k.kernelFunc(args);
  };
  for (const family of FAMILIES) {
    const familyFuncs = family.configs(l.addon, stockCall);
    for (const name of family.names) {
      const k = tf.getKernel(name, BACKEND);
      if (k) {
        stockFamily.set(name, k);
        tf.unregisterKernel(name, BACKEND);
      }
      tf.registerKernel({ kernelName: name, backendName: BACKEND, kernelFunc: familyFuncs[name]! });
    }
  }
  tf.registerKernel({ kernelName: BATCH_NORM_GRAD_KERNEL, backendName: BACKEND, kernelFunc: batchNormGradKernel(l.addon) });
  tf.registerKernel({ kernelName: MEAN_GRAD_KERNEL, backendName: BACKEND, kernelFunc: meanGradKernel(l.addon) });
  installBatchNormGrads();
  tf.registerKernel({ kernelName: SQUARE_GRAD_KERNEL, backendName: BACKEND, kernelFunc: squareGradKernel(l.addon) });
  installSquareGrad();
  tf.registerKernel({ kernelName: RELU_GRAD_KERNEL, backendName: BACKEND, kernelFunc: reluGradKernel(l.addon) });
  installReluGrad();
  tf.registerKernel({ kernelName: SOFTMAX_XENT_KERNEL, backendName: BACKEND, kernelFunc: softmaxXentKernel(l.addon) });
  installFastMomentum(l.addon);
  installNativeParamSteps(l.addon);
  installNativeMlpStep(l.addon);
  registerFusedOps(BACKEND, { softmaxXent: fusedSoftmaxXent, adamStep: nativeAdamStep, sgdStep: nativeSgdStep, maxNormCols: nativeMaxNormCols, mlpGradStep: nativeMlpGradStep });
  const wasmBackend = tf.findBackend(BACKEND);
  const huge = wasmBackend ? installHugePages(l.addon, asWasmBackend(wasmBackend)) : undefined;
  const pooled = wasmBackend ? installBufferPool(asWasmBackend(wasmBackend)) : false;
  enabledDetail = `${gemmDetail(l.addon.config(), l.addon.getThreads())} + native conv2d (im2col), max-pool, batch norm, broadcast sub/mul/div, square, momentum, Adam, max-norm, relu, relu grad, bias add, softmax cross-entropy${huge !== undefined && huge >= 0 ? ', huge pages' : ''}${pooled ? ', buffer pool' : ''}`;
  return { ok: true, detail: enabledDetail };
}

/** "OpenBLAS sgemm (OpenBLAS 0.3.21, 2 threads)" or, for the addon's own GEMM ("own GEMM AVX2"), "own GEMM (AVX2, 2 threads)". */
function gemmDetail(config: string, threads: number): string {
  const own = /^own GEMM (.+)$/.exec(config);
  if (own) return `own GEMM (${own[1]}, ${threads} threads)`;
  return `OpenBLAS sgemm (${config.split(' ').slice(0, 2).join(' ')}, ${threads} threads)`;
}

/** Restores the stock wasm kernels replaced by {@link enableBlasKernels} (used by tests and benches). */
export function disableBlasKernels(): void {
  if (!enabledDetail) return;
  for (const name of KERNELS) {
    tf.unregisterKernel(name, BACKEND);
    const k = stock.get(name);
    if (k) tf.registerKernel(k);
  }
  stock.clear();
  for (const family of FAMILIES) {
    for (const name of family.names) {
      tf.unregisterKernel(name, BACKEND);
      const k = stockFamily.get(name);
      if (k) tf.registerKernel(k);
    }
  }
  stockFamily.clear();
  tf.unregisterKernel(BATCH_NORM_GRAD_KERNEL, BACKEND);
  tf.unregisterKernel(MEAN_GRAD_KERNEL, BACKEND);
  uninstallBatchNormGrads();
  tf.unregisterKernel(SQUARE_GRAD_KERNEL, BACKEND);
  uninstallSquareGrad();
  tf.unregisterKernel(RELU_GRAD_KERNEL, BACKEND);
  uninstallReluGrad();
  tf.unregisterKernel(SOFTMAX_XENT_KERNEL, BACKEND);
  uninstallFastMomentum();
  uninstallNativeParamSteps();
  uninstallNativeMlpStep();
  unregisterFusedOps(BACKEND);
  uninstallHugePages();
  uninstallBufferPool();
  enabledDetail = undefined;
}
