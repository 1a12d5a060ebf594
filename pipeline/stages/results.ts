/**
 * `results`: the last stage of an experiment config. Reads the metrics of the stages the
 * experiment ran and writes `results.json` (our numbers and the paper's) and `results.md` (a
 * markdown table beside the paper's numbers). `kind` says which experiment.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describeModel, modelOfParams } from '../../src/models/arch/index.ts';
import { z } from 'zod';
import { writeFileAtomic, writeJsonAtomic } from '../../src/artifacts/atomic.ts';
import { ArtifactError, ConfigError } from '../../src/util/errors.ts';
import { stableStringify } from '../../src/artifacts/hash.ts';
import { MANIFEST, readManifest, type Manifest } from '../../src/artifacts/manifest.ts';
import { defineStage } from '../stage.ts';
import { optimizerSchema } from '../schemas.ts';
import { trainedOnValid } from './common.ts';
import type { BiasAdjustMetrics } from './bias-adjust.ts';
import type { SweepFile } from './distill-sweep.ts';
import {
  ensembleResult,
  mnistPaperResult,
  omittedClassResult,
  onlyClassesResult,
  softRegulariserResult,
  temperatureResult,
  type ExperimentResult,
  type ModelMetrics,
} from './experiment-results.ts';
import type { EnsembleMetrics } from './train-ensemble.ts';
import {
  clustersFileSchema,
  ensembleMetricsFileSchema,
  modelMetricsFileSchema,
  specialistsResult,
  specialistsSummarySchema,
  type ModelRun,
  type StageCost,
} from './specialists-result.ts';

const stage = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'a stage name');

// Each key's `.describe()` text is its line in docs/CONFIG.md (one table per kind).
const schema = z.discriminatedUnion('kind', [
  /** Teacher vs hard-label student vs distilled student. */
  z.strictObject({
    kind: z.literal('mnist-paper').describe('Paper section 3: a teacher, a student on hard labels and the same student distilled'),
    teacher: stage.describe('The teacher (a `train` stage)'),
    baseline: stage.describe('The student trained on hard labels'),
    distilled: stage.describe('The distilled student (a `distill` stage)'),
    controls: z.array(stage).default([]).describe('Further model stages shown as extra rows (e.g. controls: hard labels with jitter, distilled without); one that has not run in the run folder is left out and named'),
    teacher_seeds: z
      .array(stage)
      .default([])
      .describe("The teacher's recipe trained from other seeds (`train` stages equal to `teacher` but for their `seed`): rows, and the spread of the teacher's test errors over the seeds that have run"),
  }),
  /** A `distill-sweep` over widths and temperatures. */
  z.strictObject({
    kind: z.literal('temperature').describe('Paper section 3: test errors per hidden width and temperature'),
    sweep: stage.describe('The `distill-sweep` stage'),
  }),
  /** A `bias-adjust` of one omitted class; `student` = the distill stage it adjusted. */
  z.strictObject({
    kind: z.literal('omitted-class').describe('Paper section 3: a class left out of the transfer set, before and after raising its bias'),
    adjusted: stage.describe('The `bias-adjust` stage'),
    student: stage.describe('The `distill` stage it adjusted'),
  }),
  /** A `bias-adjust` of the only classes in the transfer set. */
  z.strictObject({
    kind: z.literal('only-classes').describe('Paper section 3: a transfer set of a few classes, before and after lowering their biases'),
    adjusted: stage.describe('The `bias-adjust` stage'),
    student: stage.describe('The `distill` stage it adjusted'),
  }),
  /** A `train-ensemble` and the `distill` stage that distilled it. */
  z.strictObject({
    kind: z.literal('ensemble').describe('Paper section 4: K models, their ensemble and one model distilled from it'),
    ensemble: stage.describe('The `train-ensemble` stage'),
    distilled: stage.describe('The `distill` stage whose teacher is the ensemble'),
    controls: z.array(stage).default([]).describe('Further model stages shown as extra rows (e.g. a student on a jittered transfer set and its hard-label twin); one that has not run in the run folder is left out and named'),
  }),
  /** Hard-label and soft-target students on a small transfer set; `full` = the full-data teacher. */
  z.strictObject({
    kind: z.literal('soft-regulariser').describe('Paper section 6: hard labels vs soft targets on a small fraction of the data'),
    hard: stage.describe('The student on hard labels of the small subset'),
    soft: stage.describe('The student on soft targets of the small subset'),
    full: stage.optional().describe('The full-data model the soft targets came from (a row for comparison)'),
  }),
  /** The specialist route on a large label set (paper section 5), its targets checked. */
  z.strictObject({
    kind: z
      .literal('specialists')
      .describe('Paper section 5 on a large label set: generalist, specialists in their own subsets, their ensemble, the ensemble distilled into one model and two controls; checks (a) the specialists beat the generalist in their own subsets on valid, (b) ensemble - generalist >= 1 point on test, (d) student - student_self >= 0.5 x (ensemble - generalist) on test'),
    generalist: stage.default('generalist').describe('The generalist the specialists were copied from (a `generalist` or `train` stage)'),
    clusters: stage.default('clusters').describe('The `clusters` stage (cluster sizes, classes per coverage)'),
    specialists: stage.default('specialists').describe('The `specialists` stage (`specialists.json`: each one\'s in-subset accuracy on valid beside the generalist\'s, dustbin calibration)'),
    ensemble: stage.default('ensemble').describe('The `ensemble` stage (test and valid accuracy, weight, the by-membership coverage table)'),
    student: stage.default('student').describe('The `distill` stage taught by the ensemble (`teacher_targets: <ensemble>`)'),
    student_self: stage
      .optional()
      .describe("Control: the same student distilled from the generalist alone (same transfer set, loss and schedule): check (d) compares the student's gain over it with half the ensemble's gain over the generalist. One that has not run in the run folder is left out and named"),
    generalist_more: stage
      .optional()
      .describe("Control: the generalist's recipe trained longer: a row, and its time beside the specialist route's. One that has not run in the run folder is left out and named"),
  }),
]);
/** Params of the `results` stage. */
export type ResultsParams = z.output<typeof schema>;

