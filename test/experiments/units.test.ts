import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../pipeline/config.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { selectTransfer } from '../../pipeline/stages/transfer.ts';
import { gridPoints } from '../../pipeline/stages/bias-adjust.ts';
import { ensembleAccuracy, memberSeed } from '../../pipeline/stages/train-ensemble.ts';
import { logOfProbabilities } from '../../pipeline/stages/teachers.ts';
import {
  ensembleResult,
  markdownTable,
  mnistPaperResult,
  omittedClassResult,
  onlyClassesResult,
  softRegulariserResult,
  temperatureResult,
} from '../../pipeline/stages/experiment-results.ts';
import type { BiasAdjustMetrics } from '../../pipeline/stages/bias-adjust.ts';
import type { EnsembleMetrics } from '../../pipeline/stages/train-ensemble.ts';
import { ConfigError, DataError } from '../../src/util/errors.ts';
import { buildResult, optimizerText, trainingOf } from '../../pipeline/stages/results.ts';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const split = (errors: number, examples: number) => ({ accuracy: (examples - errors) / examples, errors, examples, loss: 0 });

describe('transfer set selection', () => {
  // labels: class 0 at rows 0,3,6,9; class 1 at 1,4,7; class 2 at 2,5,8
  const labels = Int32Array.from([0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);

  it('the whole split by default, class filters exactly', () => {
    expect([...selectTransfer(labels, 3, {}, 1)]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect([...selectTransfer(labels, 3, { omit_classes: [1] }, 1)]).toEqual([0, 2, 3, 5, 6, 8, 9]);
    expect([...selectTransfer(labels, 3, { only_classes: [2, 1] }, 1)]).toEqual([1, 2, 4, 5, 7, 8]);
  });

  it('fraction: round(f * count) rows per class (at least 1), ascending, seeded', () => {
    const a = selectTransfer(labels, 3, { fraction: 0.5 }, 7);
    // class 0: round(2) = 2, class 1: round(1.5) = 2, class 2: 2
    expect(a.length).toBe(6);
    const counts = [0, 0, 0];
    for (const r of a) counts[labels[r]!]!++;
    expect(counts).toEqual([2, 2, 2]);
    expect([...a]).toEqual([...a].sort((x, y) => x - y));
    expect([...selectTransfer(labels, 3, { fraction: 0.5 }, 7)]).toEqual([...a]);
    expect(selectTransfer(labels, 3, { fraction: 0.01 }, 7).length).toBe(3);
    // an explicit seed overrides the run seed
    expect([...selectTransfer(labels, 3, { fraction: 0.5, seed: 3 }, 1)]).toEqual([...selectTransfer(labels, 3, { fraction: 0.5, seed: 3 }, 99)]);
    // with only_classes the fraction applies to the kept classes
    expect(selectTransfer(labels, 3, { fraction: 0.5, only_classes: [0] }, 7).length).toBe(2);
  });

  it('errors: unknown class, empty selection', () => {
    expect(() => selectTransfer(labels, 3, { omit_classes: [5] }, 1)).toThrow(ConfigError);
    expect(() => selectTransfer(labels, 3, { omit_classes: [0, 1, 2] }, 1)).toThrow(DataError);
  });
});

describe('small helpers', () => {
  it('gridPoints is exact by index', () => {
    expect(gridPoints({ from: 0, to: 1, step: 0.25 })).toEqual([0, 0.25, 0.5, 0.75, 1]);
    const g = gridPoints({ from: -15, to: 0, step: 0.1 });
    expect(g.length).toBe(151);
    expect(g[0]).toBe(-15);
    expect(g[150]).toBe(0);
    expect(g[76]).toBe(-7.4);
    expect(gridPoints({ from: 0, to: 0.95, step: 0.5 })).toEqual([0, 0.5]);
  });

  it('ensembleAccuracy: arithmetic vs geometric mean of the members, by hand', () => {
    const lg = (p: number[]) => Float32Array.from(p.map(Math.log));
    // (0.9, 0.1) & (0.2, 0.8): arithmetic (0.55, 0.45) -> class 0
    expect(ensembleAccuracy([lg([0.9, 0.1]), lg([0.2, 0.8])], Int32Array.from([0]), 2, 'arithmetic')).toEqual({ accuracy: 1, errors: 0, examples: 1 });
    // (0.9, 0.1) & (0.05, 0.95): arithmetic (0.475, 0.525) -> class 1
    expect(ensembleAccuracy([lg([0.9, 0.1]), lg([0.05, 0.95])], Int32Array.from([0]), 2, 'arithmetic').errors).toBe(1);
    // (0.01, 0.99), (0.8, 0.2), (0.8, 0.2): arithmetic (0.5367, 0.4633) -> 0;
    // geometric (0.01 * 0.64)^(1/3) = 0.186 vs (0.99 * 0.04)^(1/3) = 0.341 -> 1: the two modes disagree
    const m = [lg([0.01, 0.99]), lg([0.8, 0.2]), lg([0.8, 0.2])];
    expect(ensembleAccuracy(m, Int32Array.from([0]), 2, 'arithmetic').errors).toBe(0);
    expect(ensembleAccuracy(m, Int32Array.from([0]), 2, 'geometric').errors).toBe(1);
  });

  it('member seeds differ and are reproducible; log of probabilities floors zeros', () => {
    const seeds = Array.from({ length: 10 }, (_, k) => memberSeed(1, k));
    expect(new Set(seeds).size).toBe(10);
    expect(memberSeed(1, 3)).toBe(seeds[3]);
    const l = logOfProbabilities(Float32Array.from([1, 0.5, 0]));
    expect(l[0]).toBe(0);
    expect(l[1]).toBeCloseTo(Math.log(0.5), 6);
    expect(l[2]).toBeCloseTo(Math.log(1e-30), 3);
  });
});

describe('config validation of the new stage types', () => {
  const cfg = (stages: string) => `name: t\nbackend: cpu\nstages:\n  ingest: {dataset: {recipe: mnist}}\n  teacher: {type: train, hidden: [8]}\n${stages}`;
  const parse = (stages: string) => parseConfig(cfg(stages), 't.yaml', STAGES);

  it('accepts a distill with one teacher or a list; fills defaults', () => {
    const c = parse('  d: {type: distill, teacher: teacher, loss: {type: soft, T: 4}}\n');
    const d = c.stages.find((s) => s.name === 'd')!;
    expect(d.params).toMatchObject({ data: 'ingest', teacher: ['teacher'], combine: 'arithmetic', loss: { type: 'soft', T: 4, alpha: 0.9 }, transfer: {}, model: { type: 'mlp', hidden: [800, 800] } });
    expect(d.def.deps(d.params, [])).toEqual(['ingest', 'teacher']);
    const e = parse('  t2: {type: train, hidden: [8]}\n  d: {type: distill, teacher: [teacher, t2], combine: geometric, loss: {type: logits}}\n').stages.at(-1)!;
    expect(e.params).toMatchObject({ teacher: ['teacher', 't2'], combine: 'geometric', loss: { type: 'logits', alpha: 1 } });
  });

  it('rejects: no teacher for a soft loss, a teacher for a hard loss, both teacher kinds, jitter, both class filters, bad T', () => {
    const bad: [string, RegExp][] = [
      ['  d: {type: distill, loss: {type: soft, T: 4}}\n', /stages\.d\.teacher: this loss needs a teacher/],
      ['  d: {type: distill, teacher: teacher, loss: {type: hard}}\n', /stages\.d\.teacher: loss \{type: hard\} uses no teacher/],
      ['  d: {type: distill, teacher: teacher, teacher_targets: teacher, loss: {type: soft, T: 2}}\n', /stages\.d\.teacher_targets: give either/],
      ['  s: {type: train, hidden: [4], epochs: 1}\n  d: {type: distill, teacher_targets: s, jitter: 2, loss: {type: soft, T: 2}}\n', /stages\.d\.jitter: precomputed 'teacher_targets' exist only for the unjittered/],
      ['  d: {type: distill, loss: {type: hard}, transfer: {omit_classes: [3], only_classes: [7]}}\n', /give either 'omit_classes' or 'only_classes'/],
      ['  d: {type: distill, teacher: teacher, loss: {type: soft, T: 0}}\n', /stages\.d\.loss\.T/],
      ['  d: {type: distill, teacher: teacher, loss: {type: soft, T: 2, beta: 1}}\n', /unknown key\(s\) 'beta'/],
      ['  d: {type: distill, teacher: nope, loss: {type: soft, T: 2}}\n', /reads stage 'nope', which is not in the config/],
      ['  b: {type: bias-adjust, model: teacher, classes: [3], grid: {from: 1, to: 0, step: 0.1}}\n', /'to' must be >= 'from'/],
      ['  r: {type: results, kind: mnist-paper, teacher: teacher, baseline: teacher}\n', /stages\.r\.distilled/],
      ['  s: {type: distill-sweep, teacher: teacher, widths: [], temperatures: [2]}\n', /stages\.s\.widths/],
      ['  f: {type: train, train_on: train+valid, hidden: [4], epochs: 1}\n', /stages\.f\.select: train_on 'train\+valid' trains on the validation rows.*set select: last/],
    ];
    for (const [stages, re] of bad) {
      let err: unknown;
      try {
        parse(stages);
      } catch (e) {
        err = e;
      }
      expect(err, stages).toBeInstanceOf(ConfigError);
      expect((err as Error).message, stages).toMatch(re);
    }
  });

  it('the experiment configs parse with the real registry', async () => {
    const { readFileSync } = await import('node:fs');
    for (const name of ['mnist-paper', 'mnist-temperature', 'mnist-omit-3', 'mnist-only-7-8', 'mnist-ensemble', 'mnist-ensemble-jitter', 'mnist-soft-regulariser']) {
      const file = `pipeline/configs/${name}.yaml`;
      const c = parseConfig(readFileSync(file, 'utf8'), file, STAGES);
      expect(c.name).toBe(name);
      expect(c.stages.map((s) => s.type).slice(-2)).toEqual(['results', 'report']);
    }
  });
});

describe('shipped configs', () => {
  it('every config in pipeline/configs parses with the real registry, its name the file name', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const files = readdirSync('pipeline/configs').filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(13);
    for (const f of files) {
      const file = `pipeline/configs/${f}`;
      const c = parseConfig(readFileSync(file, 'utf8'), file, STAGES);
      expect(c.name, file).toBe(f.replace(/\.yaml$/, ''));
    }
  });
});

describe('experiment result tables (hand-made metrics)', () => {
  it('markdownTable', () => {
    expect(markdownTable(['a', 'b'], [['1', '2']])).toBe('| a | b |\n| --- | --- |\n| 1 | 2 |');
  });

  it('mnist-paper: errors, gap closed, paper numbers', () => {
    const r = mnistPaperResult({ test: split(70, 10000), arch: '2x1200', jitter: 2 }, { test: split(150, 10000), arch: '2x800' }, { test: split(90, 10000), T: 20, alpha: 1, arch: '2x800', jitter: 2 }, [
      { name: 'hj', test: split(120, 10000), arch: '2x800', jitter: 2 },
    ]);
    expect(r.json).toMatchObject({ teacher_errors: 70, baseline_errors: 150, distilled_errors: 90, test_examples: 10000, distillation_beats_baseline: true });
    expect(r.json.gap_closed).toBeCloseTo(60 / 80, 12);
    expect(r.json.paper).toMatchObject({ teacher_errors: 67, baseline_errors: 146, distilled_errors: 74 });
    expect(r.markdown).toContain('| teacher 2x1200, hard labels, jitter 2 (paper: 2x1200, dropout, max-norm, jitter) | 70 | 99.30% | 67 |');
    expect(r.markdown).toContain('| student 2x800, hard labels, no jitter | 150 | 98.50% | 146 |');
    expect(r.markdown).toContain('| student 2x800, distilled (T=20, alpha=1), jitter 2 | 90 | 99.10% | 74 |');
    expect(r.markdown).toContain("| control 'hj': 2x800, hard labels, jitter 2 | 120 | 98.80% | - |");
    expect(r.json).toMatchObject({ distilled_jitter: 2, controls: { hj: { errors: 120, training: '2x800, hard labels, jitter 2' } } });
    // with valid metrics on every model, a valid-errors column (what a choice between students may use)
    const v = mnistPaperResult({ test: split(70, 10000), valid: split(40, 6000), arch: '2x1200' }, { test: split(150, 10000), valid: split(97, 6000), arch: '2x800' }, { test: split(90, 10000), valid: split(50, 6000), T: 20, alpha: 1, arch: '2x800' });
    expect(v.markdown).toContain('| model | test errors (of 10000) | test accuracy | valid errors (of 6000) | paper errors (of 10,000) |');
    expect(v.markdown).toContain('| student 2x800, distilled (T=20, alpha=1), no jitter | 90 | 99.10% | 50 | 74 |');
    // the teacher's recipe from other seeds: rows, and the spread of the teacher's errors (70, 64, 75)
    const seeds = mnistPaperResult({ test: split(70, 10000), arch: '2x1200' }, { test: split(150, 10000) }, { test: split(90, 10000) }, [], [
      { name: 's2', test: split(64, 10000), arch: '2x1200', stage_seed: 2 },
      { name: 's3', test: split(75, 10000), arch: '2x1200', stage_seed: 3 },
    ]);
    expect(seeds.json.teacher_seeds).toEqual({ runs: 3, errors: [70, 64, 75], mean: 209 / 3, min: 64, max: 75, other_seeds: ['s2', 's3'] });
    expect(seeds.markdown).toContain("| teacher's recipe, another seed 's2': 2x1200, hard labels, no jitter, seed 2 | 64 | 99.36% | - |");
    expect(seeds.markdown).toContain("- the teacher's recipe from 3 seeds (the reported teacher, 's2', 's3'): 70, 64, 75 test errors; mean 69.7, range 64-75 (paper: 67, one run)");
    expect(r.json.teacher_seeds).toBeNull();
    // a teacher no better than the baseline: no gap to close
    expect(mnistPaperResult({ test: split(200, 1000) }, { test: split(150, 1000) }, { test: split(90, 1000) }).json.gap_closed).toBeNull();
  });

  it('temperature: errors per width and T, best T', () => {
    const cell = (width: number, T: number | null, e: number) => ({ width, T, test: split(e, 1000), valid: split(e, 500), best_epoch: 1, transfer_accuracy: 1 });
    const r = temperatureResult({
      widths: [30, 300],
      temperatures: [2, 8],
      depth: 2,
      alpha: 1,
      teacher: ['t'],
      transfer_examples: 10,
      cells: [cell(30, null, 50), cell(30, 2, 40), cell(30, 8, 45), cell(300, null, 30), cell(300, 2, 25), cell(300, 8, 20)],
    });
    expect(r.json.errors).toEqual({ '30': { hard: 50, '2': 40, '8': 45 }, '300': { hard: 30, '2': 25, '8': 20 } });
    expect(r.json.best_temperature).toEqual({ '30': 2, '300': 8 });
    expect(r.markdown).toContain('| 2 x 30 | 50 | 40 | 45 | 2 |');
  });

  const adj = (classes: number[], before: [number, number], after: [number, number], delta: number): BiasAdjustMetrics => {
    const s = (errors: number, cErrors: number) => ({ accuracy: 1 - errors / 1000, errors, examples: 1000, classes: Object.fromEntries(classes.map((c) => [String(c), { accuracy: 1 - cErrors / 100, errors: cErrors, examples: 100 }])) });
    return {
      test: split(after[0], 1000),
      valid: split(0, 500),
      best_epoch: 3,
      adjusted_classes: classes,
      delta,
      before: { test: s(...before), valid: s(0, 0) },
      after: { test: s(...after), valid: s(0, 0) },
      evaluations: [],
    };
  };

  it('omitted class: before/after, class accuracy', () => {
    const r = omittedClassResult(adj([3], [120, 80], [40, 5], 3.5), { test: split(120, 1000), transfer_examples: 900, T: 20 });
    expect(r.json).toMatchObject({ omitted_class: 3, errors_before: 120, errors_after: 40, class_errors_before: 80, class_errors_after: 5, class_examples: 100, class_accuracy_after: 0.95, bias_offset: 3.5, transfer_examples: 900 });
    expect(r.json.paper).toMatchObject({ errors_before: 206, errors_after: 109, class_accuracy_after: 0.986 });
    expect(r.markdown).toContain('| bias of class 3 +3.5 (paper +3.5) | 40 | 5 of 100 | 95.0% | 109 |');
  });

  it('only classes: error rates', () => {
    const r = onlyClassesResult(adj([7, 8], [473, 0], [132, 0], -7.5), null);
    expect(r.json).toMatchObject({ kept_classes: [7, 8], error_rate_before: 0.473, error_rate_after: 0.132, bias_offset: -7.5 });
    expect(r.markdown).toContain('| biases of 7 and 8 -7.5 (paper -7.6) | 132 | 13.2% | 13.2% |');
  });

  it('ensemble: fraction of the gain transferred', () => {
    const m = (acc: number) => ({ seed: 1, test: { accuracy: acc, errors: Math.round((1 - acc) * 1000), examples: 1000, loss: 0 }, valid: split(0, 10), best_epoch: 1 });
    const ens: EnsembleMetrics = {
      test: { accuracy: 0.98, errors: 20, examples: 1000 },
      valid: { accuracy: 1, errors: 0, examples: 10 },
      combine: 'arithmetic',
      members: [m(0.95), m(0.97)],
      single_mean: { test_accuracy: 0.96, test_errors: 40 },
    };
    const r = ensembleResult(ens, { test: split(25, 1000), T: 2, alpha: 0.5 });
    // (0.975 - 0.96) / (0.98 - 0.96) = 0.75
    expect(r.json.fraction_transferred).toBeCloseTo(0.75, 12);
    expect(r.json.single_accuracy_range).toEqual([0.95, 0.97]);
    expect(r.json.paper).toMatchObject({ baseline_accuracy: 0.589, ensemble_accuracy: 0.611, distilled_accuracy: 0.608 });
    expect(ensembleResult({ ...ens, test: { accuracy: 0.95, errors: 50, examples: 1000 } }, { test: split(25, 1000) }).json.fraction_transferred).toBeNull();
    // a student level with the members' mean (up to float rounding) kept none of the gain: 0.0%, not -0.0%
    const level = ensembleResult({ ...ens, single_mean: { test_accuracy: 0.9908000000000001, test_errors: 92 }, test: { accuracy: 0.9921, errors: 79, examples: 10000 } }, { test: split(92, 10000), T: 2, alpha: 0.5 });
    expect(level.markdown).toContain('fraction of the ensemble\'s gain transferred: 0.0% (paper');
    const c = ensembleResult(ens, { test: split(25, 1000) }, [{ name: 'hard_jitter', test: split(15, 1000), arch: '2x8', jitter: 2 }]);
    // (0.985 - 0.96) / 0.02 = 1.25: a control may pass the ensemble
    expect((c.json.controls as Record<string, { fraction_transferred: number }>).hard_jitter!.fraction_transferred).toBeCloseTo(1.25, 12);
    expect(c.markdown).toContain("| control 'hard_jitter': 2x8, hard labels, jitter 2 | 98.50% | 15 | - |");
  });

  it('soft regulariser: train and test accuracy of both arms', () => {
    const r = softRegulariserResult(
      { test: split(300, 1000), transfer: split(0, 60), transfer_examples: 60, best_epoch: 4 },
      { test: split(200, 1000), transfer: split(6, 60), transfer_examples: 60, best_epoch: 50, T: 2, alpha: 1 },
      { test: split(100, 1000) },
    );
    expect(r.json).toMatchObject({
      transfer_examples: 60,
      hard: { train_accuracy: 1, test_accuracy: 0.7, best_epoch: 4 },
      soft: { train_accuracy: 0.9, test_accuracy: 0.8, T: 2 },
      full: { test_accuracy: 0.9 },
      soft_beats_hard: true,
    });
    expect(r.markdown).toContain('| 100.00% | 70.00% | 67.3% | 44.5% |');
  });

  it('results: extra rows that have not run are left out and named; the reported rows are still required', () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'results-'));
    const put = (s: string, errors: number): void => {
      mkdirSync(path.join(root, s));
      writeFileSync(path.join(root, s, 'metrics.json'), JSON.stringify({ test: split(errors, 10000) }));
    };
    put('t', 70);
    put('b', 150);
    put('d', 75);
    put('c1', 120);
    const p = { kind: 'mnist-paper' as const, teacher: 't', baseline: 'b', distilled: 'd', controls: ['c1', 'c2'], teacher_seeds: ['s2'] };
    const dir = (s: string): string => path.join(root, s);
    const r = buildResult(p, dir, (s) => s === 'c1');
    expect(r.json).toMatchObject({ teacher_errors: 70, baseline_errors: 150, distilled_errors: 75, not_run: ['c2', 's2'], teacher_seeds: null });
    expect(Object.keys(r.json.controls as object)).toEqual(['c1']);
    expect(r.markdown).toMatch(/\| control 'c1'/);
    expect(r.markdown).not.toMatch(/'c2':/);
    expect(r.markdown.endsWith("- not in this run folder, so not in the table: 'c2', 's2' (`npm run pipeline -- --config FILE --only NAME` trains one; then rerun the results stage)\n")).toBe(true);
    // All present: an empty list and no line.
    const all = buildResult({ ...p, controls: ['c1'], teacher_seeds: [] }, dir);
    expect(all.json.not_run).toEqual([]);
    expect(all.markdown).not.toMatch(/not in this run folder/);
    // A reported row that is missing is an error, not a left-out row.
    expect(() => buildResult({ ...p, distilled: 'nope' }, dir, () => false)).toThrow(/cannot read .*metrics.json of stage 'nope'/);
  });

  it('optimizerText names the optimizer, its momentum (ramped or not) and the epochs from manifest params', () => {
    expect(optimizerText({ name: 'adam', lr: 0.001 }, 300)).toBe('Adam, 300 epochs');
    expect(optimizerText({ name: 'sgd', lr: 0.05, momentum: 0.5, final_momentum: 0.9 }, 300)).toBe('SGD momentum 0.5->0.9, 300 epochs');
    expect(optimizerText({ name: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true }, undefined)).toBe('SGD Nesterov momentum 0.9');
    expect(optimizerText(undefined, 30)).toBeUndefined();
    expect(optimizerText({ name: 'rmsprop' }, 30)).toBeUndefined();
  });

  it('trainingOf reads the stage manifest (following import stages); none gives {}, a corrupt one a clear error', () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'training-of-'));
    const manifest = (stage: string, type: string, params: Record<string, unknown>): string => {
      const d = path.join(root, stage);
      mkdirSync(d, { recursive: true });
      const m = {
        stage, type, params, seed: 1, key: 'k', inputs: {}, code: { sha256: 'c', files: 1 }, outputs: {},
        backend: { name: 'wasm', tfBackend: 'wasm', detail: '' }, started_at: '', ended_at: '', seconds: 1, peak_rss_mb: 1,
        package_version: '0', node_version: 'v20',
      };
      writeFileSync(path.join(d, 'manifest.json'), JSON.stringify(m));
      return d;
    };
    const t = manifest('t', 'train', { hidden: [1200, 1200], jitter: 2, input_dropout: 0.1, dropout: 0.5, max_norm: 3.5, seed: 2, epochs: 300, optimizer: { name: 'adam', lr: 0.001 } });
    const want = { arch: '2x1200', jitter: 2, regularisation: 'dropout 0.1/0.5, max-norm 3.5', stage_seed: 2, optimizer: 'Adam, 300 epochs' };
    expect(trainingOf(t)).toEqual(want);
    expect(trainingOf(manifest('imp', 'import', { from: t }))).toEqual(want);
    expect(trainingOf(manifest('r', 'train', { hidden: [30, 10], init_from: 't', epochs: 150 }))).toEqual({ arch: '30-10', continued: "continued from 't' for 150 epochs" });
    const cnn = { type: 'cnn', conv: [{ filters: 32, kernel: 5, pool: 2 }, { filters: 64, kernel: 5, pool: 2 }], dense: [512], conv_dropout: 0.1, dropout: 0.5 };
    expect(trainingOf(manifest('c', 'train', { model: cnn, jitter: 2, epochs: 40 })).regularisation).toBe('dropout 0.1 conv/0.5 dense');
    expect(trainingOf(manifest('c0', 'train', { model: { ...cnn, conv_dropout: 0 }, epochs: 40 })).regularisation).toBe('dropout 0/0.5');
    expect(trainingOf(path.join(root, 'never-ran'))).toEqual({});
    const bad = path.join(root, 'bad');
    mkdirSync(bad);
    writeFileSync(path.join(bad, 'manifest.json'), '{"stage": ');
    expect(() => trainingOf(bad)).toThrow(/bad[/\\]manifest\.json is corrupted \(not JSON\); rebuild the stage with the pipeline's --only bad --force/);
  });
});
