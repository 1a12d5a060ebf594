/**
 * `distill-sweep`: the paper's temperature experiment as one stage: a student of each hidden
 * width distilled at each temperature from one teacher (teacher logits computed once), plus an
 * optional hard-label student per width. Writes `sweep.json` and each student's training curves
 * as TensorBoard events in `<cell id>/tb/` (e.g. `w800-T4/tb/`). Each student is an independent
 * job (`sweep-student`, `pipeline/jobs/sweep-student-job.ts`): `--workers N` trains N at a time in
 * local processes, `--queue redis://...` on queue workers; finished students survive a crash.
 */
import { readFileSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { writeJsonAtomic } from '../../src/artifacts/atomic.ts';
import { TB_DIR, TB_FILE } from '../../src/tensorboard/training-curves.ts';
import { defineStage, type StageContext } from '../stage.ts';
import { modelKeys, resolveModel, trainingSchema } from '../schemas.ts';
import { withWidth } from '../../src/models/arch/index.ts';
import type { SplitMetrics } from './common.ts';
import { checkTeacherParams, disposePrepared, distillDeps, distillSourceSchema, prepareDistillation, teacherRowsFor } from './distill.ts';
import { SOFT_LOSS_KEYS } from '../../src/distill/loss-registry.ts';
import { UNLABELED_FILE } from '../../src/data/ingest.ts';
import { writeArrayFile } from '../../src/jobs/array-file.ts';
import { runStageJobs } from '../../src/jobs/job-runner.ts';
import { isJobDone, type Job } from '../../src/specialists/worker-pool.ts';
import type { SweepStudentJobParams, SweepStudentMetrics } from '../jobs/sweep-student-job.ts';
import { trainingParamsOf } from './student.ts';
import { modelDirsOf } from './teachers.ts';

const { hidden: _hidden, ...studentShape } = modelKeys;

const schema = z
  .strictObject({
    ...distillSourceSchema,
    ...studentShape,
    ...trainingSchema,
    /**
     * Units per hidden layer of the students, one student per width and temperature: each hidden
     * layer of the student's architecture gets this width (an MLP's `hidden`, a CNN's `dense`).
     */
    widths: z.array(z.number().int().positive().max(100_000)).min(1),
    /** Number of hidden layers of every student, with the stage-level MLP keys (default 2); with `model:`, its own layers count. */
    depth: z.number().int().min(1).max(16).optional(),
    /** Temperatures of the soft term. */
    temperatures: z.array(SOFT_LOSS_KEYS.T).min(1),
    /** Weight of the soft term (the hard-label term gets 1 - alpha). */
    alpha: SOFT_LOSS_KEYS.alpha,
    /** Also train each width on hard labels only (the row "hard" of the table). */
    hard_baseline: z.boolean().default(true),
  })
  .superRefine((p, ctx) => {
    checkTeacherParams(p, true, ctx);
    if (p.model !== undefined && p.depth !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['depth'], message: `depth is for the stage-level MLP keys; with 'model:' the student's own hidden layers count (e.g. model: {type: mlp, hidden: [${Array(p.depth).fill(800).join(', ')}]}: each width replaces them)` });
    }
    if (p.model !== undefined) {
      for (const [i, w] of p.widths.entries()) {
        try {
          withWidth(p.model, w);
        } catch (e) {
          ctx.addIssue({ code: 'custom', path: ['model'], message: `widths[${i}]: ${(e as Error).message}` });
          break;
        }
      }
    }
    if ((p.transfer.source ?? 'train') !== 'train' && p.hard_baseline) {
      ctx.addIssue({ code: 'custom', path: ['hard_baseline'], message: "hard-label students cannot learn from unlabeled transfer rows: set hard_baseline: false, or transfer.source: train" });
    }
  })
  .transform((p, ctx) => {
    const { depth, ...rest } = resolveModel(p, ctx);
    // The stage-level form: `depth` hidden layers (their widths set per cell).
    if (p.model === undefined && rest.model.type === 'mlp') rest.model = { ...rest.model, hidden: Array.from({ length: depth ?? 2 }, () => p.widths[0]!) };
    return { ...rest, depth: rest.model.type === 'mlp' ? rest.model.hidden.length : (depth ?? null) };
  });
/** Params of the `distill-sweep` stage. */
export type DistillSweepParams = z.output<typeof schema>;

/** One trained student of the sweep. */
export interface SweepCell {
  width: number;
  /** Temperature, or null for the hard-label baseline. */
  T: number | null;
  test: SplitMetrics;
  valid: SplitMetrics;
  best_epoch: number;
  /** Accuracy on the labelled transfer rows (null when all are unlabeled). */
  transfer_accuracy: number | null;
}

/** Content of `sweep.json`. */
export interface SweepFile {
  widths: number[];
  temperatures: number[];
  /** Hidden layers of an MLP student; null for another architecture. */
  depth: number | null;
  alpha: number;
  teacher: string[] | null;
  transfer_examples: number;
  cells: SweepCell[];
}

