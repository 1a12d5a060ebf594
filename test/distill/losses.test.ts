import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/select.ts';
import type { LossFn, TrainBatch } from '../../src/distill/loss-types.ts';
import {
  distillationLoss,
  hardLoss,
  logitMatchingLoss,
  makeLoss,
  softTargetLoss,
  type DistillLossSpec,
} from '../../src/distill/losses.ts';
import { computeTeacherLogits } from '../../src/distill/teacher.ts';
import { ConfigError, DataError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';
import { centre, crossEntropyRef, maxAbsDiff, norm, softmaxRef } from './ref.ts';

beforeAll(async () => {
  await initBackend('cpu');
});

const C = 4;
// Student logits z and teacher logits v (3 cases, 4 classes), labels y.
const Z = [
  [1.0, -0.5, 2.0, 0.3],
  [-1.2, 0.4, 0.0, 2.2],
  [0.5, 0.5, -2.0, 1.0],
];
const V = [
  [3.0, -1.0, 0.5, 0.0],
  [0.0, 1.0, -0.5, 4.0],
  [-1.0, 2.0, 0.0, 1.5],
];
const Y = [0, 3, 1];
const B = Z.length;

function batchOf(v: number[][], y: number[] = Y): TrainBatch {
  return { x: tf.zeros([v.length, 1]) as tf.Tensor2D, y: tf.tensor1d(y, 'int32'), targets: tf.tensor2d(v) };
}
function disposeBatch(b: TrainBatch): void {
  tf.dispose([b.x, b.y, ...(b.targets ? [b.targets] : [])]);
}
/** Loss value as a number; disposes the scalar. */
function value(loss: LossFn, z: number[][], b: TrainBatch): number {
  const zt = tf.tensor2d(z);
  const s = loss(zt, b);
  const v = s.dataSync()[0]!;
  tf.dispose([zt, s]);
  return v;
}
/** Gradient of `scale * loss` w.r.t. the student logits, as rows. */
function gradZ(loss: LossFn, z: number[][], b: TrainBatch, scale = 1): number[][] {
  const zt = tf.tensor2d(z);
  const g = tf.grad((t: tf.Tensor) => tf.mul(loss(t as tf.Tensor2D, b), scale))(zt);
  const out = g.arraySync() as number[][];
  tf.dispose([zt, g]);
  return out;
}

describe('soft-target loss', () => {
  it('value = mean_b T^2 CE(softmax(v/T), softmax(z/T))', () => {
    const b = batchOf(V);
    for (const T of [1, 3, 20]) {
      const expected = Z.reduce((s, z, i) => s + T * T * crossEntropyRef(softmaxRef(V[i]!, T), softmaxRef(z, T)), 0) / B;
      expect(value(softTargetLoss({ T }), Z, b)).toBeCloseTo(expected, 4);
    }
    disposeBatch(b);
  });

  it('gradient w.r.t. z is (1/T)(q - p) without the T^2 factor and T(q - p) with it', () => {
    const b = batchOf(V);
    for (const T of [1, 5, 20, 100]) {
      const loss = softTargetLoss({ T });
      const scaled = gradZ(loss, Z, b); // T^2 * CE, batch mean
      const unscaled = gradZ(loss, Z, b, 1 / (T * T)); // CE alone
      for (let i = 0; i < B; i++) {
        const q = softmaxRef(Z[i]!, T);
        const p = softmaxRef(V[i]!, T);
        const diff = q.map((qi, k) => qi - p[k]!);
        // per case (the loss is a batch mean, so multiply by B)
        const gScaled = scaled[i]!.map((g) => g * B);
        const gUnscaled = unscaled[i]!.map((g) => g * B);
        expect(maxAbsDiff(gScaled, diff.map((d) => T * d))).toBeLessThan(1e-5 * Math.max(1, T));
        expect(maxAbsDiff(gUnscaled, diff.map((d) => d / T))).toBeLessThan(1e-6);
      }
    }
    disposeBatch(b);
  });

  it('with T^2 the gradient magnitude does not shrink as T grows; without it, it shrinks like 1/T^2', () => {
    const b = batchOf(V);
    const Ts = [1, 5, 20, 100];
    const scaledNorms = Ts.map((T) => norm(gradZ(softTargetLoss({ T }), Z, b).flat()));
    const unscaledNorms = Ts.map((T) => norm(gradZ(softTargetLoss({ T }), Z, b, 1 / (T * T)).flat()));
    // scaled: tends to ||zc - vc|| / (N B), a positive constant; never collapses
    const limit = norm(Z.flatMap((z, i) => centre(z).map((zc, k) => (zc - centre(V[i]!)[k]!) / (C * B))));
    expect(Math.abs(scaledNorms[3]! - limit) / limit).toBeLessThan(0.01);
    for (let k = 1; k < Ts.length; k++) expect(scaledNorms[k]!).toBeGreaterThan(0.3 * scaledNorms[0]!);
    expect(scaledNorms[3]! / scaledNorms[2]!).toBeGreaterThan(0.95);
    // unscaled: from T = 20 to T = 100 it falls by about (100/20)^2 = 25
    expect(unscaledNorms[2]! / unscaledNorms[3]!).toBeGreaterThan(20);
    expect(unscaledNorms[2]! / unscaledNorms[3]!).toBeLessThan(30);
    disposeBatch(b);
  });

  it('at T = 1000 with zero-mean logits the un-scaled gradient approaches (z - v)/(N T^2)', () => {
    const Zc = Z.map(centre);
    const Vc = V.map(centre);
    const b = batchOf(Vc);
    const T = 1000;
    const g = gradZ(softTargetLoss({ T }), Zc, b, 1 / (T * T));
    for (let i = 0; i < B; i++) {
      const expected = Zc[i]!.map((z, k) => (z - Vc[i]![k]!) / (C * T * T));
      const got = g[i]!.map((x) => x * B);
      const relErr = norm(got.map((x, k) => x - expected[k]!)) / norm(expected);
      expect(relErr).toBeLessThan(0.01);
    }
    disposeBatch(b);
  });

  it('teacher probabilities: p at T = 1, softmax(log p / T) otherwise (same as passing logits)', () => {
    const P = V.map((v) => softmaxRef(v));
    const bl = batchOf(V);
    const bp = batchOf(P);
    for (const T of [1, 2.5, 8]) {
      const a = value(softTargetLoss({ T }), Z, bl);
      const p = value(softTargetLoss({ T, teacher: 'probabilities' }), Z, bp);
      expect(p).toBeCloseTo(a, 4);
    }
    // hand case: p = [1/2, 1/2, 0, 0] at T = 2 stays [1/2, 1/2, 0, 0]; p = [0.8, 0.2] -> [2/3, 1/3]
    const b2 = batchOf([[0.8, 0.2]], [0]);
    const z2 = [[0.3, -0.1]];
    const expected = 4 * crossEntropyRef([2 / 3, 1 / 3], softmaxRef(z2[0]!, 2));
    expect(value(softTargetLoss({ T: 2, teacher: 'probabilities' }), z2, b2)).toBeCloseTo(expected, 5);
    [bl, bp, b2].forEach(disposeBatch);
  });

  it('no gradient flows into the teacher targets (any loss, logits or probabilities)', () => {
    const zt = tf.tensor2d(Z);
    const y = tf.tensor1d(Y, 'int32');
    const x = tf.zeros([B, 1]) as tf.Tensor2D;
    const losses: [string, LossFn, number[][]][] = [
      ['soft', softTargetLoss({ T: 4 }), V],
      ['soft probabilities', softTargetLoss({ T: 4, teacher: 'probabilities' }), V.map((v) => softmaxRef(v))],
      ['distill', distillationLoss({ T: 3, alpha: 0.7, teacher: 'logits' }), V],
      ['logits', logitMatchingLoss({ alpha: 0.5 }), V],
    ];
    for (const [, loss, targets] of losses) {
      const v = tf.tensor2d(targets);
      const g = tf.grad((t: tf.Tensor) => loss(zt, { x, y, targets: t as tf.Tensor2D }))(v);
      expect(Array.from(g.dataSync()).every((e) => e === 0)).toBe(true);
      tf.dispose([v, g]);
    }
    tf.dispose([zt, y, x]);
  });

  it('errors: no targets, wrong shape, bad T', () => {
    const zt = tf.tensor2d(Z);
    const y = tf.tensor1d(Y, 'int32');
    const x = tf.zeros([B, 1]) as tf.Tensor2D;
    expect(() => softTargetLoss({ T: 2 })(zt, { x, y })).toThrow(ConfigError);
    const wrong = tf.zeros([B, C + 1]) as tf.Tensor2D;
    expect(() => softTargetLoss({ T: 2 })(zt, { x, y, targets: wrong })).toThrow(DataError);
    expect(() => softTargetLoss({ T: 0 })).toThrow(ConfigError);
    tf.dispose([zt, y, x, wrong]);
  });
});

describe('distillationLoss', () => {
  it('alpha = 0 equals hard CE; alpha = 1, T = 1 equals CE(p, q)', () => {
    const b = batchOf(V);
    const hardRef = Z.reduce((s, z, i) => s - Math.log(softmaxRef(z)[Y[i]!]!), 0) / B;
    expect(value(distillationLoss({ T: 5, alpha: 0, teacher: 'logits' }), Z, b)).toBeCloseTo(hardRef, 5);
    expect(value(hardLoss(), Z, b)).toBeCloseTo(hardRef, 5);
    // alpha = 0 needs no targets
    const noTargets: TrainBatch = { x: b.x, y: b.y };
    expect(value(distillationLoss({ T: 5, alpha: 0, teacher: 'logits' }), Z, noTargets)).toBeCloseTo(hardRef, 5);
    const softRef = Z.reduce((s, z, i) => s + crossEntropyRef(softmaxRef(V[i]!), softmaxRef(z)), 0) / B;
    expect(value(distillationLoss({ T: 1, alpha: 1, teacher: 'logits' }), Z, b)).toBeCloseTo(softRef, 5);
    disposeBatch(b);
  });

  it('general alpha, T: alpha T^2 CE(p_T, q_T) + (1 - alpha) CE(y, q_1); gradient matches', () => {
    const b = batchOf(V);
    const T = 4;
    const alpha = 0.9;
    const expected =
      Z.reduce(
        (s, z, i) => s + alpha * T * T * crossEntropyRef(softmaxRef(V[i]!, T), softmaxRef(z, T)) - (1 - alpha) * Math.log(softmaxRef(z)[Y[i]!]!),
        0,
      ) / B;
    const loss = distillationLoss({ T, alpha, teacher: 'logits' });
    expect(value(loss, Z, b)).toBeCloseTo(expected, 4);
    // gradient per case: alpha T (q_T - p_T) + (1 - alpha)(q_1 - onehot(y))
    const g = gradZ(loss, Z, b);
    for (let i = 0; i < B; i++) {
      const qT = softmaxRef(Z[i]!, T);
      const pT = softmaxRef(V[i]!, T);
      const q1 = softmaxRef(Z[i]!);
      const exp = qT.map((q, k) => alpha * T * (q - pT[k]!) + (1 - alpha) * (q1[k]! - (k === Y[i] ? 1 : 0)));
      expect(maxAbsDiff(g[i]!.map((x) => x * B), exp)).toBeLessThan(1e-5);
    }
    disposeBatch(b);
  });

  it('rejects alpha outside [0, 1]', () => {
    expect(() => distillationLoss({ T: 2, alpha: 1.5, teacher: 'logits' })).toThrow(ConfigError);
    expect(() => distillationLoss({ T: 2, alpha: -0.1, teacher: 'logits' })).toThrow(ConfigError);
  });
});

describe('logitMatchingLoss', () => {
  it('value = mean_b 1/2 ||zc - vc||^2 and gradient = zc - vc per case (zero-mean rows)', () => {
    // offsets per row must not matter: shift teacher rows by constants
    const Vshift = V.map((v, i) => v.map((x) => x + 10 * (i + 1)));
    const b = batchOf(Vshift);
    const expected = Z.reduce((s, z, i) => s + 0.5 * norm(centre(z).map((zc, k) => zc - centre(V[i]!)[k]!)) ** 2, 0) / B;
    expect(value(logitMatchingLoss(), Z, b)).toBeCloseTo(expected, 4);
    const Zc = Z.map(centre);
    const g = gradZ(logitMatchingLoss(), Zc, b);
    for (let i = 0; i < B; i++) {
      const exp = Zc[i]!.map((z, k) => z - centre(V[i]!)[k]!);
      expect(maxAbsDiff(g[i]!.map((x) => x * B), exp)).toBeLessThan(1e-5);
    }
    disposeBatch(b);
  });

  it('with alpha adds (1 - alpha) hard CE', () => {
    const b = batchOf(V);
    const alpha = 0.25;
    const match = value(logitMatchingLoss({ alpha: 1 }), Z, b);
    const hard = value(hardLoss(), Z, b);
    expect(value(logitMatchingLoss({ alpha }), Z, b)).toBeCloseTo(alpha * match + (1 - alpha) * hard, 5);
    expect(value(logitMatchingLoss({ alpha: 0 }), Z, b)).toBeCloseTo(hard, 5);
    disposeBatch(b);
  });
});

describe('makeLoss', () => {
  it('builds the same losses as the factories', () => {
    const b = batchOf(V);
    const cases: [DistillLossSpec, LossFn][] = [
      [{ type: 'hard' }, hardLoss()],
      [{ type: 'soft', T: 3, alpha: 0.6 }, distillationLoss({ T: 3, alpha: 0.6, teacher: 'logits' })],
      [{ type: 'logits', alpha: 0.8 }, logitMatchingLoss({ alpha: 0.8 })],
    ];
    for (const [spec, ref] of cases) expect(value(makeLoss(spec), Z, b)).toBeCloseTo(value(ref, Z, b), 6);
    expect(() => makeLoss({ type: 'mse' } as unknown as DistillLossSpec)).toThrow(ConfigError);
    expect(() => makeLoss({ type: 'soft', T: -1, alpha: 0.5 })).toThrow(ConfigError);
    disposeBatch(b);
  });
});

describe('tensor hygiene', () => {
  it('no loss leaks tensors (value and gradient)', () => {
    const b = batchOf(V);
    const zt = tf.tensor2d(Z);
    const losses: LossFn[] = [
      hardLoss(),
      softTargetLoss({ T: 2 }),
      softTargetLoss({ T: 2, teacher: 'probabilities' }),
      distillationLoss({ T: 4, alpha: 0.5, teacher: 'logits' }),
      distillationLoss({ T: 4, alpha: 0.5, teacher: 'probabilities' }),
      logitMatchingLoss({ alpha: 0.5 }),
    ];
    // warm up (tfjs may cache a few constants on first use)
    for (const l of losses) l(zt, b).dispose();
    const before = tf.memory().numTensors;
    for (const l of losses) {
      l(zt, b).dispose();
      tf.grad((t: tf.Tensor) => l(t as tf.Tensor2D, b))(zt).dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    zt.dispose();
    disposeBatch(b);
  });
});

describe('teacher weights under a student training step', () => {
  function mlp(seed: number, inDim: number, out: number): tf.Sequential {
    const m = tf.sequential();
    m.add(tf.layers.dense({ inputShape: [inDim], units: 6, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed }) }));
    m.add(tf.layers.dense({ units: out, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }), biasInitializer: 'ones' }));
    return m;
  }
  const snapshot = (m: tf.LayersModel): Float32Array[] => m.getWeights().map((w) => Float32Array.from(w.dataSync() as Float32Array));
  const changed = (a: Float32Array[], b: Float32Array[]): boolean => a.some((w, i) => maxAbsDiff(w, b[i]!) > 0);

  it('teacher unchanged even when its logits are computed inside optimizer.minimize; student changes', () => {
    const rng = new Rng(7);
    const n = 8;
    const D = 3;
    const xs = tf.tensor2d(Float32Array.from({ length: n * D }, () => rng.normal()), [n, D]);
    const ys = tf.tensor1d(Array.from({ length: n }, () => rng.int(C)), 'int32');
    const teacher = mlp(1, D, C);
    const student = mlp(11, D, C);
    const t0 = snapshot(teacher);
    const s0 = snapshot(student);
    const opt = tf.train.sgd(0.5);
    const loss = distillationLoss({ T: 3, alpha: 0.8, teacher: 'logits' });
    // worst case: targets computed from the teacher on the tape, no varList (all trainable vars)
    for (let step = 0; step < 3; step++) {
      opt.minimize(() => {
        const targets = teacher.apply(xs) as tf.Tensor2D;
        return loss(student.apply(xs) as tf.Tensor2D, { x: xs, y: ys, targets });
      });
    }
    expect(changed(t0, snapshot(teacher))).toBe(false);
    expect(changed(s0, snapshot(student))).toBe(true);

    // control: a naive soft loss without the stop-gradient DOES move the teacher
    const naive = (): tf.Scalar => {
      const v = teacher.apply(xs) as tf.Tensor2D;
      const z = student.apply(xs) as tf.Tensor2D;
      return tf.neg(tf.mean(tf.sum(tf.mul(tf.softmax(tf.div(v, 3)), tf.logSoftmax(tf.div(z, 3))), -1))) as tf.Scalar;
    };
    const before = snapshot(teacher);
    opt.minimize(naive);
    expect(changed(before, snapshot(teacher))).toBe(true);

    tf.dispose([xs, ys]);
    teacher.dispose();
    student.dispose();
    opt.dispose();
  });

  it('teacher unchanged when training on precomputed computeTeacherLogits targets', () => {
    const rng = new Rng(9);
    const n = 10;
    const D = 3;
    const xData = Float32Array.from({ length: n * D }, () => rng.normal());
    const xs = tf.tensor2d(xData, [n, D]);
    const ys = tf.tensor1d(Array.from({ length: n }, () => rng.int(C)), 'int32');
    const teacher = mlp(3, D, C);
    const student = mlp(13, D, C);
    const t0 = snapshot(teacher);
    const logits = computeTeacherLogits([teacher], xData, n, D, 'geometric', 4);
    const targets = tf.tensor2d(logits, [n, C]);
    const opt = tf.train.adam(0.05);
    const loss = softTargetLoss({ T: 2 });
    const first = tf.tidy(() => loss(student.predict(xs) as tf.Tensor2D, { x: xs, y: ys, targets }).dataSync()[0]!);
    for (let step = 0; step < 30; step++) {
      opt.minimize(() => loss(student.apply(xs) as tf.Tensor2D, { x: xs, y: ys, targets }));
    }
    const last = tf.tidy(() => loss(student.apply(xs) as tf.Tensor2D, { x: xs, y: ys, targets }).dataSync()[0]!);
    expect(last).toBeLessThan(first);
    expect(changed(t0, snapshot(teacher))).toBe(false);
    tf.dispose([xs, ys, targets]);
    teacher.dispose();
    student.dispose();
    opt.dispose();
  });
});
