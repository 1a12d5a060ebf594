import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { disableBlasKernels, enableBlasKernels } from '../../src/backend/blas-kernels.ts';
import { planBroadcast, SQUARE_GRAD_KERNEL } from '../../src/backend/elementwise-kernels.ts';
import { loadNative } from '../../src/backend/native.ts';
import { expectClose, seededArrays, size, useWasmBlas, valuesOn } from '../helpers/backend-compare.ts';

const native = loadNative();
const skip = !native.ok;
if (!native.ok) console.log(`skipping native elementwise tests: ${native.reason}`);

const { randArray } = seededArrays(4711);

/** The values as strings that tell -0 from 0 (NaN, infinities compared as themselves). */
function exact(a: Float32Array): string[] {
  return Array.from(a, (v) => (Object.is(v, -0) ? '-0' : String(v)));
}

/** Same computation with the native kernels (wasm-blas) and with the stock cpu kernels; bit for bit unless `tol` > 0. */
async function nativeVsCpu(fn: () => tf.Tensor[], tol = 0): Promise<void> {
  const got = await valuesOn('wasm', fn);
  const want = await valuesOn('cpu', fn);
  if (tol > 0) expectClose(got, want, tol);
  else expect(got.map(exact)).toEqual(want.map(exact));
}

/** `fn` on the wasm backend with its stock kernels (the native ones removed meanwhile). */
async function onStockWasm(fn: () => tf.Tensor[]): Promise<Float32Array[]> {
  disableBlasKernels();
  try {
    return await valuesOn('wasm', fn);
  } finally {
    expect(enableBlasKernels().ok).toBe(true);
  }
}

/** Random values with special ones sprinkled in: 0, -0, +-Infinity, NaN. */
function values(n: number): Float32Array {
  const a = randArray(n, 2);
  const special = [0, -0, Infinity, -Infinity, NaN];
  for (let i = 0; i < n; i += 7) a[i] = special[(i / 7) % special.length]!;
  return a;
}

describe('planBroadcast (which operand shapes the native loop takes)', () => {
  it('same shapes, one value, a row over the leading axes (either order); undefined for other broadcasts', () => {
    expect(planBroadcast([3, 5, 7, 6], [6])).toEqual({ outShape: [3, 5, 7, 6], rows: 105, cols: 6, aLen: 630, bLen: 6 });
    expect(planBroadcast([1, 1, 1, 6], [3, 5, 7, 6])).toEqual({ outShape: [3, 5, 7, 6], rows: 105, cols: 6, aLen: 6, bLen: 630 });
    expect(planBroadcast([2, 3], [2, 3])).toEqual({ outShape: [2, 3], rows: 1, cols: 6, aLen: 6, bLen: 6 });
    expect(planBroadcast([2, 3], [])).toEqual({ outShape: [2, 3], rows: 1, cols: 6, aLen: 6, bLen: 1 });
    expect(planBroadcast([1, 4, 5], [2, 4, 5])).toEqual({ outShape: [2, 4, 5], rows: 2, cols: 20, aLen: 20, bLen: 40 });
    expect(planBroadcast([0, 3], [3])).toEqual({ outShape: [0, 3], rows: 0, cols: 3, aLen: 0, bLen: 3 });
    expect(planBroadcast([4, 1], [1, 5])).toBeUndefined(); // outer product
    expect(planBroadcast([4, 5], [4, 1])).toBeUndefined(); // a column
    expect(planBroadcast([3, 1, 5], [3, 4, 5])).toBeUndefined(); // a middle axis
    expect(planBroadcast([3, 4], [5])).toBeUndefined(); // not broadcastable
  });
});