/** `distill-sweep`: students of several widths distilled at several temperatures from one teacher. */
export const distillSweepStage = defineStage({
  type: 'distill-sweep',
  description: 'distil one teacher into students of several hidden widths at several temperatures (table of test errors; parallel with --workers or --queue)',
  schema,
  deps: distillDeps,
  code: ['pipeline/stages/distill-sweep.ts'],
  async run(ctx) {
    const p = ctx.params;
    // The teacher's targets and the transfer rows go to files the jobs read; then the stage's own
    // copies are let go (the cells run in this process with --workers 1).
    const { plan, jobs, teacher, transferExamples } = await prepareCells(ctx, p);
    await runStageJobs(ctx, 'distill-sweep', 'students', 'sweep-student', jobs);
    const cells: SweepCell[] = [];
    for (const [i, { width, T }] of plan.entries()) {
      const job = jobs[i]!;
      const m = JSON.parse(readFileSync(path.join(job.outDir, 'metrics.json'), 'utf8')) as SweepStudentMetrics;
      cells.push({ width, T, test: m.test, valid: m.valid, best_epoch: m.best_epoch, transfer_accuracy: m.transfer_accuracy });
      ctx.log.info(`[${i + 1}/${plan.length}] ${job.id}: ${m.test.errors} test errors of ${m.test.examples}`);
      await fs.mkdir(path.join(ctx.outDir, job.id, TB_DIR), { recursive: true });
      await fs.copyFile(path.join(job.outDir, TB_DIR, TB_FILE), path.join(ctx.outDir, job.id, TB_DIR, TB_FILE));
    }
    const out: SweepFile = {
      widths: p.widths,
      temperatures: p.temperatures,
      depth: p.depth,
      alpha: p.alpha,
      teacher,
      transfer_examples: transferExamples,
      cells,
    };
    await writeJsonAtomic(path.join(ctx.outDir, 'sweep.json'), out);
    return { cells: cells.length };
  },
});

/** The folder name of one sweep cell, e.g. `w800-T4` or `w800-hard`. */
function cellId(width: number, T: number | null): string {
  return `w${width}-${T === null ? 'hard' : `T${T}`}`;
}

/**
 * The sweep's cells and their jobs: selects the transfer set and gets the teacher's targets on it
 * (`prepareDistillation`: cached across a crash, and written to the stage folder), writes what the
 * jobs read to the scratch folder (the transfer rows, the teacher's targets) unless every cell has
 * finished, and frees the rest.
 */
async function prepareCells(
  ctx: StageContext<DistillSweepParams>,
  p: DistillSweepParams,
): Promise<{ plan: { width: number; T: number | null }[]; jobs: Job[]; teacher: string[] | null; transferExamples: number }> {
  const plan: { width: number; T: number | null }[] = [];
  for (const width of p.widths) {
    if (p.hard_baseline) plan.push({ width, T: null });
    for (const T of p.temperatures) plan.push({ width, T });
  }
  const prep = await prepareDistillation(ctx as StageContext<unknown>, p, true);
  try {
    const dataDir = ctx.input(p.data);
    const rowsFile = path.join(ctx.scratchDir, 'transfer-rows.i32');
    const teacherFile = path.join(ctx.scratchDir, 'teacher-targets.f32');
    // Every distilled cell has a soft loss: the same kind of teacher rows for all of them.
    const teacherRows = teacherRowsFor(prep, { type: 'soft', T: p.temperatures[0]!, alpha: p.alpha });
    const teacherModels = prep.online ? (p.teacher ?? []).flatMap((t) => modelDirsOf(ctx.input(t), t)) : [];
    const jobs: Job[] = plan.map(({ width, T }) => {
      const id = cellId(width, T);
      const params: SweepStudentJobParams = {
        trainFile: path.join(dataDir, 'train.arrow'),
        validFile: path.join(dataDir, 'valid.arrow'),
        testFile: path.join(dataDir, 'test.arrow'),
        rowsFile,
        ...((p.transfer.source ?? 'train') !== 'train' ? { unlabeledFile: path.join(dataDir, UNLABELED_FILE) } : {}),
        ...(T !== null && teacherRows ? { teacherFile, teacherKind: teacherRows.kind } : {}),
        ...(T !== null && prep.online ? { teacherModels, combine: prep.online.combine } : {}),
        classes: prep.classes,
        model: withWidth(p.model, width),
        training: trainingParamsOf(p),
        loss: T === null ? { type: 'hard' } : { type: 'soft', T, alpha: p.alpha },
        seed: ctx.seed,
        backend: ctx.backend.name,
      };
      return { id, outDir: path.join(ctx.scratchDir, 'cells', id), params };
    });
    if (jobs.some((j) => !isJobDone(j.outDir))) {
      await writeArrayFile(rowsFile, prep.rows);
      if (teacherRows) await writeArrayFile(teacherFile, teacherRows.targets);
    }
    return { plan, jobs, teacher: prep.teacherLabel, transferExamples: prep.transfer.n };
  } finally {
    disposePrepared(prep);
  }
}
