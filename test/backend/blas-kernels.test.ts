import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { blasKernelsEnabled, disableBlasKernels, enableBlasKernels } from '../../src/backend/blas-kernels.ts';
import { getBlasThreads, loadNative, setBlasThreads } from '../../src/backend/native.ts';
import { expectClose, seededArrays, size, useWasmBlas, valuesOn } from '../helpers/backend-compare.ts';

const native = loadNative();
const skip = !native.ok;
if (!native.ok) console.log(`skipping native BLAS kernel tests: ${native.reason}`);

const { rng, randArray } = seededArrays(20260101);

/** Same computation with the native kernels (wasm-blas) and on the cpu backend. */
async function blasVsCpu(fn: () => tf.Tensor[], tol = 1e-4): Promise<void> {
  const got = await valuesOn('wasm', fn);
  const want = await valuesOn('cpu', fn);
  expectClose(got, want, tol);
}

describe.skipIf(skip)('native OpenBLAS kernels for the wasm backend', () => {
  useWasmBlas(/OpenBLAS sgemm|own GEMM/);

  it('computes small products equal to hand-computed values, with every transpose', () => {
    const a = [1, 2, 3, 4, 5, 6]; // [[1,2,3],[4,5,6]]
    const b = [1, 0, 0, 1, 1, 1]; // [[1,0],[0,1],[1,1]]
    const want = [4, 5, 10, 11];
    const r = tf.tidy(() => [
      tf.matMul(tf.tensor2d(a, [2, 3]), tf.tensor2d(b, [3, 2])),
      tf.matMul(tf.tensor2d(a, [2, 3]).transpose(), tf.tensor2d(b, [3, 2]), true, false),
      tf.matMul(tf.tensor2d(a, [2, 3]), tf.tensor2d(b, [3, 2]).transpose(), false, true),
      tf.matMul(tf.tensor2d(a, [2, 3]).transpose(), tf.tensor2d(b, [3, 2]).transpose(), true, true),
    ].map((t) => Array.from(t.dataSync())));
    for (const v of r) expect(v).toEqual(want);
    // 1 x N times N x 1 is a dot product; N x 1 times 1 x N an outer product.
    const x = [1, 2, 3, 4, 5];
    const y = [2, -1, 0.5, 3, -2];
    const dot = tf.tidy(() => tf.matMul(tf.tensor2d(x, [1, 5]), tf.tensor2d(y, [5, 1])).dataSync()[0]);
    expect(dot).toBeCloseTo(2 - 2 + 1.5 + 12 - 10, 5);
    const outer = tf.tidy(() => Array.from(tf.matMul(tf.tensor2d(x, [5, 1]), tf.tensor2d(y, [1, 5])).dataSync()));
    expect(outer).toEqual(x.flatMap((xi) => y.map((yj) => xi * yj)));
    // Inner dimension 0: the product is all zeros.
    const empty = tf.tidy(() => Array.from(tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 2])).dataSync()));
    expect(empty).toEqual([0, 0, 0, 0, 0, 0]);
  });

  /** Plain float64 batched product with numpy-style broadcasting of the batch dims (closed form). */
  function refMatMul(av: Float32Array, a: number[], bv: Float32Array, b: number[], ta: boolean, tb: boolean): Float32Array {
    const M = ta ? a.at(-1)! : a.at(-2)!;
    const K = ta ? a.at(-2)! : a.at(-1)!;
    const N = tb ? b.at(-2)! : b.at(-1)!;
    const ao = a.slice(0, -2);
    const bo = b.slice(0, -2);
    const r = Math.max(ao.length, bo.length);
    const pad = (s: number[]) => [...new Array<number>(r - s.length).fill(1), ...s];
    const [pa, pb] = [pad(ao), pad(bo)];
    const oo = pa.map((d, i) => Math.max(d, pb[i]!));
    const out = new Float32Array(size(oo) * M * N);
    for (let o = 0; o < size(oo); o++) {
      let rem = o, ia = 0, ib = 0, sa = 1, sb = 1;
      for (let j = r - 1; j >= 0; j--) {
        const k = rem % oo[j]!;
        rem = Math.floor(rem / oo[j]!);
        ia += (pa[j] === 1 ? 0 : k) * sa;
        ib += (pb[j] === 1 ? 0 : k) * sb;
        sa *= pa[j]!;
        sb *= pb[j]!;
      }
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          let acc = 0;
          for (let k = 0; k < K; k++) {
            const x = av[ia * M * K + (ta ? k * M + i : i * K + k)]!;
            const y = bv[ib * K * N + (tb ? j * K + k : k * N + j)]!;
            acc += x * y;
          }
          out[(o * M + i) * N + j] = acc;
        }
      }
    }
    return out;
  }

  // cpu: whether tfjs's cpu backend supports the case (it mishandles broadcasting over 2+ batch dims).
  const cases: { a: number[]; b: number[]; ta: boolean; tb: boolean; cpu: boolean }[] = [
    { a: [1, 7], b: [7, 1], ta: false, tb: false, cpu: true },
    { a: [9, 1], b: [1, 5], ta: false, tb: false, cpu: true },
    { a: [1, 9], b: [1, 5], ta: true, tb: false, cpu: true },
    { a: [13, 17], b: [17, 11], ta: false, tb: false, cpu: true },
    { a: [17, 13], b: [17, 11], ta: true, tb: false, cpu: true },
    { a: [13, 17], b: [11, 17], ta: false, tb: true, cpu: true },
    { a: [17, 13], b: [11, 17], ta: true, tb: true, cpu: true },
    { a: [3, 5, 7], b: [3, 7, 4], ta: false, tb: false, cpu: true },
    { a: [3, 5, 7], b: [1, 7, 4], ta: false, tb: false, cpu: true },
    { a: [1, 5, 7], b: [3, 7, 4], ta: false, tb: false, cpu: true },
    { a: [3, 7, 5], b: [1, 4, 7], ta: true, tb: true, cpu: true },
    { a: [3, 5, 7], b: [7, 4], ta: false, tb: false, cpu: true },
    { a: [2, 1, 5, 7], b: [1, 3, 7, 4], ta: false, tb: false, cpu: false },
    { a: [2, 3, 7, 5], b: [3, 4, 7], ta: true, tb: true, cpu: false },
  ];
  it.each(cases)('BatchMatMul $a x $b (transposeA=$ta, transposeB=$tb) equals the closed form and the cpu backend', async ({ a, b, ta, tb, cpu }) => {
    const av = randArray(size(a));
    const bv = randArray(size(b));
    const prod = () => [tf.matMul(tf.tensor(av, a), tf.tensor(bv, b), ta, tb)];
    const got = await valuesOn('wasm', prod);
    expectClose(got, [refMatMul(av, a, bv, b, ta, tb)]);
    if (cpu) expectClose(got, await valuesOn('cpu', prod));
  });

  const activations = ['linear', 'relu', 'relu6', 'elu', 'prelu', 'leakyrelu', 'sigmoid'] as const;
  it.each(activations)('_FusedMatMul with bias and %s equals the cpu backend (batched, broadcast, both transposes)', async (activation) => {
    const M = 6, K = 9, N = 11;
    for (const { aShape, bShape, ta, tb, biasShape, preluShape } of [
      { aShape: [M, K], bShape: [K, N], ta: false, tb: false, biasShape: [N], preluShape: [N] },
      { aShape: [K, M], bShape: [N, K], ta: true, tb: true, biasShape: [1], preluShape: [1] },
      { aShape: [2, M, K], bShape: [1, K, N], ta: false, tb: false, biasShape: [N], preluShape: [1, N] },
      { aShape: [2, K, M], bShape: [K, N], ta: true, tb: false, biasShape: [M, 1], preluShape: [2, M, N] },
      { aShape: [M, K], bShape: [N, K], ta: false, tb: true, biasShape: [M, N], preluShape: [M, 1] },
    ]) {
      const av = randArray(size(aShape), 2);
      const bv = randArray(size(bShape));
      const biasv = randArray(size(biasShape));
      const preluv = randArray(size(preluShape), 0.3);
      await blasVsCpu(() => [
        tf.fused.matMul({
          a: tf.tensor(av, aShape), b: tf.tensor(bv, bShape), transposeA: ta, transposeB: tb,
          bias: tf.tensor(biasv, biasShape), activation,
          ...(activation === 'prelu' ? { preluActivationWeights: tf.tensor(preluv, preluShape) } : {}),
          leakyreluAlpha: 0.15,
        }),
        // and without bias
        tf.fused.matMul({
          a: tf.tensor(av, aShape), b: tf.tensor(bv, bShape), transposeA: ta, transposeB: tb, activation,
          ...(activation === 'prelu' ? { preluActivationWeights: tf.tensor(preluv, preluShape) } : {}),
        }),
      ]);
    }
  });

  it.each([
    { ta: false, tb: false, activation: 'linear' as const },
    { ta: true, tb: false, activation: 'relu' as const },
    { ta: false, tb: true, activation: 'linear' as const },
    { ta: true, tb: true, activation: 'relu' as const },
  ])('gradients of a dense layer (transposeA=$ta, transposeB=$tb, $activation) equal the cpu backend', async ({ ta, tb, activation }) => {
    const M = 5, K = 13, N = 3;
    const aShape = ta ? [K, M] : [M, K];
    const bShape = tb ? [N, K] : [K, N];
    const av = randArray(size(aShape));
    const bv = randArray(size(bShape));
    const biasv = randArray(N);
    const wv = randArray(M * N);
    await blasVsCpu(() => {
      const w = tf.tensor2d(wv, [M, N]);
      const f = (a: tf.Tensor, b: tf.Tensor, bias: tf.Tensor) =>
        tf.sum(tf.mul(tf.fused.matMul({ a: a as tf.Tensor2D, b: b as tf.Tensor2D, bias, activation, transposeA: ta, transposeB: tb }), w));
      return tf.grads(f)([tf.tensor(av, aShape), tf.tensor(bv, bShape), tf.tensor1d(biasv)]);
    });
  });

  /** Weights, first output and loss after `steps` SGD-momentum steps of a small tf.layers MLP. */
  function trainMlp(weights: Float32Array[], xv: Float32Array, yv: Float32Array, nesterov: boolean, steps: number): tf.Tensor[] {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 13, activation: 'relu', inputShape: [20] }),
        tf.layers.dense({ units: 7, activation: 'relu' }),
        tf.layers.dense({ units: 3 }),
      ],
    });
    model.setWeights(model.getWeights().map((w, i) => tf.tensor(weights[i]!, w.shape)));
    const opt = tf.train.momentum(0.1, 0.9, nesterov);
    const x = tf.tensor2d(xv, [9, 20]);
    const y = tf.tensor2d(yv, [9, 3]);
    const losses: tf.Scalar[] = [];
    for (let s = 0; s < steps; s++) {
      losses.push(opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor2D) as tf.Scalar, true)!);
    }
    const out = [...model.getWeights().map((w) => w.clone()), tf.stack(losses)];
    opt.dispose();
    // MomentumOptimizer.dispose forgets SGD's learning-rate scalar (a tfjs bug): dispose it here.
    (opt as unknown as { c: tf.Tensor }).c.dispose();
    model.dispose();
    return out;
  }

  it.each([false, true])('a full tf.layers training step (SGD momentum, nesterov=%s) equals the cpu backend', async (nesterov) => {
    const shapes = [[20, 13], [13], [13, 7], [7], [7, 3], [3]];
    const weights = shapes.map((s) => randArray(size(s), 0.4));
    const xv = randArray(9 * 20);
    const yv = new Float32Array(9 * 3);
    for (let r = 0; r < 9; r++) yv[r * 3 + rng.int(3)] = 1;
    await blasVsCpu(() => trainMlp(weights, xv, yv, nesterov, 3));
  });

  it('updates momentum in place with the closed-form values, and not when the weights are shared', () => {
    const init = tf.tensor1d([1, 2, 3]);
    const v = tf.variable(init);
    init.dispose();
    const opt = tf.train.momentum(0.5, 0.9);
    const g1 = [0.2, -0.4, 1];
    const g2 = [1, 1, -1];
    const step = (g: number[]) => tf.tidy(() => opt.applyGradients([{ name: v.name, tensor: tf.tensor1d(g) }]));
    const id0 = v.dataId;
    step(g1);
    expect(v.dataId).toBe(id0); // updated in place
    // acc = g1; w = w0 - lr * g1
    expect(Array.from(v.dataSync())).toEqual([1 - 0.5 * 0.2, 2 + 0.5 * 0.4, 3 - 0.5].map(Math.fround));
    const snapshot = v.clone(); // shares memory with zero-copy Identity: must not change below
    const before = Array.from(snapshot.dataSync());
    step(g2);
    expect(v.dataId).not.toBe(id0); // shared memory: the stock (copying) update ran
    // acc = 0.9 * g1 + g2; w -= lr * acc
    const acc = g1.map((g, i) => Math.fround(Math.fround(0.9 * g) + g2[i]!));
    const want = before.map((w, i) => Math.fround(w + Math.fround(-0.5 * acc[i]!)));
    const got = Array.from(v.dataSync());
    for (let i = 0; i < 3; i++) expect(got[i]).toBeCloseTo(want[i]!, 6);
    expect(Array.from(snapshot.dataSync())).toEqual(before);
    snapshot.dispose();
    // now unshared again: one more in-place step
    step(g2);
    const acc3 = acc.map((a, i) => 0.9 * a + g2[i]!);
    const got3 = Array.from(v.dataSync());
    for (let i = 0; i < 3; i++) expect(got3[i]).toBeCloseTo(got[i]! - 0.5 * acc3[i]!, 5);
    opt.dispose();
    (opt as unknown as { c: tf.Tensor }).c.dispose();
    v.dispose();
  });

  it('sums over leading axes natively and other reductions as before (closed form and cpu)', async () => {
    // Hand-computed: column sums of [[1,2,3],[4,5,6]].
    const cols = tf.tidy(() => Array.from(tf.sum(tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]), 0).dataSync()));
    expect(cols).toEqual([5, 7, 9]);
    const kept = tf.tidy(() => tf.sum(tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]), 0, true).shape);
    expect(kept).toEqual([1, 3]);
    const xv = randArray(4 * 5 * 3);
    await blasVsCpu(() => {
      const x = tf.tensor3d(xv, [4, 5, 3]);
      return [tf.sum(x, 0), tf.sum(x, [0, 1]), tf.sum(x, [1, 0], true), tf.sum(x, 1), tf.sum(x, -1), tf.sum(x), tf.sum(x, [0, 2])];
    });
    const ints = tf.tidy(() => Array.from(tf.sum(tf.tensor2d([1, 2, 3, 4], [2, 2], 'int32'), 0).dataSync()));
    expect(ints).toEqual([4, 6]);
  });

  it('casts to the same dtype without copying and to other dtypes as before', () => {
    const r = tf.tidy(() => {
      const x = tf.tensor1d([1.5, -2, 0]);
      const same = tf.cast(x, 'float32');
      const toInt = tf.cast(x, 'int32');
      const toBool = tf.cast(x, 'bool');
      const back = tf.cast(tf.tensor1d([3, 4], 'int32'), 'float32');
      return [same.dtype, Array.from(same.dataSync()), toInt.dtype, Array.from(toInt.dataSync()), Array.from(toBool.dataSync()), back.dtype, Array.from(back.dataSync())];
    });
    expect(r).toEqual(['float32', [1.5, -2, 0], 'int32', [1, -2, 0], [1, 1, 0], 'float32', [3, 4]]);
    // A clone shares memory but is an independent tensor: disposing one keeps the other valid.
    const a = tf.tensor1d([7, 8]);
    const b = a.clone();
    a.dispose();
    expect(Array.from(b.dataSync())).toEqual([7, 8]);
    b.dispose();
  });

  it('slices the whole tensor without copying and parts of it as before', () => {
    const r = tf.tidy(() => {
      const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
      const whole = tf.slice(x, [0, 0], [-1, -1]);
      const rows = tf.slice(x, [1, 0], [2, 2]);
      const col = tf.slice(x, [0, 1], [3, 1]);
      return [whole.shape, Array.from(whole.dataSync()), Array.from(rows.dataSync()), Array.from(col.dataSync())];
    });
    expect(r).toEqual([[3, 2], [1, 2, 3, 4, 5, 6], [3, 4, 5, 6], [2, 4, 6]]);
  });

  it('restores the stock kernels on disable and re-enables idempotently', async () => {
    const av = randArray(4 * 6);
    const bv = randArray(6 * 5);
    const prod = () => [tf.matMul(tf.tensor2d(av, [4, 6]), tf.tensor2d(bv, [6, 5]))];
    const fast = await valuesOn('wasm', prod);
    disableBlasKernels();
    expect(blasKernelsEnabled()).toBeUndefined();
    expect(tf.getKernel('BatchMatMul', 'wasm')).toBeDefined();
    const stock = await valuesOn('wasm', prod);
    expectClose(fast, stock);
    const r1 = enableBlasKernels();
    const r2 = enableBlasKernels();
    expect(r1.ok && r2.ok).toBe(true);
    expect(blasKernelsEnabled()).toMatch(/OpenBLAS sgemm|own GEMM/);
  });

  it('sets and reports the number of OpenBLAS threads', () => {
    const before = getBlasThreads()!;
    expect(setBlasThreads(1)).toBe(true);
    expect(getBlasThreads()).toBe(1);
    setBlasThreads(before);
    expect(getBlasThreads()).toBe(before);
    expect(() => setBlasThreads(0)).toThrow(RangeError);
  });

  it('rejects out-of-bounds native calls instead of touching memory', () => {
    if (!native.ok) return;
    const A = new Float32Array(4);
    expect(() => native.addon.sgemm(false, false, 2, 2, 2, 1, A, 1, 2, A, 0, 2, 0, A, 0, 2)).toThrow(/too short/);
    expect(() => native.addon.momentum(A, 0, 2, 3, 2, 0.9, -0.1, false)).toThrow(/outside/);
  });

  it('every native kernel refuses a call with the wrong number of arguments, naming itself and the count', () => {
    if (!native.ok) return;
    const fns = native.addon as unknown as Record<string, (...args: unknown[]) => unknown>;
    const arity: Record<string, number> = {
      sgemm: 16, biasAct: 12, momentum: 8, adam: 13, sgdStep: 8, maxNormCols: 5, colSum: 5, reluGrad: 5, relu: 4, addRows: 7,
      adviseHugePages: 2, softmaxXent: 10, argmaxHits: 5, conv2d: 5, conv2dBackpropInput: 5, conv2dBackpropFilter: 5, maxPool: 5, maxPoolGrad: 5,
      bnForward: 14, bnGrad: 14, colMean: 5, spreadRows: 6, binaryRows: 9, square: 5,
    };
    for (const [name, n] of Object.entries(arity)) {
      const msg = new RegExp(`^distill_blas\\.${name}: expected ${n} arguments$`);
      expect(() => fns[name]!(new Float32Array(4)), name).toThrow(msg);
      expect(() => fns[name]!(...Array.from({ length: n + 1 }, () => 0)), name).toThrow(msg);
    }
  });
});