describe.skipIf(skip)('native elementwise kernels (wasm-blas)', () => {
  useWasmBlas(/broadcast sub\/mul\/div, square/);

  const PAIRS: [number[], number[]][] = [
    [[3, 5, 7, 6], [6]],
    [[3, 5, 7, 6], [1, 1, 1, 6]],
    [[6], [3, 5, 7, 6]],
    [[2, 9, 4], [2, 9, 4]],
    [[2, 9, 4], []],
    [[1], [5, 3]],
    [[700, 3], [3]], // many short rows: the native loop takes 341 rows at a time
    [[3], [700, 3]],
    [[1, 4, 5], [2, 4, 5]],
    // other broadcasts: the stock kernel
    [[4, 1], [1, 5]],
    [[4, 5], [4, 1]],
    [[3, 1, 5], [3, 4, 5]],
    [[0, 3], [3]],
  ];
  for (const [sa, sb] of PAIRS) {
    it(`sub, mul and div of [${sa}] and [${sb}] equal the cpu kernels bit for bit (NaN, infinities, signed zeros, division by 0)`, async () => {
      const av = values(size(sa));
      const bv = values(size(sb));
      await nativeVsCpu(() => {
        const a = tf.tensor(av, sa);
        const b = tf.tensor(bv, sb);
        return [tf.sub(a, b), tf.mul(a, b), tf.div(a, b)];
      });
    });
  }

  it('int32 and bool operands run the stock wasm kernels', async () => {
    const fn = () => {
      const a = tf.tensor2d([7, -3, 5, 9, 0, 2], [2, 3], 'int32');
      const b = tf.tensor1d([2, 3, -4], 'int32');
      const t = tf.tensor1d([true, false, true], 'bool');
      return [tf.sub(a, b), tf.mul(a, b), tf.div(a, b), tf.mul(t, tf.tensor1d([1, 1, 0], 'bool')), tf.square(a)];
    };
    expectClose(await valuesOn('wasm', fn), await onStockWasm(fn), 0);
  });

  it('square and its gradient equal the cpu kernels bit for bit; the gradient is one native pass', async () => {
    const shape = [3, 7, 5, 4];
    const xv = values(size(shape));
    const wv = randArray(size(shape));
    const fn = () => {
      const x = tf.tensor(xv, shape);
      const w = tf.tensor(wv, shape);
      return [tf.square(x), tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.square(xx), w)))(x)];
    };
    await nativeVsCpu(fn);
    const counts = new Map<string, number>();
    const eng = tf.engine() as unknown as { runKernel: (n: string, i: tf.NamedTensorMap, a: tf.NamedAttrMap) => tf.Tensor };
    const orig = eng.runKernel.bind(eng);
    eng.runKernel = (n, i, a) => (counts.set(n, (counts.get(n) ?? 0) + 1), orig(n, i, a));
    try {
      tf.dispose(tf.tidy(fn));
    } finally {
      eng.runKernel = orig;
    }
    expect(counts.get(SQUARE_GRAD_KERNEL)).toBe(1);
  });

  it("a second-order gradient through square (the tape records the gradient) runs tfjs's formula and equals cpu", async () => {
    const xv = randArray(12);
    const wv = randArray(12);
    await nativeVsCpu(() => {
      const x = tf.tensor2d(xv, [3, 4]);
      const w = tf.tensor2d(wv, [3, 4]);
      return [tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.grad((y: tf.Tensor) => tf.sum(tf.mul(tf.square(tf.square(y)), w)))(xx), w)))(x)];
    }, 1e-6);
  });

  it('disabling the native kernels restores the stock kernels and the stock square gradient', () => {
    disableBlasKernels();
    const stockGrad = tf.getGradient('Square');
    const stockSub = tf.getKernel('Sub', 'wasm')!.kernelFunc;
    expect(tf.getKernel(SQUARE_GRAD_KERNEL, 'wasm')).toBeUndefined();
    expect(enableBlasKernels().ok).toBe(true);
    expect(tf.getGradient('Square')).not.toBe(stockGrad);
    expect(tf.getKernel('Sub', 'wasm')!.kernelFunc).not.toBe(stockSub);
    disableBlasKernels();
    expect(tf.getGradient('Square')).toBe(stockGrad);
    expect(tf.getKernel('Sub', 'wasm')!.kernelFunc).toBe(stockSub);
    expect(enableBlasKernels().ok).toBe(true);
  });

  it('the native functions reject bad lengths, ranges outside the array and overlapping outputs', () => {
    if (!native.ok) return;
    const a = native.addon;
    const H = new Float32Array(64);
    a.binaryRows(H, 1, 0, 16, 16, 4, 4, 4, 32); // in range: fine
    expect(() => a.binaryRows(H, 4, 0, 16, 16, 4, 4, 4, 32)).toThrow(/unknown operation/);
    expect(() => a.binaryRows(H, 1, 0, 16, 16, 3, 4, 4, 32)).toThrow(/length rows \* cols, cols or 1/);
    expect(() => a.binaryRows(H, 1, 0, 16, 16, 4, 4, 4, 50)).toThrow(/range outside the array/);
    expect(() => a.binaryRows(H, 1, 0, 16, 16, 4, 4, 4, 10)).toThrow(/overlaps/);
    a.square(H, 0, 16, 32, 16);
    expect(() => a.square(H, 0, 16, 56, -1)).toThrow(/range outside the array/);
    expect(() => a.square(H, 0, 16, 8, -1)).toThrow(/overlaps/);
  });
});
