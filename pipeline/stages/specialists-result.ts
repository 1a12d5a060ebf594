/**
 * The specialist route as a result table (`results` stage, `kind: specialists`): the generalist,
 * its specialists in their own subsets, their ensemble, the ensemble distilled into one model and
 * two controls (the same student distilled from the generalist alone; the generalist's recipe
 * trained longer), with the targets of the route checked and the per-part measurements that
 * explain a miss. The schemas below read the stage files; {@link specialistsResult} is pure (no
 * I/O), so it is tested on hand-made metrics.
 */
import { z } from 'zod';
import { markdownTable, num, pct, type ExperimentResult } from './experiment-results.ts';
import { coverageRowSchema } from '../../src/ensemble/metrics.ts';

const splitSchema = z.looseObject({ accuracy: z.number(), errors: z.number(), examples: z.number() });
/** The part of a model stage's `metrics.json` (train, generalist, distill) this table reads. */
export const modelMetricsFileSchema = z.looseObject({ test: splitSchema, valid: splitSchema.optional() });
/** A model stage's `metrics.json`, as read. */
export type ModelMetricsFile = z.output<typeof modelMetricsFileSchema>;

const countSchema = z.looseObject({ accuracy: z.number(), correct: z.number() });
/** The part of the `ensemble` stage's `metrics.json` this table reads (test at the top level). */
export const ensembleMetricsFileSchema = z.looseObject({
  examples: z.number(),
  generalist: countSchema,
  ensemble: countSchema,
  by_membership: z.array(coverageRowSchema).optional(),
  weight: z.number(),
  weight_table: z.array(z.looseObject({ weight: z.number(), accuracy: z.number() })).default([]),
  weight_at_top: z.boolean().default(false),
  valid: z.looseObject({ generalist: countSchema, ensemble: countSchema }),
});
/** The `ensemble` stage's `metrics.json`, as read. */
export type EnsembleMetricsFile = z.output<typeof ensembleMetricsFileSchema>;

/** The part of `specialists.json` this table reads; an accuracy is null (NaN written) for a specialist without valid cases in its subset. */
export const specialistsSummarySchema = z.looseObject({
  specialists: z
    .array(
      z.looseObject({
        id: z.string(),
        size: z.number(),
        within_examples: z.number(),
        specialist_accuracy_within: z.number().nullable(),
        generalist_accuracy_within: z.number().nullable(),
        natural_rate: z.number().nullable(),
        mean_dustbin_prob: z.number().nullable(),
      }),
    )
    .min(1),
});
/** `specialists.json`, as read. */
export type SpecialistsSummaryFile = z.output<typeof specialistsSummarySchema>;

/** The part of `clusters.json` this table reads. */
export const clustersFileSchema = z.looseObject({
  k: z.number(),
  classes: z.number().optional(),
  classes_per_coverage: z.record(z.string(), z.number()).optional(),
  clusters: z.array(z.looseObject({ id: z.number(), size: z.number() })).min(1),
});
/** `clusters.json`, as read. */
export type ClustersFile = z.output<typeof clustersFileSchema>;

/** Time and memory of one stage, from its `manifest.json` (null when the stage has none). */
export interface StageCost {
  /** `seconds` of the manifest. */
  seconds: number;
  /** `stage_peak_rss_mb` (MiB, the pipeline process during the stage); null in manifests from before it was recorded. */
  peak_rss_mb: number | null;
  /** The largest worker job's own peak (MiB), when the stage ran jobs (the specialists' `max_job_peak_rss_mb`). */
  job_peak_rss_mb?: number | null;
}

/** A model stage: its name, metrics, how it was trained (one line) and its cost. */
export interface ModelRun {
  name: string;
  metrics: ModelMetricsFile;
  /** e.g. `cnn 32-64 conv, dense 256, Adam, 12 epochs` (from the manifest); optional. */
  training?: string | undefined;
  cost: StageCost | null;
}

/** What {@link specialistsResult} reads: the finished stages (an absent control is null and named in `notRun`). */
export interface SpecialistsResultInput {
  generalist: ModelRun;
  specialists: { name: string; summary: SpecialistsSummaryFile; cost: StageCost | null };
  clusters: { name: string; file: ClustersFile; cost: StageCost | null };
  ensemble: { name: string; metrics: EnsembleMetricsFile; cost: StageCost | null };
  student: ModelRun;
  studentSelf: ModelRun | null;
  generalistMore: ModelRun | null;
  /** Optional stages named in the config that have not run in the run folder. */
  notRun: string[];
}

