/**
 * The many-class path of the specialists: cell targets instead of full logits (same specialist,
 * same metrics) and outside subsampling (`selectTrainingRows` / `trainRows`).
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/select.ts';
import { naturalDustbinRate } from '../../src/specialists/dustbin.ts';
import { naturalSpecialFraction, oversamplingFactor } from '../../src/specialists/sampling.ts';
import { streamTeacherCells, teacherCellLogits, type TeacherCells } from '../../src/specialists/specialist-loss.ts';
import { measureSpecialist, selectTrainingRows, specialistProbabilities, trainSpecialist, type TrainSpecialistOptions } from '../../src/specialists/specialist-train.ts';
import { C, DIM, SPECIAL, makeFixture, type Fixture } from './specialist-fixture.ts';

let f: Fixture;
let trainCells: TeacherCells;
let validCells: TeacherCells;
beforeAll(async () => {
  await initBackend('cpu');
  f = await makeFixture(1);
  trainCells = streamTeacherCells(f.generalist, f.train.x, f.train.n, DIM, SPECIAL, { batchSize: 333 });
  validCells = streamTeacherCells(f.generalist, f.valid.x, f.valid.n, DIM, SPECIAL);
});
afterAll(() => f.generalist.dispose());

const opts = (over: Partial<TrainSpecialistOptions> = {}): TrainSpecialistOptions => ({
  generalist: f.generalist,
  classes: [2, 0, 3, 1],
  train: f.train,
  valid: f.valid,
  C,
  head: 'dustbin',
  softWeight: 1,
  T: 2,
  correction: 'fitted',
  epochs: 3,
  batchSize: 32,
  optimizer: { name: 'adam', lr: 0.003 },
  seed: 11,
  ...over,
});

/** Max |a - b| over two arrays of equal length. */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('streamed cells match the full logits', () => {
  it('cells = teacherCellLogits of the full logits; argmax = argmax of the full logits', () => {
    const full = tf.tidy(() => teacherCellLogits(tf.tensor2d(f.validLogits, [f.valid.n, C]), SPECIAL, C, 'dustbin').dataSync() as Float32Array);
    expect(maxDiff(validCells.cells, full)).toBeLessThan(1e-5);
    for (let i = 0; i < f.valid.n; i++) {
      let b = 0;
      for (let c = 1; c < C; c++) if (f.validLogits[i * C + c] > f.validLogits[i * C + b]) b = c;
      expect(validCells.argmax[i]).toBe(b);
    }
  });

  it('measureSpecialist gives the same metrics from cells as from logits (hand case)', () => {
    // C = 3, subset {1}; cells of row i: [z_1, LSE(z_0, z_2)].
    const split = { x: new Float32Array(3), y: Int32Array.from([1, 1, 0]), n: 3, dim: 1 };
    const specialistProbs = Float32Array.from([0.7, 0.3, 0.4, 0.6, 0.2, 0.8]);
    const generalistLogits = Float32Array.from([0, 1, 0, 2, 1, 0, 3, 0, 0]);
    const lse = (a: number, b: number): number => Math.max(a, b) + Math.log1p(Math.exp(-Math.abs(a - b)));
    const cells: TeacherCells = { n: 3, k: 2, cells: Float32Array.from([1, lse(0, 0), 1, lse(2, 0), 0, lse(3, 0)]), argmax: Int32Array.from([1, 0, 0]) };
    const a = measureSpecialist({ classes: [1], C: 3, head: 'dustbin', split, specialistProbs, generalistLogits });
    const b = measureSpecialist({ classes: [1], C: 3, head: 'dustbin', split, specialistProbs, generalistCells: cells });
    expect(b.generalist_accuracy_within_full).toBe(0.5);
    expect(b.generalist_accuracy_within).toBe(1);
    expect(b.special_vs_rest.generalist_accuracy).toBe(a.special_vs_rest.generalist_accuracy);
    expect(b.special_vs_rest.generalist_auc).toBeCloseTo(a.special_vs_rest.generalist_auc, 12);
    expect(b).toEqual({ ...a, special_vs_rest: b.special_vs_rest });
    expect(() => measureSpecialist({ classes: [1], C: 3, head: 'full', split, specialistProbs, generalistCells: cells })).toThrow(/dustbin head/);
    expect(() => measureSpecialist({ classes: [1], C: 3, head: 'dustbin', split, specialistProbs, generalistCells: { ...cells, n: 2 } })).toThrow(/expected 3 x 2/);
  });

  it("trainSpecialist from cells = trainSpecialist from full logits (dustbin head): same model, same metrics", async () => {
    const before = tf.memory().numTensors;
    const a = await trainSpecialist(opts({ generalistTrainLogits: f.trainLogits, generalistValidLogits: f.validLogits }));
    const b = await trainSpecialist(opts({ generalistTrainCells: trainCells.cells, generalistValidCells: validCells }));
    expect(maxDiff(specialistProbabilities(a.model, f.valid.x, f.valid.n, DIM), specialistProbabilities(b.model, f.valid.x, f.valid.n, DIM))).toBeLessThan(1e-5);
    const va = a.metrics.valid;
    const vb = b.metrics.valid;
    expect(vb.within_examples).toBe(va.within_examples);
    expect(vb.specialist_accuracy_within).toBe(va.specialist_accuracy_within);
    expect(vb.generalist_accuracy_within).toBe(va.generalist_accuracy_within);
    expect(vb.generalist_accuracy_within_full).toBe(va.generalist_accuracy_within_full);
    expect(vb.dustbin.offset).toBeCloseTo(va.dustbin.offset, 4);
    expect(vb.dustbin.natural_rate).toBe(va.dustbin.natural_rate);
    expect(vb.dustbin.mean_dustbin_prob).toBeCloseTo(va.dustbin.mean_dustbin_prob, 6);
    expect(vb.dustbin.special_vs_rest.generalist_auc).toBeCloseTo(va.dustbin.special_vs_rest.generalist_auc, 6);
    expect(vb.dustbin.special_vs_rest.specialist_auc).toBeCloseTo(va.dustbin.special_vs_rest.specialist_auc, 4);
    b.metrics.history.forEach((h, e) => expect(h.train_loss).toBeCloseTo(a.metrics.history[e].train_loss, 4));
    a.model.dispose();
    b.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects both or neither form, and cells for the full head', async () => {
    await expect(trainSpecialist(opts({ generalistValidCells: validCells }))).rejects.toThrow(/exactly one of generalistTrainLogits and generalistTrainCells/);
    await expect(trainSpecialist(opts({ generalistTrainCells: trainCells.cells, generalistValidCells: validCells, generalistValidLogits: f.validLogits }))).rejects.toThrow(/exactly one of generalistValidLogits/);
    await expect(trainSpecialist(opts({ head: 'full', generalistTrainCells: trainCells.cells, generalistValidLogits: f.validLogits }))).rejects.toThrow(/dustbin head/);
    await expect(trainSpecialist(opts({ generalistTrainCells: trainCells.cells.subarray(5), generalistValidCells: validCells }))).rejects.toThrow(/generalistTrainCells has/);
  });
});

