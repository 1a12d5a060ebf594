import { describe, expect, it } from 'vitest';
import { foldIntoDustbin, overlapDrops } from '../../src/ensemble/fold.ts';
import { makeProblem, objective } from '../../src/ensemble/problem.ts';
import { solveEm } from '../../src/ensemble/solve-em.ts';
import { DataError } from '../../src/util/errors.ts';
import { randomProblem } from './random-problem.ts';

const f32 = (a: number[]) => Float32Array.from(a);

describe('overlapDrops: one home per class covered several times', () => {
  const subsets = [
    [0, 1, 2],
    [2, 3],
    [2, 4, 5],
    [5, 6],
  ];
  it('drops a class covered k times from exactly k - 1 specialists, never a class covered once', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const drops = overlapDrops(subsets, 7, seed);
      const dropped = (c: number) => drops.filter((d) => d.has(c)).length;
      expect(dropped(2)).toBe(2); // in 3 clusters
      expect(dropped(5)).toBe(1); // in 2
      for (const c of [0, 1, 3, 4, 6]) expect(dropped(c)).toBe(0);
      drops.forEach((d, m) => {
        for (const c of d) expect(subsets[m]).toContain(c);
      });
    }
  });
  it('is repeatable from its seed, and the home varies with the seed', () => {
    const key = (seed: number) => JSON.stringify(overlapDrops(subsets, 7, seed).map((d) => [...d].sort()));
    expect(key(7)).toBe(key(7));
    const homes = new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map(key));
    expect(homes.size).toBeGreaterThan(1);
  });
});

describe('foldIntoDustbin: a specialist that never told a class apart', () => {
  // C = 4; specialist 0 covers {0, 1}, specialist 1 covers {1, 2}; both active on the one case.
  const pg = f32([0.4, 0.3, 0.2, 0.1]);
  const p0 = f32([0.5, 0.3, 0.2]); // p(0), p(1), dustbin {2, 3}
  const p1 = f32([0.6, 0.1, 0.3]); // p(1), p(2), dustbin {0, 3}
  const problem = makeProblem({ C: 4, specialists: [{ classes: Int32Array.from([0, 1]) }, { classes: Int32Array.from([1, 2]) }], cases: 1, pg, active: [Int32Array.from([0, 1])], pm: [[p0, p1]] });

  it('merges the dropped class into the dustbin cell (hand-computed), other slots unchanged', () => {
    const folded = foldIntoDustbin(problem, [new Set([1]), new Set()]);
    expect(Array.from(folded.specialists[0]!.classes)).toEqual([0]);
    expect(Array.from(folded.specialists[1]!.classes)).toEqual([1, 2]);
    const pm = Array.from(folded.pm);
    expect(pm.slice(0, 2).map((v) => +v.toFixed(6))).toEqual([0.5, 0.5]); // p(0); dustbin 0.2 + p(1) 0.3
    expect(pm.slice(2).map((v) => +v.toFixed(6))).toEqual([0.6, 0.1, 0.3]);
  });

  it('equals the problem built directly from the coarsened specialist: same objective, same EM optimum', () => {
    const folded = foldIntoDustbin(problem, [new Set([1]), new Set()]);
    const direct = makeProblem({ C: 4, specialists: [{ classes: Int32Array.from([0]) }, { classes: Int32Array.from([1, 2]) }], cases: 1, pg, active: [Int32Array.from([0, 1])], pm: [[f32([0.5, 0.5]), p1]] });
    const q = f32([0.25, 0.25, 0.25, 0.25]);
    expect(objective(folded, q, 2)[0]).toBeCloseTo(objective(direct, q, 2)[0]!, 12);
    const a = solveEm(folded, { weight: 2 }).q;
    const b = solveEm(direct, { weight: 2 }).q;
    for (let i = 0; i < 4; i++) expect(a[i]).toBeCloseTo(b[i]!, 7);
  });

  it('withholding knowledge changes the answer: the coarsened specialist no longer separates 0 from 1', () => {
    const full = solveEm(problem).q;
    const folded = solveEm(foldIntoDustbin(problem, [new Set([1]), new Set()])).q;
    expect(Math.abs(full[1]! - folded[1]!)).toBeGreaterThan(1e-3);
  });

  it('removes the slots of a specialist left with no class: with none left the answer is the generalist', () => {
    const folded = foldIntoDustbin(problem, [new Set([0, 1]), new Set([1, 2])]);
    expect(folded.activeIds.length).toBe(0);
    expect(Array.from(folded.activeOffsets)).toEqual([0, 0]);
    const q = solveEm(folded).q;
    for (let i = 0; i < 4; i++) expect(q[i]).toBeCloseTo(pg[i]!, 6);
  });

  it('with nothing dropped it is the same problem (random problems)', () => {
    const p = randomProblem(3, 12, 5, 4, 20, 2);
    const same = foldIntoDustbin(p, p.specialists.map(() => new Set<number>()));
    expect(Array.from(same.pm)).toEqual(Array.from(p.pm));
    expect(Array.from(same.activeIds)).toEqual(Array.from(p.activeIds));
    expect(Array.from(solveEm(same).q)).toEqual(Array.from(solveEm(p).q));
  });

  it('rejects a drop of a class the specialist does not hold, and a wrong number of drop sets', () => {
    expect(() => foldIntoDustbin(problem, [new Set([3]), new Set()])).toThrow(DataError);
    expect(() => foldIntoDustbin(problem, [new Set([3]), new Set()])).toThrow(/specialist 0 does not hold class 3/);
    expect(() => foldIntoDustbin(problem, [new Set()])).toThrow(/1 drop sets for 2 specialists/);
  });
});
