/**
 * The job module that trains ONE specialist from files, for `runJobPool` (`worker-pool.ts`):
 * reads the generalist and the train/valid splits, computes the generalist's logits (no
 * gradients), calls `trainSpecialist`, and writes `<outDir>/model/` and `<outDir>/metrics.json`.
 * Training checkpoints go to `<outDir>/checkpoint/` (a crashed job resumes from its last epoch) and
 * are removed once the model is saved. The pool writes the `done` marker after `runJob` resolves.
 *
 * Usage: `runJobPool({ module: SPECIALIST_JOB_MODULE, jobs: [{ id, outDir, params: SpecialistJobParams }], workers })`.
 */
import type * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { writeJsonAtomic } from '../artifacts/atomic.ts';
import { currentBackend, initBackend } from '../backend/select.ts';
import { readSplit } from '../data/split-file.ts';
import { loadModel, saveModel } from '../models/io.ts';
import type { OptimizerSpec } from '../models/optimizer.ts';
import { predictLogits } from '../models/predict.ts';
import { ConfigError } from '../util/errors.ts';
import { createLogger } from '../util/log.ts';
import { trainSpecialist } from './specialist-train.ts';
import type { Job } from './worker-pool.ts';

/** Absolute path of this module, to pass as `module` to `runJobPool`. */
export const SPECIALIST_JOB_MODULE = fileURLToPath(import.meta.url);

const paramsSchema = z.object({
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
  /** Tensor backend for a worker process (ignored when one is already active). Default `auto`. */
  backend: z.string().optional(),
});

/** Parameters of one specialist job (JSON). */
export type SpecialistJobParams = Omit<z.infer<typeof paramsSchema>, 'optimizer'> & { optimizer: OptimizerSpec };

/** Trains the specialist described by `job.params` (see {@link SpecialistJobParams}) into `job.outDir`. */
export async function runJob(job: Job): Promise<void> {
  const parsed = paramsSchema.safeParse(job.params);
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
    const generalistTrainLogits = predictLogits(generalist, train.x, train.n, train.dim);
    const generalistValidLogits = predictLogits(generalist, valid.x, valid.n, valid.dim);
    const checkpointDir = path.join(job.outDir, 'checkpoint');
    const r = await trainSpecialist({
      generalist,
      classes: p.classes,
      train,
      valid,
      generalistTrainLogits,
      generalistValidLogits,
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
      checkpointDir,
      log,
    });
    model = r.model;
    await saveModel(model, path.join(job.outDir, 'model'));
    await writeJsonAtomic(path.join(job.outDir, 'metrics.json'), { id: job.id, ...r.metrics });
    await fs.rm(checkpointDir, { recursive: true, force: true });
  } finally {
    model?.dispose();
    generalist?.dispose();
  }
}
