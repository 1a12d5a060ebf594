/**
 * The job module that trains ONE specialist from files, for `runJobPool` (`worker-pool.ts`):
 * reads the generalist and the train/valid splits, computes the generalist's outputs (no
 * gradients), calls `trainSpecialist`, and writes `<outDir>/model/` and `<outDir>/metrics.json`
 * (which also records the training rows used and the job process's peak RSS, `peak_rss_mb`: see
 * {@link peakRssMb}; with a worker process kept across jobs it is that process's peak so far).
 *
 * Memory: for the dustbin head (default `teacherTargets: 'cells'`) the generalist runs over the
 * training rows and the validation split in batches and each batch is reduced at once to what the
 * specialist needs (`streamTeacherCells`: n x (|S|+1) cell logits and the argmax over all classes),
 * so a job never holds n x C logits (8 GB for C = 10,000 and 200,000 rows). `teacherTargets: 'full'`
 * (and the full head) keeps the generalist's full logits, as before. With `validLogitsFile` and
 * `trainLogitsFile` (written once by the stage for all jobs, with their row statistics) the
 * generalist's outputs are read from those files (only the job's training rows) instead of
 * recomputed: the same values, without K forward passes, and |S| exps per row instead of C.
 *
 * `maxOutside`: train on every special example plus a seeded sample of at most `maxOutside` outside
 * examples (`selectTrainingRows`); the generalist then only runs on those rows. The dustbin
 * corrections are unaffected: `fitted` matches the natural rate measured on the validation split,
 * and `log-oversampling` uses the natural special fraction of the whole training split.
 * Training checkpoints go to `<outDir>/checkpoint/` (a crashed job resumes from its last epoch) and
 * are removed once the model is saved. The pool writes the `done` marker after `runJob` resolves.
 *
 * Usage: `runJobPool({ module: SPECIALIST_JOB_MODULE, jobs: [{ id, outDir, params: SpecialistJobParams }], workers })`.
 */
import type * as tf from '@tensorflow/tfjs';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { writeJsonAtomic } from '../artifacts/atomic.ts';
import { currentBackend, initBackend } from '../backend/select.ts';
import { readSplit } from '../data/split-file.ts';
import { loadModel, saveModel } from '../models/io.ts';
import type { OptimizerSpec } from '../models/optimizer.ts';
import { predictLogits } from '../models/predict.ts';
import { SELECT_RULES, type LabeledSet } from '../models/types.ts';
import { defineJobType } from '../jobs/job-type.ts';
import { ConfigError } from '../util/errors.ts';
import { createLogger } from '../util/log.ts';
import { streamTeacherCells } from './specialist-loss.ts';
import { readLogitsFile, teacherCellsFromLogitsFile } from './teacher-logits-file.ts';
import { normaliseClasses, SPECIALIST_FREEZE } from './specialist-model.ts';
import { selectTrainingRows, trainSpecialist, type TrainSpecialistOptions } from './specialist-train.ts';
import type { Job } from './worker-pool.ts';

/** Absolute path of this module, to pass as `module` to `runJobPool`. */
export const SPECIALIST_JOB_MODULE = fileURLToPath(import.meta.url);