/** The stages a `results` stage needs, in param order (its extra rows are `resultsOptionalDeps`). */
export function resultsDeps(p: ResultsParams): string[] {
  switch (p.kind) {
    case 'mnist-paper':
      return [p.teacher, p.baseline, p.distilled];
    case 'temperature':
      return [p.sweep];
    case 'omitted-class':
    case 'only-classes':
      return [p.adjusted, p.student];
    case 'ensemble':
      return [p.ensemble, p.distilled];
    case 'soft-regulariser':
      return [p.hard, p.soft, ...(p.full ? [p.full] : [])];
    case 'specialists':
      return [p.generalist, p.clusters, p.specialists, p.ensemble, p.student];
  }
}

/**
 * The stages whose rows a `results` stage shows when they have run (`controls`, `teacher_seeds`):
 * the table of a run folder where some were never trained (e.g. `--only` on a subset) leaves them
 * out and names them.
 */
export function resultsOptionalDeps(p: ResultsParams): string[] {
  switch (p.kind) {
    case 'mnist-paper':
      return [...p.controls, ...p.teacher_seeds];
    case 'ensemble':
      return [...p.controls];
    case 'specialists':
      return [p.student_self, p.generalist_more].filter((s): s is string => s !== undefined);
    default:
      return [];
  }
}

/**
 * `Adam, 300 epochs` or `SGD momentum 0.9, 30 epochs` (`0.5->0.9` when the momentum ramps) from a
 * manifest's `optimizer` and `epochs` params; undefined when the optimizer is absent or unreadable.
 */
export function optimizerText(optimizer: unknown, epochs: unknown): string | undefined {
  const parsed = optimizerSchema.safeParse(optimizer);
  if (!parsed.success) return undefined;
  const o = parsed.data;
  const name =
    o.name === 'adam'
      ? 'Adam'
      : `SGD ${o.nesterov ? 'Nesterov ' : ''}momentum ${o.final_momentum !== undefined ? `${o.momentum}->${o.final_momentum}` : o.momentum}`;
  return typeof epochs === 'number' ? `${name}, ${epochs} epochs` : name;
}

/** The parts of a row's training text that `trainingOf` reads from a manifest besides `arch`. */
type TrainingText = Pick<ModelMetrics, 'jitter' | 'regularisation' | 'optimizer' | 'continued' | 'stage_seed'>;

