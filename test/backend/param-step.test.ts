import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/backend/native.ts';
import { installNativeParamSteps, nativeAdamStep, nativeMaxNormCols, nativeParamStepStats, uninstallNativeParamSteps } from '../../src/backend/param-step.ts';
import { buildMlp } from '../../src/models/mlp.ts';
import { ParamOptimizer, type OptimizerSpec } from '../../src/models/optimizer.ts';
import { trainModel } from '../../src/models/train.ts';
import { seededArrays, useWasmBlas } from '../helpers/backend-compare.ts';

const native = loadNative();
const skip = !native.ok;
if (!native.ok) console.log(`skipping native optimizer-step tests: ${native.reason}`);

/** Runs `fn` with the native parameter steps off (the tfjs ops), then back on. */
async function withTfjsOps<T>(fn: () => Promise<T>): Promise<T> {
  uninstallNativeParamSteps();
  try {
    return await fn();
  } finally {
    if (native.ok) installNativeParamSteps(native.addon);
  }
}

/** Bit-for-bit equal float arrays. */
function expectSameBits(got: Float32Array, want: Float32Array): void {
  expect(got.length).toBe(want.length);
  let diff = 0;
  for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) diff++;
  expect(diff).toBe(0);
}

/** A variable that alone owns its memory (as model weights and optimizer slots do). */
function owned(values: number[] | Float32Array, shape: number[]): tf.Variable {
  return tf.tidy(() => tf.variable(tf.tensor(values, shape), true));
}

const shapes: number[][] = [[1, 7], [7, 1], [13, 29], [5], [300, 33]];

/** `steps` optimizer steps from seeded weights and gradients; returns the final weights and slots. */
async function runOptimizer(spec: OptimizerSpec, steps: number, seed: number): Promise<Float32Array[]> {
  const { randArray } = seededArrays(seed);
  const vars = shapes.map((s) => owned(randArray(s.reduce((a, b) => a * b, 1)), s));
  const grads = Array.from({ length: steps }, () => shapes.map((s) => randArray(s.reduce((a, b) => a * b, 1), 0.1)));
  const opt = new ParamOptimizer(spec, vars);
  for (let t = 0; t < steps; t++) {
    const g = grads[t]!.map((a, i) => tf.tensor(a, shapes[i]));
    opt.step(g, 0.01 * (1 + t / 3), t === 0 ? 0 : 0.9);
    tf.dispose(g);
  }
  const out = vars.map((v) => Float32Array.from(v.dataSync()));
  const state = (await opt.getState()).slots;
  tf.dispose(vars);
  opt.dispose();
  return [...out, ...state];
}

