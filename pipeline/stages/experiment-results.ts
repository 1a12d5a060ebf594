/**
 * The paper's experiments as result tables: each builder takes the metrics of the stages an
 * experiment ran and returns `results.json` content (our numbers plus the paper's) and a
 * markdown table beside the paper's numbers. Pure functions (no I/O), so they are tested on
 * hand-made metrics.
 */
import type { BiasAdjustMetrics } from './bias-adjust.ts';
import type { SweepFile } from './distill-sweep.ts';
import type { EnsembleMetrics } from './train-ensemble.ts';

/** The part of a model stage's `metrics.json` the tables use. */
export interface ModelMetrics {
  test: { accuracy: number; errors: number; examples: number };
  valid?: { accuracy: number; errors: number; examples: number };
  best_epoch?: number | null;
  /** Accuracy on the transfer (training) set, written by `distill`. */
  transfer?: { accuracy: number; errors: number; examples: number };
  T?: number | null;
  alpha?: number | null;
  transfer_examples?: number;
  /** Hidden layers, e.g. `2x1200` (from the stage's manifest; not in metrics.json). */
  arch?: string;
  /** Input jitter in pixels the model was trained with (from the stage's manifest). */
  jitter?: number;
  /** Dropout and max-norm the model was trained with, e.g. `dropout 0.2/0.5, max-norm 3.5` (from the manifest). */
  regularisation?: string;
  /** Optimizer and epochs, e.g. `Adam, 300 epochs` (from the manifest). */
  optimizer?: string;
  /** For a model that continued an earlier stage's (`init_from`), e.g. `continued from 'teacher'` (from the manifest; its epochs are in `optimizer`). */
  continued?: string;
  /** The stage's own seed (its `seed` param, overriding the run's), from the manifest. */
  stage_seed?: number;
  /** Rows a `train` stage trained on (`train+valid`: a final model; its valid metrics are on seen rows). */
  trained_on?: 'train' | 'train+valid';
  /** Number of rows it trained on (written by `train`). */
  train_examples?: number;
  /** Teacher stage(s) of a distilled model (written by `distill`). */
  teacher?: string[];
  /** A distilled model whose teacher trained on train + valid: its valid errors are optimistic. */
  teacher_trained_on_valid?: boolean;
  /** True when a distilled model's teacher was queried on every (jittered) batch. */
  teacher_online?: boolean;
}

/** `jitter N` for a model trained on shifted inputs, else undefined. */
function jitterText(m: { jitter?: number }): string | undefined {
  return m.jitter ? `jitter ${m.jitter}` : undefined;
}

/** How a model row was trained, e.g. `2x800, distilled (T=20, alpha=1), jitter 2`. */
function describeTraining(m: ModelMetrics): string {
  const how = m.T !== undefined && m.T !== null ? `distilled (T=${num(m.T)}, alpha=${num(m.alpha)})` : 'hard labels';
  const rows = m.trained_on === 'train+valid' ? `trained on train + valid${m.train_examples ? ` (${m.train_examples.toLocaleString('en-US')} rows)` : ''}, last epoch` : undefined;
  const seed = m.stage_seed !== undefined ? `seed ${m.stage_seed}` : undefined;
  return [m.arch, m.regularisation, how, jitterText(m) ?? 'no jitter', m.optimizer, m.continued, rows, seed].filter(Boolean).join(', ');
}

/** What a builder returns. */
export interface ExperimentResult {
  json: Record<string, unknown>;
  markdown: string;
}

/** Numbers the paper reports (section numbers of arXiv:1503.02531). */
export const PAPER = {
  mnist: { teacher_errors: 67, baseline_errors: 146, distilled_errors: 74, T: 20, test_examples: 10_000 },
  omitted3: { errors_before: 206, class_errors_before: 133, errors_after: 109, class_errors_after: 14, class_examples: 1010, class_accuracy_after: 0.986, delta: 3.5 },
  only78: { error_rate_before: 0.473, error_rate_after: 0.132, delta: -7.6 },
  ensemble: { baseline_accuracy: 0.589, ensemble_accuracy: 0.611, distilled_accuracy: 0.608, fraction_transferred: (0.608 - 0.589) / (0.611 - 0.589), members: 10 },
  softRegulariser: { hard_train_accuracy: 0.673, hard_test_accuracy: 0.445, soft_test_accuracy: 0.57, full_test_accuracy: 0.589, fraction: 0.03 },
} as const;

