import { describe, it, expect } from 'vitest';
import { clusterClasses } from '../../src/specialists/clustering.ts';
import { CovarianceColumns } from '../../src/specialists/cluster-columns.ts';
import { distanceMatrix } from '../../src/specialists/cluster-assign.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';

/**
 * Planted covariance with bridging classes: G groups of `per` classes (class c in group
 * floor(c / per)), correlation 0.5 inside a group, 0 across, N(0, noise) on every off-diagonal
 * entry, variances log-uniform over three decades. Each bridge class additionally correlates 0.5
 * with every class of its `also` groups: the generalist confuses it with several groups, so it
 * lies between their centres.
 */
function plantedBridges(G: number, per: number, bridges: Record<number, number[]>, seed: number, noise = 0.03): { cov: Float32Array; C: number; group: Int32Array } {
  const C = G * per;
  const rng = new Rng(seed);
  const group = new Int32Array(C);
  for (let c = 0; c < C; c++) group[c] = Math.floor(c / per);
  const related = (i: number, j: number): boolean => group[i] === group[j] || (bridges[i]?.includes(group[j]) ?? false) || (bridges[j]?.includes(group[i]) ?? false);
  const v = new Float64Array(C);
  for (let i = 0; i < C; i++) v[i] = Math.pow(10, -4 + 3 * rng.next());
  const cov = new Float32Array(C * C);
  for (let i = 0; i < C; i++)
    for (let j = i; j < C; j++) {
      const r = i === j ? 1 : (related(i, j) ? 0.5 : 0) + noise * rng.normal();
      const c = r * Math.sqrt(v[i] * v[j]);
      cov[i * C + j] = c;
      cov[j * C + i] = c;
    }
  return { cov, C, group };
}

function coverage(clusters: number[][], C: number): Int32Array {
  const n = new Int32Array(C);
  for (const cl of clusters) for (const c of cl) n[c]++;
  return n;
}

describe('clusterClasses with overlapThreshold (uneven overlap)', () => {
  // 8 groups of 8; class 3 bridges to group 1, class 20 to groups 4 and 6, class 45 to group 7.
  const bridges: Record<number, number[]> = { 3: [1], 20: [4, 6], 45: [7] };
  const { cov, C, group } = plantedBridges(8, 8, bridges, 6);
  const base = { k: 8, overlap: 2, seed: 4, balance: false } as const;

  it('covers bridge classes by as many specialists as groups they are confused with, the others by one', () => {
    const res = clusterClasses(cov, C, { ...base, overlapThreshold: 0.5 });
    // The primary clusters are the planted groups (a bridge class may have either of its groups as primary).
    for (let c = 0; c < C; c++) if (!(c in bridges)) expect(res.assignment[c]).toBe(res.assignment[group[c]! * 8 + 1]);
    const n = coverage(res.clusters, C);
    expect(n[3]).toBe(2);
    expect(n[45]).toBe(2);
    expect(n[20]).toBe(3);
    for (let c = 0; c < C; c++) if (!(c in bridges)) expect(n[c]).toBe(1);
    // The extra clusters are the bridged groups' clusters.
    const clusterOf = (c: number): number => res.assignment[c]!;
    expect(res.clusters[clusterOf(8)]).toContain(3); // class 8 is in group 1
    expect(res.clusters[clusterOf(32)]).toContain(20); // group 4
    expect(res.clusters[clusterOf(48)]).toContain(20); // group 6
    expect(res.clusters[clusterOf(56)]).toContain(45); // group 7
    // Coverage counts vary: 1, 2 and 3 all occur.
    expect(new Set(n).size).toBe(3);
  });

  it('a class joins cluster k exactly when |x - c_k| <= (1 + t) min |x - c|, nearest first, at most r', () => {
    const noisy = plantedBridges(8, 8, bridges, 6, 0.12); // noisier: many classes near a boundary
    for (const t of [0, 0.1, 0.3, 0.6, 1.5]) {
      for (const r of [1, 2]) {
        const res = clusterClasses(noisy.cov, noisy.C, { ...base, overlap: r, overlapThreshold: t });
        const K = res.k;
        const D = distanceMatrix(new CovarianceColumns(noisy.cov, noisy.C, 'correlation', true), res.centroids, K);
        for (let j = 0; j < noisy.C; j++) {
          const d = Array.from(D.subarray(j * K, (j + 1) * K)).map(Math.sqrt);
          const dmin = Math.min(...d);
          // Qualifying other clusters, nearest first; membership = the first min(r, count).
          const qualifying = d
            .map((v, k) => ({ v, k }))
            .filter(({ v, k }) => k !== res.assignment[j] && v <= (1 + t) * dmin * (1 + 1e-9))
            .sort((a, b) => a.v - b.v || a.k - b.k)
            .map((e) => e.k);
          const expected = new Set([res.assignment[j]!, ...qualifying.slice(0, r)]);
          const actual = new Set(res.clusters.flatMap((cl, k) => (cl.includes(j) ? [k] : [])));
          expect(actual).toEqual(expected);
        }
      }
    }
  });

  it('grows monotonically with t, from no extra membership at t = 0 to exactly r + 1 everywhere for a huge t', () => {
    const noisy = plantedBridges(8, 8, bridges, 7, 0.12);
    let prev: Int32Array = new Int32Array(noisy.C).fill(1);
    const totals: number[] = [];
    for (const t of [0, 0.2, 0.5, 1, 3]) {
      const n = coverage(clusterClasses(noisy.cov, noisy.C, { ...base, overlapThreshold: t }).clusters, noisy.C);
      for (let c = 0; c < noisy.C; c++) expect(n[c]).toBeGreaterThanOrEqual(prev[c]!);
      if (t === 0) expect(Array.from(n).every((v) => v === 1)).toBe(true); // nearest assignment: no ties
      prev = n;
      totals.push(n.reduce((a, b) => a + b, 0));
    }
    expect(totals[totals.length - 1]).toBe(3 * noisy.C);
    expect(new Set(totals).size).toBeGreaterThan(2); // it really is graded
    // A huge threshold is the plain overlap r (no capacity without balancing).
    const plain = clusterClasses(noisy.cov, noisy.C, { ...base });
    const huge = clusterClasses(noisy.cov, noisy.C, { ...base, overlapThreshold: 1e6 });
    expect(huge.clusters).toEqual(plain.clusters);
  });

  it('respects the balanced capacity ceil(C (1 + r) / K)', () => {
    const noisy = plantedBridges(8, 8, bridges, 8, 0.2);
    const res = clusterClasses(noisy.cov, noisy.C, { k: 8, overlap: 2, seed: 4, balance: true, overlapThreshold: 5 });
    const cap = Math.ceil((noisy.C * 3) / 8);
    for (const cl of res.clusters) expect(cl.length).toBeLessThanOrEqual(cap);
    const n = coverage(res.clusters, noisy.C);
    for (const v of n) {
      expect(v).toBeGreaterThanOrEqual(1);
      expect(v).toBeLessThanOrEqual(3);
    }
  });

  it('rejects a negative threshold and a threshold without overlap', () => {
    expect(() => clusterClasses(cov, C, { k: 8, overlap: 0, overlapThreshold: 0.5 })).toThrow(ConfigError);
    expect(() => clusterClasses(cov, C, { k: 8, overlap: 0, overlapThreshold: 0.5 })).toThrow(/overlap_threshold needs clusters.overlap >= 1/);
    expect(() => clusterClasses(cov, C, { k: 8, overlap: 1, overlapThreshold: -0.1 })).toThrow(/overlap_threshold = -0.1/);
  });
});