/**
 * How the model a stage trained was made, from the params in its `manifest.json` (through `import`
 * stages): hidden layers (`arch`, e.g. `2x800` or `1200-800`), input jitter, regularisation
 * (dropout, max-norm), the optimizer and epochs (e.g. `SGD momentum 0.5->0.9, 300 epochs`) and the
 * model it continued (`init_from`); fields are undefined when absent, and all are when the stage
 * has no manifest.
 * @throws ArtifactError when the manifest exists but is not valid (it names the file and the fix).
 */
export function trainingOf(stageDir: string): { arch?: string } & TrainingText {
  type Params = { hidden?: unknown; from?: unknown; jitter?: unknown; input_dropout?: unknown; dropout?: unknown; conv_dropout?: unknown; max_norm?: unknown; init_from?: unknown; epochs?: unknown; seed?: unknown; optimizer?: unknown };
  const extras = (p: Params): TrainingText => {
    const out: TrainingText = {};
    const opt = optimizerText(p.optimizer, p.epochs);
    if (opt !== undefined) out.optimizer = opt;
    if (typeof p.jitter === 'number') out.jitter = p.jitter;
    if (typeof p.seed === 'number') out.stage_seed = p.seed;
    if (typeof p.init_from === 'string') out.continued = `continued from '${p.init_from}'${opt === undefined && typeof p.epochs === 'number' ? ` for ${p.epochs} epochs` : ''}`;
    const parts: string[] = [];
    const inDrop = typeof p.input_dropout === 'number' ? p.input_dropout : 0;
    const drop = typeof p.dropout === 'number' ? p.dropout : 0;
    const convDrop = typeof p.conv_dropout === 'number' ? p.conv_dropout : 0;
    // An MLP's dropout is input/hidden; a CNN's is after its conv blocks / its dense layers.
    if (convDrop > 0) parts.push(`dropout ${convDrop} conv/${drop} dense`);
    else if (inDrop > 0 || drop > 0) parts.push(`dropout ${inDrop}/${drop}`);
    if (typeof p.max_norm === 'number') parts.push(`max-norm ${p.max_norm}`);
    if (parts.length > 0) out.regularisation = parts.join(', ');
    return out;
  };
  const m = readManifest(stageDir);
  if (!m) return {};
  const params: Params = m.params;
  if (m.type === 'import' && typeof params.from === 'string') return trainingOf(path.resolve(params.from));
  const model = modelOfParams(m.params);
  if (!model) return extras(params);
  // The regularisation keys as the architecture has them (an MLP's; a CNN's dropout and max-norm).
  const reg = model as { dropout?: number; input_dropout?: number; conv_dropout?: number; max_norm?: number | null };
  return { arch: describeModel(model), ...extras({ ...params, dropout: reg.dropout, input_dropout: reg.input_dropout, conv_dropout: reg.conv_dropout, max_norm: reg.max_norm }) };
}

/** Is `v` a plain object (not an array or null)? */
function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The first key path (`model.hidden`) at which two params objects differ, descending into nested
 * objects so a message names the key a user changed; undefined when they are equal.
 */
function firstDifference(a: Record<string, unknown>, b: Record<string, unknown>, prefix = ''): { path: string; teacher: unknown; other: unknown } | undefined {
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    const x = a[k];
    const y = b[k];
    if (stableStringify(x) === stableStringify(y)) continue;
    if (isRecord(x) && isRecord(y)) return firstDifference(x, y, `${prefix}${k}.`);
    return { path: `${prefix}${k}`, teacher: x, other: y };
  }
  return undefined;
}

/**
 * Checks that each stage in `others` trained `teacher`'s recipe from another seed: the same stage
 * type and params but for `seed`, and a different effective seed (its `seed` param, else the run's).
 */