/** Schema of {@link SpecialistJobParams} (checked by the job itself and by a queue worker before it runs one). */
export const specialistParamsSchema = z.strictObject({
  generalistDir: z.string(),
  trainFile: z.string(),
  validFile: z.string(),
  classes: z.array(z.number().int().nonnegative()).min(1),
  head: z.enum(['dustbin', 'full']),
  softWeight: z.number().nonnegative(),
  T: z.number().positive(),
  correction: z.enum(['log-oversampling', 'fitted', 'none']),
  epochs: z.number().int().nonnegative(),
  batchSize: z.number().int().positive(),
  optimizer: z.record(z.string(), z.unknown()),
  seed: z.number().int(),
  specialFraction: z.number().gt(0).lt(1).optional(),
  dustbinInit: z.enum(['logistic', 'lstsq', 'mean']).optional(),
  /** Training rows sampled for the fitted dustbin initialisations (`logistic`, `lstsq`). Default 2048. */
  dustbinInitSample: z.number().int().min(2).optional(),
  /** Train on all special examples plus a seeded sample of at most this many outside examples. Default: all. */
  maxOutside: z.number().int().positive().optional(),
  /** How the generalist's outputs are kept: `cells` (dustbin head only; the default there) or `full` (n x C). */
  teacherTargets: z.enum(['cells', 'full']).optional(),
  /** Rows per generalist forward pass. Default 500. */
  predictBatch: z.number().int().positive().optional(),
  /**
   * The generalist's logits on the validation split, precomputed once for all jobs by the stage
   * (`writeTeacherLogitsFile`, raw Float32 n x C, written with the same `predictBatch`): the job
   * reduces them to its cells instead of running the generalist over the split again. Same result.
   */
  validLogitsFile: z.string().optional(),
  /** The same for the training split (all its rows, in file order; the job reads the rows it trains on). */
  trainLogitsFile: z.string().optional(),
  /** Checkpoint rule (early stopping on valid): `last` (default), `valid_loss`, `valid_accuracy`. */
  select: z.enum(SELECT_RULES).optional(),
  /** Layers kept at the generalist's values: `none` (default), `conv`, `body`. */
  freeze: z.enum(SPECIALIST_FREEZE).optional(),
  /** Tensor backend for a worker process (ignored when one is already active). Default `auto`. */
  backend: z.string().optional(),
});

/** The `specialist` job type (registered in `src/jobs/job-types.ts`). */
export const specialistJobType = defineJobType({
  name: 'specialist',
  module: SPECIALIST_JOB_MODULE,
  params: specialistParamsSchema,
  pathKeys: ['generalistDir', 'trainFile', 'validFile', 'validLogitsFile', 'trainLogitsFile'],
});

/** Parameters of one specialist job (JSON). */
export type SpecialistJobParams = Omit<z.infer<typeof specialistParamsSchema>, 'optimizer'> & { optimizer: OptimizerSpec };