/** A percentage with `digits` decimals; a value that rounds to zero prints as 0, never -0 (e.g. -0.0% from (0.9908 - 0.9908000000000001) / gain). */
export const pct = (v: number | null | undefined, digits = 2): string => {
  if (v === null || v === undefined || !Number.isFinite(v)) return '-';
  const s = (100 * v).toFixed(digits);
  return `${Number(s) === 0 ? (0).toFixed(digits) : s}%`;
};
/** A number with at most 4 decimals; `-` for null, undefined or a non-finite value. */
export const num = (v: number | null | undefined): string => (v === null || v === undefined || !Number.isFinite(v) ? '-' : String(+v.toFixed(4)));

/** A markdown table (header row, separator, body), cells already formatted. */
export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function doc(title: string, intro: string, table: string, notes: string[] = []): string {
  return [`# ${title}`, '', intro, '', table, '', ...notes.map((n) => `- ${n}`), ''].join('\n');
}

/** Errors scaled to 10,000 test cases (the paper's unit) when our test split is smaller. */
function per10k(errors: number, examples: number): number {
  return examples > 0 ? (errors * 10_000) / examples : NaN;
}

/**
 * The reported teacher's test errors beside those of the same recipe from other seeds: how much
 * the teacher's number moves with the seed alone. Null without other seeds.
 */
function seedSpread(teacher: ModelMetrics, others: readonly (ModelMetrics & { name: string })[]): { runs: number; errors: number[]; mean: number; min: number; max: number; other_seeds: string[] } | null {
  if (others.length === 0) return null;
  const errors = [teacher.test.errors, ...others.map((o) => o.test.errors)];
  return { runs: errors.length, errors, mean: errors.reduce((a, e) => a + e, 0) / errors.length, min: Math.min(...errors), max: Math.max(...errors), other_seeds: others.map((o) => o.name) };
}

/**
 * Paper section 3: teacher 2x1200, student 2x800 on hard labels, the same student distilled.
 * `controls` are extra rows; `teacherSeeds` are the teacher's recipe trained from other seeds
 * (summarised as the spread of the teacher's test errors; they never replace the teacher).
 */
export function mnistPaperResult(
  teacher: ModelMetrics,
  baseline: ModelMetrics,
  distilled: ModelMetrics,
  controls: (ModelMetrics & { name: string })[] = [],
  teacherSeeds: (ModelMetrics & { name: string })[] = [],
): ExperimentResult {
  const examples = teacher.test.examples;
  const spread = seedSpread(teacher, teacherSeeds);
  const json = {
    experiment: 'mnist-paper',
    teacher_errors: teacher.test.errors,
    baseline_errors: baseline.test.errors,
    distilled_errors: distilled.test.errors,
    test_examples: examples,
    T: distilled.T ?? null,
    alpha: distilled.alpha ?? null,
    distilled_jitter: distilled.jitter ?? 0,
    /** Extra rows: test errors of further students (by stage name), e.g. controls for jitter. */
    controls: Object.fromEntries(controls.map((c) => [c.name, { errors: c.test.errors, training: describeTraining(c) }])),
    /** Test errors of the reported teacher (first) and its recipe from other seeds. */
    teacher_seeds: spread,
    distillation_beats_baseline: distilled.test.errors < baseline.test.errors,
    /** Fraction of the teacher-vs-baseline gap the distilled student closes. */
    gap_closed: baseline.test.errors > teacher.test.errors ? (baseline.test.errors - distilled.test.errors) / (baseline.test.errors - teacher.test.errors) : null,
    paper: { teacher_errors: PAPER.mnist.teacher_errors, baseline_errors: PAPER.mnist.baseline_errors, distilled_errors: PAPER.mnist.distilled_errors, gap_closed: (146 - 74) / (146 - 67) },
  };
  // On a test subset (not 10,000 cases) a "per 10,000" column makes the errors comparable to the paper's.
  const scaled = examples !== 10_000;
  // Valid errors when every model has them: what a choice between the students may use (never test).
  const all = [teacher, baseline, distilled, ...controls, ...teacherSeeds];
  const validN = all.every((m) => m.valid) ? teacher.valid!.examples : null;
  const row = (name: string, m: ModelMetrics, paper: number): string[] => [
    name,
    String(m.test.errors),
    ...(scaled ? [num(per10k(m.test.errors, m.test.examples))] : []),
    pct(m.test.accuracy),
    // A model trained on the valid rows has no valid errors that mean anything.
    ...(validN !== null ? [m.trained_on === 'train+valid' ? '(trained on)' : m.teacher_trained_on_valid ? `${m.valid!.errors} (teacher trained on valid)` : String(m.valid!.errors)] : []),
    String(paper),
  ];
  const table = markdownTable(
    ['model', `test errors (of ${examples})`, ...(scaled ? ['per 10,000'] : []), 'test accuracy', ...(validN !== null ? [`valid errors (of ${validN})`] : []), 'paper errors (of 10,000)'],
    [
      row(`teacher ${describeTraining(teacher)} (paper: 2x1200, dropout, max-norm, jitter)`, teacher, PAPER.mnist.teacher_errors),
      row(`student ${describeTraining(baseline)}`, baseline, PAPER.mnist.baseline_errors),
      row(`student ${describeTraining(distilled)}`, distilled, PAPER.mnist.distilled_errors),
      ...controls.map((c) => [...row(`control '${c.name}': ${describeTraining(c)}`, c, 0).slice(0, -1), '-']),
      ...teacherSeeds.map((c) => [...row(`teacher's recipe, another seed '${c.name}': ${describeTraining(c)}`, c, 0).slice(0, -1), '-']),
    ],
  );
  return {
    json,
    markdown: doc('MNIST: distilling a large net into a small one (paper section 3)', 'Test errors on the MNIST test split.', table, [
      `share of the baseline-teacher gap closed by distillation: ${pct(json.gap_closed, 1)} (paper: ${pct(json.paper.gap_closed, 1)}; '-' when the teacher is not better than the baseline)`,
      ...(spread
        ? [
            `the teacher's recipe from ${spread.runs} seeds (the reported teacher, ${spread.other_seeds.map((n) => `'${n}'`).join(', ')}): ${spread.errors.join(', ')} test errors; ` +
              `mean ${num(+spread.mean.toFixed(1))}, range ${spread.min}-${spread.max} (paper: ${PAPER.mnist.teacher_errors}, one run)`,
          ]
        : []),
    ]),
  };
}

