import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/select.ts';
import { combineTeachers, computeTeacherLogits, onlineTeacherLoss, teacherLogitsOfBatch } from '../../src/distill/teacher.ts';
import { makeLoss } from '../../src/distill/losses.ts';
import { ConfigError, DataError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';
import { maxAbsDiff, row, softmaxRef } from './ref.ts';

beforeAll(async () => {
  await initBackend('cpu');
});

describe('combineTeachers', () => {
  // 2 members, 3 classes, 2 rows, chosen so the probabilities are simple:
  // member A row 0: logits log[1, 2, 1] -> p = [1/4, 1/2, 1/4]
  // member B row 0: logits log[2, 1, 1] -> p = [1/2, 1/4, 1/4]
  // member A row 1: [0, 0, 0] -> [1/3, 1/3, 1/3]; member B row 1: log[1, 1, 4] -> [1/6, 1/6, 2/3]
  const L = Math.log;
  const A = Float32Array.from([L(1), L(2), L(1), 0, 0, 0]);
  const Bm = Float32Array.from([L(2), L(1), L(1), L(1), L(1), L(4)]);

  it('arithmetic: softmax of the result is the mean of the members’ probabilities; it equals log(mean p)', () => {
    const out = combineTeachers([A, Bm], 2, 3, 'arithmetic');
    // mean p row 0 = [3/8, 3/8, 1/4]; row 1 = [1/4, 1/4, 1/2]
    expect(maxAbsDiff(out, [L(3 / 8), L(3 / 8), L(1 / 4), L(1 / 4), L(1 / 4), L(1 / 2)])).toBeLessThan(1e-6);
    expect(maxAbsDiff(softmaxRef(row(out, 0, 3)), [3 / 8, 3 / 8, 1 / 4])).toBeLessThan(1e-6);
  });

  it('geometric: mean of the logits = log of the renormalised geometric mean (up to a row constant)', () => {
    const out = combineTeachers([A, Bm], 2, 3, 'geometric');
    expect(maxAbsDiff(out, [L(2) / 2, L(2) / 2, 0, 0, 0, L(4) / 2])).toBeLessThan(1e-6);
    // row 0: sqrt(p_A p_B) = sqrt([1/8, 1/8, 1/16]) ∝ [sqrt2, sqrt2, 1] -> renormalised
    const g = [Math.SQRT2, Math.SQRT2, 1];
    const s = g.reduce((a, b) => a + b, 0);
    expect(maxAbsDiff(softmaxRef(row(out, 0, 3)), g.map((x) => x / s))).toBeLessThan(1e-6);
    // row 1: sqrt([1/18, 1/18, 2/9]) ∝ [1, 1, 2] -> [1/4, 1/4, 1/2]
    expect(maxAbsDiff(softmaxRef(row(out, 1, 3)), [1 / 4, 1 / 4, 1 / 2])).toBeLessThan(1e-6);
  });

  it('arithmetic mode is finite when a member’s probability underflows', () => {
    const a = Float32Array.from([0, -200, -200]);
    const b = Float32Array.from([-200, 0, -200]);
    const out = combineTeachers([a, b], 1, 3, 'arithmetic');
    expect(Array.from(out).every(Number.isFinite)).toBe(true);
    expect(out[0]).toBeCloseTo(Math.log(0.5), 6);
    expect(out[2]).toBeCloseTo(-200, 3);
  });

  it('one member: geometric returns the logits, arithmetic the log-softmax (same softmax)', () => {
    const z = Float32Array.from([1, 2, 3]);
    expect(Array.from(combineTeachers([z], 1, 3, 'geometric'))).toEqual([1, 2, 3]);
    const a = combineTeachers([z], 1, 3, 'arithmetic');
    expect(maxAbsDiff(softmaxRef(a), softmaxRef([1, 2, 3]))).toBeLessThan(1e-6);
  });

  it('rejects mismatched sizes, no members, unknown mode', () => {
    expect(() => combineTeachers([A, Bm.subarray(0, 3)], 2, 3, 'geometric')).toThrow(DataError);
    expect(() => combineTeachers([], 2, 3, 'geometric')).toThrow(ConfigError);
    expect(() => combineTeachers([A], 2, 3, 'median' as 'geometric')).toThrow(ConfigError);
  });
});

describe('computeTeacherLogits', () => {
  function model(seed: number, softmaxOut = false, dropout = false): tf.Sequential {
    const m = tf.sequential();
    m.add(tf.layers.dense({ inputShape: [3], units: 5, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed }) }));
    if (dropout) m.add(tf.layers.dropout({ rate: 0.5 }));
    m.add(tf.layers.dense({ units: 4, activation: softmaxOut ? 'softmax' : 'linear', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }));
    return m;
  }
  const rng = new Rng(3);
  const n = 7;
  const x = Float32Array.from({ length: n * 3 }, () => rng.normal());

  it('one model: equals predict on the whole input, for any batch size; no tensors left; inference mode', () => {
    const m = model(1, false, true);
    const ref = tf.tidy(() => (m.predict(tf.tensor2d(x, [n, 3])) as tf.Tensor).dataSync().slice());
    const before = tf.memory().numTensors;
    for (const bs of [1, 3, 7, 100]) {
      const got = computeTeacherLogits([m], x, n, 3, 'geometric', bs);
      expect(maxAbsDiff(got, ref)).toBeLessThan(1e-6); // dropout off: deterministic
      // arithmetic with one member: log-softmax of the logits (same distribution)
      const ar = computeTeacherLogits([m], x, n, 3, 'arithmetic', bs);
      for (let r = 0; r < n; r++) expect(maxAbsDiff(softmaxRef(row(ar, r, 4)), softmaxRef(row(ref, r, 4)))).toBeLessThan(1e-6);
    }
    expect(tf.memory().numTensors).toBe(before);
    const xt = tf.tensor2d(x, [n, 3]);
    expect(maxAbsDiff(computeTeacherLogits([m], xt, n, 3, 'geometric', 2), ref)).toBeLessThan(1e-6);
    xt.dispose();
    m.dispose();
  });

  it('ensemble: equals combineTeachers of the members’ outputs; softmax outputs are read as log-probabilities', () => {
    const m1 = model(5);
    const m2 = model(9, true);
    const [z1, p2] = tf.tidy(() => {
      const xt = tf.tensor2d(x, [n, 3]);
      return [(m1.predict(xt) as tf.Tensor).dataSync().slice() as Float32Array, (m2.predict(xt) as tf.Tensor).dataSync().slice() as Float32Array];
    });
    const z2 = p2.map(Math.log);
    for (const mode of ['arithmetic', 'geometric'] as const) {
      const got = computeTeacherLogits([m1, m2], x, n, 3, mode, 3);
      expect(maxAbsDiff(got, combineTeachers([z1, z2], n, 4, mode))).toBeLessThan(1e-5);
    }
    m1.dispose();
    m2.dispose();
  });

  it('per batch (online teacher): teacherLogitsOfBatch equals computeTeacherLogits, inference mode, no tensors left', () => {
    const m1 = model(5, false, true);
    const m2 = model(9, true);
    const before = tf.memory().numTensors;
    for (const mode of ['arithmetic', 'geometric'] as const) {
      for (const models of [[m1], [m1, m2]]) {
        const got = tf.tidy(() => teacherLogitsOfBatch(models, tf.tensor2d(x, [n, 3]), mode).dataSync().slice() as Float32Array);
        const want = computeTeacherLogits(models, x, n, 3, mode, 4);
        // one member: any per-row shift is allowed (arithmetic of one = log-softmax); compare softmaxes
        for (let r = 0; r < n; r++) expect(maxAbsDiff(softmaxRef(row(got, r, 4)), softmaxRef(row(want, r, 4)))).toBeLessThan(1e-5);
      }
    }
    expect(tf.memory().numTensors).toBe(before);
    m1.dispose();
    m2.dispose();
  });

  it('onlineTeacherLoss: the loss with cached teacher rows on the same batch; no gradient reaches the teacher', () => {
    const teacher = model(5);
    const inner = makeLoss({ type: 'soft', T: 3, alpha: 0.7, teacher: 'logits' });
    const online = onlineTeacherLoss(inner, [teacher], 'geometric');
    const before = tf.memory().numTensors;
    const [a, b, teacherGrads] = tf.tidy(() => {
      const xb = tf.tensor2d(x, [n, 3]);
      const y = tf.tensor1d(Array.from({ length: n }, (_, i) => i % 4), 'int32');
      const student = tf.variable(tf.randomNormal<tf.Rank.R2>([n, 4], 0, 1, 'float32', 7));
      const cached = tf.tensor2d(computeTeacherLogits([teacher], x, n, 3, 'geometric', 4), [n, 4]);
      const a = inner(student, { x: xb, y, targets: cached }).dataSync()[0]!;
      const b = online(student, { x: xb, y }).dataSync()[0]!;
      const tv = teacher.trainableWeights.map((w) => w.read() as tf.Variable);
      const { grads } = tf.variableGrads(() => online(student, { x: xb, y }), tv);
      const g = Object.values(grads).map((t) => tf.abs(t).max().dataSync()[0]!);
      student.dispose();
      return [a, b, g];
    });
    expect(Math.abs(a - b)).toBeLessThan(1e-5);
    for (const g of teacherGrads) expect(g).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    teacher.dispose();
  });

  it('rejects wrong input size and mismatched class counts', () => {
    const m = model(1);
    expect(() => computeTeacherLogits([m], x.subarray(1), n, 3, 'geometric', 4)).toThrow(DataError);
    const other = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 5 })] });
    expect(() => computeTeacherLogits([m, other], x, n, 3, 'geometric', 4)).toThrow(ConfigError);
    expect(() => computeTeacherLogits([], x, n, 3, 'geometric', 4)).toThrow(ConfigError);
    m.dispose();
    other.dispose();
  });
});
