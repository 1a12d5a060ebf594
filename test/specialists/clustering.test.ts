import { describe, it, expect } from 'vitest';
import { clusterClasses, resolveClusterOptions, type ClusterOptions } from '../../src/specialists/clustering.ts';
import { adjustedRandIndex } from '../../src/specialists/cluster-metrics.ts';
import { clusterStats, formatClusterTable } from '../../src/specialists/cluster-stats.ts';
import { CovarianceAccumulator } from '../../src/specialists/covariance.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';

/**
 * Planted block covariance: correlation 0.5 inside a group, 0 across, plus N(0, noise) on every
 * off-diagonal entry; class variances log-uniform over four decades (as for real predictions,
 * where some classes are predicted far more often than others), cov = D^1/2 R D^1/2.
 */
function planted(C: number, G: number, seed: number, noise = 0.05, sizes?: number[]): { cov: Float32Array; truth: Int32Array } {
  const rng = new Rng(seed);
  const perm = rng.permutation(C);
  const truth = new Int32Array(C);
  if (sizes) {
    let t = 0;
    sizes.forEach((s, g) => {
      for (let u = 0; u < s; u++) truth[perm[t++]] = g;
    });
  } else for (let t = 0; t < C; t++) truth[perm[t]] = t % G;
  const v = new Float64Array(C);
  for (let i = 0; i < C; i++) v[i] = Math.pow(10, -4 + 4 * rng.next());
  const cov = new Float32Array(C * C);
  for (let i = 0; i < C; i++)
    for (let j = i; j < C; j++) {
      const r = i === j ? 1 : (truth[i] === truth[j] ? 0.5 : 0) + noise * rng.normal();
      const c = r * Math.sqrt(v[i] * v[j]);
      cov[i * C + j] = c;
      cov[j * C + i] = c;
    }
  return { cov, truth };
}

function groupsOf(truth: Int32Array, G: number): number[][] {
  const g: number[][] = Array.from({ length: G }, () => []);
  truth.forEach((t, i) => g[t].push(i));
  return g;
}

const key = (c: number[]): string => c.join(',');