/** Paper section 3, temperatures: test errors per hidden width and temperature. */
export function temperatureResult(sweep: SweepFile): ExperimentResult {
  const cell = (w: number, T: number | null) => sweep.cells.find((c) => c.width === w && c.T === T);
  const hasHard = sweep.cells.some((c) => c.T === null);
  const errors: Record<string, Record<string, number | null>> = {};
  const bestT: Record<string, number | null> = {};
  for (const w of sweep.widths) {
    const row: Record<string, number | null> = {};
    if (hasHard) row.hard = cell(w, null)?.test.errors ?? null;
    let best: { T: number; e: number } | null = null;
    for (const T of sweep.temperatures) {
      const e = cell(w, T)?.test.errors ?? null;
      row[String(T)] = e;
      if (e !== null && (best === null || e < best.e)) best = { T, e };
    }
    errors[String(w)] = row;
    bestT[String(w)] = best?.T ?? null;
  }
  const examples = sweep.cells[0]?.test.examples ?? 0;
  const json = {
    experiment: 'mnist-temperature',
    widths: sweep.widths,
    depth: sweep.depth,
    temperatures: sweep.temperatures,
    alpha: sweep.alpha,
    test_examples: examples,
    /** errors[width][T or 'hard'] = test errors. */
    errors,
    best_temperature: bestT,
    paper: {
      claim_wide: 'with 300 or more units per layer, all temperatures above 8 gave fairly similar results',
      claim_narrow: 'with 30 units per layer, temperatures from 2.5 to 4 worked significantly better than higher or lower ones',
    },
  };
  const header = ['hidden units per layer', ...(hasHard ? ['hard labels'] : []), ...sweep.temperatures.map((T) => `T=${T}`), 'best T'];
  const rows = sweep.widths.map((w) => [
    sweep.depth === null ? String(w) : `${sweep.depth} x ${w}`,
    ...(hasHard ? [num(errors[String(w)]!.hard)] : []),
    ...sweep.temperatures.map((T) => num(errors[String(w)]![String(T)])),
    num(bestT[String(w)]),
  ]);
  return {
    json,
    markdown: doc(
      'MNIST: test errors by student width and temperature (paper section 3)',
      `Test errors of ${examples} test cases; soft-term weight alpha = ${sweep.alpha}. The paper gives no table, only the two claims below.`,
      markdownTable(header, rows),
      [`paper: ${json.paper.claim_wide}`, `paper: ${json.paper.claim_narrow}`],
    ),
  };
}

