import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { disableBlasKernels, enableBlasKernels } from '../../src/backend/blas-kernels.ts';
import { loadNative } from '../../src/backend/native.ts';
import { expectClose, seededArrays, size, useWasmBlas, valuesOn } from '../helpers/backend-compare.ts';

const native = loadNative();
const skip = !native.ok;
if (!native.ok) console.log(`skipping native convolution tests: ${native.reason}`);

const { randArray } = seededArrays(4242);

/** Same computation with the native kernels (wasm-blas) and with the stock cpu kernels. */
async function nativeVsCpu(fn: () => tf.Tensor[], tol = 1e-4): Promise<void> {
  const got = await valuesOn('wasm', fn);
  const want = await valuesOn('cpu', fn);
  expectClose(got, want, tol);
}

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];
interface ConvCase {
  x: [number, number, number, number];
  f: [number, number, number, number];
  s: [number, number];
  pad: Pad;
  d?: [number, number];
}

// Odd sizes, non-square filters, strides that do not divide the input, every padding kind.
const CASES: ConvCase[] = [
  { x: [2, 7, 5, 3], f: [3, 3, 3, 4], s: [1, 1], pad: 'same' },
  { x: [3, 9, 8, 2], f: [3, 2, 2, 5], s: [2, 3], pad: 'same' },
  { x: [1, 11, 7, 3], f: [4, 3, 3, 2], s: [3, 2], pad: 'valid' },
  { x: [2, 6, 6, 1], f: [5, 5, 1, 3], s: [1, 1], pad: 'valid' },
  { x: [2, 5, 6, 4], f: [1, 1, 4, 3], s: [1, 1], pad: 'valid' }, // pointwise: no im2col
  { x: [2, 7, 7, 2], f: [1, 1, 2, 3], s: [2, 2], pad: 'same' },
  { x: [2, 6, 5, 2], f: [3, 3, 2, 3], s: [1, 2], pad: 1 },
  { x: [1, 6, 7, 2], f: [2, 3, 2, 2], s: [2, 1], pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { x: [2, 9, 9, 2], f: [3, 3, 2, 2], s: [1, 1], pad: 'same', d: [2, 2] }, // dilated (forward only in tfjs)
];

function label(c: ConvCase): string {
  return `x [${c.x}] f [${c.f}] strides [${c.s}] pad ${JSON.stringify(c.pad)}${c.d ? ` dilation [${c.d}]` : ''}`;
}

describe.skipIf(skip)('native convolution and max-pooling kernels (wasm-blas)', () => {
  useWasmBlas(/conv2d \(im2col\), max-pool/);

  for (const c of CASES) {
    it(`conv2d forward and both gradients equal the cpu kernels: ${label(c)}`, async () => {
      const xv = randArray(size(c.x));
      const fv = randArray(size(c.f), 0.5);
      const outShape = tf.backend_util.computeConv2DInfo(c.x, c.f, c.s, c.d ?? 1, c.pad).outShape;
      const wv = randArray(size(outShape));
      await nativeVsCpu(() => {
        const x = tf.tensor4d(xv, c.x);
        const f = tf.tensor4d(fv, c.f);
        const y = tf.conv2d(x, f, c.s, c.pad as 'same', 'NHWC', c.d ?? 1);
        if (c.d) return [y];
        // a non-uniform upstream gradient so every tap's weight matters
        const w = tf.tensor(wv, y.shape);
        y.dispose();
        const [gx, gf] = tf.grads((xx: tf.Tensor, ff: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xx as tf.Tensor4D, ff as tf.Tensor4D, c.s, c.pad as 'same'), w)))([x, f]);
        return [tf.conv2d(x, f, c.s, c.pad as 'same'), gx!, gf!];
      });
    });
  }

  it('fused conv2d with bias and relu (inference) and its gradient through a linear activation equal the cpu kernels', async () => {
    const xv = randArray(2 * 8 * 7 * 3);
    const fv = randArray(3 * 3 * 3 * 6, 0.5);
    const bv = randArray(6);
    await nativeVsCpu(() => {
      const x = tf.tensor4d(xv, [2, 8, 7, 3]);
      const f = tf.tensor4d(fv, [3, 3, 3, 6]);
      const b = tf.tensor1d(bv);
      const relu = tf.fused.conv2d({ x, filter: f, strides: [2, 1], pad: 'same', bias: b, activation: 'relu' });
      const lin = tf.fused.conv2d({ x, filter: f, strides: 1, pad: 'valid', bias: b });
      const [gx, gf, gb] = tf.grads((xx: tf.Tensor, ff: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.square(tf.fused.conv2d({ x: xx as tf.Tensor4D, filter: ff as tf.Tensor4D, strides: 1, pad: 'same', bias: bb }))),
      )([x, f, b]);
      return [relu, lin, gx!, gf!, gb!];
    });
  });

  it('a tf.layers CNN (conv relu, max-pool, dense) trains to the same weights as on cpu', async () => {
    const n = 6;
    const xv = randArray(n * 10 * 10 * 1);
    const yv = Int32Array.from({ length: n }, (_, i) => i % 3);
    const build = () => {
      const m = tf.sequential();
      m.add(tf.layers.conv2d({ inputShape: [10, 10, 1], filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
      m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
      m.add(tf.layers.conv2d({ filters: 5, kernelSize: 3, strides: 2, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
      m.add(tf.layers.flatten());
      m.add(tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }));
      return m;
    };
    const train = (): tf.Tensor[] => {
      const m = build();
      const opt = tf.train.adam(0.01);
      const x = tf.tensor4d(xv, [n, 10, 10, 1]);
      const y = tf.oneHot(tf.tensor1d(yv, 'int32'), 3);
      for (let s = 0; s < 3; s++) opt.minimize(() => tf.losses.softmaxCrossEntropy(y, m.apply(x) as tf.Tensor) as tf.Scalar);
      const out = [m.predict(x) as tf.Tensor, ...m.getWeights().map((w) => w.clone())];
      opt.dispose();
      m.dispose();
      return out;
    };
    await nativeVsCpu(train, 2e-3);
  });

  const POOLS: { x: [number, number, number, number]; k: [number, number]; s: [number, number]; pad: 'same' | 'valid' | number }[] = [
    { x: [2, 7, 9, 3], k: [2, 2], s: [2, 2], pad: 'valid' },
    { x: [2, 7, 9, 3], k: [3, 3], s: [2, 2], pad: 'same' },
    { x: [1, 8, 5, 4], k: [3, 2], s: [1, 2], pad: 'same' },
    { x: [2, 6, 6, 2], k: [2, 3], s: [3, 1], pad: 1 },
  ];
  for (const p of POOLS) {
    it(`max-pool and its gradient equal the cpu kernels: x [${p.x}] window [${p.k}] strides [${p.s}] pad ${p.pad}`, async () => {
      const xv = randArray(size(p.x));
      const wv = randArray(size(tf.backend_util.computePool2DInfo(p.x, p.k, p.s, 1, p.pad).outShape));
      await nativeVsCpu(() => {
        const x = tf.tensor4d(xv, p.x);
        const y = tf.maxPool(x, p.k, p.s, p.pad);
        const w = tf.tensor(wv, y.shape);
        const g = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(xx as tf.Tensor4D, p.k, p.s, p.pad), w)))(x);
        return [y, g];
      }, 1e-6);
    });
  }

  it('max-pool: ties go to the first tap, NaN is never the maximum, as on cpu', async () => {
    // 2x2 windows: three-way tie of 1s at the top left; 2s tied beside NaNs; 3s tied; all 5s.
    const xv = [1, 1, NaN, 2, 1, 0, 2, NaN, 0, 3, 5, 5, 3, 0, 5, 5];
    await nativeVsCpu(() => {
      const x = tf.tensor4d(xv, [1, 4, 4, 1]);
      return [tf.maxPool(x, 2, 2, 'valid'), tf.grad((xx: tf.Tensor) => tf.sum(tf.maxPool(xx as tf.Tensor4D, 2, 2, 'valid')))(x)];
    }, 0);
  });

  it('NCHW data falls back to the stock wasm kernel (or says how to fix it), and the native kernels restore', async () => {
    const x = tf.ones([1, 2, 4, 4]) as tf.Tensor4D;
    const f = tf.ones([3, 3, 2, 1]) as tf.Tensor4D;
    try {
      let y: tf.Tensor | undefined;
      let err: Error | undefined;
      try {
        y = tf.conv2d(x, f, 1, 'same', 'NCHW');
      } catch (e) {
        err = e as Error;
      }
      if (y) {
        expect(y.shape).toEqual([1, 1, 4, 4]);
        y.dispose();
      } else expect(err!.message).toMatch(/channels-last|NCHW|does not support/);
    } finally {
      tf.dispose([x, f]);
    }
    disableBlasKernels();
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined(); // the stock wasm backend has none
    expect(enableBlasKernels().ok).toBe(true);
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
  });

  it('rejects bad geometry and ranges outside the array instead of reading past them', () => {
    if (!native.ok) return;
    const H = new Float32Array(64);
    const g = Int32Array.from([1, 4, 4, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4, 4]);
    expect(() => native.addon.conv2d(H, g, 0, 16, 50)).toThrow(/range outside the array/);
    expect(() => native.addon.conv2d(H, g, 0, 16, 20)).toThrow(/overlaps/);
    expect(() => native.addon.conv2d(H, Int32Array.from([1, 4, 4, 1, 3, 3, 1, 0, 1, 1, 1, 1, 1, 4, 4]), 0, 16, 32)).toThrow(/bad geometry/);
    expect(() => native.addon.maxPool(H, new Int32Array(3), 0, 16, 0)).toThrow(/Int32Array of 15/);
    native.addon.conv2d(H, g, 0, 16, 32); // in range: fine
  });
});