describe('outside subsampling', () => {
  it('selectTrainingRows: every special row plus exactly maxOutside outside rows, ascending, seeded', () => {
    const y = f.train.y;
    const inS = (c: number): boolean => c < 4;
    const nSpecial = Array.from(y).filter(inS).length;
    const rows = selectTrainingRows(y, SPECIAL, 300, 7);
    expect(rows.length).toBe(nSpecial + 300);
    expect(Array.from(rows).filter((i) => inS(y[i])).length).toBe(nSpecial);
    for (let i = 1; i < rows.length; i++) expect(rows[i]).toBeGreaterThan(rows[i - 1]);
    expect(Array.from(selectTrainingRows(y, SPECIAL, 300, 7))).toEqual(Array.from(rows));
    expect(Array.from(selectTrainingRows(y, SPECIAL, 300, 8))).not.toEqual(Array.from(rows));
    // no limit, or a limit above the outside count: every row
    expect(selectTrainingRows(y, SPECIAL, undefined, 7).length).toBe(y.length);
    expect(selectTrainingRows(y, SPECIAL, y.length, 7).length).toBe(y.length);
    expect(() => selectTrainingRows(y, SPECIAL, 0, 7)).toThrow(/positive integer/);
    // each outside row is equally likely: over seeds, the mean fraction of class-4 rows kept matches 300 / #outside
    let kept = 0;
    let total = 0;
    const n4 = Array.from(y).filter((c) => c === 4).length;
    for (let s = 0; s < 40; s++) {
      kept += Array.from(selectTrainingRows(y, SPECIAL, 300, s)).filter((i) => y[i] === 4).length;
      total += n4;
    }
    expect(kept / total).toBeCloseTo(300 / (y.length - nSpecial), 2);
  });

  it('trains on the selected rows only; the corrections keep the whole-split rates', async () => {
    const rows = selectTrainingRows(f.train.y, SPECIAL, 400, 3);
    const keep = new Uint8Array(f.train.n);
    for (const i of rows) keep[i] = 1;
    // Rows outside the selection are poisoned: any use of one in training would make the loss NaN.
    // (The data-free `mean` dustbin initialisation reads only the labels.)
    const x = Float32Array.from(f.train.x);
    for (let i = 0; i < f.train.n; i++) if (!keep[i]) x.fill(NaN, i * DIM, (i + 1) * DIM);
    const train = { ...f.train, x };
    const cells = streamTeacherCells(f.generalist, f.train.x, f.train.n, DIM, SPECIAL, { rows }).cells;
    for (const correction of ['fitted', 'log-oversampling'] as const) {
      const { model, metrics } = await trainSpecialist(opts({ train, trainRows: rows, generalistTrainCells: cells, generalistValidCells: validCells, dustbinInit: 'mean', correction, epochs: 2 }));
      expect(metrics.history.every((h) => Number.isFinite(h.train_loss))).toBe(true);
      const probs = specialistProbabilities(model, f.valid.x, f.valid.n, DIM);
      expect(probs.every(Number.isFinite)).toBe(true);
      // log-oversampling uses the natural special fraction of the WHOLE training split, not of the sample
      const factor = oversamplingFactor(naturalSpecialFraction(f.train.y, new Set(SPECIAL)), 0.5);
      expect(metrics.valid.dustbin.log_oversampling).toBeCloseTo(Math.log(factor), 12);
      if (correction === 'log-oversampling') expect(metrics.valid.dustbin.offset).toBeCloseTo(Math.log(factor), 12);
      // the fitted correction matches the natural rate of the validation split
      expect(metrics.valid.dustbin.natural_rate).toBeCloseTo(naturalDustbinRate(f.valid.y, SPECIAL), 12);
      if (correction === 'fitted') expect(Math.abs(metrics.valid.dustbin.mean_dustbin_prob - metrics.valid.dustbin.natural_rate)).toBeLessThan(1e-3);
      expect(metrics.valid.dustbin.special_vs_rest.specialist_auc).toBeGreaterThan(0.9);
      model.dispose();
    }
  });

  it('rejects trainRows that drop special rows or targets with the wrong row count', async () => {
    const rows = selectTrainingRows(f.train.y, SPECIAL, 400, 3);
    const firstSpecial = Array.from(rows).findIndex((i) => f.train.y[i] < 4);
    const dropped = Int32Array.from(Array.from(rows).filter((_, r) => r !== firstSpecial));
    const cells = streamTeacherCells(f.generalist, f.train.x, f.train.n, DIM, SPECIAL, { rows: dropped }).cells;
    await expect(trainSpecialist(opts({ trainRows: dropped, generalistTrainCells: cells, generalistValidCells: validCells }))).rejects.toThrow(/must hold all of them/);
    await expect(trainSpecialist(opts({ trainRows: rows, generalistTrainCells: trainCells.cells, generalistValidCells: validCells }))).rejects.toThrow(/trainRows.length x 5/);
  });
});
