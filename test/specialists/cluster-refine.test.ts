import { describe, it, expect } from 'vitest';
import { CovarianceColumns } from '../../src/specialists/cluster-columns.ts';
import { lloydSteps, swapRefine } from '../../src/specialists/cluster-refine.ts';
import { clusterClasses } from '../../src/specialists/clustering.ts';
import { ConfigError } from '../../src/util/errors.ts';

/**
 * Block covariance: G groups of `per` classes (class c in group floor(c / per)), unit variances,
 * correlation 0.5 inside a group, 0 across. With correlation columns and a zeroed diagonal,
 * column j holds 0.5 at the per - 1 other members of its group and 0 elsewhere.
 */
function blocks(G: number, per: number): { cov: Float32Array; C: number } {
  const C = G * per;
  const cov = new Float32Array(C * C);
  for (let i = 0; i < C; i++) for (let j = 0; j < C; j++) cov[i * C + j] = i === j ? 1 : Math.floor(i / per) === Math.floor(j / per) ? 0.5 : 0;
  return { cov, C };
}

/** Mean of the given columns (one centre). */
function meanOf(points: CovarianceColumns, cols: number[]): Float64Array {
  const C = points.C;
  const x = new Float64Array(C);
  const m = new Float64Array(C);
  for (const j of cols) {
    points.column(j, x);
    for (let i = 0; i < C; i++) m[i] += x[i] / cols.length;
  }
  return m;
}

/** Nearest centre of every column. */
function nearest(points: CovarianceColumns, centres: Float64Array, K: number): number[] {
  const C = points.C;
  const x = new Float64Array(C);
  const out: number[] = [];
  for (let j = 0; j < C; j++) {
    points.column(j, x);
    let best = 0;
    let bestD = Infinity;
    for (let k = 0; k < K; k++) {
      let d = 0;
      for (let i = 0; i < C; i++) d += (x[i] - centres[k * C + i]) ** 2;
      if (d < bestD - 1e-12) {
        bestD = d;
        best = k;
      }
    }
    out.push(best);
  }
  return out;
}

const G = 4;
const per = 5;
const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, t) => a + t);

describe('swapRefine', () => {
  const { cov, C } = blocks(G, per);
  const points = new CovarianceColumns(cov, C, 'correlation', true);
  /** The local optimum: two centres split group 0, one centre serves groups 1 and 2, one group 3. */
  const stuck = (): Float64Array => {
    const c = new Float64Array(G * C);
    c.set(meanOf(points, [0, 1, 2]), 0);
    c.set(meanOf(points, [3, 4]), C);
    c.set(meanOf(points, range(5, 15)), 2 * C);
    c.set(meanOf(points, range(15, 20)), 3 * C);
    return c;
  };
  const truth = (): Float64Array => {
    const c = new Float64Array(G * C);
    for (let g = 0; g < G; g++) c.set(meanOf(points, range(g * per, (g + 1) * per)), g * C);
    return c;
  };

  it('the stuck centres are a Lloyd fixed point (Lloyd alone cannot leave them)', () => {
    const c = stuck();
    const before = Float64Array.from(c);
    lloydSteps(points, c, G, 10);
    expect(Array.from(c)).toEqual(Array.from(before));
  });

  it('one swap recovers the planted groups, with the objective of the closed form', () => {
    const res = swapRefine(points, stuck(), G, 10);
    expect(res.swaps).toBe(1); // the second attempted swap cannot improve: the search stops
    const a = nearest(points, res.centres, G);
    for (let g = 0; g < G; g++) expect(new Set(a.slice(g * per, (g + 1) * per)).size).toBe(1);
    expect(new Set(a).size).toBe(G);
    // At the group means each member's entries are 0.4 (= 0.5 x 4/5) at the 5 positions of its
    // group; its own column has 0 at its own position and 0.5 at the other 4:
    // (0 - 0.4)^2 + 4 (0.5 - 0.4)^2 = 0.2 per class, 20 classes: 4.
    expect(res.inertia).toBeCloseTo(4, 9);
  });

  it('keeps the optimum and the input untouched; rounds = 0 is a no-op', () => {
    const t = truth();
    const copy = Float64Array.from(t);
    const res = swapRefine(points, t, G, 10);
    expect(res.swaps).toBe(0);
    expect(res.inertia).toBeCloseTo(4, 9);
    expect(Array.from(res.centres)).toEqual(Array.from(copy));
    expect(Array.from(t)).toEqual(Array.from(copy));
    const s = stuck();
    const none = swapRefine(points, s, G, 0);
    expect(none.swaps).toBe(0);
    expect(Array.from(none.centres)).toEqual(Array.from(s));
    // Stuck objective by hand. Group 0 split 3 + 2: the centre of {0, 1, 2} is 1/3 at 0..2 and
    // 0.5 at 3, 4, so each of 0..2 is at (1/3)^2 + 2 (1/6)^2 = 1/6; the centre of {3, 4} is 0.25 at
    // 3, 4 and 0.5 at 0..2, so 3 and 4 are at 2 (1/4)^2 = 1/8: 3/6 + 2/8 = 0.75. Groups 1 and 2
    // share a centre of 0.2 at their 10 positions: each class is at 0.2^2 + 4 (0.3)^2 + 5 (0.2)^2
    // = 0.6, ten classes: 6. Group 3 at its mean: 5 x 0.2 = 1. Total 7.75.
    expect(none.inertia).toBeCloseTo(7.75, 9);
  });

  it('clusterClasses validates swapRefine', () => {
    expect(() => clusterClasses(cov, C, { k: G, swapRefine: -1 })).toThrow(ConfigError);
    expect(() => clusterClasses(cov, C, { k: G, swapRefine: 1.5 })).toThrow(ConfigError);
    const r = clusterClasses(cov, C, { k: G, swapRefine: 5, seed: 3 });
    for (let g = 0; g < G; g++) expect(new Set(Array.from(r.assignment.slice(g * per, (g + 1) * per))).size).toBe(1);
  });
});
