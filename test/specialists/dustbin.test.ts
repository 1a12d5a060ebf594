import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/select.ts';
import { predictLogits } from '../../src/models/predict.ts';
import { correctDustbin, dustbinColumns, dustbinLogOdds, fitDustbinOffset, meanDustbinProbability, naturalDustbinRate } from '../../src/specialists/dustbin.ts';
import { naturalSpecialFraction, oversamplingFactor } from '../../src/specialists/sampling.ts';
import { trainSpecialist, type TrainSpecialistOptions } from '../../src/specialists/specialist-train.ts';
import { C, DIM, SPECIAL, makeFixture, makeSet, type Fixture } from './specialist-fixture.ts';

describe('dustbin offset maths (closed forms)', () => {
  it('log-odds of the dustbin cells', () => {
    // row: logits [1, 2, 0] with dustbin = column 2: log(e^0) - log(e^1 + e^2)
    const a = dustbinLogOdds([1, 2, 0, 0, 0, 3], 2, 3, [2]);
    expect(a[0]).toBeCloseTo(0 - Math.log(Math.exp(1) + Math.exp(2)), 12);
    expect(a[1]).toBeCloseTo(3 - Math.log(2), 12);
    // several dustbin columns (full head): log(e^1 + e^0) - 2
    expect(dustbinLogOdds([1, 2, 0], 1, 3, [0, 2])[0]).toBeCloseTo(Math.log(Math.E + 1) - 2, 12);
  });

  it('fitted offset: for equal log-odds a it is logit(rate) - a; monotone bisection otherwise', () => {
    const a = Float64Array.from([0.3, 0.3, 0.3]);
    const r = 0.8;
    expect(fitDustbinOffset(a, r)).toBeCloseTo(Math.log(r / (1 - r)) - 0.3, 8);
    const b = Float64Array.from([-5, 0, 2, 9]);
    for (const rate of [0.05, 0.5, 0.93]) expect(meanDustbinProbability(b, fitDustbinOffset(b, rate))).toBeCloseTo(rate, 9);
    expect(() => fitDustbinOffset(b, 1)).toThrow(/rate/);
  });

  it('dustbin columns and natural rate', () => {
    expect(dustbinColumns([4, 1], 6, 'dustbin')).toEqual([2]);
    expect(dustbinColumns([4, 1], 6, 'full')).toEqual([0, 2, 3, 5]);
    expect(naturalDustbinRate(Int32Array.from([0, 1, 2, 3]), [1])).toBe(0.75);
  });
});

/**
 * Trained specialists on the synthetic data (group 0 = classes 0-3, natural rate 1/7, so 50/50
 * sampling oversamples it by about 6): one on hard targets only, one with soft targets mixed in.
 * Trained with correction 'none'; the corrections are applied below.
 */
