import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { specialistsResult, type ModelRun, type SpecialistsResultInput } from '../../pipeline/stages/specialists-result.ts';
import { buildResult, resultsDeps, resultsOptionalDeps, type ResultsParams } from '../../pipeline/stages/results.ts';
import { parseConfig } from '../../pipeline/config.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { ArtifactError } from '../../src/util/errors.ts';

/** A split of `examples` cases with `correct` right. */
const split = (correct: number, examples: number) => ({ accuracy: correct / examples, errors: examples - correct, examples });
const model = (name: string, testCorrect: number, validCorrect: number, seconds: number, rss: number): ModelRun => ({
  name,
  metrics: { test: split(testCorrect, 1000), valid: split(validCorrect, 500) },
  cost: { seconds, peak_rss_mb: rss },
});
const row = (k: number, examples: number, g: number, e: number) => ({ specialists: k, label: String(k), examples, generalist_correct: g, ensemble_correct: e, relative_change: g > 0 ? (e - g) / g : null });

/**
 * Known answers: generalist 50.0% on test; ensemble 51.5% (+1.5 points: (b) met); student 51.2%,
 * student_self 50.3%: +0.9 points >= 0.5 x 1.5 = 0.75 ((d) met, ratio 0.6); specialists pooled
 * (80 + 30) / 150 vs (70 + 33) / 150 on valid ((a) met), one of the two measured beats the generalist.
 */
function input(): SpecialistsResultInput {
  return {
    generalist: model('generalist', 500, 260, 12, 800),
    clusters: { name: 'clusters', file: { k: 3, classes: 12, classes_per_coverage: { '1': 10, '2': 2 }, clusters: [{ id: 0, size: 4 }, { id: 1, size: 5 }, { id: 2, size: 3 }] }, cost: { seconds: 0.5, peak_rss_mb: 300 } },
    specialists: {
      name: 'specialists',
      summary: {
        specialists: [
          { id: 'specialist-00', size: 4, within_examples: 100, specialist_accuracy_within: 0.8, generalist_accuracy_within: 0.7, natural_rate: 0.6, mean_dustbin_prob: 0.62 },
          { id: 'specialist-01', size: 5, within_examples: 50, specialist_accuracy_within: 0.6, generalist_accuracy_within: 0.66, natural_rate: 0.8, mean_dustbin_prob: 0.75 },
          // no valid case in its subset: its accuracies were NaN, written as null
          { id: 'specialist-02', size: 3, within_examples: 0, specialist_accuracy_within: null, generalist_accuracy_within: null, natural_rate: 1, mean_dustbin_prob: 0.97 },
        ],
      },
      cost: { seconds: 30, peak_rss_mb: 900, job_peak_rss_mb: 700 },
    },
    ensemble: {
      name: 'ensemble',
      metrics: {
        examples: 1000,
        generalist: { accuracy: 0.5, correct: 500 },
        ensemble: { accuracy: 0.515, correct: 515 },
        by_membership: [row(0, 0, 0, 0), row(1, 600, 300, 309), row(2, 400, 200, 206)],
        weight: 0.5,
        weight_table: [{ weight: 0, accuracy: 0.52 }, { weight: 0.5, accuracy: 0.54 }, { weight: 1, accuracy: 0.53 }],
        weight_at_top: false,
        valid: { generalist: { accuracy: 0.52, correct: 260 }, ensemble: { accuracy: 0.54, correct: 270 } },
      },
      cost: { seconds: 5, peak_rss_mb: 1000 },
    },
    student: model('student', 512, 265, 10, 850),
    studentSelf: model('student_self', 503, 262, 10, 840),
    generalistMore: model('generalist_more', 508, 263, 24, 810),
    notRun: [],
  };
}

type Json = {
  targets: {
    a: { met: boolean | null; specialists_accuracy: number; generalist_accuracy: number; gain: number; examples: number; beat: number; of: number };
    b: { met: boolean; gain: number };
    d: { met: boolean | null; student_gain: number | null; ensemble_gain: number; required_gain: number; ratio: number | null };
  };
  models: Record<string, Record<string, unknown> | null>;
  specialists: Record<string, unknown>;
  clusters: Record<string, unknown>;
  compute: Record<string, unknown> | null;
  coverage: { label: string }[];
  not_run: string[];
};
const run = (i: SpecialistsResultInput) => {
  const r = specialistsResult(i);
  return { json: r.json as unknown as Json, md: r.markdown };
};

