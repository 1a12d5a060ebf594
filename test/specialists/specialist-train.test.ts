import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/select.ts';
import { predictLogits } from '../../src/models/predict.ts';
import { naturalSpecialFraction, oversamplingFactor } from '../../src/specialists/sampling.ts';
import { measureSpecialist, rocAuc, softmaxRows, specialistProbabilities, trainSpecialist, type TrainSpecialistOptions } from '../../src/specialists/specialist-train.ts';
import { C, DIM, SPECIAL, makeFixture, type Fixture } from './specialist-fixture.ts';

let f: Fixture;
beforeAll(async () => {
  await initBackend('cpu');
  f = await makeFixture(1);
});
afterAll(() => f.generalist.dispose());

const argmax = (v: ArrayLike<number>, off: number, cols: number[]): number => cols.reduce((b, c) => (v[off + c] > v[off + b] ? c : b), cols[0]);

describe('rocAuc and measureSpecialist (hand-computed)', () => {
  it('AUC by Mann-Whitney with ties', () => {
    // positives 0.35, 0.8; negatives 0.1, 0.4: pairs won 1 + 2 = 3 of 4
    expect(rocAuc([0.1, 0.4, 0.35, 0.8], [false, false, true, true])).toBeCloseTo(0.75, 12);
    expect(rocAuc([0.5, 0.5], [true, false])).toBeCloseTo(0.5, 12);
    expect(rocAuc([0.5, 0.5], [true, true])).toBeNaN();
  });

  it('metrics of a tiny case', () => {
    // C = 3, subset {1}: cells class1 -> 0, dustbin 1. Three examples, labels 1, 1, 0.
    const split = { x: new Float32Array(3), y: Int32Array.from([1, 1, 0]), n: 3, dim: 1 };
    const specialistProbs = Float32Array.from([0.7, 0.3, 0.4, 0.6, 0.2, 0.8]);
    const generalistLogits = Float32Array.from([0, 1, 0, 2, 1, 0, 3, 0, 0]);
    const m = measureSpecialist({ classes: [1], C: 3, head: 'dustbin', split, specialistProbs, generalistLogits });
    expect(m.within_examples).toBe(2);
    expect(m.specialist_accuracy_within).toBe(1); // only one special class
    expect(m.specialist_accuracy_within_with_dustbin).toBe(0.5); // second example goes to the dustbin
    expect(m.generalist_accuracy_within_full).toBe(0.5); // example 2 predicts class 0
    expect(m.mean_dustbin_prob).toBeCloseTo((0.3 + 0.6 + 0.8) / 3, 6);
    // special-vs-rest: specialist P(S) = .7, .4, .2 with positives 1, 1, 0 -> decisions right, wrong, right
    expect(m.special_vs_rest.specialist_accuracy).toBeCloseTo(2 / 3, 12);
    expect(m.special_vs_rest.specialist_auc).toBeCloseTo(1, 12);
  });
});