describe('clusterClasses', () => {
  const C = 60;
  const G = 6;
  const { cov, truth } = planted(C, G, 1);

  for (const algorithm of ['online', 'minibatch', 'batch'] as const) {
    it(`recovers planted groups exactly (${algorithm}, correlation, zero diagonal)`, () => {
      const res = clusterClasses(cov, C, { k: G, algorithm, batchSize: 20, seed: 3 });
      expect(adjustedRandIndex(res.assignment, truth)).toBe(1);
      expect(res.clusters.map(key).sort()).toEqual(groupsOf(truth, G).map(key).sort());
      for (const c of res.clusters) expect(c).toEqual([...c].sort((a, b) => a - b));
    });
  }

  it('raw covariance columns degenerate; correlation columns recover the groups (paper section 6 pitfall)', () => {
    const raw = clusterClasses(cov, C, { k: G, normalise: 'none', zeroDiagonal: false, balance: false, seed: 3 });
    const ariRaw = adjustedRandIndex(raw.assignment, truth);
    const largest = Math.max(...raw.clusters.map((c) => c.length));
    expect(ariRaw).toBeLessThan(0.2);
    expect(largest).toBeGreaterThan(C / 2); // most classes lumped together (the low-variance ones)
    const corr = clusterClasses(cov, C, { k: G, normalise: 'correlation', zeroDiagonal: true, balance: false, seed: 3 });
    expect(adjustedRandIndex(corr.assignment, truth)).toBe(1);
    const unit = clusterClasses(cov, C, { k: G, normalise: 'unit', zeroDiagonal: true, balance: false, seed: 3 });
    expect(adjustedRandIndex(unit.assignment, truth)).toBeGreaterThan(0.9);
  });

  it('balance gives equal sizes even when the planted groups are not', () => {
    const uneven = planted(60, 6, 2, 0.05, [20, 4, 6, 10, 12, 8]);
    const res = clusterClasses(uneven.cov, 60, { k: 6, balance: true, seed: 1 });
    expect(res.clusters.map((c) => c.length)).toEqual([10, 10, 10, 10, 10, 10]);
    const free = clusterClasses(uneven.cov, 60, { k: 6, balance: false, seed: 1 });
    expect(free.clusters.map((c) => c.length).sort((a, b) => a - b)).toEqual([4, 6, 8, 10, 12, 20]);
    // C not divisible by K: sizes floor or ceil, exactly C mod K of the larger
    const odd = planted(61, 6, 3);
    const sizes = clusterClasses(odd.cov, 61, { k: 6, seed: 1 }).clusters.map((c) => c.length);
    expect(sizes.filter((s) => s === 11)).toHaveLength(1);
    expect(sizes.filter((s) => s === 10)).toHaveLength(5);
  });

  it('overlap r puts every class in exactly r + 1 clusters, its primary one included', () => {
    for (const r of [1, 2]) {
      const res = clusterClasses(cov, C, { k: G, overlap: r, seed: 2 });
      const count = new Int32Array(C);
      res.clusters.forEach((cl, k) => {
        expect(new Set(cl).size).toBe(cl.length);
        for (const i of cl) count[i]++;
        for (let i = 0; i < C; i++) if (res.assignment[i] === k) expect(cl).toContain(i);
      });
      expect(Array.from(count).every((c) => c === r + 1)).toBe(true);
    }
  });

  it('is repeatable for a seed', () => {
    const noisy = planted(80, 5, 4, 0.3);
    for (const algorithm of ['online', 'minibatch', 'batch'] as const) {
      const opts: ClusterOptions = { k: 5, algorithm, seed: 9, balance: false };
      const a = clusterClasses(noisy.cov, 80, opts);
      const b = clusterClasses(noisy.cov, 80, opts);
      expect(Array.from(a.assignment)).toEqual(Array.from(b.assignment));
      expect(Array.from(a.centroids)).toEqual(Array.from(b.centroids));
    }
  });

  it('never produces empty clusters (identical columns, no balancing)', () => {
    const n = 12;
    const flat = new Float32Array(n * n).fill(0.5); // every column identical
    for (const algorithm of ['online', 'minibatch', 'batch'] as const) {
      const res = clusterClasses(flat, n, { k: 5, normalise: 'none', zeroDiagonal: false, balance: false, algorithm, seed: 1 });
      expect(res.clusters.every((c) => c.length > 0)).toBe(true);
      expect(res.clusters.reduce((s, c) => s + c.length, 0)).toBe(n);
    }
  });

  it('rejects K > C and other bad options; derives K from targetSize', () => {
    const small = new Float32Array(100);
    expect(() => clusterClasses(small, 10, { k: 50 })).toThrow(ConfigError);
    expect(() => clusterClasses(small, 10, { k: 50 })).toThrow('clusters.k = 50 is larger than the number of classes (10)');
    expect(() => clusterClasses(small, 10, {})).toThrow(/k .*target_size/);
    expect(() => clusterClasses(small, 10, { k: 3, overlap: 3 })).toThrow(/overlap/);
    expect(resolveClusterOptions(1000, { targetSize: 300 }).k).toBe(4);
    expect(resolveClusterOptions(1000, { k: undefined, targetSize: 300, normalise: undefined }).normalise).toBe('correlation');
    expect(resolveClusterOptions(10, { targetSize: 3 })).toMatchObject({ k: 4, normalise: 'correlation', zeroDiagonal: true, algorithm: 'online', balance: true, overlap: 0 });
  });

  it('clusters the covariance of simulated generalist probabilities (end to end with CovarianceAccumulator)', () => {
    // 40 classes in 5 confusable groups; the "generalist" puts mass on the true class and spreads
    // some over the true class's group.
    const Cs = 40;
    const rng = new Rng(5);
    const group = Int32Array.from({ length: Cs }, (_, i) => i % 5);
    const acc = new CovarianceAccumulator(Cs, 'probabilities');
    const rows = 100;
    for (let b = 0; b < 20; b++) {
      const logits = new Float32Array(rows * Cs);
      for (let r = 0; r < rows; r++) {
        const y = rng.int(Cs);
        for (let i = 0; i < Cs; i++) logits[r * Cs + i] = (i === y ? 4 : group[i] === group[y] ? 2 + rng.normal() : 0) + 0.5 * rng.normal();
      }
      acc.addBatch(logits, rows);
    }
    const { cov } = acc.result();
    const res = clusterClasses(cov, Cs, { k: 5, seed: 1 });
    expect(adjustedRandIndex(res.assignment, group)).toBe(1);
  });

  it('clusters 2,000 columns in reasonable time', () => {
    const big = planted(2000, 20, 6);
    const t0 = performance.now();
    const res = clusterClasses(big.cov, 2000, { k: 20, iterations: 5, seed: 1 });
    const s = (performance.now() - t0) / 1000;
    console.log(`clusterClasses: 2000 columns, K = 20, online, 5 passes: ${s.toFixed(1)} s`);
    expect(adjustedRandIndex(res.assignment, big.truth)).toBe(1);
    expect(s).toBeLessThan(40);
  });
});