function checkSeedRuns(teacher: string, others: readonly string[], dir: (stage: string) => string): void {
  if (others.length === 0) return;
  const manifest = (s: string): Manifest => {
    const m = readManifest(dir(s));
    if (!m) throw new ArtifactError(`results: ${path.join(dir(s), MANIFEST)} of stage '${s}' is missing; has '${s}' run?`);
    return m;
  };
  const t = manifest(teacher);
  const { seed: tSeed, ...tParams } = t.params;
  const tEffective = typeof tSeed === 'number' ? tSeed : t.seed;
  for (const other of others) {
    const o = manifest(other);
    const where = `results.teacher_seeds: '${other}'`;
    if (o.type !== t.type) throw new ConfigError(`${where} is a '${o.type}' stage, the teacher '${teacher}' a '${t.type}' stage; list only the teacher's recipe trained from other seeds`);
    const { seed: oSeed, ...oParams } = o.params;
    const diff = firstDifference(tParams, oParams);
    if (diff) {
      const show = (v: unknown): string => (v === undefined ? 'unset' : stableStringify(v));
      throw new ConfigError(`${where} differs from the teacher '${teacher}' in ${diff.path} (${show(diff.other)} vs ${show(diff.teacher)}); a seed run must be the teacher's recipe with only 'seed' changed`);
    }
    if ((typeof oSeed === 'number' ? oSeed : o.seed) === tEffective) throw new ConfigError(`${where} trained from the same seed as the teacher '${teacher}' (${tEffective}); give it another 'seed'`);
  }
}

/**
 * Builds the result of an experiment from the finished stage folders (`dir(stage)`). Optional rows
 * (`resultsOptionalDeps`) for which `has` is false are left out of the table and listed in
 * `not_run` (results.json) and a closing line (results.md).
 */
export function buildResult(p: ResultsParams, dir: (stage: string) => string, has: (stage: string) => boolean = () => true): ExperimentResult {
  const optional = resultsOptionalDeps(p);
  const notRun = optional.filter((s) => !has(s));
  // Its builder names the controls that have not run itself (target (d) needs one of them).
  if (p.kind === 'specialists') return readSpecialistsResult(p, dir, notRun);
  const r = buildPresent(p, dir, (s) => !notRun.includes(s));
  if (optional.length === 0) return r;
  const line = notRun.length === 0 ? [] : [`- not in this run folder, so not in the table: ${notRun.map((s) => `'${s}'`).join(', ')} (\`npm run pipeline -- --config FILE --only NAME\` trains one; then rerun the results stage)`];
  const markdown = [r.markdown.replace(/\n+$/, ''), ...line, ''].join('\n');
  return { json: { ...r.json, not_run: notRun }, markdown };
}

function buildPresent(p: ResultsParams, dir: (stage: string) => string, present: (stage: string) => boolean): ExperimentResult {
  const read = <T>(s: string, file: string): T => {
    const f = path.join(dir(s), file);
    try {
      return JSON.parse(readFileSync(f, 'utf8')) as T;
    } catch (e) {
      throw new ArtifactError(`results: cannot read ${f} of stage '${s}' (${(e as Error).message}); is '${s}' the right kind of stage for a '${p.kind}' result?`);
    }
  };
  const declared = new Set([...resultsDeps(p), ...resultsOptionalDeps(p).filter(present)]);
  const metrics = (s: string): ModelMetrics => {
    const m = read<ModelMetrics>(s, 'metrics.json');
    if (!m.test || typeof m.test.errors !== 'number') throw new ArtifactError(`results: ${path.join(dir(s), 'metrics.json')} has no test metrics; '${s}' must be a model stage`);
    // A student whose teacher trained on the valid rows (train_on: train+valid) has seen them
    // through the teacher: its valid errors are optimistic, and the tables say so.
    // Only teachers among this stage's declared inputs can be read (e.g. mnist-paper's); another
    // config's student keeps its valid errors unflagged.
    const teacherSawValid = (Array.isArray(m.teacher) ? m.teacher : []).some((t) => declared.has(t) && trainedOnValid(dir(t)));
    return { ...m, ...trainingOf(dir(s)), ...(teacherSawValid ? { teacher_trained_on_valid: true } : {}) };
  };
  switch (p.kind) {
    case 'mnist-paper': {
      const seeds = p.teacher_seeds.filter(present);
      checkSeedRuns(p.teacher, seeds, dir);
      return mnistPaperResult(
        metrics(p.teacher),
        metrics(p.baseline),
        metrics(p.distilled),
        p.controls.filter(present).map((name) => ({ name, ...metrics(name) })),
        seeds.map((name) => ({ name, ...metrics(name) })),
      );
    }
    case 'temperature':
      return temperatureResult(read<SweepFile>(p.sweep, 'sweep.json'));
    case 'omitted-class':
      return omittedClassResult(read<BiasAdjustMetrics>(p.adjusted, 'metrics.json'), metrics(p.student));
    case 'only-classes':
      return onlyClassesResult(read<BiasAdjustMetrics>(p.adjusted, 'metrics.json'), metrics(p.student));
    case 'ensemble':
      return ensembleResult({ ...read<EnsembleMetrics>(p.ensemble, 'metrics.json'), ...trainingOf(dir(p.ensemble)) }, metrics(p.distilled), p.controls.filter(present).map((name) => ({ name, ...metrics(name) })));
    case 'soft-regulariser':
      return softRegulariserResult(metrics(p.hard), metrics(p.soft), p.full ? metrics(p.full) : null);
    case 'specialists':
      return readSpecialistsResult(p, dir, []);
  }
}

