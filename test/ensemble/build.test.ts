import { describe, it, expect } from 'vitest';
import { makeProblem, problemFromPredictions, solveEm } from '../../src/ensemble/index.ts';
import { DataError } from '../../src/util/errors.ts';

describe('problemFromPredictions', () => {
  const C = 5;
  const subsets = [[0, 1], [1, 2], [4]];
  const pg = Float32Array.from([
    0.1, 0.5, 0.2, 0.1, 0.1, // top-1 = 1 -> specialists 0, 1
    0.1, 0.1, 0.1, 0.6, 0.1, // top-1 = 3 -> none
    0.1, 0.1, 0.1, 0.1, 0.6, // top-1 = 4 -> specialist 2
  ]);
  // specialist m's distribution for case r: deterministic made-up numbers
  const probs = (m: number, r: number): Float32Array => {
    const n = subsets[m].length + 1;
    const v = Float32Array.from({ length: n }, (_, t) => 1 + t + m + r);
    const s = v.reduce((a, b) => a + b, 0);
    return v.map((x) => x / s);
  };
  it('builds the same problem as the nested form, with the paper\'s active sets', () => {
    const { problem, active } = problemFromPredictions({ C, subsets, cases: 3, pg, topN: 1, specialistProbs: probs });
    expect(active).toEqual([true, false, true]);
    expect(Array.from(problem.activeOffsets)).toEqual([0, 2, 2, 3]);
    expect(Array.from(problem.activeIds)).toEqual([0, 1, 2]);
    const nested = makeProblem({
      C,
      specialists: subsets.map((s) => ({ classes: Int32Array.from(s) })),
      cases: 3,
      pg,
      active: [Int32Array.from([0, 1]), new Int32Array(0), Int32Array.from([2])],
      pm: [[probs(0, 0), probs(1, 0)], [], [probs(2, 2)]],
    });
    expect(Array.from(problem.pm)).toEqual(Array.from(nested.pm));
    expect(Array.from(problem.pmOffsets)).toEqual(Array.from(nested.pmOffsets));
    expect(Array.from(solveEm(problem).q)).toEqual(Array.from(solveEm(nested).q));
  });
  it('checks the specialists\' distribution sizes', () => {
    expect(() => problemFromPredictions({ C, subsets, cases: 3, pg, topN: 1, specialistProbs: () => [1] })).toThrow(DataError);
  });
});