describe('adjustedRandIndex', () => {
  it('is 1 for relabelled identical partitions and matches a hand value', () => {
    expect(adjustedRandIndex([0, 0, 1, 1, 2], [5, 5, 3, 3, 9])).toBe(1);
    // Contingency [[2,1],[0,1]] for a=[0,0,0,1], b=[0,0,1,1]: index=1, sa=3, sb=2, expected=1, max=2.5 -> 0
    expect(adjustedRandIndex([0, 0, 0, 1], [0, 0, 1, 1])).toBeCloseTo(0, 12);
  });
});

describe('clusterStats / formatClusterTable', () => {
  // 4 classes, clusters {0,1} and {2,3}.
  const cov = Float32Array.from([
    1, 0.5, -0.2, 0.1,
    0.5, 2, 0.3, -0.4,
    -0.2, 0.3, 1, 0.6,
    0.1, -0.4, 0.6, 3,
  ]);
  const clusters = [[0, 1], [2, 3]];
  it('confusion mass: positive part (default) and absolute', () => {
    const stats = clusterStats(cov, 4, clusters, { classNames: ['a', 'b', 'c', 'd'] });
    expect(stats[0]).toMatchObject({ id: 0, size: 2, classes: [0, 1], names: ['a', 'b'], generalist_accuracy_within: null, valid_examples: 0 });
    expect(stats[0].within_mass).toBeCloseTo(0.5, 6);
    expect(stats[0].between_mass).toBeCloseTo(0.1 + 0.3, 6); // -0.2 and -0.4 do not count
    expect(stats[1].within_mass).toBeCloseTo(0.6, 6);
    expect(stats[1].between_mass).toBeCloseTo(0.3 + 0.1, 6);
    const abs = clusterStats(cov, 4, clusters, { classNames: ['a', 'b', 'c', 'd'], mass: 'absolute' });
    expect(abs[0].between_mass).toBeCloseTo(0.2 + 0.1 + 0.3 + 0.4, 6);
  });
  it('generalist accuracy within each subset (top-1 over all classes)', () => {
    const validLabels = Int32Array.from([0, 1, 2, 3, 3]);
    // predictions: 0 -> 0 (right), 1 -> 2 (wrong, outside the subset), 2 -> 3 (wrong), 3 -> 3, 3 -> 3
    const validLogits = Float32Array.from([
      5, 1, 0, 0,
      0, 1, 2, 0,
      0, 0, 1, 2,
      0, 0, 0, 1,
      0, 0, 0.5, 0.6,
    ]);
    const stats = clusterStats(cov, 4, clusters, { classNames: ['a', 'b', 'c', 'd'], validLabels, validLogits });
    expect(stats[0].generalist_accuracy_within).toBeCloseTo(0.5, 12);
    expect(stats[0].valid_examples).toBe(2);
    expect(stats[1].generalist_accuracy_within).toBeCloseTo(2 / 3, 12);
    const table = formatClusterTable(stats);
    const lines = table.split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^id\s+size\s+within\s+between\s+within\/between\s+gen_acc_within\s+valid_n\s+classes$/);
    expect(lines[2]).toContain('50.0%');
    expect(lines[3]).toContain('66.7%');
    expect(lines[3]).toContain('c, d');
    // columns aligned: 'size' header ends where each size value ends
    const end = lines[0].indexOf('size') + 4;
    expect(lines[2].slice(0, end).trimEnd().endsWith('2')).toBe(true);
    expect(lines[2].slice(end - 1, end)).toBe('2');
  });
});