/** A stage file read through its zod schema. @throws ArtifactError naming the file, the key and the fix */
function readChecked<S extends z.ZodType>(dir: (stage: string) => string, s: string, file: string, schema: S, kind: string): z.output<S> {
  const f = path.join(dir(s), file);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(f, 'utf8'));
  } catch (e) {
    throw new ArtifactError(`results: cannot read ${f} of stage '${s}' (${(e as Error).message}); is '${s}' the right kind of stage for a '${kind}' result, and has it run?`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ArtifactError(`results: ${f} of stage '${s}' is not what a '${kind}' result reads (${issue.path.join('.') || '(top level)'}: ${issue.message}); point the results stage at the right stage, or rerun '${s}' with --force`);
  }
  return r.data;
}

/** A stage's time and peak memory from its manifest; null without one. */
function costOf(stageDir: string): StageCost | null {
  const m = readManifest(stageDir);
  if (!m) return null;
  const job = m.summary?.max_job_peak_rss_mb;
  return { seconds: m.seconds, peak_rss_mb: m.stage_peak_rss_mb ?? null, ...(typeof job === 'number' ? { job_peak_rss_mb: job } : {}) };
}

/** How a model stage was trained, in one line (architecture, optimizer and epochs), from its manifest. */
function trainingLine(stageDir: string): string | undefined {
  const t = trainingOf(stageDir);
  return [t.arch, t.optimizer].filter(Boolean).join(', ') || undefined;
}

/** The `specialists` result from the stage folders; the controls in `notRun` are absent. */
function readSpecialistsResult(p: Extract<ResultsParams, { kind: 'specialists' }>, dir: (stage: string) => string, notRun: string[]): ExperimentResult {
  const model = (s: string): ModelRun => ({ name: s, metrics: readChecked(dir, s, 'metrics.json', modelMetricsFileSchema, p.kind), training: trainingLine(dir(s)), cost: costOf(dir(s)) });
  const control = (s: string | undefined): ModelRun | null => (s === undefined || notRun.includes(s) ? null : model(s));
  return specialistsResult({
    generalist: model(p.generalist),
    clusters: { name: p.clusters, file: readChecked(dir, p.clusters, 'clusters.json', clustersFileSchema, p.kind), cost: costOf(dir(p.clusters)) },
    specialists: { name: p.specialists, summary: readChecked(dir, p.specialists, 'specialists.json', specialistsSummarySchema, p.kind), cost: costOf(dir(p.specialists)) },
    ensemble: { name: p.ensemble, metrics: readChecked(dir, p.ensemble, 'metrics.json', ensembleMetricsFileSchema, p.kind), cost: costOf(dir(p.ensemble)) },
    student: model(p.student),
    studentSelf: control(p.student_self),
    generalistMore: control(p.generalist_more),
    notRun,
  });
}

/** `results`: an experiment's results.json and results.md, beside the paper's numbers. */
export const resultsStage = defineStage({
  type: 'results',
  description: "write an experiment's results.json and results.md (our numbers beside the paper's)",
  schema,
  deps: resultsDeps,
  optionalDeps: resultsOptionalDeps,
  code: ['pipeline/stages/results.ts'],
  async run(ctx) {
    const r = buildResult(ctx.params, (s) => ctx.input(s), (s) => ctx.has(s));
    await writeJsonAtomic(path.join(ctx.outDir, 'results.json'), r.json);
    await writeFileAtomic(path.join(ctx.outDir, 'results.md'), r.markdown);
    for (const line of r.markdown.split('\n')) if (line.startsWith('|') || line.startsWith('- ')) ctx.log.info(line);
    return { experiment: r.json.experiment };
  },
});
