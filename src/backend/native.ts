// The addon's C source and build file key the cache of every stage that runs native kernels:
// code-key: ../../native/src/addon.c
// code-key: ../../native/binding.gyp
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { PACKAGE_ROOT } from '../util/package-root.ts';

/** Activation codes understood by {@link NativeBlas.biasAct}. */
export const NATIVE_ACTIVATION = {
  linear: 0,
  relu: 1,
  relu6: 2,
  elu: 3,
  prelu: 4,
  leakyrelu: 5,
  sigmoid: 6,
} as const;

/**
 * The functions of the native addon (`native/src/addon.c`). All arrays are Float32Array views
 * (usually one view on the whole tfjs wasm heap); all offsets and sizes count elements. Every
 * function validates its arguments against the arrays' lengths and throws on misuse.
 */
export interface NativeBlas {
  /** Row-major `C[M x N] = alpha * op(A) op(B) + beta * C` (OpenBLAS `cblas_sgemm`). */
  sgemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, aOff: number, lda: number, B: Float32Array, bOff: number, ldb: number,
    beta: number, C: Float32Array, cOff: number, ldc: number,
  ): void;
  /**
   * In place on the `rows x cols` block at `C[cOff]`: adds `bias` (length 1 or `cols`, or null),
   * then applies activation `act` ({@link NATIVE_ACTIVATION}); `prelu` weights have length 1 or
   * `cols` and are used only for `prelu`.
   */
  biasAct(
    C: Float32Array, cOff: number, rows: number, cols: number,
    bias: Float32Array | null, biasOff: number, biasLen: number, act: number, leakyAlpha: number,
    prelu: Float32Array | null, preluOff: number, preluLen: number,
  ): void;
  /**
   * SGD with momentum in place on `H` (one pass, tfjs's float32 operation order):
   * `acc = m * acc + g; w += c * acc` (or `w += c * (g + m * acc)` with nesterov); `c = -lr`.
   */
  momentum(H: Float32Array, wOff: number, accOff: number, gOff: number, n: number, m: number, c: number, nesterov: boolean): void;
  /**
   * One Adam update in place on `H` (one pass, the float32 operation order of the tfjs ops in
   * `ParamOptimizer`): `m = m*b1 + g*omb1; v = v*b2 + (g*g)*omb2; w = w - (m*lrc1) / (sqrt(v*c2) + eps)`.
   */
  adam(H: Float32Array, wOff: number, mOff: number, vOff: number, gOff: number, n: number, b1: number, omb1: number, b2: number, omb2: number, lrc1: number, c2: number, eps: number): void;
  /**
   * `ParamOptimizer`'s SGD in place: `velOff < 0`: `w = w - g*lr`; else `vel = vel*mu - g*lr`,
   * `w = w + vel` (nesterov: `w = (w + vel*mu) - g*lr`).
   */
  sgdStep(H: Float32Array, wOff: number, velOff: number, gOff: number, n: number, lr: number, mu: number, nesterov: boolean): void;
  /**
   * Max-norm on the columns of the row-major `rows x cols` matrix at `H[wOff]`, in place: columns
   * with norm above `maxValue` are scaled by `maxValue / norm`, the others untouched. Returns how many were scaled.
   */
  maxNormCols(H: Float32Array, wOff: number, rows: number, cols: number, maxValue: number): number;
  /** Column sums of the row-major `rows x cols` block at `H[xOff]` into `H[outOff..+cols]` (rows added in order). */
  colSum(H: Float32Array, xOff: number, rows: number, cols: number, outOff: number): void;
  /**
   * Relu's gradient in one pass: `H[outOff + i] = dy[i] * step(x[i])` with tfjs's `Step`
   * (1 for x > 0, NaN for NaN, else 0); the output must not overlap the inputs, except that it
   * may be dy itself (`outOff === dyOff`: in place).
   */
  reluGrad(H: Float32Array, dyOff: number, xOff: number, outOff: number, n: number): void;
  /** `H[outOff + i] = x[i] < 0 ? 0 : x[i]` (tfjs's Relu); the output must not overlap the input. */
  relu(H: Float32Array, xOff: number, outOff: number, n: number): void;
  /**
   * `out[i, j] = a[i, j] + b[j]` on the row-major `rows x cols` block at `H[aOff]`; `bLen` is
   * `cols` (a row broadcast over the leading axes), 1 (a scalar) or `rows * cols` (same shape).
   */
  addRows(H: Float32Array, aOff: number, rows: number, cols: number, bOff: number, bLen: number, outOff: number): void;
  /**
   * The distillation loss of a `B x C` batch and its gradient, one pass per row:
   * `mean_b [alpha T^2 CE(pT, softmax(z/T)) + (1 - alpha) CE(y, softmax(z))]`, pT from the teacher
   * rows at `tOff` (`kind` 0: logits, `softmax(t/T)`; 1: probabilities, as given at T = 1, else
   * `softmax(log(max(t, 1e-30))/T)`); labels are int32 in H's buffer at element offset `yOff`
   * (-1: no hard term on the row). `tOff` may be -1 when alpha = 0, `yOff` when alpha = 1. Writes
   * the gradient w.r.t. z at `gradOff` (no overlap with the inputs) and returns the loss.
   */
  softmaxXent(H: Float32Array, zOff: number, tOff: number, yOff: number, B: number, C: number, T: number, alpha: number, kind: number, gradOff: number): number;
  /**
   * How many of the `B x C` rows of logits at `H[zOff]` have their first maximal entry at the row's
   * label (int32 labels in `H`'s buffer at element offset `yOff`): `tf.argMax`'s rule, NaNs never
   * maximal except a NaN in the first column.
   */
  argmaxHits(H: Float32Array, zOff: number, yOff: number, B: number, C: number): number;
  /**
   * NHWC convolution by im2col + sgemm: `y = conv(x, f)` with `geom` =
   * `[N, inH, inW, inC, fH, fW, outC, sH, sW, dH, dW, padTop, padLeft, outH, outW]` (Int32Array),
   * filter `[fH, fW, inC, outC]`, zeros outside the image. The output must not overlap the inputs.
   */
  conv2d(H: Float32Array, geom: Int32Array, xOff: number, fOff: number, yOff: number): void;
  /** The gradient of {@link conv2d} w.r.t. its input, `dx [N, inH, inW, inC]`, from `dy [N, outH, outW, outC]`. */
  conv2dBackpropInput(H: Float32Array, geom: Int32Array, dyOff: number, fOff: number, dxOff: number): void;
  /** The gradient of {@link conv2d} w.r.t. its filter, `dw [fH, fW, inC, outC]`, summed over the batch. */
  conv2dBackpropFilter(H: Float32Array, geom: Int32Array, xOff: number, dyOff: number, dwOff: number): void;
  /** NHWC max-pooling (geometry as {@link conv2d} with `outC = inC`; taps outside the image skipped, NaN never the max). */
  maxPool(H: Float32Array, geom: Int32Array, xOff: number, yOff: number, unused: number): void;
  /** The gradient of {@link maxPool}: each `dy` goes to the first tap holding its window's maximum. */
  maxPoolGrad(H: Float32Array, geom: Int32Array, dyOff: number, xOff: number, dxOff: number): void;
  /**
   * Batch normalisation of the row-major `rows x C` block at `H[xOff]` (C: the last axis) into
   * `H[outOff]`: `offset + (x - mean) * scale / sqrt(variance + eps)` per channel, each parameter of
   * length 1 or C (`offsetOff` / `scaleOff` -1: none), in double, rounded once.
   */
  bnForward(
    H: Float32Array, xOff: number, rows: number, C: number, meanOff: number, meanLen: number, varOff: number, varLen: number,
    offsetOff: number, offsetLen: number, scaleOff: number, scaleLen: number, outOff: number, eps: number,
  ): void;
  /**
   * The gradients of {@link bnForward} (mean, variance and scale of length C; `scaleOff` -1: scale 1)
   * for `dy` in one pass: `dx = dy r scale`, `dmean = -r scale sum dy`, `dvar = -r^3/2 scale sum dy (x - mean)`,
   * `dscale = r sum dy (x - mean)`, `doffset = sum dy` with `r = 1 / sqrt(variance + eps)` (sums over
   * the rows in double; `dscaleOff` / `doffsetOff` -1: not written).
   */
  bnGrad(
    H: Float32Array, xOff: number, dyOff: number, rows: number, C: number, meanOff: number, varOff: number, scaleOff: number,
    dxOff: number, dmeanOff: number, dvarOff: number, dscaleOff: number, doffsetOff: number, eps: number,
  ): void;
  /** Column means of the row-major `rows x cols` block at `H[xOff]` (rows >= 1) into `H[outOff..+cols]`, summed in double. */
  colMean(H: Float32Array, xOff: number, rows: number, cols: number, outOff: number): void;
  /** `H[outOff + i * cols + j] = H[srcOff + j] / divisor` (float32) for `rows` rows: a mean's gradient spread over the reduced elements. */
  spreadRows(H: Float32Array, srcOff: number, rows: number, cols: number, divisor: number, outOff: number): void;
  /**
   * `out = a op b` (op 0 add, 1 sub, 2 mul, 3 div; float32) on the `rows x cols` result at
   * `H[outOff]`, each operand of length `rows * cols`, `cols` (one row for every row) or 1.
   */
  binaryRows(H: Float32Array, op: number, aOff: number, aLen: number, bOff: number, bLen: number, rows: number, cols: number, outOff: number): void;
  /** `out = x * x` (`dyOff` -1), or Square's gradient `out = dy * (x * 2)`, over `n` values. */
  square(H: Float32Array, xOff: number, n: number, outOff: number, dyOff: number): void;
  /**
   * Asks the kernel for transparent huge pages on the memory of `H` (its 2 MiB-aligned part);
   * `collapse` also converts the pages in use now (Linux 6.1+). Returns the bytes advised, or
   * `-errno` when the kernel refused. Only a hint.
   */
  adviseHugePages(H: Float32Array, collapse: boolean): number;
  /** Sets the number of OpenBLAS threads. */
  setThreads(n: number): void;
  /** The number of OpenBLAS threads in use. */
  getThreads(): number;
  /** OpenBLAS's build description, e.g. `OpenBLAS 0.3.21 DYNAMIC_ARCH ... Cooperlake`. */
  config(): string;
}

