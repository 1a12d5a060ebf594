import { describe, it, expect } from 'vitest';
import { activeSpecialists, chooseSpecialistWeight, coverageCounts, ensembleMetrics, makeProblem, topN } from '../../src/ensemble/index.ts';
import { ConfigError } from '../../src/util/errors.ts';

describe('activeSpecialists / coverageCounts', () => {
  const clusters = [[0, 1], [1, 2], [3], [0, 3, 4]];
  it('picks the specialists whose subset meets the generalist top-n', () => {
    const row = [0.1, 0.5, 0.05, 0.3, 0.05];
    expect(Array.from(topN(row, 2))).toEqual([1, 3]);
    expect(Array.from(activeSpecialists(row, clusters, 1))).toEqual([0, 1]);
    expect(Array.from(activeSpecialists(row, clusters, 2))).toEqual([0, 1, 2, 3]);
    expect(Array.from(activeSpecialists([0, 0, 1, 0, 0], clusters, 1))).toEqual([1]);
    expect(Array.from(activeSpecialists([0, 0, 0, 0, 1], clusters, 1))).toEqual([3]);
  });
  it('counts specialists covering the true class', () => {
    expect(Array.from(coverageCounts([0, 1, 2, 3, 4], clusters, 5))).toEqual([2, 2, 1, 2, 1]);
  });
});

describe('ensembleMetrics', () => {
  it('hand-made case', () => {
    // C = 3, 5 cases. Generalist right on cases 0, 1, 3; ensemble right on 0, 2, 3, 4.
    const labels = [0, 1, 2, 0, 1];
    const pg = Float32Array.from([0.8, 0.1, 0.1, 0.2, 0.7, 0.1, 0.6, 0.1, 0.3, 0.5, 0.3, 0.2, 0.5, 0.4, 0.1]);
    const q = Float32Array.from([0.7, 0.2, 0.1, 0.2, 0.3, 0.5, 0.3, 0.1, 0.6, 0.5, 0.3, 0.2, 0.3, 0.6, 0.1]);
    const coverage = Int32Array.from([0, 1, 1, 12, 10]);
    const active = [false, true, true, false, true];
    const m = ensembleMetrics({ labels, pg, q, C: 3, coverage, active });
    expect(m.generalist).toEqual({ accuracy: 3 / 5, correct: 3 });
    expect(m.ensemble).toEqual({ accuracy: 4 / 5, correct: 4 });
    expect(m.conditional).toEqual({ examples: 3, generalist_accuracy: 1 / 3, ensemble_accuracy: 2 / 3 });
    expect(m.by_coverage).toHaveLength(11);
    expect(m.by_coverage[0]).toMatchObject({ specialists: 0, examples: 1, generalist_correct: 1, ensemble_correct: 1, relative_change: 0 });
    expect(m.by_coverage[1]).toMatchObject({ specialists: 1, examples: 2, generalist_correct: 1, ensemble_correct: 1, relative_change: 0 });
    expect(m.by_coverage[10]).toMatchObject({ specialists: 10, label: '10 or more', examples: 2, generalist_correct: 1, ensemble_correct: 2, relative_change: 1 });
    expect(m.by_coverage[5]).toMatchObject({ examples: 0, relative_change: null });
  });
});

