import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/select.ts';
import { stopGradient, temperedLogSoftmax, temperedSoftmax } from '../../src/distill/softmax.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { maxAbsDiff, softmaxRef } from './ref.ts';

beforeAll(async () => {
  await initBackend('cpu');
});

describe('temperedSoftmax / temperedLogSoftmax', () => {
  const z = [
    [2, 1, 0.1, -3],
    [0, 0, 0, 0],
    [5, -5, 2.5, 1],
  ];

  it('equals tf.softmax at T = 1', () => {
    const x = tf.tensor2d(z);
    const a = temperedSoftmax(x, 1);
    const b = tf.softmax(x);
    expect(maxAbsDiff(a.dataSync(), b.dataSync())).toBeLessThan(1e-7);
    tf.dispose([x, a, b]);
  });

  it('equals the closed form exp(z/T)/sum exp(z/T) at T = 4 and rows sum to 1', () => {
    const x = tf.tensor2d(z);
    const q = temperedSoftmax(x, 4);
    const got = q.arraySync();
    z.forEach((r, i) => {
      expect(maxAbsDiff(got[i]!, softmaxRef(r, 4))).toBeLessThan(1e-6);
      expect(got[i]!.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    });
    // a hand-computed case: z = [ln 3, 0] at T = 1 gives [3/4, 1/4]; at T = 2, [sqrt3/(sqrt3+1), 1/(sqrt3+1)]
    const h = tf.tensor2d([[Math.log(3), 0]]);
    expect(maxAbsDiff(temperedSoftmax(h, 1).dataSync(), [0.75, 0.25])).toBeLessThan(1e-7);
    const s3 = Math.sqrt(3);
    expect(maxAbsDiff(temperedSoftmax(h, 2).dataSync(), [s3 / (s3 + 1), 1 / (s3 + 1)])).toBeLessThan(1e-7);
    tf.dispose([x, q, h]);
  });

  it('log-softmax is exact and finite for logits around 1e4', () => {
    const x = tf.tensor2d([
      [1e4, 0, -1e4],
      [1e4, 1e4 - 1, 1e4 - 2],
    ]);
    const l = temperedLogSoftmax(x, 1).arraySync();
    for (const r of l) for (const v of r) expect(Number.isFinite(v)).toBe(true);
    expect(l[0]![0]).toBeCloseTo(0, 5);
    expect(l[0]![1]).toBeCloseTo(-1e4, 0);
    expect(l[0]![2]).toBeCloseTo(-2e4, 0);
    const lse = Math.log(1 + Math.exp(-1) + Math.exp(-2));
    expect(maxAbsDiff(l[1]!, [-lse, -1 - lse, -2 - lse])).toBeLessThan(2e-3); // float32 at 1e4: ulp ~ 1e-3
    // the naive log(softmax) underflows to -Infinity here; ours does not
    const naive = tf.tidy(() => tf.log(tf.softmax(x)).dataSync());
    expect(naive[2]).toBe(-Infinity);
    // tempered: log-softmax at T = 10 of [1e4, 0, -1e4] = [0, -1e3, -2e3]
    const l10 = temperedLogSoftmax(x, 10).arraySync()[0]!;
    expect(maxAbsDiff(l10, [0, -1e3, -2e3])).toBeLessThan(1e-3);
    x.dispose();
  });

  it('its closed-form gradient equals autodiff of z/T - logSumExp(z/T), for any upstream gradient, at T = 1, 2.5 and 20', () => {
    const rows = [...z, [1e4, 1e4 - 3, -1e4, 0]];
    const dyRows = [
      [0.3, -1, 2, 0.5],
      [1, 1, 1, 1],
      [-0.2, 0, 0.7, -2],
      [0.1, 0.4, -0.3, 1],
    ];
    const x = tf.tensor2d(rows);
    const dy = tf.tensor2d(dyRows);
    for (const T of [1, 2.5, 20]) {
      const before = tf.memory().numTensors;
      const ours = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(temperedLogSoftmax(v as tf.Tensor2D, T), dy)))(x);
      const auto = tf.grad((v: tf.Tensor) => {
        const s = tf.div(v, T);
        return tf.sum(tf.mul(tf.sub(s, tf.logSumExp(s, -1, true)), dy));
      })(x);
      expect(maxAbsDiff(ours.dataSync(), auto.dataSync())).toBeLessThan(1e-6);
      // by hand, row 1 (all zeros, dy all ones): the gradient is (1 - 4 * 1/4) / T = 0
      expect(Array.from(ours.dataSync().subarray(4, 8)).every((g) => Math.abs(g) < 1e-7)).toBe(true);
      tf.dispose([ours, auto]);
      expect(tf.memory().numTensors).toBe(before);
    }
    tf.dispose([x, dy]);
  });

  it('rejects a non-positive temperature', () => {
    const x = tf.tensor2d([[1, 2]]);
    expect(() => temperedSoftmax(x, 0)).toThrow(ConfigError);
    expect(() => temperedLogSoftmax(x, -1)).toThrow(ConfigError);
    expect(() => temperedSoftmax(x, Number.NaN)).toThrow(ConfigError);
    x.dispose();
  });

  it('leaks no tensors', () => {
    const x = tf.tensor2d(z);
    const before = tf.memory().numTensors;
    temperedSoftmax(x, 3).dispose();
    temperedLogSoftmax(x, 3).dispose();
    temperedLogSoftmax(x, 1).dispose();
    stopGradient(x).dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });
});

describe('stopGradient', () => {
  it('is the identity forward and has zero gradient', () => {
    const x = tf.tensor1d([1, 2, 3]);
    const y = stopGradient(x);
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3]);
    // d/dx sum(stop(x) * x) = stop(x) = x  (the stopped factor contributes nothing)
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(stopGradient(t), t)))(x);
    expect(Array.from(g.dataSync())).toEqual([1, 2, 3]);
    const g0 = tf.grad((t: tf.Tensor) => tf.sum(tf.square(stopGradient(t))))(x);
    expect(Array.from(g0.dataSync())).toEqual([0, 0, 0]);
    tf.dispose([x, y, g, g0]);
  });
});
