import { describe, it, expect } from 'vitest';
import { makeProblem, objective, solveEm, solveGradient, type EnsembleProblem } from '../../src/ensemble/index.ts';
import { DataError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';
import { randomDist, randomProblem } from './random-problem.ts';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** C = 3, one specialist with S = {0}: cells (class 0, dustbin {1, 2}). */
function tinyProblem(pg: number[], pm: number[]): EnsembleProblem {
  return makeProblem({
    C: 3,
    specialists: [{ classes: Int32Array.from([0]) }],
    cases: 1,
    pg: Float32Array.from(pg),
    active: [Int32Array.from([0])],
    pm: [[Float32Array.from(pm)]],
  });
}

describe('ensemble solvers', () => {
  it('hand-derived closed form: C = 3, one specialist with S = {0}', () => {
    // Minimising -sum pg_i log q_i - w [a log q0 + (1 - a) log(q1 + q2)] on the simplex:
    // q0 = (pg0 + w a) / (1 + w); q1, q2 share the rest in the generalist's ratio:
    // q_i = pg_i / (pg1 + pg2) * (pg1 + pg2 + w (1 - a)) / (1 + w).
    const pg = [0.5, 0.3, 0.2];
    const a = 0.8;
    for (const w of [1, 0.5, 3]) {
      const p = tinyProblem(pg, [a, 1 - a]);
      const q0 = (pg[0] + w * a) / (1 + w);
      const rest = (pg[1] + pg[2] + w * (1 - a)) / (1 + w);
      const expected = [q0, (pg[1] / (pg[1] + pg[2])) * rest, (pg[2] / (pg[1] + pg[2])) * rest];
      const em = solveEm(p, { weight: w });
      expect(maxAbsDiff(em.q, expected)).toBeLessThan(1e-7);
      expect(em.iterations[0]).toBeLessThanOrEqual(2); // one step is exact for a single specialist
      const gd = solveGradient(p, { weight: w });
      expect(maxAbsDiff(gd.q, expected)).toBeLessThan(1e-6);
      const plain = solveGradient(p, { weight: w, optimizer: 'gd', learningRate: 2 });
      expect(maxAbsDiff(plain.q, expected)).toBeLessThan(1e-6);
    }
    // w = 1: q = (0.65, 0.21, 0.14) by hand.
    expect(maxAbsDiff(solveEm(tinyProblem(pg, [a, 1 - a])).q, [0.65, 0.21, 0.14])).toBeLessThan(1e-7);
  });

  it('objective matches a hand computation', () => {
    const p = tinyProblem([0.5, 0.3, 0.2], [0.8, 0.2]);
    const q = Float32Array.from([0.25, 0.25, 0.5]);
    const expected =
      0.5 * Math.log(0.5 / 0.25) + 0.3 * Math.log(0.3 / 0.25) + 0.2 * Math.log(0.2 / 0.5) + 2 * (0.8 * Math.log(0.8 / 0.25) + 0.2 * Math.log(0.2 / 0.75));
    expect(objective(p, q, 2)[0]).toBeCloseTo(expected, 6);
    expect(objective(p, Float32Array.from([0, 0.5, 0.5]))[0]).toBe(Infinity);
  });

  it('EM and gradient reach the same optimum on random problems', () => {
    for (const [seed, C, specs, size, per] of [
      [1, 12, 4, 3, 2],
      [2, 30, 6, 8, 3],
      [3, 60, 10, 12, 5],
    ]) {
      const p = randomProblem(seed, C, specs, size, 8, per);
      for (const w of [1, 0.3]) {
        const em = solveEm(p, { weight: w, tolerance: 1e-10 });
        const gd = solveGradient(p, { weight: w });
        expect(em.unconverged).toBe(0);
        expect(gd.unconverged).toBe(0);
        const oe = objective(p, em.q, w);
        const og = objective(p, gd.q, w);
        for (let r = 0; r < p.cases; r++) expect(Math.abs(oe[r] - og[r])).toBeLessThan(1e-5);
        expect(maxAbsDiff(em.q, gd.q)).toBeLessThan(1e-3);
        // the optimum beats the generalist's distribution and the plain average
        const og0 = objective(p, p.pg, w);
        for (let r = 0; r < p.cases; r++) expect(oe[r]).toBeLessThanOrEqual(og0[r] + 1e-7);
        // rows sum to 1
        for (let r = 0; r < p.cases; r++) {
          let s = 0;
          for (let i = 0; i < C; i++) s += em.q[r * C + i];
          expect(Math.abs(s - 1)).toBeLessThan(1e-5);
        }
      }
    }
  });

  it('the EM objective never increases, at every iteration', () => {
    for (const seed of [11, 12, 13]) {
      const p = randomProblem(seed, 20, 6, 5, 10, 4, 3);
      let prev = objective(p, p.pg);
      for (let k = 1; k <= 25; k++) {
        const res = solveEm(p, { maxIterations: k, tolerance: 0 });
        const cur = objective(p, res.q);
        for (let r = 0; r < p.cases; r++) expect(cur[r]).toBeLessThanOrEqual(prev[r] + 1e-6);
        prev = cur;
      }
    }
  });

  it('specialists covering every class with single-class cells: the arithmetic mean', () => {
    const C = 7;
    const rng = new Rng(4);
    const all = Int32Array.from({ length: C }, (_, i) => i);
    const specialists = [{ classes: all }, { classes: all }, { classes: all }];
    const pg = randomDist(rng, C);
    const pms = [0, 1, 2].map(() => {
      const d = randomDist(rng, C);
      const cells = new Float32Array(C + 1);
      cells.set(d);
      return cells; // dustbin (empty) has probability 0
    });
    const p = makeProblem({ C, specialists, cases: 1, pg, active: [Int32Array.from([0, 1, 2])], pm: [pms] });
    for (const w of [1, 0.25]) {
      const expected = Array.from({ length: C }, (_, i) => (pg[i] + w * (pms[0][i] + pms[1][i] + pms[2][i])) / (1 + 3 * w));
      expect(maxAbsDiff(solveEm(p, { weight: w }).q, expected)).toBeLessThan(1e-7);
      expect(maxAbsDiff(solveGradient(p, { weight: w }).q, expected)).toBeLessThan(1e-6);
    }
  });

  it('no active specialist, or w = 0, returns p^g unchanged', () => {
    const p = randomProblem(7, 15, 4, 4, 6, 2);
    const empty = makeProblem({
      C: 15,
      specialists: p.specialists,
      cases: 6,
      pg: p.pg,
      active: Array.from({ length: 6 }, (_, r) => (r % 2 === 0 ? new Int32Array(0) : p.activeIds.slice(p.activeOffsets[r], p.activeOffsets[r + 1]))),
      pm: Array.from({ length: 6 }, (_, r) =>
        r % 2 === 0 ? [] : Array.from({ length: 2 }, (_, t) => p.pm.slice(p.pmOffsets[p.activeOffsets[r] + t], p.pmOffsets[p.activeOffsets[r] + t + 1])),
      ),
    });
    for (const solve of [solveEm, solveGradient]) {
      const res = solve(empty);
      for (let r = 0; r < 6; r += 2) expect(Array.from(res.q.subarray(r * 15, (r + 1) * 15))).toEqual(Array.from(p.pg.subarray(r * 15, (r + 1) * 15)));
      // odd cases did change
      expect(maxAbsDiff(res.q.subarray(15, 30), p.pg.subarray(15, 30))).toBeGreaterThan(1e-3);
      expect(Array.from(solve(p, { weight: 0 }).q)).toEqual(Array.from(p.pg));
    }
  });

  it('validates the problem', () => {
    const base = { C: 3, cases: 1, pg: Float32Array.from([0.2, 0.3, 0.5]) };
    expect(() => makeProblem({ ...base, specialists: [{ classes: Int32Array.from([1, 0]) }], active: [Int32Array.from([0])], pm: [[Float32Array.from([0.3, 0.3, 0.4])]] })).toThrow(/sorted/);
    expect(() => makeProblem({ ...base, specialists: [{ classes: Int32Array.from([0]) }], active: [Int32Array.from([0])], pm: [[Float32Array.from([1])]] })).toThrow(DataError);
    expect(() => makeProblem({ ...base, specialists: [{ classes: Int32Array.from([0]) }], active: [Int32Array.from([1])], pm: [[Float32Array.from([0.5, 0.5])]] })).toThrow(/specialist 1/);
  });

  it('EM is fast: C = 1,000, 10 active specialists of 50 classes, 1,000 cases', () => {
    const p = randomProblem(21, 1000, 61, 50, 1000, 10);
    const t0 = performance.now();
    const res = solveEm(p);
    const ms = performance.now() - t0;
    expect(res.unconverged).toBe(0);
    console.log(`EM: C=1000, 10x50 active, 1000 cases: ${ms.toFixed(0)} ms, mean ${(res.iterations.reduce((a, b) => a + b, 0) / 1000).toFixed(1)} iterations`);
    expect(ms).toBeLessThan(20_000);
  });
});
