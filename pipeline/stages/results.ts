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
  }
}

/**
 * The stages whose rows a `results` stage shows when they have run (`controls`, `teacher_seeds`):
 * the table of a run folder where some were never trained (e.g. `--only` on a subset) leaves them
 * out and names them.
 */
export function resultsOptionalDeps(p: ResultsParams): string[] {
  return p.kind === 'mnist-paper' ? [...p.controls, ...p.teacher_seeds] : p.kind === 'ensemble' ? [...p.controls] : [];
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
  type Params = { hidden?: unknown; from?: unknown; jitter?: unknown; input_dropout?: unknown; dropout?: unknown; max_norm?: unknown; init_from?: unknown; epochs?: unknown; seed?: unknown; optimizer?: unknown };
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
    if (inDrop > 0 || drop > 0) parts.push(`dropout ${inDrop}/${drop}`);
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
  const reg = model as { dropout?: number; input_dropout?: number; max_norm?: number | null };
  return { arch: describeModel(model), ...extras({ ...params, dropout: reg.dropout, input_dropout: reg.input_dropout, max_norm: reg.max_norm }) };
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
  }
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
