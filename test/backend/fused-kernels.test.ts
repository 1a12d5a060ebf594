import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { disableBlasKernels, enableBlasKernels } from '../../src/backend/blas-kernels.ts';
import { bufferPoolStats } from '../../src/backend/buffer-pool.ts';
import { loadNative } from '../../src/backend/native.ts';
import { RELU_GRAD_KERNEL } from '../../src/backend/relu-grad.ts';
import { expectClose, seededArrays, size, useWasmBlas, valuesOn } from '../helpers/backend-compare.ts';

const native = loadNative();
const skip = !native.ok;
if (!native.ok) console.log(`skipping fused native kernel tests: ${native.reason}`);

const { rng, randArray } = seededArrays(424242);

/** The same computation with the stock wasm kernels (native kernels disabled meanwhile). */
async function stockWasm(fn: () => tf.Tensor[]): Promise<Float32Array[]> {
  disableBlasKernels();
  try {
    return await valuesOn('wasm', fn);
  } finally {
    expect(enableBlasKernels().ok).toBe(true);
  }
}

/** Bit-for-bit equality (so -0 vs 0 and NaN payloads aside, the same floats). */
function expectSameFloats(got: Float32Array[], want: Float32Array[]): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    expect(got[i]!.length).toBe(want[i]!.length);
    for (let j = 0; j < want[i]!.length; j++) {
      const g = got[i]![j]!;
      const w = want[i]![j]!;
      if (Number.isNaN(w)) expect(g).toBeNaN();
      else expect(Object.is(g, w) || g === w).toBe(true);
    }
  }
}