describe('ensembleMetrics: by_membership', () => {
  // C = 4, clusters {0,1} and {1,2}: class 0 and 2 are in one cluster, class 1 in two, class 3 in none.
  // top-1 activation: a case's active specialists are those holding the generalist's top class.
  const clusters = [[0, 1], [1, 2]];
  const labels = [0, 1, 1, 2, 3, 1];
  // Generalist top class per case: 0, 1, 3, 2, 3, 1 -> right on cases 0, 1, 3, 4, 5.
  const pg = Float32Array.from([
    0.7, 0.1, 0.1, 0.1,
    0.1, 0.7, 0.1, 0.1,
    0.1, 0.2, 0.1, 0.6,
    0.1, 0.1, 0.7, 0.1,
    0.1, 0.1, 0.1, 0.7,
    0.2, 0.5, 0.2, 0.1,
  ]);
  // Ensemble top class per case: 0, 1, 1, 0, 3, 2 -> right on cases 0, 1, 2, 4.
  const q = Float32Array.from([
    0.7, 0.1, 0.1, 0.1,
    0.1, 0.7, 0.1, 0.1,
    0.1, 0.5, 0.1, 0.3,
    0.5, 0.1, 0.3, 0.1,
    0.1, 0.1, 0.1, 0.7,
    0.1, 0.3, 0.5, 0.1,
  ]);
  // Active specialists (top-1): case 0 -> {0}; 1 -> {0,1}; 2 -> {} (class 3); 3 -> {1}; 4 -> {}; 5 -> {0,1}.
  const active = [true, true, false, true, false, true];
  // Active ones holding the true class: 1, 2, 0, 1, 0, 2.
  const coverage = Int32Array.from([1, 2, 0, 1, 0, 2]);
  // Clusters holding the true class, active or not: 1, 2, 2, 1, 0, 2.
  const membership = coverageCounts(labels, clusters, 4);

  it('counts every cluster holding the true class, active or not', () => {
    expect(Array.from(membership)).toEqual([1, 2, 2, 1, 0, 2]);
    const m = ensembleMetrics({ labels, pg, q, C: 4, coverage, active, membership });
    expect(m.generalist.correct).toBe(5);
    expect(m.ensemble.correct).toBe(4);
    // by_coverage (active): 0 -> cases 2, 4 (g 1, e 2); 1 -> cases 0, 3 (g 2, e 1); 2 -> cases 1, 5 (g 2, e 1).
    expect(m.by_coverage.slice(0, 3)).toMatchObject([
      { specialists: 0, examples: 2, generalist_correct: 1, ensemble_correct: 2, relative_change: 1 },
      { specialists: 1, examples: 2, generalist_correct: 2, ensemble_correct: 1, relative_change: -0.5 },
      { specialists: 2, examples: 2, generalist_correct: 2, ensemble_correct: 1, relative_change: -0.5 },
    ]);
    // by_membership: 0 -> case 4 (g 1, e 1); 1 -> cases 0, 3 (g 2, e 1); 2 -> cases 1, 2, 5 (g 2, e 2).
    expect(m.by_membership).toHaveLength(11);
    expect(m.by_membership!.slice(0, 3)).toMatchObject([
      { specialists: 0, label: '0', examples: 1, generalist_correct: 1, ensemble_correct: 1, relative_change: 0 },
      { specialists: 1, label: '1', examples: 2, generalist_correct: 2, ensemble_correct: 1, relative_change: -0.5 },
      { specialists: 2, label: '2', examples: 3, generalist_correct: 2, ensemble_correct: 2, relative_change: 0 },
    ]);
    expect(m.by_membership!.slice(3).every((r) => r.examples === 0 && r.relative_change === null)).toBe(true);
    expect(m.by_membership_kind).toBeUndefined();
    // Without membership, no by_membership (older callers).
    expect(ensembleMetrics({ labels, pg, q, C: 4, coverage, active }).by_membership).toBeUndefined();
  });

  it('splits by_membership by class kind', () => {
    const classKinds = ['ordinary', 'bridge', 'ordinary', 'ordinary'];
    const m = ensembleMetrics({ labels, pg, q, C: 4, coverage, active, membership, classKinds });
    expect(Object.keys(m.by_membership_kind!)).toEqual(['ordinary', 'bridge']);
    // Bridge class 1: cases 1, 2, 5, all in bucket 2 (g 2, e 2).
    const bridge = m.by_membership_kind!.bridge!;
    expect(bridge[2]).toMatchObject({ examples: 3, generalist_correct: 2, ensemble_correct: 2, relative_change: 0 });
    expect(bridge.reduce((s, r) => s + r.examples, 0)).toBe(3);
    // Ordinary classes 0, 2, 3: bucket 0 -> case 4; bucket 1 -> cases 0, 3.
    const ord = m.by_membership_kind!.ordinary!;
    expect(ord[0]).toMatchObject({ examples: 1, generalist_correct: 1, ensemble_correct: 1 });
    expect(ord[1]).toMatchObject({ examples: 2, generalist_correct: 2, ensemble_correct: 1, relative_change: -0.5 });
    expect(ord[2]!.examples).toBe(0);
    // The kinds add up to the whole table.
    for (let k = 0; k <= 10; k++) expect(ord[k]!.examples + bridge[k]!.examples).toBe(m.by_membership![k]!.examples);
  });

  it('rejects mismatched sizes with a message naming the input', () => {
    expect(() => ensembleMetrics({ labels, pg, q, C: 4, coverage, active, membership: Int32Array.from([1]) })).toThrow(/membership must have 6 entries/);
    expect(() => ensembleMetrics({ labels, pg, q, C: 4, coverage, active, membership, classKinds: ['a'] })).toThrow(/one kind per class \(4\)/);
    expect(() => ensembleMetrics({ labels, pg, q, C: 4, coverage, active, classKinds: ['a', 'b', 'c', 'd'] })).toThrow(/classKinds needs membership/);
  });
});

describe('chooseSpecialistWeight', () => {
  // C = 2, one specialist S = {0}. pg says class 0 with 0.6 in every case.
  function problem(pm0: number) {
    const cases = 4;
    return makeProblem({
      C: 2,
      specialists: [{ classes: Int32Array.from([0]) }],
      cases,
      pg: Float32Array.from({ length: cases * 2 }, (_, i) => (i % 2 === 0 ? 0.6 : 0.4)),
      active: Array.from({ length: cases }, () => Int32Array.from([0])),
      pm: Array.from({ length: cases }, () => [Float32Array.from([pm0, 1 - pm0])]),
    });
  }
  it('picks w = 0 when the specialists only hurt, a larger w when they help', () => {
    // q0 = (0.6 + 0.05 w) / (1 + w) < 0.5 iff w > 0.1 / 0.45 = 0.222...
    const bad = chooseSpecialistWeight({ problem: problem(0.05), labels: [0, 0, 0, 0], grid: [0.1, 0, 0.2, 0.3, 1] });
    expect(bad.table.map((t) => t.accuracy)).toEqual([1, 1, 1, 0, 0]);
    expect(bad.weight).toBe(0.1); // ties: the earlier grid entry
    const good = chooseSpecialistWeight({ problem: problem(0.05), labels: [1, 1, 1, 1], grid: [0, 0.2, 0.3, 1] });
    expect(good.table.map((t) => t.accuracy)).toEqual([0, 0, 1, 1]);
    expect(good.weight).toBe(0.3);
    expect(good.accuracy).toBe(1);
    const viaGradient = chooseSpecialistWeight({ problem: problem(0.05), labels: [1, 1, 1, 1], grid: [0, 0.2, 0.3, 1], solver: 'gradient' });
    expect(viaGradient.weight).toBe(0.3);
    expect(() => chooseSpecialistWeight({ problem: problem(0.5), labels: [0, 0, 0, 0], grid: [] })).toThrow(ConfigError);
  });
});