/** Target (b): the ensemble beats the generalist by at least this much accuracy (1 point) on test. */
export const ENSEMBLE_GAIN_TARGET = 0.01;
/** Target (d): the student keeps at least this fraction of the ensemble's gain over its self-distilled twin. */
export const TRANSFER_FRACTION_TARGET = 0.5;
/** Slack for float comparisons against a threshold (accuracies are ratios of counts). */
const EPS = 1e-9;

/** Accuracy difference in points with a sign, e.g. `+1.25 points`. */
const points = (d: number | null, digits = 2): string => {
  if (d === null || !Number.isFinite(d)) return '-';
  const s = (100 * d).toFixed(digits);
  return Number(s) === 0 ? `${(0).toFixed(digits)} points` : `${Number(s) > 0 ? '+' : ''}${s} points`;
};
const seconds = (s: number | null | undefined): string => (s === null || s === undefined ? '-' : `${s < 100 ? s.toFixed(1) : Math.round(s).toLocaleString('en-US')} s`);
const mib = (m: number | null | undefined): string => (m === null || m === undefined ? '-' : `${Math.round(m).toLocaleString('en-US')} MiB`);
const metText = (met: boolean | null): string => (met === null ? '**not evaluated**' : met ? '**met**' : '**not met**');

/** One model row of results.json. */
function modelJson(r: ModelRun) {
  return {
    stage: r.name,
    test_accuracy: r.metrics.test.accuracy,
    test_errors: r.metrics.test.errors,
    test_examples: r.metrics.test.examples,
    valid_accuracy: r.metrics.valid?.accuracy ?? null,
    ...(r.training ? { training: r.training } : {}),
    seconds: r.cost?.seconds ?? null,
    peak_rss_mb: r.cost?.peak_rss_mb ?? null,
  };
}

/** Per specialist: its in-subset accuracy on valid beside the generalist's, and its dustbin calibration. */
function specialistRows(summary: SpecialistsSummaryFile) {
  return summary.specialists.map((s) => {
    const measured = s.within_examples > 0 && s.specialist_accuracy_within !== null && s.generalist_accuracy_within !== null;
    return {
      id: s.id,
      size: s.size,
      within_examples: s.within_examples,
      specialist_accuracy_within: s.specialist_accuracy_within,
      generalist_accuracy_within: s.generalist_accuracy_within,
      gain: measured ? s.specialist_accuracy_within! - s.generalist_accuracy_within! : null,
      mean_dustbin_prob: s.mean_dustbin_prob,
      natural_rate: s.natural_rate,
    };
  });
}

/**
 * The specialist route's result: a main table (generalist, specialists in their subsets, ensemble,
 * student, controls: test accuracy and errors, valid accuracy, stage time and peak RSS), the
 * targets (a) specialists beat the generalist in their own subsets on valid (pooled over their
 * in-subset cases), (b) ensemble - generalist >= 1 point on test, (d) student - student_self >=
 * 0.5 x (ensemble - generalist) on test; the by-membership coverage table, a per-specialist
 * summary, cluster sizes, the combination weight, and the time of the specialist route
 * (specialists + ensemble + student) beside generalist_more's.
 */