/** Outcome of {@link loadNative}. */
export type NativeLoad = { ok: true; addon: NativeBlas; file: string } | { ok: false; reason: string };

const ADDON_NAME = 'distill_blas.node';
const BUILD_HINT = 'npm rebuild / npm ci builds it with OpenBLAS when libopenblas-dev is installed, else with its own GEMM; it needs a C compiler';
let cached: NativeLoad | undefined;

/**
 * Where the addon is built: `native/build/Release/distill_blas.node` at the package root, or the
 * file named by `DISTILL_NATIVE_ADDON` (e.g. a build with the own GEMM beside an OpenBLAS one).
 */
export function nativeAddonPath(): string {
  const override = process.env.DISTILL_NATIVE_ADDON;
  if (override) return path.resolve(override);
  return path.join(PACKAGE_ROOT, 'native', 'build', 'Release', ADDON_NAME);
}

function isNativeBlas(m: unknown): m is NativeBlas {
  if (m === null || typeof m !== 'object') return false;
  const r = m as Record<string, unknown>;
  return ['sgemm', 'biasAct', 'momentum', 'adam', 'sgdStep', 'maxNormCols', 'colSum', 'reluGrad', 'relu', 'addRows', 'softmaxXent', 'argmaxHits', 'conv2d', 'conv2dBackpropInput', 'conv2dBackpropFilter', 'maxPool', 'maxPoolGrad', 'bnForward', 'bnGrad', 'colMean', 'spreadRows', 'binaryRows', 'square', 'adviseHugePages', 'setThreads', 'getThreads', 'config'].every((k) => typeof r[k] === 'function');
}