describe('trainSpecialist', () => {
  const opts = (over: Partial<TrainSpecialistOptions> = {}): TrainSpecialistOptions => ({
    generalist: f.generalist,
    classes: [2, 0, 3, 1],
    train: f.train,
    valid: f.valid,
    generalistTrainLogits: f.trainLogits,
    generalistValidLogits: f.validLogits,
    C,
    head: 'dustbin',
    softWeight: 1,
    T: 2,
    correction: 'fitted',
    epochs: 4,
    batchSize: 32,
    optimizer: { name: 'adam', lr: 0.003 },
    seed: 11,
    ...over,
  });

  it('trains, corrects and measures a dustbin specialist; metrics match independent recomputation', async () => {
    const before = tf.memory().numTensors;
    const genBefore = predictLogits(f.generalist, f.valid.x, f.valid.n, DIM);
    const { model, metrics } = await trainSpecialist(opts());
    // the generalist is untouched
    expect(Array.from(predictLogits(f.generalist, f.valid.x, f.valid.n, DIM))).toEqual(Array.from(genBefore));
    expect(metrics.classes).toEqual(SPECIAL);
    expect(metrics.size).toBe(4);
    expect(metrics.history.length).toBe(4);
    // select 'last' (the default) skips the per-epoch validation pass.
    expect(metrics.history.every((h) => h.valid_loss === undefined && Number.isFinite(h.train_loss))).toBe(true);

    const probs = specialistProbabilities(model, f.valid.x, f.valid.n, DIM);
    expect(probs.length).toBe(f.valid.n * 5);
    for (let i = 0; i < 20; i++) expect(probs.subarray(i * 5, i * 5 + 5).reduce((a, b) => a + b)).toBeCloseTo(1, 5);

    // Recompute the within-subset accuracies by hand.
    let within = 0;
    let sOk = 0;
    let gOk = 0;
    let gFull = 0;
    let dust = 0;
    const all = Array.from({ length: C }, (_, c) => c);
    for (let i = 0; i < f.valid.n; i++) {
      dust += probs[i * 5 + 4];
      const y = f.valid.y[i];
      if (y > 3) continue;
      within++;
      if (argmax(probs, i * 5, [0, 1, 2, 3]) === y) sOk++;
      if (argmax(f.validLogits, i * C, SPECIAL) === y) gOk++;
      if (argmax(f.validLogits, i * C, all) === y) gFull++;
    }
    const v = metrics.valid;
    expect(v.within_examples).toBe(within);
    expect(v.specialist_accuracy_within).toBeCloseTo(sOk / within, 12);
    expect(v.generalist_accuracy_within).toBeCloseTo(gOk / within, 12);
    expect(v.generalist_accuracy_within_full).toBeCloseTo(gFull / within, 12);
    // restricting the generalist to the subset can only help it
    expect(v.generalist_accuracy_within).toBeGreaterThanOrEqual(v.generalist_accuracy_within_full);
    // fitted correction: mean dustbin probability = natural rate
    expect(v.dustbin.mean_dustbin_prob).toBeCloseTo(dust / f.valid.n, 5);
    expect(Math.abs(v.dustbin.mean_dustbin_prob - v.dustbin.natural_rate)).toBeLessThan(1e-3);
    expect(v.dustbin.log_oversampling).toBeCloseTo(Math.log(oversamplingFactor(naturalSpecialFraction(f.train.y, new Set(SPECIAL)), 0.5)), 12);
    // the specialist is a sensible model: it beats chance within the subset and separates the subset
    expect(v.specialist_accuracy_within).toBeGreaterThan(0.5);
    expect(v.dustbin.special_vs_rest.specialist_auc).toBeGreaterThan(0.9);
    expect(v.dustbin.special_vs_rest.generalist_auc).toBeGreaterThan(0.9);

    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is repeatable from its seed', async () => {
    const a = await trainSpecialist(opts({ epochs: 1 }));
    const b = await trainSpecialist(opts({ epochs: 1 }));
    expect(Array.from(specialistProbabilities(a.model, f.valid.x, f.valid.n, DIM))).toEqual(Array.from(specialistProbabilities(b.model, f.valid.x, f.valid.n, DIM)));
    expect(a.metrics.valid.dustbin.offset).toBe(b.metrics.valid.dustbin.offset);
    a.model.dispose();
    b.model.dispose();
  });

  it('full head: C outputs, outside classes act as the dustbin', async () => {
    const { model, metrics } = await trainSpecialist(opts({ head: 'full', epochs: 2, correction: 'log-oversampling' }));
    expect(model.outputs[0].shape[1]).toBe(C);
    expect(metrics.valid.dustbin.offset).toBeCloseTo(metrics.valid.dustbin.log_oversampling, 12);
    const p = softmaxRows(predictLogits(model, f.valid.x, f.valid.n, DIM), f.valid.n, C);
    let out = 0;
    for (let i = 0; i < f.valid.n; i++) for (let c = 4; c < C; c++) out += p[i * C + c];
    expect(metrics.valid.dustbin.mean_dustbin_prob).toBeCloseTo(out / f.valid.n, 5);
    model.dispose();
  });

  it('rejects logits that do not match the splits', async () => {
    await expect(trainSpecialist(opts({ generalistTrainLogits: new Float32Array(5) }))).rejects.toThrow(/generalistTrainLogits/);
  });
});
