/** `inspect`'s text sections for clusters.json, specialists.json, the ensemble metrics and results.md. */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeSections, markdownAsText } from '../../src/cli/sections.ts';
import { describeEnsemble } from '../../src/ensemble/describe.ts';
import type { EnsembleMetrics } from '../../src/ensemble/metrics.ts';

const ensemble: EnsembleMetrics = {
  examples: 100,
  generalist: { accuracy: 0.75, correct: 75 },
  ensemble: { accuracy: 0.8, correct: 80 },
  conditional: { examples: 60, generalist_accuracy: 0.7, ensemble_accuracy: 0.78 },
  by_coverage: [
    { specialists: 0, label: '0', examples: 40, generalist_correct: 33, ensemble_correct: 33, relative_change: 0 },
    { specialists: 1, label: '1', examples: 60, generalist_correct: 42, ensemble_correct: 47, relative_change: 5 / 42 },
    { specialists: 2, label: '2', examples: 0, generalist_correct: 0, ensemble_correct: 0, relative_change: null },
  ],
};
const withMembership: EnsembleMetrics = {
  ...ensemble,
  by_membership: [
    { specialists: 0, label: '0', examples: 0, generalist_correct: 0, ensemble_correct: 0, relative_change: null },
    { specialists: 1, label: '1', examples: 70, generalist_correct: 50, ensemble_correct: 55, relative_change: 0.1 },
    { specialists: 2, label: '2', examples: 30, generalist_correct: 25, ensemble_correct: 25, relative_change: 0 },
  ],
  by_membership_kind: {
    bridge: [{ specialists: 2, label: '2', examples: 30, generalist_correct: 25, ensemble_correct: 25, relative_change: 0 }],
  },
};

describe('inspect sections', () => {
  it('describeEnsemble: Tables 3 and 4, empty buckets left out', () => {
    const t = describeEnsemble(ensemble, 0.5).split('\n');
    expect(t[0]).toBe('test accuracy: generalist 75.00% -> ensemble 80.00% (specialist weight 0.5)');
    expect(t[1]).toBe('conditional (60 cases with an active specialist): 70.00% -> 78.00%');
    expect(t[2]).toBe('by_coverage: test cases by the number of ACTIVE specialists covering the true class');
    expect(t.slice(5).map((l) => l.split(/\s{2,}/))).toEqual([
      ['0', '40', '33', '33', '0.0%'],
      ['1', '60', '42', '47', '11.9%'],
    ]);
  });

  it('describeEnsemble: the by-membership table and its split by class kind, when present', () => {
    const t = describeEnsemble(withMembership, 0.5).split('\n');
    const at = t.indexOf('by_membership: test cases by the number of clusters holding the true class (active or not; paper Table 4)');
    expect(at).toBe(7);
    expect(t[at + 1]!.split(/\s{2,}/)[0]).toBe('clusters holding');
    expect(t.slice(at + 3, at + 5).map((l) => l.split(/\s{2,}/))).toEqual([
      ['1', '70', '50', '55', '10.0%'],
      ['2', '30', '25', '25', '0.0%'],
    ]);
    expect(t[at + 5]).toBe('by_membership, bridge classes only');
    expect(t[at + 8]!.split(/\s{2,}/)).toEqual(['2', '30', '25', '25', '0.0%']);
    expect(t).toHaveLength(at + 9);
  });

  it('clusters, specialists, ensemble and results sections from a stage folder', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sections-'));
    writeFileSync(
      path.join(dir, 'clusters.json'),
      JSON.stringify({ k: 1, generalist_valid_accuracy: 0.9, clusters: [{ id: 0, size: 2, classes: [0, 1], names: ['cat', 'dog'], within_mass: 0.5, between_mass: 0.25, generalist_accuracy_within: 0.8, valid_examples: 10 }] }),
    );
    writeFileSync(
      path.join(dir, 'specialists.json'),
      JSON.stringify({ head: 'dustbin', correction: 'fitted', specialists: [{ id: 'specialist-00', size: 2, within_examples: 10, specialist_accuracy_within: 0.9, generalist_accuracy_within: 0.8, mean_dustbin_prob: 0.4, natural_rate: 0.5, specialist_auc: 0.95, generalist_auc: 0.9 }] }),
    );
    writeFileSync(path.join(dir, 'metrics.json'), JSON.stringify({ ...ensemble, weight: 0.5 }));
    writeFileSync(path.join(dir, 'results.md'), '# Title\n\n| model | errors |\n| --- | --- |\n| **teacher** | 67 |\n| student | 146 |\n');
    const text = await describeSections(dir);
    expect(text).toContain('Clusters: 1; generalist valid accuracy overall 90.00%');
    expect(text).toMatch(/0\s+2\s+0\.5000\s+0\.2500\s+2\.0000\s+80\.0%\s+10\s+cat, dog/);
    expect(text).toMatch(/specialist-00\s+2\s+10\s+90\.00%\s+80\.00%\s+40\.00%\s+50\.00%\s+0\.95\s+0\.9/);
    expect(text).toContain('test accuracy: generalist 75.00% -> ensemble 80.00% (specialist weight 0.5)');
    expect(text).toContain('Results:');
    expect(text).toMatch(/ {2}student\s+146/);
  });

  it('markdownAsText aligns pipe tables and right-aligns numbers', () => {
    expect(markdownAsText('# T\n\n| a | bb |\n| --- | --- |\n| x | 5 |\n| yyy | 10 |\n')).toBe(['T', '', 'a    bb', '---  --', 'x     5', 'yyy  10'].join('\n'));
  });
});