/** Paper section 3, the transfer set without one class, and the bias fix. */
export function omittedClassResult(adj: BiasAdjustMetrics, student: ModelMetrics | null): ExperimentResult {
  const c = String(adj.adjusted_classes[0]);
  const b = adj.before.test;
  const a = adj.after.test;
  const json = {
    experiment: 'mnist-omitted-class',
    omitted_class: adj.adjusted_classes[0],
    test_examples: b.examples,
    errors_before: b.errors,
    errors_after: a.errors,
    class_examples: b.classes[c]?.examples ?? 0,
    class_errors_before: b.classes[c]?.errors ?? null,
    class_errors_after: a.classes[c]?.errors ?? null,
    class_accuracy_before: b.classes[c]?.accuracy ?? null,
    class_accuracy_after: a.classes[c]?.accuracy ?? null,
    bias_offset: adj.delta,
    bias_offset_chosen_on: 'valid',
    transfer_examples: student?.transfer_examples ?? null,
    T: student?.T ?? null,
    paper: PAPER.omitted3,
  };
  const table = markdownTable(
    ['', 'test errors', `errors on test ${c}s`, `test ${c}s correct`, `paper test errors`, `paper errors on 3s`],
    [
      ['distilled, never saw the class', String(b.errors), `${json.class_errors_before} of ${json.class_examples}`, pct(json.class_accuracy_before, 1), String(PAPER.omitted3.errors_before), `${PAPER.omitted3.class_errors_before} of ${PAPER.omitted3.class_examples}`],
      [`bias of class ${c} ${adj.delta >= 0 ? '+' : ''}${adj.delta} (paper +${PAPER.omitted3.delta})`, String(a.errors), `${json.class_errors_after} of ${json.class_examples}`, pct(json.class_accuracy_after, 1), String(PAPER.omitted3.errors_after), `${PAPER.omitted3.class_errors_after} (98.6% correct)`],
    ],
  );
  return {
    json,
    markdown: doc(`MNIST: transfer set without class ${c} (paper section 3)`, `Test split of ${b.examples} cases. The bias offset is chosen on the validation split.`, table),
  };
}

/** Paper section 3, a transfer set of only some classes (7s and 8s), and lowering their biases. */
export function onlyClassesResult(adj: BiasAdjustMetrics, student: ModelMetrics | null): ExperimentResult {
  const b = adj.before.test;
  const a = adj.after.test;
  const json = {
    experiment: 'mnist-only-classes',
    kept_classes: adj.adjusted_classes,
    test_examples: b.examples,
    errors_before: b.errors,
    errors_after: a.errors,
    error_rate_before: b.examples ? b.errors / b.examples : null,
    error_rate_after: a.examples ? a.errors / a.examples : null,
    bias_offset: adj.delta,
    bias_offset_chosen_on: 'valid',
    transfer_examples: student?.transfer_examples ?? null,
    T: student?.T ?? null,
    paper: PAPER.only78,
  };
  const cls = adj.adjusted_classes.join(' and ');
  const table = markdownTable(
    ['', 'test errors', 'test error rate', 'paper error rate'],
    [
      [`distilled on ${cls} only`, String(b.errors), pct(json.error_rate_before, 1), pct(PAPER.only78.error_rate_before, 1)],
      [`biases of ${cls} ${adj.delta >= 0 ? '+' : ''}${adj.delta} (paper ${PAPER.only78.delta})`, String(a.errors), pct(json.error_rate_after, 1), pct(PAPER.only78.error_rate_after, 1)],
    ],
  );
  return { json, markdown: doc(`MNIST: transfer set of only ${cls} (paper section 3)`, `Test split of ${b.examples} cases. The bias offset is chosen on the validation split.`, table) };
}

