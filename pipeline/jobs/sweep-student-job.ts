/**
 * The job that trains ONE student (one cell: a width and a temperature, or the hard-label baseline)
 * of a `distill-sweep` stage from files: reads the ingested splits, rebuilds the transfer set from
 * the rows the stage selected (`rowsFile`, plus the unlabeled rows with `unlabeledFile`), takes the
 * teacher's targets on it from the file the stage wrote once for all cells (`teacherFile`; or, with
 * jitter, loads the teacher's models and queries them on every batch), trains the student
 * (`trainStudent`, exactly as the stage did in-process) and writes `<outDir>/tb/` (its training
 * curves) and `<outDir>/metrics.json` (`{test, valid, best_epoch, transfer_accuracy}`). Checkpoints go
 * to `<outDir>/checkpoint/` and are removed at the end; the pool or queue worker writes the `done`
 * marker after `runJob` resolved.
 */
import type * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { writeJsonAtomic } from '../../src/artifacts/atomic.ts';
import { currentBackend, initBackend } from '../../src/backend/select.ts';
import { readSplit } from '../../src/data/split-file.ts';
import { distillLossSchema } from '../../src/distill/loss-registry.ts';
import { readFloat32File, readInt32File } from '../../src/jobs/array-file.ts';
import { defineJobType } from '../../src/jobs/job-type.ts';
import { modelConfigSchema } from '../../src/models/arch/index.ts';
import { loadModel } from '../../src/models/io.ts';
import type { Job } from '../../src/specialists/worker-pool.ts';
import { writeTrainingCurves } from '../../src/tensorboard/training-curves.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { createLogger } from '../../src/util/log.ts';
import { trainingParamsSchema, trainStudent, type TeacherRows } from '../stages/student.ts';
import { transferSet } from '../stages/transfer.ts';

/** Absolute path of this module (the job type's `module`). */
export const SWEEP_STUDENT_JOB_MODULE = fileURLToPath(import.meta.url);

/** Schema of {@link SweepStudentJobParams} (checked by the job and by a queue worker before it runs one). */
export const sweepStudentParamsSchema = z
  .strictObject({
    /** The ingested splits (`<run>/<ingest stage>/{train,valid,test}.arrow`). */
    trainFile: z.string(),
    validFile: z.string(),
    testFile: z.string(),
    /** The transfer set's rows of the train split (int32, ascending; see `array-file.ts`). */
    rowsFile: z.string(),
    /** The ingest stage's `unlabeled.arrow`, appended to the transfer set (`transfer.source` `both` / `unlabeled`). */
    unlabeledFile: z.string().optional(),
    /** The teacher's targets on the transfer set (float32, rows x classes), written once by the stage. */
    teacherFile: z.string().optional(),
    /** What `teacherFile` holds. */
    teacherKind: z.enum(['logits', 'probabilities']).optional(),
    /** Instead of `teacherFile` (jitter): the teacher's model folders, queried on every batch. */
    teacherModels: z.array(z.string()).min(1).optional(),
    /** How `teacherModels` are combined. */
    combine: z.enum(['arithmetic', 'geometric']).optional(),
    /** Number of classes. */
    classes: z.number().int().positive(),
    /** The student's architecture (the stage's `model:` at this cell's width). */
    model: modelConfigSchema,
    training: trainingParamsSchema,
    /** The cell's loss: `{type: soft, T, alpha}` or `{type: hard}`. */
    loss: distillLossSchema,
    seed: z.number().int(),
    /** Tensor backend for a worker process (ignored when one is already active). Default `auto`. */
    backend: z.string().optional(),
  })
  .refine((p) => (p.teacherFile === undefined) === (p.teacherKind === undefined), { message: 'teacherFile and teacherKind go together', path: ['teacherKind'] })
  .refine((p) => (p.teacherModels === undefined) === (p.combine === undefined), { message: 'teacherModels and combine go together', path: ['combine'] })
  .refine((p) => p.teacherFile === undefined || p.teacherModels === undefined, { message: 'give teacherFile or teacherModels, not both', path: ['teacherModels'] });

/** Parameters of one sweep-student job (JSON). */
export type SweepStudentJobParams = z.output<typeof sweepStudentParamsSchema>;

/** What a sweep-student job writes to `<outDir>/metrics.json`. */
export interface SweepStudentMetrics {
  test: { accuracy: number; errors: number; examples: number; loss: number };
  valid: { accuracy: number; errors: number; examples: number; loss: number };
  best_epoch: number;
  /** Accuracy on the labelled transfer rows (null when all are unlabeled). */
  transfer_accuracy: number | null;
}

/** The `sweep-student` job type (registered in `src/jobs/job-types.ts`). */
export const sweepStudentJobType = defineJobType({
  name: 'sweep-student',
  module: SWEEP_STUDENT_JOB_MODULE,
  params: sweepStudentParamsSchema,
  pathKeys: ['trainFile', 'validFile', 'testFile', 'rowsFile', 'unlabeledFile', 'teacherFile', 'teacherModels'],
});

/** Trains the student described by `job.params` (see {@link SweepStudentJobParams}) into `job.outDir`. */
export async function runJob(job: Job): Promise<void> {
  const parsed = sweepStudentParamsSchema.safeParse(job.params);
  if (!parsed.success) throw new ConfigError(`sweep-student job ${job.id}: bad params: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const p = parsed.data;
  if (!currentBackend()) await initBackend(p.backend ?? 'auto');
  const log = createLogger({ prefix: job.id, tty: false });
  const [train, valid, test, extra] = await Promise.all([readSplit(p.trainFile), readSplit(p.validFile), readSplit(p.testFile), p.unlabeledFile ? readSplit(p.unlabeledFile) : null]);
  const transfer = transferSet(train, readInt32File(p.rowsFile, 'the transfer rows'), extra);
  const teacher: TeacherRows | null = p.teacherFile && p.teacherKind ? { targets: readFloat32File(p.teacherFile, transfer.n * p.classes, "the teacher's targets"), kind: p.teacherKind } : null;
  const models: tf.LayersModel[] = [];
  try {
    for (const d of p.teacherModels ?? []) models.push(await loadModel(d));
    log.info(`training (${p.loss.type === 'soft' ? `T ${p.loss.T}` : p.loss.type})`);
    const checkpointDir = path.join(job.outDir, 'checkpoint');
    const r = await trainStudent({
      transfer,
      teacher,
      online: models.length > 0 && p.combine ? { models, combine: p.combine } : null,
      valid,
      test,
      classes: p.classes,
      model: p.model,
      training: p.training,
      loss: p.loss,
      seed: p.seed,
      checkpointDir,
      log,
    });
    r.model.dispose();
    // Curves first, then the metrics the stage reads.
    await writeTrainingCurves(job.outDir, r.history);
    const metrics: SweepStudentMetrics = { test: r.test, valid: r.valid, best_epoch: r.bestEpoch, transfer_accuracy: r.transfer?.accuracy ?? null };
    await writeJsonAtomic(path.join(job.outDir, 'metrics.json'), metrics);
    await fs.rm(checkpointDir, { recursive: true, force: true });
    log.info(`${r.test.errors} test errors of ${r.test.examples}`);
  } finally {
    for (const m of models) m.dispose();
  }
}