describe('specialists result (hand-made metrics)', () => {
  it('targets met: the gains, the ratio (d), the numbers of each row', () => {
    const { json, md } = run(input());
    expect(json.targets.a).toMatchObject({ met: true, examples: 150, beat: 1, of: 2 });
    expect(json.targets.a.specialists_accuracy).toBeCloseTo(110 / 150, 12);
    expect(json.targets.a.generalist_accuracy).toBeCloseTo(103 / 150, 12);
    expect(json.targets.a.gain).toBeCloseTo(7 / 150, 12);
    expect(json.targets.b.met).toBe(true);
    expect(json.targets.b.gain).toBeCloseTo(0.015, 12);
    expect(json.targets.d.met).toBe(true);
    expect(json.targets.d.student_gain).toBeCloseTo(0.009, 12);
    expect(json.targets.d.required_gain).toBeCloseTo(0.0075, 12);
    expect(json.targets.d.ratio).toBeCloseTo(0.6, 12);
    expect(json.models.ensemble).toMatchObject({ test_accuracy: 0.515, test_errors: 485, valid_accuracy: 0.54, weight: 0.5, seconds: 5, peak_rss_mb: 1000 });
    expect(json.models.generalist).toMatchObject({ test_accuracy: 0.5, test_errors: 500, valid_accuracy: 0.52, seconds: 12, peak_rss_mb: 800 });
    expect(json.models.specialists).toMatchObject({ count: 3, in_subset_examples: 150, seconds: 30, peak_rss_mb: 900, job_peak_rss_mb: 700 });
    expect(json.specialists).toMatchObject({ count: 3, measured: 2, beat_generalist: 1, worst: { id: 'specialist-01' }, best: { id: 'specialist-00' }, worst_calibrated: { id: 'specialist-01' }, without_valid_cases: ['specialist-02'] });
    expect(json.specialists.mean_gain as number).toBeCloseTo(0.02, 12);
    expect(json.specialists.mean_dustbin_prob as number).toBeCloseTo(0.78, 12);
    expect(json.specialists.mean_natural_rate as number).toBeCloseTo(0.8, 12);
    expect(json.clusters).toMatchObject({ k: 3, size_min: 3, size_mean: 4, size_max: 5 });
    expect(json.coverage.map((r) => r.label)).toEqual(['1', '2']); // the empty bucket left out
    expect(json.compute).toMatchObject({ route_seconds: 45, route_stages: { specialists: 30, ensemble: 5, student: 10 }, generalist_more_seconds: 24, generalist_seconds: 12 });
    expect(json.compute!.ensemble_minus_generalist_more as number).toBeCloseTo(0.007, 12);
    expect(json.compute!.student_minus_generalist_more as number).toBeCloseTo(0.004, 12);
    expect(json.not_run).toEqual([]);

    expect(md).toContain('| model | test accuracy (of 1000) | test errors | valid accuracy (of 500) | stage time | peak RSS |');
    expect(md).toContain("| generalist 'generalist' | 50.00% | 500 | 52.00% | 12.0 s | 800 MiB |");
    expect(md).toContain("| 3 specialists 'specialists', each in its own subset | - | - | 73.33% in-subset (generalist 68.67%, 150 cases) | 30.0 s | 900 MiB (largest job 700 MiB) |");
    expect(md).toContain("| ensemble 'ensemble' (generalist + specialists, weight 0.5) | 51.50% | 485 | 54.00% | 5.0 s | 1,000 MiB |");
    expect(md).toContain("| control 'student_self', distilled from the generalist alone | 50.30% | 497 | 52.40% | 10.0 s | 840 MiB |");
    expect(md).toContain('- (a) specialists beat the generalist within their own subsets on valid: **met**: 73.33% vs 68.67% (+4.67 points) pooled over 150 in-subset cases; 1 of 2 specialists beat it in their own subset');
    expect(md).toContain('- (b) ensemble beats the generalist by >= 1 point on test: **met**: 51.50% vs 50.00% (+1.50 points)');
    expect(md).toContain('- (d) student - student_self >= 0.5 x (ensemble - generalist) on test: **met**: 51.20% - 50.30% = +0.90 points vs 0.5 x +1.50 points = +0.75 points (ratio 0.6)');
    expect(md).toContain('| 1 | 600 | 300 | 309 | 50.00% | 51.50% | +3.0% |');
    expect(md).toContain("- 1 of 2 specialists beat the generalist in their own subset; mean gain +2.00 points; worst 'specialist-01' -6.00 points; best 'specialist-00' +10.00 points; no valid cases in the subset of 'specialist-02'");
    expect(md).toContain("- dustbin calibration: mean dustbin probability 0.78 vs natural rate 0.8 (largest gap: 'specialist-01', 0.75 vs 0.8)");
    expect(md).toContain("- clusters 'clusters': 3 clusters of 3-5 classes (mean 4); classes by the number of clusters holding them: 1: 10, 2: 2");
    expect(md).toContain('- combination weight 0.5 chosen on valid (0: 52.00%, 0.5: 54.00%, 1: 53.00%)');
    expect(md).toContain("- specialist route: 'specialists' 30.0 s + 'ensemble' 5.0 s + 'student' 10.0 s = 45.0 s; 'generalist_more' 24.0 s (the generalist 'generalist': 12.0 s)");
    expect(md).toContain("- on test: ensemble - 'generalist_more' = +0.70 points; student - 'generalist_more' = +0.40 points");
    expect(md).not.toMatch(/not in this run folder|not evaluated|scored the generalist at/);
  });

  it('targets not met: each line says so with its numbers', () => {
    const i = input();
    // (b): 50.5% vs 50.0%; (d): 50.5% - 50.3% = 0.2 points < 0.5 x 0.5 = 0.25 points; (a): the specialists worse in their subsets
    i.ensemble.metrics = { ...i.ensemble.metrics, ensemble: { accuracy: 0.505, correct: 505 } };
    i.student = model('student', 505, 262, 10, 850);
    i.specialists.summary.specialists = i.specialists.summary.specialists.map((s) => ({ ...s, specialist_accuracy_within: s.generalist_accuracy_within, generalist_accuracy_within: s.specialist_accuracy_within }));
    const { json, md } = run(i);
    expect(json.targets.a.met).toBe(false);
    expect(json.targets.a.gain).toBeCloseTo(-7 / 150, 12);
    expect(json.targets.a.beat).toBe(1);
    expect(json.targets.b.met).toBe(false);
    expect(json.targets.d.met).toBe(false);
    expect(json.targets.d.ratio).toBeCloseTo(0.4, 12);
    expect(md).toContain('- (a) specialists beat the generalist within their own subsets on valid: **not met**: 68.67% vs 73.33% (-4.67 points)');
    expect(md).toContain('- (b) ensemble beats the generalist by >= 1 point on test: **not met**: 50.50% vs 50.00% (+0.50 points)');
    expect(md).toContain('- (d) student - student_self >= 0.5 x (ensemble - generalist) on test: **not met**: 50.50% - 50.30% = +0.20 points vs 0.5 x +0.50 points = +0.25 points (ratio 0.4)');
  });

  it('(b) at exactly one point is met despite float rounding; (d) without an ensemble gain is not met and has no ratio', () => {
    const i = input();
    // 0.57 - 0.56 = 0.00999999999999989 in floats
    i.generalist = model('generalist', 560, 260, 12, 800);
    i.ensemble.metrics = { ...i.ensemble.metrics, generalist: { accuracy: 0.56, correct: 560 }, ensemble: { accuracy: 0.57, correct: 570 } };
    expect(run(i).json.targets.b.met).toBe(true);
    i.ensemble.metrics = { ...i.ensemble.metrics, ensemble: { accuracy: 0.55, correct: 550 } };
    const { json, md } = run(i);
    expect(json.targets.b.met).toBe(false);
    expect(json.targets.d).toMatchObject({ met: false, ratio: null });
    expect(md).toContain('(the ensemble does not beat the generalist: nothing to transfer)');
  });

  it('a missing optional control: left out of the table, named in not_run, (d) not evaluated', () => {
    const i = input();
    i.studentSelf = null;
    i.generalistMore = null;
    i.notRun = ['student_self', 'generalist_more'];
    const { json, md } = run(i);
    expect(json.not_run).toEqual(['student_self', 'generalist_more']);
    expect(json.targets.d).toMatchObject({ met: null, student_gain: null, ratio: null });
    expect(json.models.student_self).toBeNull();
    expect(json.compute).toBeNull();
    expect(md).not.toContain("control 'student_self'");
    expect(md).toContain('- (d) student - student_self >= 0.5 x (ensemble - generalist) on test: **not evaluated**: no student_self control in this run folder');
    expect(md).toContain('- no generalist_more control in this run folder');
    expect(md.endsWith("- not in this run folder, so not in the table: 'student_self', 'generalist_more' (`npm run pipeline -- --config FILE --only NAME` trains one; then rerun the results stage)\n")).toBe(true);
  });

  it('a specialist level with the generalist in its subset does not count as beating it', () => {
    const i = input();
    i.specialists.summary.specialists[1] = { ...i.specialists.summary.specialists[1]!, specialist_accuracy_within: 0.66 };
    const { json, md } = run(i);
    expect(json.targets.a.beat).toBe(1);
    expect(json.specialists.beat_generalist).toBe(1);
    expect(md).toContain("- 1 of 2 specialists beat the generalist in their own subset; mean gain +5.00 points; worst 'specialist-01' 0.00 points;");
  });

  it('the generalist the ensemble scored differs from the generalist stage: a line says so', () => {
    const i = input();
    i.ensemble.metrics = { ...i.ensemble.metrics, generalist: { accuracy: 0.49, correct: 490 } };
    expect(run(i).md).toContain("- the ensemble stage scored the generalist at 49.00% on test, 'generalist' its own metrics at 50.00%");
  });
});

