import { describe, it, expect } from 'vitest';
import { chooseSpecialistWeight, makeProblem, solveEm, type EnsembleProblem } from '../../src/ensemble/index.ts';
import { ConfigError } from '../../src/util/errors.ts';

/**
 * C = 2, one specialist with S = {0} (cells: class 0, dustbin {1}), all cases labelled 0.
 * Every cell holds one class, so the optimum is the weighted arithmetic mean
 * q0 = (pg0 + w a) / (1 + w). With pg0 = 0.4 the case is right iff q0 > 1/2, i.e.
 * iff w > 0.1 / (a - 0.5) =: t. Each case gets a = 0.5 + 0.1 / t for a chosen threshold t,
 * so the validation accuracy at w is (number of thresholds below w) / cases.
 */
function thresholdProblem(thresholds: number[]): EnsembleProblem {
  const n = thresholds.length;
  const pg = new Float32Array(n * 2);
  for (let r = 0; r < n; r++) pg.set([0.4, 0.6], r * 2);
  return makeProblem({
    C: 2,
    specialists: [{ classes: Int32Array.from([0]) }],
    cases: n,
    pg,
    active: thresholds.map(() => Int32Array.from([0])),
    pm: thresholds.map((t) => [Float32Array.from([0.5 + 0.1 / t, 0.5 - 0.1 / t])]),
  });
}

describe('chooseSpecialistWeight: extension beyond the grid', () => {
  const thresholds = [0.25, 1.5, 3, 6, 100];
  const labels = thresholds.map(() => 0);

  it('the closed form holds: q0 = (0.4 + w a) / (1 + w)', () => {
    const p = thresholdProblem(thresholds);
    const q = solveEm(p, { weight: 4, tolerance: 1e-10 }).q;
    thresholds.forEach((t, r) => expect(q[r * 2]).toBeCloseTo((0.4 + 4 * (0.5 + 0.1 / t)) / 5, 6));
  });

  it('without extension the grid top is chosen and flagged', () => {
    const res = chooseSpecialistWeight({ problem: thresholdProblem(thresholds), labels, grid: [0, 1, 2] });
    // w = 0: none right; w = 1: t = 0.25 only; w = 2: t = 0.25 and 1.5.
    expect(res.table).toEqual([
      { weight: 0, accuracy: 0 },
      { weight: 1, accuracy: 0.2 },
      { weight: 2, accuracy: 0.4 },
    ]);
    expect(res.weight).toBe(2);
    expect(res.atTop).toBe(true);
  });

  it('doubles beyond the grid top while accuracy does not drop, at most `extend` times', () => {
    const res = chooseSpecialistWeight({ problem: thresholdProblem(thresholds), labels, grid: [0, 1, 2], extend: 3 });
    // 4 > 3: 3 right; 8 > 6: 4 right; 16: still 4 (t = 100 needs w > 100); then the limit of 3 steps.
    expect(res.table.slice(3)).toEqual([
      { weight: 4, accuracy: 0.6 },
      { weight: 8, accuracy: 0.8 },
      { weight: 16, accuracy: 0.8 },
    ]);
    expect(res.weight).toBe(8); // ties keep the earlier (smaller) weight
    expect(res.accuracy).toBe(0.8);
    expect(res.atTop).toBe(false);
  });

  it('stops as soon as accuracy drops below the best', () => {
    // Labels 1 for the two cases with the largest thresholds: they are right only while w < t.
    const lab = [0, 0, 0, 1, 1];
    const res = chooseSpecialistWeight({ problem: thresholdProblem(thresholds), labels: lab, grid: [0, 2], extend: 10 });
    // w = 0: cases 4, 5 right (0.4); w = 2: 1, 2, 4, 5 (0.8); w = 4: 1, 2, 3, 4, 5 (1.0);
    // w = 8: 1, 2, 3, 5 (0.8 < 1.0): stop.
    expect(res.table.map((t) => t.weight)).toEqual([0, 2, 4, 8]);
    expect(res.table.map((t) => t.accuracy)).toEqual([0.4, 0.8, 1, 0.8]);
    expect(res.weight).toBe(4);
    expect(res.atTop).toBe(false);
  });

  it('does not extend when the best weight is inside the grid or is 0', () => {
    const inside = chooseSpecialistWeight({ problem: thresholdProblem([0.25, 100]), labels: [0, 1], grid: [0, 1, 200], extend: 5 });
    // w = 0: case 2; w = 1: both; w = 200: case 1 only.
    expect(inside.table.map((t) => t.weight)).toEqual([0, 1, 200]);
    expect(inside.weight).toBe(1);
    const zero = chooseSpecialistWeight({ problem: thresholdProblem([0.25]), labels: [1], grid: [0], extend: 5 });
    expect(zero.table).toHaveLength(1);
    expect(zero.weight).toBe(0);
    expect(zero.atTop).toBe(false);
    expect(() => chooseSpecialistWeight({ problem: thresholdProblem([1]), labels: [0], grid: [1], extend: -1 })).toThrow(ConfigError);
  });
});