export function specialistsResult(input: SpecialistsResultInput): ExperimentResult {
  const { generalist: gen, specialists: spec, clusters, ensemble: ens, student, studentSelf: self, generalistMore: more, notRun } = input;
  const em = ens.metrics;
  const genAcc = gen.metrics.test.accuracy;
  const ensAcc = em.ensemble.accuracy;
  const ensGain = ensAcc - genAcc;

  // Per specialist, and pooled over every specialist's in-subset valid cases (a case in two subsets counts twice).
  const rows = specialistRows(spec.summary);
  const measured = rows.filter((r) => r.gain !== null);
  const pooledN = measured.reduce((a, r) => a + r.within_examples, 0);
  const pooled = (f: (r: (typeof rows)[number]) => number): number | null => (pooledN > 0 ? measured.reduce((a, r) => a + f(r) * r.within_examples, 0) / pooledN : null);
  const specPooled = pooled((r) => r.specialist_accuracy_within!);
  const genPooled = pooled((r) => r.generalist_accuracy_within!);
  const aGain = specPooled !== null && genPooled !== null ? specPooled - genPooled : null;
  const beat = measured.filter((r) => r.gain! > 0).length;
  const byGain = [...measured].sort((x, y) => x.gain! - y.gain!);
  const worst = byGain[0] ?? null;
  const best = byGain.at(-1) ?? null;
  const meanOf = (xs: number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  const calibrated = rows.filter((r) => r.mean_dustbin_prob !== null && r.natural_rate !== null);
  const worstCalibrated = [...calibrated].sort((x, y) => Math.abs(y.mean_dustbin_prob! - y.natural_rate!) - Math.abs(x.mean_dustbin_prob! - x.natural_rate!))[0] ?? null;
  const sizes = clusters.file.clusters.map((c) => c.size);

  const targetA = {
    met: aGain === null ? null : aGain > 0,
    specialists_accuracy: specPooled,
    generalist_accuracy: genPooled,
    gain: aGain,
    examples: pooledN,
    beat,
    of: measured.length,
  };
  const targetB = { met: ensGain >= ENSEMBLE_GAIN_TARGET - EPS, ensemble_accuracy: ensAcc, generalist_accuracy: genAcc, gain: ensGain, threshold: ENSEMBLE_GAIN_TARGET };
  const studentGain = self ? student.metrics.test.accuracy - self.metrics.test.accuracy : null;
  const required = TRANSFER_FRACTION_TARGET * ensGain;
  const targetD = {
    // Nothing to transfer when the ensemble does not beat the generalist: then not met.
    met: studentGain === null ? null : ensGain > 0 && studentGain >= required - EPS,
    student_accuracy: student.metrics.test.accuracy,
    student_self_accuracy: self?.metrics.test.accuracy ?? null,
    student_gain: studentGain,
    ensemble_gain: ensGain,
    required_gain: required,
    /** (student - student_self) / (ensemble - generalist); null without student_self or when the ensemble does not beat the generalist. */
    ratio: studentGain !== null && ensGain > 0 ? studentGain / ensGain : null,
    threshold: TRANSFER_FRACTION_TARGET,
  };
  const routeParts = { [spec.name]: spec.cost?.seconds ?? null, [ens.name]: ens.cost?.seconds ?? null, [student.name]: student.cost?.seconds ?? null };
  const routeSeconds = Object.values(routeParts).every((s) => s !== null) ? Object.values(routeParts).reduce((a, s) => a! + s!, 0)! : null;
  const compute = more
    ? {
        generalist_more: more.name,
        route_seconds: routeSeconds,
        route_stages: routeParts,
        generalist_more_seconds: more.cost?.seconds ?? null,
        generalist_seconds: gen.cost?.seconds ?? null,
        ensemble_minus_generalist_more: ensAcc - more.metrics.test.accuracy,
        student_minus_generalist_more: student.metrics.test.accuracy - more.metrics.test.accuracy,
      }
    : null;

  const json = {
    experiment: 'specialists',
    test_examples: gen.metrics.test.examples,
    valid_examples: gen.metrics.valid?.examples ?? null,
    models: {
      generalist: modelJson(gen),
      specialists: {
        stage: spec.name,
        count: rows.length,
        in_subset_valid_accuracy: specPooled,
        generalist_in_subset_valid_accuracy: genPooled,
        in_subset_examples: pooledN,
        seconds: spec.cost?.seconds ?? null,
        peak_rss_mb: spec.cost?.peak_rss_mb ?? null,
        job_peak_rss_mb: spec.cost?.job_peak_rss_mb ?? null,
      },
      ensemble: {
        stage: ens.name,
        test_accuracy: ensAcc,
        test_errors: em.examples - em.ensemble.correct,
        test_examples: em.examples,
        valid_accuracy: em.valid.ensemble.accuracy,
        /** The generalist's test accuracy as the ensemble stage scored it (from the covariance stage's predictions); equals the generalist's own unless those are of another model. */
        generalist_test_accuracy: em.generalist.accuracy,
        weight: em.weight,
        weight_table: em.weight_table,
        weight_at_top: em.weight_at_top,
        seconds: ens.cost?.seconds ?? null,
        peak_rss_mb: ens.cost?.peak_rss_mb ?? null,
      },
      student: modelJson(student),
      student_self: self ? modelJson(self) : null,
      generalist_more: more ? modelJson(more) : null,
    },
    targets: { a: targetA, b: targetB, d: targetD },
    /** Test cases by the number of clusters holding the true class (the ensemble's `by_membership`; empty buckets left out). */
    coverage: (em.by_membership ?? []).filter((r) => r.examples > 0),
    specialists: {
      count: rows.length,
      measured: measured.length,
      beat_generalist: beat,
      mean_gain: meanOf(measured.map((r) => r.gain!)),
      worst: worst ? { id: worst.id, gain: worst.gain } : null,
      best: best ? { id: best.id, gain: best.gain } : null,
      mean_dustbin_prob: meanOf(calibrated.map((r) => r.mean_dustbin_prob!)),
      mean_natural_rate: meanOf(calibrated.map((r) => r.natural_rate!)),
      worst_calibrated: worstCalibrated ? { id: worstCalibrated.id, mean_dustbin_prob: worstCalibrated.mean_dustbin_prob, natural_rate: worstCalibrated.natural_rate } : null,
      without_valid_cases: rows.filter((r) => r.gain === null).map((r) => r.id),
      per_specialist: rows,
    },
    clusters: {
      stage: clusters.name,
      k: clusters.file.k,
      size_min: Math.min(...sizes),
      size_mean: sizes.reduce((a, b) => a + b, 0) / sizes.length,
      size_max: Math.max(...sizes),
      classes_per_coverage: clusters.file.classes_per_coverage ?? null,
      seconds: clusters.cost?.seconds ?? null,
    },
    compute,
    not_run: notRun,
  };

  const modelRow = (label: string, r: ModelRun): string[] => [
    `${label}${r.training ? ` (${r.training})` : ''}`,
    pct(r.metrics.test.accuracy),
    String(r.metrics.test.errors),
    pct(r.metrics.valid?.accuracy),
    seconds(r.cost?.seconds),
    mib(r.cost?.peak_rss_mb),
  ];
  const main = markdownTable(
    ['model', `test accuracy (of ${json.test_examples})`, 'test errors', `valid accuracy${json.valid_examples !== null ? ` (of ${json.valid_examples})` : ''}`, 'stage time', 'peak RSS'],
    [
      modelRow(`generalist '${gen.name}'`, gen),
      [
        `${rows.length} specialists '${spec.name}', each in its own subset`,
        '-',
        '-',
        `${pct(specPooled)} in-subset (generalist ${pct(genPooled)}, ${pooledN} cases)`,
        seconds(spec.cost?.seconds),
        `${mib(spec.cost?.peak_rss_mb)}${spec.cost?.job_peak_rss_mb ? ` (largest job ${mib(spec.cost.job_peak_rss_mb)})` : ''}`,
      ],
      [`ensemble '${ens.name}' (generalist + specialists, weight ${num(em.weight)})`, pct(ensAcc), String(json.models.ensemble.test_errors), pct(em.valid.ensemble.accuracy), seconds(ens.cost?.seconds), mib(ens.cost?.peak_rss_mb)],
      modelRow(`student '${student.name}', distilled from the ensemble`, student),
      ...(self ? [modelRow(`control '${self.name}', distilled from the generalist alone`, self)] : []),
      ...(more ? [modelRow(`control '${more.name}', the generalist's recipe trained longer`, more)] : []),
    ],
  );

  const aLine =
    targetA.met === null
      ? `- (a) specialists beat the generalist within their own subsets on valid: ${metText(null)}: no specialist has valid cases in its subset`
      : `- (a) specialists beat the generalist within their own subsets on valid: ${metText(targetA.met)}: ${pct(specPooled)} vs ${pct(genPooled)} (${points(aGain)}) pooled over ${pooledN} in-subset cases; ${beat} of ${measured.length} specialists beat it in their own subset`;
  const bLine = `- (b) ensemble beats the generalist by >= ${num(100 * ENSEMBLE_GAIN_TARGET)} point on test: ${metText(targetB.met)}: ${pct(ensAcc)} vs ${pct(genAcc)} (${points(ensGain)})`;
  const dLine = self
    ? `- (d) student - student_self >= ${TRANSFER_FRACTION_TARGET} x (ensemble - generalist) on test: ${metText(targetD.met)}: ${pct(student.metrics.test.accuracy)} - ${pct(self.metrics.test.accuracy)} = ${points(studentGain)} vs ${TRANSFER_FRACTION_TARGET} x ${points(ensGain)} = ${points(required)}` +
      (targetD.ratio !== null ? ` (ratio ${num(targetD.ratio)})` : ' (the ensemble does not beat the generalist: nothing to transfer)')
    : `- (d) student - student_self >= ${TRANSFER_FRACTION_TARGET} x (ensemble - generalist) on test: ${metText(null)}: no student_self control in this run folder`;
  const mismatch = Math.abs(em.generalist.accuracy - genAcc) > EPS ? [`- the ensemble stage scored the generalist at ${pct(em.generalist.accuracy)} on test, '${gen.name}' its own metrics at ${pct(genAcc)}: the covariance stage's predictions are not of this generalist`] : [];

  const coverage = markdownTable(
    ['classes in N clusters', 'test cases', 'generalist correct', 'ensemble correct', 'generalist accuracy', 'ensemble accuracy', 'relative change'],
    json.coverage.map((r) => [r.label, String(r.examples), String(r.generalist_correct), String(r.ensemble_correct), pct(r.generalist_correct / r.examples), pct(r.ensemble_correct / r.examples), r.relative_change === null ? '-' : `${r.relative_change >= 0 ? '+' : ''}${pct(r.relative_change, 1)}`]),
  );
  const gainText = (r: { id: string; gain: number | null } | null): string => (r ? `'${r.id}' ${points(r.gain)}` : '-');
  const specLines = [
    `- ${beat} of ${measured.length} specialists beat the generalist in their own subset; mean gain ${points(json.specialists.mean_gain)}; worst ${gainText(worst)}; best ${gainText(best)}` +
      (json.specialists.without_valid_cases.length ? `; no valid cases in the subset of ${json.specialists.without_valid_cases.map((id) => `'${id}'`).join(', ')}` : ''),
    `- dustbin calibration: mean dustbin probability ${num(json.specialists.mean_dustbin_prob)} vs natural rate ${num(json.specialists.mean_natural_rate)}` +
      (worstCalibrated ? ` (largest gap: '${worstCalibrated.id}', ${num(worstCalibrated.mean_dustbin_prob)} vs ${num(worstCalibrated.natural_rate)})` : ''),
    `- clusters '${clusters.name}': ${clusters.file.k} clusters of ${json.clusters.size_min}-${json.clusters.size_max} classes (mean ${num(+json.clusters.size_mean.toFixed(2))})` +
      (json.clusters.classes_per_coverage ? `; classes by the number of clusters holding them: ${Object.entries(json.clusters.classes_per_coverage).map(([k, v]) => `${k}: ${v}`).join(', ')}` : ''),
    `- combination weight ${num(em.weight)}${em.weight_table.length ? ` chosen on valid (${em.weight_table.map((t) => `${num(t.weight)}: ${pct(t.accuracy)}`).join(', ')})` : ' (fixed)'}${em.weight_at_top ? '; the largest weight tried: the optimum may lie above it' : ''}`,
  ];
  const computeLines = compute
    ? [
        `- specialist route: ${Object.entries(routeParts).map(([s, t]) => `'${s}' ${seconds(t)}`).join(' + ')} = ${seconds(routeSeconds)}; '${more!.name}' ${seconds(compute.generalist_more_seconds)} (the generalist '${gen.name}': ${seconds(compute.generalist_seconds)})`,
        `- on test: ensemble - '${more!.name}' = ${points(compute.ensemble_minus_generalist_more)}; student - '${more!.name}' = ${points(compute.student_minus_generalist_more)}`,
      ]
    : [`- no generalist_more control in this run folder`];
  const notRunLine = notRun.length
    ? [`- not in this run folder, so not in the table: ${notRun.map((s) => `'${s}'`).join(', ')} (\`npm run pipeline -- --config FILE --only NAME\` trains one; then rerun the results stage)`]
    : [];

  const markdown = [
    `# Specialists: generalist, specialists, ensemble and distilled student`,
    '',
    `Test split of ${json.test_examples} cases${clusters.file.classes !== undefined ? `, ${clusters.file.classes} classes` : ''}. Stage time and peak RSS (of the pipeline process during the stage) from each stage's manifest.json.`,
    '',
    main,
    '',
    '## Targets',
    '',
    aLine,
    bLine,
    dLine,
    ...mismatch,
    '',
    '## Coverage (test cases by the number of clusters holding the true class)',
    '',
    coverage,
    '',
    '## Specialists (valid, each in its own subset)',
    '',
    ...specLines,
    '',
    '## Compute: the specialist route vs the generalist trained longer',
    '',
    ...computeLines,
    ...notRunLine,
    '',
  ].join('\n');
  return { json, markdown };
}
