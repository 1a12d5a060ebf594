import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { BATCH_NORM_GRAD_KERNEL, MEAN_GRAD_KERNEL } from '../../src/backend/batch-norm-kernels.ts';
import { disableBlasKernels, enableBlasKernels } from '../../src/backend/blas-kernels.ts';
import { loadNative } from '../../src/backend/native.ts';
import { expectClose, seededArrays, size, useWasmBlas, valuesOn } from '../helpers/backend-compare.ts';

const native = loadNative();
const skip = !native.ok;
if (!native.ok) console.log(`skipping native batch-norm tests: ${native.reason}`);

const { randArray } = seededArrays(777);

/** Same computation with the native kernels (wasm-blas) and with the stock cpu kernels. */
async function nativeVsCpu(fn: () => tf.Tensor[], tol = 1e-5): Promise<void> {
  const got = await valuesOn('wasm', fn);
  const want = await valuesOn('cpu', fn);
  expectClose(got, want, tol);
}

/** `fn` on the wasm backend with its stock kernels and gradients (the native ones removed meanwhile). */
async function onStockWasm(fn: () => tf.Tensor[]): Promise<Float32Array[]> {
  disableBlasKernels();
  try {
    return await valuesOn('wasm', fn);
  } finally {
    expect(enableBlasKernels().ok).toBe(true);
  }
}

/** Positive variances. */
function variances(n: number): Float32Array {
  return randArray(n).map((v) => 0.2 + v * v);
}

/** How often each kernel ran during `fn`. */
function kernelCounts(fn: () => void): Map<string, number> {
  const counts = new Map<string, number>();
  const orig = tf.engine().runKernel.bind(tf.engine());
  const eng = tf.engine() as unknown as { runKernel: typeof orig };
  eng.runKernel = (name, inputs, attrs) => {
    counts.set(name, (counts.get(name) ?? 0) + 1);
    return orig(name, inputs, attrs);
  };
  try {
    fn();
  } finally {
    eng.runKernel = orig;
  }
  return counts;
}