describe('results stage, kind specialists', () => {
  const cfg = (results: string) =>
    `name: t\nbackend: cpu\nstages:\n  ingest: {dataset: {recipe: mnist}}\n  generalist: {hidden: [8]}\n  covariance: {}\n  clusters: {k: 2}\n  specialists: {}\n  ensemble: {}\n` +
    `  student: {type: distill, teacher_targets: ensemble, hidden: [8], loss: {type: soft, T: 2}}\n  more: {type: train, hidden: [8]}\n  results: ${results}\n`;

  it('defaults the stage names; the controls are optional deps', () => {
    const c = parseConfig(cfg('{kind: specialists, generalist_more: more}'), 't.yaml', STAGES);
    const p = c.stages.at(-1)!.params as ResultsParams;
    expect(resultsDeps(p)).toEqual(['generalist', 'clusters', 'specialists', 'ensemble', 'student']);
    expect(resultsOptionalDeps(p)).toEqual(['more']);
    expect(() => parseConfig(cfg('{kind: specialists, student_self: nope}'), 't.yaml', STAGES)).toThrow(/reads stage 'nope', which is not in the config/);
  });

  it('reads the stage files; a file of the wrong shape names the stage, the file and the key', () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'spres-'));
    try {
      const i = input();
      const put = (stage: string, file: string, value: unknown): void => {
        mkdirSync(path.join(root, stage), { recursive: true });
        writeFileSync(path.join(root, stage, file), JSON.stringify(value));
      };
      put('generalist', 'metrics.json', i.generalist.metrics);
      put('student', 'metrics.json', i.student.metrics);
      put('student_self', 'metrics.json', i.studentSelf!.metrics);
      put('clusters', 'clusters.json', i.clusters.file);
      put('specialists', 'specialists.json', i.specialists.summary);
      put('ensemble', 'metrics.json', i.ensemble.metrics);
      const p: ResultsParams = { kind: 'specialists', generalist: 'generalist', clusters: 'clusters', specialists: 'specialists', ensemble: 'ensemble', student: 'student', student_self: 'student_self', generalist_more: 'generalist_more' };
      const dir = (s: string) => path.join(root, s);
      const r = buildResult(p, dir, (s) => s !== 'generalist_more');
      const want = specialistsResult({ ...i, generalist: { ...i.generalist, cost: null }, student: { ...i.student, cost: null }, studentSelf: { ...i.studentSelf!, cost: null }, generalistMore: null, notRun: ['generalist_more'], clusters: { ...i.clusters, cost: null }, specialists: { ...i.specialists, cost: null }, ensemble: { ...i.ensemble, cost: null } });
      expect(r.json).toEqual(want.json);
      expect(r.markdown).toBe(want.markdown);
      put('ensemble', 'metrics.json', { ...i.ensemble.metrics, weight: 'auto' });
      expect(() => buildResult(p, dir, (s) => s !== 'generalist_more')).toThrow(ArtifactError);
      expect(() => buildResult(p, dir, (s) => s !== 'generalist_more')).toThrow(/ensemble[/\\]metrics\.json of stage 'ensemble' is not what a 'specialists' result reads \(weight: /);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