/**
 * Loads the native OpenBLAS addon once (cached). Never throws: on failure it returns the reason
 * (not built, failed to load, e.g. libopenblas missing at run time, or an outdated build).
 * Setting `DISTILL_NO_NATIVE=1` disables it.
 */
export function loadNative(): NativeLoad {
  if (cached) return cached;
  cached = tryLoad();
  return cached;
}

function tryLoad(): NativeLoad {
  if (process.env.DISTILL_NO_NATIVE === '1') return { ok: false, reason: 'disabled by DISTILL_NO_NATIVE=1' };
  const file = nativeAddonPath();
  if (!existsSync(file)) return { ok: false, reason: `the native addon is not built (${BUILD_HINT})` };
  let mod: unknown;
  try {
    mod = createRequire(import.meta.url)(file);
  } catch (e) {
    return { ok: false, reason: `the native addon failed to load (${(e as Error).message}); ${BUILD_HINT}` };
  }
  if (!isNativeBlas(mod)) return { ok: false, reason: `the native addon at ${file} is outdated; run npm rebuild` };
  return { ok: true, addon: mod, file };
}

/**
 * Sets the number of OpenBLAS threads used by the native kernels, e.g. 1 per worker when several
 * workers share the machine (2 workers x 1 thread on 2 cores). The setting is per process: worker
 * threads of one process share it. A no-op when the addon is not loaded.
 * @returns whether the setting took effect.
 */
export function setBlasThreads(n: number): boolean {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setBlasThreads: n must be a positive integer, got ${n}`);
  const l = loadNative();
  if (!l.ok) return false;
  l.addon.setThreads(n);
  return true;
}

/** The number of OpenBLAS threads, or undefined when the addon is not loaded. */
export function getBlasThreads(): number | undefined {
  const l = loadNative();
  return l.ok ? l.addon.getThreads() : undefined;
}