describe('dustbin correction of trained specialists', () => {
  let f: Fixture;
  let factor: number;
  const trained: Record<'hard' | 'soft', tf.LayersModel | undefined> = { hard: undefined, soft: undefined };
  const base = (): Omit<TrainSpecialistOptions, 'softWeight' | 'T'> => ({
    generalist: f.generalist,
    classes: SPECIAL,
    train: f.train,
    valid: f.valid,
    generalistTrainLogits: f.trainLogits,
    generalistValidLogits: f.validLogits,
    C,
    head: 'dustbin',
    correction: 'none',
    epochs: 10,
    batchSize: 32,
    optimizer: { name: 'adam', lr: 0.003 },
    seed: 3,
  });
  /** Mean dustbin probability on valid, recomputed from the model's predictions. */
  const meanDustbin = (m: tf.LayersModel, cols = 5, dustbin = [4]): number => meanDustbinProbability(dustbinLogOdds(predictLogits(m, f.valid.x, f.valid.n, DIM), f.valid.n, cols, dustbin));

  beforeAll(async () => {
    await initBackend('cpu');
    f = await makeFixture(1);
    factor = oversamplingFactor(naturalSpecialFraction(f.train.y, new Set(SPECIAL)), 0.5);
    trained.hard = (await trainSpecialist({ ...base(), softWeight: 0, T: 1 })).model;
    trained.soft = (await trainSpecialist({ ...base(), softWeight: 3, T: 2 })).model;
  });
  afterAll(() => {
    trained.hard?.dispose();
    trained.soft?.dispose();
    f.generalist.dispose();
  });

  it('the training stream oversamples the special classes by about 6', () => {
    expect(factor).toBeGreaterThan(5);
    expect(factor).toBeLessThan(7);
  });

  it("hard targets: 'log-oversampling' brings the mean dustbin probability to the natural rate (within 0.02)", () => {
    const m = trained.hard!;
    const natural = naturalDustbinRate(f.valid.y, SPECIAL);
    const before = meanDustbin(m);
    expect(before).toBeLessThan(natural - 0.03); // trained on 50/50, the dustbin is under-predicted
    const r = correctDustbin(m, { mode: 'log-oversampling', classes: SPECIAL, C, head: 'dustbin', oversamplingFactor: factor, valid: f.valid });
    expect(r.offset).toBeCloseTo(Math.log(factor), 12);
    const after = meanDustbin(m); // from the model itself: the bias was really shifted
    expect(after).toBeCloseTo(r.meanDustbinAfter!, 5);
    // Tolerance 0.02 = model error (~0.01 measured on 20,000 fresh examples across seeds) plus
    // the validation split's own sampling noise (sd ~0.01 at 1,400 examples). Measured: 0.005.
    expect(Math.abs(after - natural)).toBeLessThan(0.02);
    // Same on a large fresh sample from the same distribution (less sampling noise).
    const big = makeSet(8000, 1, 'big');
    const bigMean = meanDustbinProbability(dustbinLogOdds(predictLogits(m, big.x, big.n, DIM), big.n, 5, [4]));
    expect(Math.abs(bigMean - naturalDustbinRate(big.y, SPECIAL))).toBeLessThan(0.02);
    // undo, then 'fitted' matches the natural rate to 1e-3 by construction
    correctDustbin(m, { mode: 'log-oversampling', classes: SPECIAL, C, head: 'dustbin', oversamplingFactor: 1 / factor });
    expect(meanDustbin(m)).toBeCloseTo(before, 5);
    const fit = correctDustbin(m, { mode: 'fitted', classes: SPECIAL, C, head: 'dustbin', valid: f.valid });
    expect(Math.abs(meanDustbin(m) - natural)).toBeLessThan(1e-3);
    // and the fitted offset is close to the paper's log(factor) for a hard-target specialist
    expect(Math.abs(fit.offset - Math.log(factor))).toBeLessThan(0.5);
  });

  it("soft targets mixed in: the fixed correction over-corrects, 'fitted' does not", () => {
    const m = trained.soft!;
    const natural = naturalDustbinRate(f.valid.y, SPECIAL);
    const before = meanDustbin(m);
    // The soft targets carry the natural prior: the trained dustbin is already near it.
    expect(Math.abs(before - natural)).toBeLessThan(0.03);
    const fixed = correctDustbin(m, { mode: 'log-oversampling', classes: SPECIAL, C, head: 'dustbin', oversamplingFactor: factor, valid: f.valid });
    expect(meanDustbin(m)).toBeGreaterThan(natural + 0.02);
    shiftBack(m, fixed.offset);
    const fit = correctDustbin(m, { mode: 'fitted', classes: SPECIAL, C, head: 'dustbin', valid: f.valid });
    expect(Math.abs(meanDustbin(m) - natural)).toBeLessThan(1e-3);
    // the fitted offset is far below log(factor) (the paper notes: 1.2-2.5 instead of 3.9)
    expect(fit.offset).toBeLessThan(0.5 * Math.log(factor));
    shiftBack(m, fit.offset);
  });

  it("'none' changes nothing; 'fitted' on a full-softmax specialist shifts all outside classes", async () => {
    const m = trained.soft!;
    const z0 = predictLogits(m, f.valid.x.subarray(0, 50 * DIM), 50, DIM);
    const r = correctDustbin(m, { mode: 'none', classes: SPECIAL, C, head: 'dustbin', valid: f.valid });
    expect(r.offset).toBe(0);
    expect(Array.from(predictLogits(m, f.valid.x.subarray(0, 50 * DIM), 50, DIM))).toEqual(Array.from(z0));
    const full = (await trainSpecialist({ ...base(), head: 'full', softWeight: 0, T: 1, epochs: 3, correction: 'fitted' })).model;
    const outside = dustbinColumns(SPECIAL, C, 'full');
    expect(Math.abs(meanDustbin(full, C, outside) - naturalDustbinRate(f.valid.y, SPECIAL))).toBeLessThan(1e-3);
    full.dispose();
  });

  it('rejects a missing input', () => {
    expect(() => correctDustbin(trained.hard!, { mode: 'fitted', classes: SPECIAL, C, head: 'dustbin' })).toThrow(/valid/);
    expect(() => correctDustbin(trained.hard!, { mode: 'log-oversampling', classes: SPECIAL, C, head: 'dustbin' })).toThrow(/oversamplingFactor/);
  });
});

/** Undoes an offset on the dustbin column. */
function shiftBack(m: tf.LayersModel, offset: number): void {
  correctDustbin(m, { mode: 'log-oversampling', classes: SPECIAL, C, head: 'dustbin', oversamplingFactor: Math.exp(-offset) });
}