describe.skipIf(skip)('fused native kernels of wasm-blas (relu gradient, bias add, huge pages)', () => {
  useWasmBlas(/relu grad/);

  it('relu gradient: hand-computed values, one fused kernel instead of Step + Cast + Multiply', async () => {
    const x = [-2, -0, 0, 1e-30, 3, -1e-30];
    const dy = [5, 6, 7, 8, -9, 10];
    // d relu / dx = 1 for x > 0, else 0 (also at 0).
    const want = [0, 0, 0, 8, -9, 0];
    const got = tf.tidy(() => Array.from(tf.grad((t: tf.Tensor) => tf.relu(t))(tf.tensor1d(x), tf.tensor1d(dy)).dataSync()));
    expect(got).toEqual(want);
    // It is the fused kernel that ran.
    const prof = await tf.profile(() => tf.tidy(() => tf.grad((t: tf.Tensor) => tf.relu(t))(tf.tensor1d(x), tf.tensor1d(dy))));
    const names = prof.kernels.map((k) => k.name);
    expect(names).toContain(RELU_GRAD_KERNEL);
    expect(names).not.toContain('Step');
    tf.dispose(prof.result as tf.Tensor);
  });

  it.each([[1, 1], [1, 37], [37, 1], [7, 13], [3, 5, 11]])('relu gradient of shape %j equals the stock wasm kernels bit for bit, NaN and infinities included', async (...shape) => {
    const n = size(shape);
    const xv = randArray(n);
    const dyv = randArray(n, 3);
    const special = [NaN, Infinity, -Infinity, 0, -0];
    for (let i = 0; i < Math.min(n, 10); i++) {
      xv[(i * 7) % n] = special[i % special.length]!;
      dyv[(i * 3 + 1) % n] = special[(i + 2) % special.length]!;
    }
    const f = () => [tf.grad((t: tf.Tensor) => tf.relu(t))(tf.tensor(xv, shape), tf.tensor(dyv, shape))];
    const fused = await valuesOn('wasm', f);
    expectSameFloats(fused, await stockWasm(f));
    expectSameFloats(fused, await valuesOn('cpu', f));
  });

  it('relu gradient: second-order gradients equal the cpu backend', async () => {
    const xv = randArray(4 * 6);
    const wv = randArray(4 * 6);
    const f = () => {
      const w = tf.tensor2d(wv, [4, 6]);
      // g(x) = sum(w * relu'(x) * x) -> its gradient goes through the relu gradient's own gradient.
      const inner = (x: tf.Tensor) => tf.sum(tf.mul(w, tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.relu(t), t)))(x)));
      return [tf.grad(inner)(tf.tensor2d(xv, [4, 6]))];
    };
    expectClose(await valuesOn('wasm', f), await valuesOn('cpu', f));
  });

  it.each([[1, 1], [1, 37], [37, 1], [7, 13], [3, 5, 11]])('relu of shape %j equals the stock wasm kernel bit for bit (NaN, -0, infinities) and the cpu backend', async (...shape) => {
    const n = size(shape);
    const xv = randArray(n);
    const special = [NaN, Infinity, -Infinity, 0, -0];
    for (let i = 0; i < Math.min(n, 5); i++) xv[(i * 7) % n] = special[i]!;
    const f = () => [tf.relu(tf.tensor(xv, shape))];
    const fast = await valuesOn('wasm', f);
    expectSameFloats(fast, await stockWasm(f));
    expectSameFloats(fast, await valuesOn('cpu', f));
    // Closed form: max(x, 0) with NaN kept.
    for (let i = 0; i < n; i++) {
      const x = xv[i]!;
      if (Number.isNaN(x)) expect(fast[0]![i]).toBeNaN();
      else expect(fast[0]![i]).toBe(x < 0 ? 0 : x);
    }
    const ints = tf.tidy(() => Array.from(tf.relu(tf.tensor1d([-3, 0, 4], 'int32')).dataSync()));
    expect(ints).toEqual([0, 0, 4]);
  });

  it('buffer pool (opt-in): reuses large buffers of the same size and keeps the values of live tensors intact', () => {
    expect(bufferPoolStats()).toBeUndefined(); // off unless DISTILL_BUFFER_POOL=1
    process.env.DISTILL_BUFFER_POOL = '1';
    disableBlasKernels();
    enableBlasKernels();
    const before = bufferPoolStats();
    expect(before).toBeDefined();
    // 256 x 256 float32 = 256 KiB: pooled. Allocate, free, allocate again: the second is a hit.
    const a = tf.fill([256, 256], 3);
    const offA = (tf.backend() as unknown as { dataIdMap: { get(d: object): { memoryOffset: number } } }).dataIdMap.get(a.dataId)!.memoryOffset;
    a.dispose();
    const hits0 = bufferPoolStats()!.hits;
    const b = tf.fill([256, 256], 5);
    const offB = (tf.backend() as unknown as { dataIdMap: { get(d: object): { memoryOffset: number } } }).dataIdMap.get(b.dataId)!.memoryOffset;
    expect(bufferPoolStats()!.hits).toBe(hits0 + 1);
    expect(offB).toBe(offA);
    // Many live buffers of one size at once get distinct memory with their own values.
    const many = Array.from({ length: 6 }, (_, i) => tf.fill([256, 256], i + 10));
    const c = tf.add(b, many[3]!);
    const sums = many.map((t) => tf.tidy(() => t.sum().dataSync()[0]));
    expect(sums).toEqual(many.map((_, i) => (i + 10) * 65536));
    expect(c.dataSync()[12345]).toBe(5 + 13);
    tf.dispose([b, c, ...many]);
    expect(bufferPoolStats()!.pooledBytes).toBeGreaterThan(0);
    delete process.env.DISTILL_BUFFER_POOL;
    disableBlasKernels();
    enableBlasKernels();
    expect(bufferPoolStats()).toBeUndefined();
  });

  it('bias add: hand-computed values for a row broadcast, a scalar, the same shape and either order', () => {
    const r = tf.tidy(() => {
      const a = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
      return [
        tf.add(a, tf.tensor1d([10, 20, 30])),
        tf.add(tf.tensor1d([10, 20, 30]), a),
        tf.add(a, tf.scalar(0.5)),
        tf.add(tf.scalar(0.5), a),
        tf.add(a, a),
        tf.add(a, tf.tensor2d([1, 1, 1], [1, 3])),
      ].map((t) => [t.shape, Array.from(t.dataSync())]);
    });
    expect(r).toEqual([
      [[2, 3], [11, 22, 33, 14, 25, 36]],
      [[2, 3], [11, 22, 33, 14, 25, 36]],
      [[2, 3], [1.5, 2.5, 3.5, 4.5, 5.5, 6.5]],
      [[2, 3], [1.5, 2.5, 3.5, 4.5, 5.5, 6.5]],
      [[2, 3], [2, 4, 6, 8, 10, 12]],
      [[2, 3], [2, 3, 4, 5, 6, 7]],
    ]);
  });

  it.each([
    { a: [1, 1], b: [1] },
    { a: [128, 1], b: [1] },
    { a: [1, 37], b: [37] },
    { a: [9, 13], b: [13] },
    { a: [9, 13], b: [1, 13] },
    { a: [13], b: [9, 13] },
    { a: [4, 5, 7], b: [5, 7] },
    { a: [4, 5, 7], b: [1, 1, 7] },
    { a: [4, 5, 7], b: [4, 5, 7] },
    { a: [4, 5, 7], b: [] },
    // not a row broadcast: the stock kernel
    { a: [4, 5, 7], b: [4, 1, 7] },
    { a: [9, 1], b: [1, 13] },
    { a: [9, 13], b: [9, 1] },
  ])('add $a + $b equals the cpu backend and the stock wasm kernel', async ({ a, b }) => {
    const av = randArray(size(a));
    const bv = randArray(size(b));
    const f = () => [tf.add(tf.tensor(av, a), tf.tensor(bv, b))];
    const fast = await valuesOn('wasm', f);
    expectSameFloats(fast, await stockWasm(f));
    expectClose(fast, await valuesOn('cpu', f));
    const shape = tf.tidy(() => tf.add(tf.tensor(av, a), tf.tensor(bv, b)).shape);
    expect(shape).toEqual(tf.backend_util.assertAndGetBroadcastShape(a, b));
  });

  it('add of int32 tensors and of empty tensors runs the stock kernel', () => {
    const r = tf.tidy(() => {
      const i = tf.add(tf.tensor2d([1, 2, 3, 4], [2, 2], 'int32'), tf.tensor1d([10, 20], 'int32'));
      const e = tf.add(tf.zeros([0, 3]), tf.ones([3]));
      return [i.dtype, Array.from(i.dataSync()), e.shape];
    });
    expect(r).toEqual(['int32', [11, 22, 13, 24], [0, 3]]);
  });

  it('a dense relu layer trained in tf.layers (unfused add + relu in training) matches the cpu backend over steps', async () => {
    const xv = randArray(11 * 17);
    const yv = new Float32Array(11 * 5);
    for (let r = 0; r < 11; r++) yv[r * 5 + rng.int(5)] = 1;
    const w = [randArray(17 * 23, 0.3), randArray(23, 0.1), randArray(23 * 5, 0.3), randArray(5, 0.1)];
    const shapes = [[17, 23], [23], [23, 5], [5]];
    const run = () => {
      const model = tf.sequential({ layers: [tf.layers.dense({ units: 23, activation: 'relu', inputShape: [17] }), tf.layers.dense({ units: 5 })] });
      model.setWeights(w.map((v, i) => tf.tensor(v, shapes[i]!)));
      const opt = tf.train.momentum(0.2, 0.9);
      const x = tf.tensor2d(xv, [11, 17]);
      const y = tf.tensor2d(yv, [11, 5]);
      const losses: tf.Scalar[] = [];
      for (let s = 0; s < 4; s++) losses.push(opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor2D) as tf.Scalar, true)!);
      const out = [...model.getWeights().map((t) => t.clone()), tf.stack(losses)];
      opt.dispose();
      (opt as unknown as { c: tf.Tensor }).c.dispose();
      model.dispose();
      return out;
    };
    const fast = await valuesOn('wasm', run);
    expectClose(fast, await valuesOn('cpu', run));
    // The loss goes down: the update is a descent step.
    const losses = fast[fast.length - 1]!;
    expect(losses[3]!).toBeLessThan(losses[0]!);
  });

  it('backs the wasm heap with huge pages where the kernel allows it, and results stay right after the heap grows', () => {
    if (!native.ok) return;
    const be = tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } };
    const before = be.wasm.HEAPU8.byteLength;
    // Advice is a hint: bytes advised (a multiple of 2 MiB) or a negative errno; never a throw.
    const r = native.addon.adviseHugePages(new Float32Array(be.wasm.HEAPU8.buffer), false);
    expect(Number.isInteger(r)).toBe(true);
    if (r >= 0) expect(r % (2 << 20)).toBe(0);
    // Grow the heap by far more than it has, through the wrapped memory.grow, and compute on it.
    const n = Math.ceil((before + (64 << 20)) / 4 / 1024);
    const got = tf.tidy(() => {
      const big = tf.ones([n, 1024]);
      return tf.sum(tf.add(big, tf.scalar(1)), 0).dataSync()[5];
    });
    expect(be.wasm.HEAPU8.byteLength).toBeGreaterThan(before);
    expect(got).toBe(2 * n);
  });

  it('rejects bad native calls of the new kernels instead of touching memory', () => {
    if (!native.ok) return;
    const H = new Float32Array(8);
    expect(() => native.addon.reluGrad(H, 0, 2, 4, 5)).toThrow(/outside|overlaps/);
    expect(() => native.addon.reluGrad(H, 0, 2, 1, 2)).toThrow(/overlaps/);
    expect(() => native.addon.addRows(H, 0, 2, 3, 6, 3, 0)).toThrow(/overlaps|outside/);
    expect(() => native.addon.addRows(new Float32Array(16), 0, 2, 2, 4, 3, 8)).toThrow(/length 1, cols/);
    expect(() => native.addon.adviseHugePages(H, 2 as unknown as boolean)).not.toThrow();
    expect(() => native.addon.argmaxHits(H, 0, 7, 2, 4)).toThrow(/outside/);
    expect(() => native.addon.argmaxHits(H, 1, 0, 2, 4)).toThrow(/outside/);
    expect(() => native.addon.argmaxHits(H, 0, 0, 2, 0)).toThrow(/outside/);
  });

  it('reluGrad in place (output = dy) equals the out-of-place result, NaN and -0 included', () => {
    if (!native.ok) return;
    const n = 37;
    const H = new Float32Array(3 * n);
    for (let i = 0; i < n; i++) {
      H[i] = Math.sin(i * 1.7) * 3; // dy
      H[n + i] = i % 7 === 0 ? NaN : i % 5 === 0 ? -0 : Math.cos(i * 0.9); // x
    }
    native.addon.reluGrad(H, 0, n, 2 * n, n);
    const want = Array.from(H.subarray(2 * n, 3 * n));
    native.addon.reluGrad(H, 0, n, 0, n);
    expect(Array.from(H.subarray(0, n))).toEqual(want);
    expect(want.some((v) => Number.isNaN(v))).toBe(true);
    expect(want.filter((v) => v === 0).length).toBeGreaterThan(0);
  });

  it("argmaxHits counts rows whose first maximum is the label, by tf.argMax's rule (ties, NaNs)", () => {
    if (!native.ok) return;
    const C = 21; // not a multiple of the 8 lanes
    const rows: number[][] = [];
    const labels: number[] = [];
    const r = (k: number): number => Math.sin(k * 12.9898) * 43758.5453 % 1;
    for (let b = 0; b < 40; b++) {
      const row = Array.from({ length: C }, (_, j) => r(b * C + j));
      if (b % 5 === 1) row[3] = row[17] = 5; // a tie: the first wins
      if (b % 7 === 2) row[9] = NaN; // a NaN inside: never the maximum
      if (b === 3) row[0] = NaN; // a NaN first entry: tf.argMax gives 0
      rows.push(row);
      labels.push(b % 3 === 0 ? (b === 3 ? 0 : row.indexOf(Math.max(...row.filter((v) => !Number.isNaN(v))))) : b % 3 === 1 ? 17 : (b * 7) % C);
    }
    const z = Float32Array.from(rows.flat());
    const am = tf.tidy(() => Array.from(tf.argMax(tf.tensor2d(z, [rows.length, C]), 1).dataSync()));
    const tfHits = labels.filter((y, b) => am[b] === y).length;
    const H = new Float32Array(z.length + labels.length);
    H.set(z);
    new Int32Array(H.buffer, z.length * 4, labels.length).set(labels);
    const hits = native.addon.argmaxHits(H, 0, z.length, rows.length, C);
    expect(hits).toBe(tfHits);
    // row by row (a wrong rule could still give the same total)
    expect(labels.map((_, b) => native.addon.argmaxHits(H, b * C, z.length + b, 1, C))).toEqual(labels.map((y, b) => (am[b] === y ? 1 : 0)));
    expect(hits).toBeGreaterThan(10);
    expect(hits).toBeLessThan(rows.length);
  });
});