/** Trains the specialist described by `job.params` (see {@link SpecialistJobParams}) into `job.outDir`. */
export async function runJob(job: Job): Promise<void> {
  const parsed = specialistParamsSchema.safeParse(job.params);
  if (!parsed.success) throw new ConfigError(`specialist job ${job.id}: bad params: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const p = parsed.data as SpecialistJobParams;
  if (!currentBackend()) await initBackend(p.backend ?? 'auto');
  const log = createLogger({ prefix: job.id, tty: false });
  const [train, valid] = await Promise.all([readSplit(p.trainFile), readSplit(p.validFile)]);
  let generalist: tf.LayersModel | undefined;
  let model: tf.LayersModel | undefined;
  try {
    generalist = await loadModel(p.generalistDir);
    const C = generalist.outputs[0].shape[1] as number;
    const classes = normaliseClasses(p.classes, C, p.head);
    const form = p.teacherTargets ?? (p.head === 'dustbin' ? 'cells' : 'full');
    if (form === 'cells' && p.head !== 'dustbin') throw new ConfigError(`specialist job ${job.id}: teacherTargets 'cells' needs head 'dustbin' (the full head's cells are its C logits)`);
    const trainRows = p.maxOutside === undefined ? undefined : selectTrainingRows(train.y, classes, p.maxOutside, p.seed);
    const rowCount = trainRows ? trainRows.length : train.n;
    const t0 = Date.now();
    const teacher: Pick<TrainSpecialistOptions, 'generalistTrainLogits' | 'generalistTrainCells' | 'generalistValidLogits' | 'generalistValidCells'> = {};
    if (form === 'cells') {
      const opts = { batchSize: p.predictBatch };
      const rowsOpt = trainRows ? { rows: trainRows } : {};
      teacher.generalistTrainCells = p.trainLogitsFile
        ? teacherCellsFromLogitsFile(p.trainLogitsFile, train.n, C, classes, { ...opts, ...rowsOpt }).cells
        : streamTeacherCells(generalist, train.x, train.n, train.dim, classes, { ...opts, ...rowsOpt }).cells;
      teacher.generalistValidCells = p.validLogitsFile
        ? teacherCellsFromLogitsFile(p.validLogitsFile, valid.n, C, classes, opts)
        : streamTeacherCells(generalist, valid.x, valid.n, valid.dim, classes, opts);
    } else {
      teacher.generalistTrainLogits = p.trainLogitsFile
        ? readLogitsFile(p.trainLogitsFile, train.n, C, trainRows)
        : predictLogits(generalist, trainRows ? gatherRows(train, trainRows) : train.x, rowCount, train.dim, { batchSize: p.predictBatch });
      teacher.generalistValidLogits = p.validLogitsFile ? readLogitsFile(p.validLogitsFile, valid.n, C) : predictLogits(generalist, valid.x, valid.n, valid.dim, { batchSize: p.predictBatch });
    }
    const teacherSeconds = (Date.now() - t0) / 1000;
    const teacherSource = { train: p.trainLogitsFile ? 'file' : 'model', valid: p.validLogitsFile ? 'file' : 'model' };
    log.info(`generalist outputs (${form}; train from ${teacherSource.train}, valid from ${teacherSource.valid}) on ${rowCount} of ${train.n} training rows and ${valid.n} validation rows: ${teacherSeconds.toFixed(2)} s`);
    const checkpointDir = path.join(job.outDir, 'checkpoint');
    const r = await trainSpecialist({
      generalist,
      classes: p.classes,
      train,
      valid,
      ...teacher,
      ...(trainRows ? { trainRows } : {}),
      C,
      head: p.head,
      softWeight: p.softWeight,
      T: p.T,
      correction: p.correction,
      epochs: p.epochs,
      batchSize: p.batchSize,
      optimizer: p.optimizer,
      seed: p.seed,
      specialFraction: p.specialFraction,
      dustbinInit: p.dustbinInit,
      ...(p.dustbinInitSample !== undefined ? { dustbinInitSample: p.dustbinInitSample } : {}),
      ...(p.select !== undefined ? { select: p.select } : {}),
      ...(p.freeze !== undefined ? { freeze: p.freeze } : {}),
      checkpointDir,
      log,
    });
    model = r.model;
    await saveModel(model, path.join(job.outDir, 'model'));
    await writeJsonAtomic(path.join(job.outDir, 'metrics.json'), {
      id: job.id,
      ...r.metrics,
      train_rows: rowCount,
      teacher_targets: form,
      teacher_seconds: teacherSeconds,
      // where the generalist's outputs came from: the stage's shared logits `file`, or the `model` run by this job
      teacher_source: teacherSource,
      peak_rss_mb: peakRssMb(),
    });
    await fs.rm(checkpointDir, { recursive: true, force: true });
  } finally {
    model?.dispose();
    generalist?.dispose();
  }
}

/** The rows `rows` of `set.x`, row-major rows.length x dim. */
function gatherRows(set: LabeledSet, rows: Int32Array): Float32Array {
  const x = new Float32Array(rows.length * set.dim);
  for (let r = 0; r < rows.length; r++) x.set(set.x.subarray(rows[r] * set.dim, (rows[r] + 1) * set.dim), r * set.dim);
  return x;
}

/**
 * Peak resident set size of this process in MiB: `VmHWM` from `/proc/self/status` on Linux (the
 * high-water mark of this process's own address space), else `process.resourceUsage().maxRSS`.
 * (`maxRSS` is not used on Linux because it survives `execve`: a worker forked from a large parent
 * would report the parent's RSS at the fork.)
 */
export function peakRssMb(): number {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Math.round(Number(m[1]) / 1024);
  } catch {
    // not Linux: fall through
  }
  return Math.round(process.resourceUsage().maxRSS / 1024);
}