describe.skipIf(skip)('native optimizer steps and max-norm (wasm-blas)', () => {
  useWasmBlas(/Adam, max-norm/);

  const specs: [string, OptimizerSpec][] = [
    ['adam', { name: 'adam', lr: 0.01 }],
    ['adam with its own betas and epsilon', { name: 'adam', lr: 0.01, beta1: 0.8, beta2: 0.99, epsilon: 1e-4 }],
    ['sgd without momentum', { name: 'sgd', lr: 0.01, momentum: 0 }],
    ['sgd with momentum', { name: 'sgd', lr: 0.01, momentum: 0.9 }],
    ['sgd nesterov', { name: 'sgd', lr: 0.01, momentum: 0.9, nesterov: true }],
  ];
  for (const [name, spec] of specs) {
    it(`${name}: the native in-place step gives the tfjs ops' floats bit for bit`, async () => {
      const before = nativeParamStepStats();
      const nat = await runOptimizer(spec, 4, 77);
      const used = nativeParamStepStats();
      expect(used.adam + used.sgd).toBe(before.adam + before.sgd + 4 * shapes.length);
      const ops = await withTfjsOps(() => runOptimizer(spec, 4, 77));
      expect(nat.length).toBe(ops.length);
      for (let i = 0; i < ops.length; i++) expectSameBits(nat[i]!, ops[i]!);
    });
  }

  it('adam by hand: one step from m = v = 0 moves each weight by lr * g / (|g| + eps) against the gradient', () => {
    const w = owned([1, -2, 0.5, 3], [4]);
    const m = owned([0, 0, 0, 0], [4]);
    const v = owned([0, 0, 0, 0], [4]);
    const g = tf.tensor1d([0.5, -0.25, 0, 2]);
    const lr = 0.1;
    const eps = 1e-7;
    // Step 1: c1 = 1 / (1 - b1), c2 = 1 / (1 - b2), so m c1 = g and v c2 = g^2.
    expect(nativeAdamStep(w, m, v, g, { b1: 0.9, omb1: 1 - 0.9, b2: 0.999, omb2: 1 - 0.999, lrc1: lr / (1 - 0.9), c2: 1 / (1 - 0.999), eps })).toBe(true);
    const got = Array.from(w.dataSync());
    const want = [1 - lr * 0.5 / (0.5 + eps), -2 + lr * 0.25 / (0.25 + eps), 0.5, 3 - lr * 2 / (2 + eps)];
    got.forEach((x, i) => expect(x).toBeCloseTo(want[i]!, 5));
    tf.dispose([w, m, v, g]);
  });

  it('a variable whose memory is shared (a clone exists) is left to the tfjs ops and stays correct', () => {
    const w = owned([1, 2, 3], [3]);
    const m = owned([0, 0, 0], [3]);
    const v = owned([0, 0, 0], [3]);
    const g = tf.tensor1d([1, 1, 1]);
    const alias = tf.clone(w);
    expect(nativeAdamStep(w, m, v, g, { b1: 0.9, omb1: 0.1, b2: 0.999, omb2: 0.001, lrc1: 1, c2: 1000, eps: 1e-7 })).toBe(false);
    expect(Array.from(alias.dataSync())).toEqual([1, 2, 3]);
    tf.dispose([w, m, v, g, alias]);
  });

  it('max-norm: columns above the bound are scaled to it (within float32), the others bit-identical, zero columns unchanged', () => {
    // 3 x 4: column norms 5, 1, 0, 13.
    const vals = [3, 1, 0, 5, 4, 0, 0, 12, 0, 0, 0, 0];
    const w = owned(vals, [3, 4]);
    expect(nativeMaxNormCols(w, 2)).toBe(true);
    const got = w.dataSync();
    const want = [3 * (2 / 5), 1, 0, 5 * (2 / 13), 4 * (2 / 5), 0, 0, 12 * (2 / 13), 0, 0, 0, 0];
    for (let i = 0; i < 12; i++) expect(got[i]).toBeCloseTo(want[i]!, 6);
    expect(got[1]).toBe(1);
    expect(got[2]).toBe(0);
    w.dispose();
    const w1 = owned([3, 4], [2]);
    expect(nativeMaxNormCols(w1, 2)).toBe(false); // rank 1: the tfjs ops handle it
    w1.dispose();
  });

  it('a training run with dropout, max-norm and jitter: native and tfjs-op steps give the same weights', async () => {
    const { randArray, rng } = seededArrays(5);
    const n = 120;
    const dim = 36;
    const train = { x: randArray(n * dim), y: Int32Array.from({ length: n }, () => rng.int(4)), n, dim, shape: [6, 6] };
    const run = async (): Promise<Float32Array[]> => {
      const model = buildMlp({ inputDim: dim, hidden: [17, 9], outputs: 4, activation: 'relu', inputDropout: 0.2, dropout: 0.5, maxNorm: 0.5, seed: 3 });
      await trainModel({ model, train, epochs: 2, batchSize: 32, optimizer: { name: 'adam', lr: 0.01 }, jitter: 1, seed: 9, select: 'last' });
      const w = model.getWeights().map((t) => Float32Array.from(t.dataSync()));
      model.dispose();
      return w;
    };
    const before = nativeParamStepStats();
    const nat = await run();
    const after = nativeParamStepStats();
    expect(after.adam - before.adam).toBeGreaterThan(0);
    expect(after.maxNorm - before.maxNorm).toBeGreaterThan(0);
    const ops = await withTfjsOps(run);
    expect(nativeParamStepStats()).toEqual(after);
    expect(nat.length).toBe(ops.length);
    // Max-norm's column sums add in a different order than tfjs's Sum, so the rescaled columns may differ in the last bits.
    for (let i = 0; i < ops.length; i++) {
      let maxRel = 0;
      for (let j = 0; j < ops[i]!.length; j++) maxRel = Math.max(maxRel, Math.abs(nat[i]![j]! - ops[i]![j]!) / Math.max(Math.abs(ops[i]![j]!), 1e-3));
      expect(maxRel).toBeLessThan(1e-4);
    }
  });
});
