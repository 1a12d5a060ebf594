/** The `ensemble` stage on a tiny synthetic run with bridge classes: by_coverage, by_membership and its split by class kind. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { readSplit } from '../../src/data/split-file.ts';
import { coverageCounts } from '../../src/ensemble/active.ts';
import type { CoverageRow } from '../../src/ensemble/metrics.ts';
import { silentLogger } from '../../src/util/log.ts';
import { maxAbsDiff, recomputeTestQ } from './recompute-test-q.ts';

const CONFIG = `
name: tiny-bridges
seed: 5
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 12, groups: 3, dim: 8, perClass: 40, seed: 3, classSpread: 0.5, bridges: {fraction: 0.25, groups: 2}}}
  generalist: {hidden: [8], epochs: 4, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  covariance: {}
  clusters: {k: 3, overlap: 1}
  specialists: {epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.005}}
  ensemble: {top_n: 1, overlap_ablation: true, weight: 1}
  report: {}
`;

const dirs: string[] = [];
const tmp = (p: string): string => {
  const d = mkdtempSync(path.join(os.tmpdir(), p));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Metrics {
  examples: number;
  by_coverage: CoverageRow[];
  by_membership: CoverageRow[];
  by_membership_kind: Record<string, CoverageRow[]>;
  generalist: { correct: number };
  ensemble: { correct: number };
  valid: { by_membership: CoverageRow[]; by_membership_kind: Record<string, CoverageRow[]> };
  overlap_ablation: { seed: number; memberships_removed: number; ensemble: { correct: number }; by_membership: CoverageRow[]; valid: { by_membership: CoverageRow[] } };
}
let out: string;
let m: Metrics;
beforeAll(async () => {
  out = tmp('ens-stage-');
  await runPipeline(parseConfig(CONFIG, 'tiny-bridges.yaml', STAGES), { out, cacheDir: tmp('ens-cache-'), log: silentLogger });
  m = JSON.parse(readFileSync(path.join(out, 'ensemble', 'metrics.json'), 'utf8')) as Metrics;
}, 60_000);

const sum = (rows: CoverageRow[], f: (r: CoverageRow) => number): number => rows.reduce((s, r) => s + f(r), 0);

describe('ensemble stage: by_membership', () => {
  it('groups test cases by the number of clusters holding the true class', async () => {
    const subsets = (JSON.parse(readFileSync(path.join(out, 'specialists', 'specialists.json'), 'utf8')) as { specialists: { classes: number[] }[] }).specialists.map((s) => s.classes);
    const test = await readSplit(path.join(out, 'ingest', 'test.arrow'));
    const counts = coverageCounts(test.y, subsets, 12);
    const expected = new Array<number>(11).fill(0);
    for (const c of counts) expected[Math.min(c, 10)]!++;
    expect(m.by_membership.map((r) => r.examples)).toEqual(expected);
    expect(sum(m.by_membership, (r) => r.generalist_correct)).toBe(m.generalist.correct);
    expect(sum(m.by_membership, (r) => r.ensemble_correct)).toBe(m.ensemble.correct);
    // Active specialists holding the true class are a subset of the clusters holding it.
    expect(sum(m.by_coverage, (r) => r.specialists * r.examples)).toBeLessThanOrEqual(sum(m.by_membership, (r) => r.specialists * r.examples));
    expect(m.valid.by_membership).toHaveLength(11);
  });

  it('splits by_membership into bridge and ordinary classes of the synthetic recipe', () => {
    for (const t of [m, m.valid]) {
      expect(Object.keys(t.by_membership_kind).sort()).toEqual(['bridge', 'ordinary']);
      for (let k = 0; k <= 10; k++) expect(t.by_membership_kind.bridge![k]!.examples + t.by_membership_kind.ordinary![k]!.examples).toBe(t.by_membership[k]!.examples);
    }
    // round(0.25 * 12) = 3 of the 12 classes are bridges, every class has the same number of test rows.
    expect(sum(m.by_membership_kind.bridge!, (r) => r.examples) * 4).toBe(m.examples);
  });
});

describe('ensemble stage: cases and specialists aligned', () => {
  it("test q is the combination of each case's own generalist row and each active specialist's output on that row", async () => {
    const r = await recomputeTestQ(out);
    expect(r.head).toBe('dustbin');
    expect(r.labelsMatch).toBe(true);
    expect(r.n).toBe(m.examples);
    expect((m as unknown as { weight: number }).weight).toBeGreaterThan(0); // else q = p^g and the check would be empty
    expect(maxAbsDiff(r.stored, r.recomputed)).toBeLessThan(1e-5);
  });
});

describe('ensemble stage: overlap_ablation (one specialist per class, the others coarsened)', () => {
  it('solves the same cases again; removes (clusters holding - 1) memberships per class; same rows, same generalist', () => {
    const subsets = (JSON.parse(readFileSync(path.join(out, 'specialists', 'specialists.json'), 'utf8')) as { specialists: { classes: number[] }[] }).specialists.map((s) => s.classes);
    const per = new Array<number>(12).fill(0);
    for (const s of subsets) for (const c of s) per[c]!++;
    const a = m.overlap_ablation;
    expect(a.seed).toBe(5);
    expect(a.memberships_removed).toBe(per.reduce((t, k) => t + Math.max(k - 1, 0), 0));
    expect(a.memberships_removed).toBeGreaterThan(0); // overlap: 1 puts some classes in two clusters
    expect(a.by_membership.map((r) => r.examples)).toEqual(m.by_membership.map((r) => r.examples));
    expect(a.by_membership.map((r) => r.generalist_correct)).toEqual(m.by_membership.map((r) => r.generalist_correct));
    expect(sum(a.by_membership, (r) => r.ensemble_correct)).toBe(a.ensemble.correct);
    expect(a.valid.by_membership.map((r) => r.examples)).toEqual(m.valid.by_membership.map((r) => r.examples));
  });

  it('inspect prints the two tables side by side', async () => {
    const { describeSections } = await import('../../src/cli/sections.ts');
    const text = await describeSections(path.join(out, 'ensemble'));
    expect(text).toContain('overlap ablation: test cases by the number of clusters holding the true class');
    expect(text).toMatch(/clusters holding +examples +generalist correct +ensemble correct +one specialist per class/);
  });

  it('the HTML report shows the ablation table with the memberships withheld', () => {
    const html = readFileSync(path.join(out, 'report', 'index.html'), 'utf8');
    expect(html).toContain('Overlap ablation: one specialist per class');
    expect(html).toContain(`(${m.overlap_ablation.memberships_removed} memberships withheld)`);
    expect(html).toMatch(/<th>one specialist per class<\/th>/);
  });
});
