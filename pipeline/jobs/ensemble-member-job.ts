/**
 * The job that trains ONE member of a `train-ensemble` stage from files: reads the ingested
 * train/valid/test splits, trains a model of the stage's architecture on hard labels from the
 * member's seed (`trainStudent` with loss `hard`, exactly as the stage did in-process) and writes
 * `<outDir>/model/`, `metrics.jsonl`, `tb/` and `metrics.json` (`writeModelOutputs`). Training
 * checkpoints go to `<outDir>/checkpoint/` (a job started again resumes from its last epoch) and are
 * removed once the outputs are written; the pool or queue worker writes the `done` marker after
 * `runJob` resolved, so a member killed mid-way never counts as finished.
 *
 * Runs wherever the stage's jobs run: in the stage's process (`--workers 1`), local child processes
 * (`--workers N`) or queue workers (`--queue`), with the same outputs byte for byte.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { currentBackend, initBackend } from '../../src/backend/select.ts';
import { readSplit } from '../../src/data/split-file.ts';
import { defineJobType } from '../../src/jobs/job-type.ts';
import { modelConfigSchema } from '../../src/models/arch/index.ts';
import type { Job } from '../../src/specialists/worker-pool.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { createLogger } from '../../src/util/log.ts';
import { writeModelOutputs } from '../stages/common.ts';
import { trainingParamsSchema, trainStudent } from '../stages/student.ts';

/** Absolute path of this module (the job type's `module`). */
export const ENSEMBLE_MEMBER_JOB_MODULE = fileURLToPath(import.meta.url);

/** Schema of {@link EnsembleMemberJobParams} (checked by the job and by a queue worker before it runs one). */
export const ensembleMemberParamsSchema = z.strictObject({
  /** The ingested splits (`<run>/<ingest stage>/{train,valid,test}.arrow`). */
  trainFile: z.string(),
  validFile: z.string(),
  testFile: z.string(),
  /** Number of classes (the model's outputs). */
  classes: z.number().int().positive(),
  /** The members' architecture (the stage's `model:`, resolved). */
  model: modelConfigSchema,
  /** The stage's training params. */
  training: trainingParamsSchema,
  /** This member's seed (`memberSeed(run seed, k)`). */
  seed: z.number().int(),
  /** Tensor backend for a worker process (ignored when one is already active). Default `auto`. */
  backend: z.string().optional(),
});

/** Parameters of one ensemble-member job (JSON). */
export type EnsembleMemberJobParams = z.output<typeof ensembleMemberParamsSchema>;

/** The `ensemble-member` job type (registered in `src/jobs/job-types.ts`). */
export const ensembleMemberJobType = defineJobType({
  name: 'ensemble-member',
  module: ENSEMBLE_MEMBER_JOB_MODULE,
  params: ensembleMemberParamsSchema,
  pathKeys: ['trainFile', 'validFile', 'testFile'],
});

/** Trains the member described by `job.params` (see {@link EnsembleMemberJobParams}) into `job.outDir`. */
export async function runJob(job: Job): Promise<void> {
  const parsed = ensembleMemberParamsSchema.safeParse(job.params);
  if (!parsed.success) throw new ConfigError(`ensemble-member job ${job.id}: bad params: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const p = parsed.data;
  if (!currentBackend()) await initBackend(p.backend ?? 'auto');
  const log = createLogger({ prefix: job.id, tty: false });
  const [train, valid, test] = await Promise.all([readSplit(p.trainFile), readSplit(p.validFile), readSplit(p.testFile)]);
  log.info(`training (seed ${p.seed})`);
  const checkpointDir = path.join(job.outDir, 'checkpoint');
  const r = await trainStudent({
    transfer: train,
    teacher: null,
    valid,
    test,
    classes: p.classes,
    model: p.model,
    training: p.training,
    loss: { type: 'hard' },
    seed: p.seed,
    checkpointDir,
    log,
  });
  try {
    await writeModelOutputs(job.outDir, r.model, r.history, { test: r.test, valid: r.valid, best_epoch: r.bestEpoch, classes: p.classes, seed: p.seed });
  } finally {
    r.model.dispose();
  }
  await fs.rm(checkpointDir, { recursive: true, force: true });
  log.info(`${r.test.errors} test errors of ${r.test.examples}`);
}