/** Paper section 4 on MNIST: K models, their ensemble, and the ensemble distilled into one. */
export function ensembleResult(ens: EnsembleMetrics & { arch?: string; jitter?: number; regularisation?: string }, distilled: ModelMetrics, controls: (ModelMetrics & { name: string })[] = []): ExperimentResult {
  const single = ens.single_mean.test_accuracy;
  const gain = ens.test.accuracy - single;
  const json = {
    experiment: 'mnist-ensemble',
    members: ens.members.length,
    combine: ens.combine,
    test_examples: ens.test.examples,
    single_accuracy: single,
    single_errors: ens.single_mean.test_errors,
    single_accuracy_range: [Math.min(...ens.members.map((m) => m.test.accuracy)), Math.max(...ens.members.map((m) => m.test.accuracy))],
    ensemble_accuracy: ens.test.accuracy,
    ensemble_errors: ens.test.errors,
    distilled_accuracy: distilled.test.accuracy,
    distilled_errors: distilled.test.errors,
    T: distilled.T ?? null,
    alpha: distilled.alpha ?? null,
    /** (distilled - single) / (ensemble - single); null when the ensemble does not beat a single model. */
    fraction_transferred: gain > 0 ? (distilled.test.accuracy - single) / gain : null,
    /** Extra rows (by stage name), e.g. a student on a jittered transfer set and its hard-label twin. */
    controls: Object.fromEntries(
      controls.map((c) => [c.name, { accuracy: c.test.accuracy, errors: c.test.errors, training: describeTraining(c), fraction_transferred: gain > 0 ? (c.test.accuracy - single) / gain : null }]),
    ),
    paper: PAPER.ensemble,
  };
  const table = markdownTable(
    ['model', 'test accuracy', 'test errors', 'paper (speech, frame accuracy)'],
    [
      [`single model ${[ens.arch, ens.regularisation, jitterText(ens)].filter(Boolean).join(', ')} (mean of ${json.members})`, pct(single), num(json.single_errors), pct(PAPER.ensemble.baseline_accuracy, 1)],
      [`ensemble of ${json.members} (${ens.combine} mean)`, pct(ens.test.accuracy), String(ens.test.errors), pct(PAPER.ensemble.ensemble_accuracy, 1)],
      [[`distilled single model ${distilled.arch ?? ''} (T=${num(json.T)}, alpha=${num(json.alpha)})`, jitterText(distilled)].filter(Boolean).join(', '), pct(distilled.test.accuracy), String(distilled.test.errors), pct(PAPER.ensemble.distilled_accuracy, 1)],
      ...controls.map((c) => [`control '${c.name}': ${describeTraining(c)}`, pct(c.test.accuracy), String(c.test.errors), '-']),
    ],
  );
  return {
    json,
    markdown: doc('Distilling an ensemble into a single model (paper section 4, here on MNIST)', `Test split of ${ens.test.examples} cases.`, table, [
      `fraction of the ensemble's gain transferred: ${pct(json.fraction_transferred, 1)} (paper: ${pct(PAPER.ensemble.fraction_transferred, 1)}, "more than 80%")`,
      ...controls.map((c) => `control '${c.name}': ${pct(json.controls[c.name]!.fraction_transferred, 1)} of the gain (a control trained differently from the members, e.g. with jitter, can pass the ensemble without any help from it: compare it with its hard-label twin)`),
    ]),
  };
}

/** Paper section 6 on MNIST: a small fraction of the data, hard labels vs soft targets. */
export function softRegulariserResult(hard: ModelMetrics, soft: ModelMetrics, full: ModelMetrics | null): ExperimentResult {
  const json = {
    experiment: 'mnist-soft-regulariser',
    transfer_examples: hard.transfer_examples ?? null,
    test_examples: hard.test.examples,
    hard: { train_accuracy: hard.transfer?.accuracy ?? null, test_accuracy: hard.test.accuracy, test_errors: hard.test.errors, best_epoch: hard.best_epoch ?? null },
    soft: { train_accuracy: soft.transfer?.accuracy ?? null, test_accuracy: soft.test.accuracy, test_errors: soft.test.errors, best_epoch: soft.best_epoch ?? null, T: soft.T ?? null, alpha: soft.alpha ?? null },
    full: full ? { test_accuracy: full.test.accuracy, test_errors: full.test.errors } : null,
    soft_beats_hard: soft.test.accuracy > hard.test.accuracy,
    paper: PAPER.softRegulariser,
  };
  const rows = [
    [`hard labels, ${json.transfer_examples ?? '?'} training cases (early stopping on valid)`, pct(json.hard.train_accuracy), pct(hard.test.accuracy), pct(PAPER.softRegulariser.hard_train_accuracy, 1), pct(PAPER.softRegulariser.hard_test_accuracy, 1)],
    [`soft targets from the full-data model, same cases (T=${num(json.soft.T)})`, pct(json.soft.train_accuracy), pct(soft.test.accuracy), '-', pct(PAPER.softRegulariser.soft_test_accuracy, 1)],
  ];
  if (full) rows.push(['full training set, hard labels (the teacher)', '-', pct(full.test.accuracy), '-', pct(PAPER.softRegulariser.full_test_accuracy, 1)]);
  return {
    json,
    markdown: doc(
      'Soft targets as a regulariser (paper section 6, here on MNIST)',
      `A small fraction of the training set; test split of ${hard.test.examples} cases. Paper numbers are speech frame accuracies with 3% of the data.`,
      markdownTable(['model', 'train accuracy', 'test accuracy', 'paper train', 'paper test'], rows),
    ),
  };
}