describe.skipIf(skip)('native batch-norm kernels (wasm-blas)', () => {
  useWasmBlas(/batch norm/);

  // Odd sizes; ranks 2 to 4 (tf.batchNorm works on a 4-D view of each); many short rows (the
  // native loops take 1024 / C rows at a time: one full block and a partial one here).
  const SHAPES: number[][] = [[3, 5, 7, 6], [2, 3, 1, 5], [9, 5], [4, 3, 7], [1, 1, 1, 1], [5, 1], [3, 17, 13, 3]];
  for (const shape of SHAPES) {
    it(`batchNorm forward and every gradient equal the cpu kernels: x [${shape}]`, async () => {
      const C = shape[shape.length - 1]!;
      const xv = randArray(size(shape), 2);
      const mv = randArray(C);
      const vv = variances(C);
      const ov = randArray(C);
      const sv = randArray(C);
      const wv = randArray(size(shape));
      await nativeVsCpu(() => {
        const x = tf.tensor(xv, shape);
        const [m, v, o, s] = [mv, vv, ov, sv].map((a) => tf.tensor1d(a));
        const w = tf.tensor(wv, shape);
        const f = (xx: tf.Tensor, mm: tf.Tensor, vv2: tf.Tensor, oo: tf.Tensor, ss: tf.Tensor) => tf.sum(tf.mul(tf.batchNorm(xx, mm, vv2, oo, ss, 0.01), w));
        const grads = tf.grads(f)([x, m!, v!, o!, s!]);
        return [tf.batchNorm(x, m!, v!, o!, s!), tf.batchNorm(x, m!, v!, o!, s!, 0.5), ...grads];
      });
    });
  }

  it('batchNorm forward: scalar parameters, [1, 1, 1, C] parameters, no offset or scale', async () => {
    const shape = [2, 4, 3, 5];
    const xv = randArray(size(shape));
    const pv = [randArray(5), variances(5), randArray(5), randArray(5)];
    await nativeVsCpu(() => {
      const x = tf.tensor4d(xv, shape as [number, number, number, number]);
      const [m, v, o, s] = pv.map((a) => tf.tensor4d(a, [1, 1, 1, 5]));
      const one = (k: number) => tf.tensor1d([pv[k]![0]!]);
      return [
        tf.batchNorm(x, m!, v!, o!, s!),
        tf.batchNorm(x, one(0), one(1), one(2), one(3)),
        tf.batchNorm(x, m!, v!),
        tf.batchNorm(x, m!, v!, undefined, s!),
        tf.batchNorm(x, m!, v!, o!),
      ];
    });
  });

  it('batchNorm forward and gradients with per-element statistics (not per channel) run the stock kernels, as on cpu', async () => {
    const shape = [2, 3, 2, 4];
    const vals = [randArray(size(shape)), randArray(size(shape)), variances(size(shape)), randArray(size(shape)), randArray(size(shape))];
    const fn = () => {
      const [x, m, v, o, s] = vals.map((a) => tf.tensor4d(a, shape as [number, number, number, number]));
      const grads = tf.grads((xx: tf.Tensor, mm: tf.Tensor, vv: tf.Tensor) => tf.sum(tf.square(tf.batchNorm(xx, mm, vv, o!, s!))))([x!, m!, v!]);
      return [tf.batchNorm(x!, m!, v!, o!, s!), ...grads];
    };
    await nativeVsCpu(fn);
    const counts = kernelCounts(() => tf.dispose(tf.tidy(fn)));
    expect(counts.get(BATCH_NORM_GRAD_KERNEL)).toBeUndefined();
  });

  it('batchNorm on int32 data runs the stock wasm kernel', async () => {
    const fn = () => [tf.batchNorm(tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2], 'int32'), tf.tensor1d([1, 2]), tf.tensor1d([1, 4]))];
    const got = await valuesOn('wasm', fn);
    const want = await onStockWasm(fn);
    expectClose(got, want, 0);
  });

  it('moments + batchNorm (what tf.layers runs in training) and the gradient through both equal cpu, in one native gradient pass', async () => {
    const shape = [6, 5, 4, 7];
    const xv = randArray(size(shape), 3).map((v) => v + 1.5);
    const wv = randArray(size(shape));
    const ov = randArray(7);
    const sv = randArray(7);
    const fn = () => {
      const x = tf.tensor4d(xv, shape as [number, number, number, number]);
      const w = tf.tensor4d(wv, shape as [number, number, number, number]);
      const [o, s] = [ov, sv].map((a) => tf.tensor1d(a));
      const f = (xx: tf.Tensor, oo: tf.Tensor, ss: tf.Tensor) => {
        const { mean, variance } = tf.moments(xx, [0, 1, 2]);
        return tf.sum(tf.mul(tf.batchNorm(xx, mean, variance, oo, ss), w));
      };
      return tf.grads(f)([x, o!, s!]);
    };
    await nativeVsCpu(fn, 1e-4);
    const counts = kernelCounts(() => tf.dispose(tf.tidy(fn)));
    expect(counts.get(BATCH_NORM_GRAD_KERNEL)).toBe(1);
    expect(counts.get(MEAN_GRAD_KERNEL)).toBe(2);
    expect(counts.get('Tile')).toBeUndefined();
  });

  it('a second-order gradient through batchNorm and mean (the tape records the gradient) equals cpu: the stock formulas run there', async () => {
    // (tfjs's stock formulas cannot take a second-order gradient through moments + batchNorm; each alone works.)
    const shape = [4, 3, 2, 3];
    const xv = randArray(size(shape));
    const wv = randArray(size(shape));
    const pv = [randArray(3), variances(3), randArray(3), randArray(3)];
    await nativeVsCpu(() => {
      const x = tf.tensor4d(xv, shape as [number, number, number, number]);
      const w = tf.tensor4d(wv, shape as [number, number, number, number]);
      const [m, v, o, s] = pv.map((a) => tf.tensor1d(a));
      const f = (xx: tf.Tensor) => tf.add(tf.sum(tf.square(tf.batchNorm(xx, m!, v!, o!, s!))), tf.sum(tf.square(tf.mean(tf.square(xx), [0, 1, 2]))));
      return [tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.grad(f)(xx), w)))(x)];
    }, 1e-4);
  });

  const MEANS: { shape: number[]; axis: number | number[] | undefined; keepDims?: boolean }[] = [
    { shape: [7, 5], axis: 0 },
    { shape: [3, 5, 4, 6], axis: [0, 1, 2] },
    { shape: [3, 5, 4, 6], axis: [2, 0, 1], keepDims: true },
    { shape: [4, 3, 5], axis: [0, 1] },
    { shape: [4, 3, 5], axis: undefined },
    { shape: [11], axis: 0, keepDims: true },
    { shape: [4, 3, 5], axis: -3 },
    { shape: [700, 3], axis: 0 }, // rows taken 341 at a time: two full blocks and a partial one
    // not leading axes: the stock kernel
    { shape: [4, 3, 5], axis: 1 },
    { shape: [4, 3, 5], axis: [0, 2] },
    { shape: [4, 3, 5], axis: -1, keepDims: true },
  ];
  for (const c of MEANS) {
    it(`mean over axis ${JSON.stringify(c.axis)}${c.keepDims ? ' (keepDims)' : ''} of [${c.shape}] and its gradient equal the cpu kernels`, async () => {
      // Off-centre values: the cpu kernel rounds each x / n to float32 before summing, which a mean
      // near 0 would show as a large relative error.
      const xv = randArray(size(c.shape), 3).map((v) => v + 4);
      const outShape = tf.tidy(() => tf.mean(tf.zeros(c.shape), c.axis, c.keepDims).shape);
      const wv = randArray(size(outShape));
      const fn = () => {
        const x = tf.tensor(xv, c.shape);
        const w = tf.tensor(wv, outShape);
        return [tf.mean(x, c.axis, c.keepDims), tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.mean(xx, c.axis, c.keepDims), w)))(x)];
      };
      await nativeVsCpu(fn, 1e-6);
    });
  }

  it("mean's gradient over leading axes is one native pass, bit for bit the stock formula's", async () => {
    const xv = randArray(6 * 7 * 3);
    const wv = randArray(3);
    const fn = () => [tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.mean(xx, [0, 1]), tf.tensor1d(wv))))(tf.tensor3d(xv, [6, 7, 3]))];
    const got = await valuesOn('wasm', fn);
    expectClose(got, await onStockWasm(fn), 0);
    expect(kernelCounts(() => tf.dispose(tf.tidy(fn))).get(MEAN_GRAD_KERNEL)).toBe(1);
  });

  it('mean of int32 data (the stock kernel), over an empty axis (0 as on cpu), and of NaN / Infinity rows', async () => {
    const ints = () => [tf.mean(tf.tensor2d([1, 2, 4, 7, 3, 9], [3, 2], 'int32'), 0)];
    expectClose(await valuesOn('wasm', ints), await onStockWasm(ints), 0);
    await nativeVsCpu(() => [
      tf.mean(tf.zeros([0, 3]), 0), // 0, as on cpu (the stock wasm kernel returns whatever its memory held)
      tf.mean(tf.zeros([4, 0]), 0),
      tf.mean(tf.tensor2d([1, NaN, Infinity, 2, 3, 4, -Infinity, 5], [4, 2]), 0),
      tf.mean(tf.tensor2d([Infinity, 1, -Infinity, 2], [2, 2]), 0),
    ], 0);
  });

  it('a tf.layers CNN with batch norm (conv, batch norm, relu, max-pool, dense) trains to the same weights and moving statistics as on cpu', async () => {
    const n = 8;
    const xv = randArray(n * 9 * 9 * 2);
    const yv = Int32Array.from({ length: n }, (_, i) => i % 3);
    const train = (): tf.Tensor[] => {
      const m = tf.sequential();
      m.add(tf.layers.conv2d({ inputShape: [9, 9, 2], filters: 5, kernelSize: 3, useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
      m.add(tf.layers.batchNormalization({ axis: -1 }));
      m.add(tf.layers.activation({ activation: 'relu' }));
      m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
      m.add(tf.layers.flatten());
      m.add(tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
      const opt = tf.train.adam(0.01);
      const x = tf.tensor4d(xv, [n, 9, 9, 2]);
      const y = tf.oneHot(tf.tensor1d(yv, 'int32'), 3);
      for (let s = 0; s < 3; s++) opt.minimize(() => tf.losses.softmaxCrossEntropy(y, m.apply(x, { training: true }) as tf.Tensor) as tf.Scalar);
      const out = [m.predict(x) as tf.Tensor, ...m.getWeights().map((w) => w.clone())];
      opt.dispose();
      m.dispose();
      return out;
    };
    await nativeVsCpu(train, 2e-3);
  });

  it('disabling the native kernels restores the stock kernels and gradients; enabling installs them again', () => {
    const stockGrad = (() => {
      disableBlasKernels();
      const g = tf.getGradient('FusedBatchNorm');
      const k = tf.getKernel('Mean', 'wasm');
      expect(tf.getKernel(BATCH_NORM_GRAD_KERNEL, 'wasm')).toBeUndefined();
      expect(tf.getKernel(MEAN_GRAD_KERNEL, 'wasm')).toBeUndefined();
      return { g, k };
    })();
    expect(enableBlasKernels().ok).toBe(true);
    expect(tf.getGradient('FusedBatchNorm')).not.toBe(stockGrad.g);
    expect(tf.getKernel('Mean', 'wasm')!.kernelFunc).not.toBe(stockGrad.k!.kernelFunc);
    expect(tf.getKernel(BATCH_NORM_GRAD_KERNEL, 'wasm')).toBeDefined();
    disableBlasKernels();
    expect(tf.getGradient('FusedBatchNorm')).toBe(stockGrad.g);
    expect(tf.getKernel('Mean', 'wasm')!.kernelFunc).toBe(stockGrad.k!.kernelFunc);
    expect(enableBlasKernels().ok).toBe(true);
  });

  it('the native functions reject ranges outside the array and overlapping outputs instead of reading past them', () => {
    if (!native.ok) return;
    const a = native.addon;
    const H = new Float32Array(64);
    // x 4 x 4 at 0, mean 16, var 20, out 32
    expect(() => a.bnForward(H, 0, 4, 4, 16, 4, 20, 4, -1, 0, -1, 0, 50, 1e-3)).toThrow(/range outside the array/);
    expect(() => a.bnForward(H, 0, 4, 4, 16, 4, 20, 4, -1, 0, -1, 0, 8, 1e-3)).toThrow(/overlaps/);
    expect(() => a.bnForward(H, 0, 4, 4, 16, 3, 20, 4, -1, 0, -1, 0, 32, 1e-3)).toThrow(/length 1 or C/);
    a.bnForward(H, 0, 4, 4, 16, 4, 20, 4, -1, 0, -1, 0, 32, 1e-3);
    expect(() => a.bnGrad(H, 0, 0, 4, 4, 16, 20, -1, 32, 48, 52, 56, 60, 1e-3)).not.toThrow();
    expect(() => a.bnGrad(H, 0, 0, 4, 4, 16, 20, -1, 32, 48, 52, 56, 62, 1e-3)).toThrow(/range outside the array/);
    expect(() => a.bnGrad(H, 0, 0, 4, 4, 16, 20, -1, 32, 44, 52, 56, 60, 1e-3)).toThrow(/overlaps/);
    expect(() => a.colMean(H, 0, 8, 8, 60)).toThrow(/range outside the array/);
    expect(() => a.colMean(H, 0, 4, 8, 16)).toThrow(/overlaps/);
    expect(() => a.colMean(H, 0, 0, 8, 40)).toThrow(/rows must be >= 1/);
    expect(() => a.spreadRows(H, 0, 8, 8, 2, 60)).toThrow(/range outside the array/);
    expect(() => a.spreadRows(H, 0, 4, 4, 2, 2)).toThrow(/overlaps/);
  });
});
