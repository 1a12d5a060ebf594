import path from 'node:path';
import { existsSync, promises as fs, readFileSync, statfsSync } from 'node:fs';
import { z } from 'zod';
import { defineStage } from '../stage.ts';
import { optimizerSchema, toOptimizerSpec } from '../schemas.ts';
import { isJobDone, type Job } from '../../src/specialists/worker-pool.ts';
import { runStageJobs } from '../../src/jobs/job-runner.ts';
import { removeTeacherLogitsFile, writeTeacherLogitsFile } from '../../src/specialists/teacher-logits-file.ts';
import { SPECIALIST_LOSS_KEYS } from '../../src/specialists/specialist-loss.ts';
import { readSplit } from '../../src/data/split-file.ts';
import { loadModel } from '../../src/models/io.ts';
import { type SpecialistJobParams } from '../../src/specialists/worker-specialist-job.ts';
import type { SpecialistMetrics } from '../../src/specialists/specialist-train.ts';
import { SPECIALIST_FREEZE } from '../../src/specialists/specialist-model.ts';
import { SELECT_RULES } from '../../src/models/types.ts';
import { writeJsonAtomic } from '../../src/artifacts/atomic.ts';
import { writeTrainingCurves } from '../../src/tensorboard/training-curves.ts';
import { warnIfTrainedOnValid } from './common.ts';
import { ArtifactError, UserError } from '../../src/util/errors.ts';
import { formatTable, pct } from '../../src/cli/table.ts';

const schema = z.strictObject({
  /** The `ingest` stage. */
  data: z.string().default('ingest'),
  /**
   * The generalist model stage the specialists are initialised from: a model of any architecture
   * (each specialist copies its whole body and rebuilds its head; the dustbin is fitted on the
   * head's input features).
   */
  model: z.string().default('generalist'),
  /** The `clusters` stage: one specialist per cluster. */
  clusters: z.string().default('clusters'),
  /** `dustbin`: softmax over the special classes + one dustbin; `full`: a full softmax over all classes. */
  head: z.enum(['dustbin', 'full']).default('dustbin'),
  /** Weight of the soft targets from the generalist (0 = hard targets only; the paper's section 6.1 regulariser). */
  soft_weight: SPECIALIST_LOSS_KEYS.soft_weight,
  /** Temperature of the soft targets (the dustbin's teacher logit is aggregated before tempering). */
  temperature: SPECIALIST_LOSS_KEYS.temperature,
  /**
   * Dustbin correction after training: `fitted` (offset that makes the mean dustbin probability on
   * valid equal the natural rate: right when soft targets are mixed in), `log-oversampling` (the
   * paper's rule: + log of the oversampling odds ratio; right for hard targets only), `none`.
   */
  correction: z.enum(['fitted', 'log-oversampling', 'none']).default('fitted'),
  /** How the dustbin unit is initialised from the generalist (see src/specialists/specialist-model.ts). */
  dustbin_init: z.enum(['logistic', 'lstsq', 'mean']).default('logistic'),
  /** Training rows sampled for the `logistic` / `lstsq` dustbin initialisation (its cost grows with rows x C). */
  dustbin_init_sample: z.number().int().min(2).default(2048),
  /** Fraction of every training batch drawn from the special subset (the paper: 0.5). */
  special_fraction: z.number().gt(0).lt(1).default(0.5),
  /**
   * Train each specialist on all its special examples plus a seeded random sample of at most this
   * many outside examples (the 50/50 batches draw their outside half from that sample); default: no
   * limit. The dustbin corrections are unaffected: `fitted` matches the natural rate measured on the
   * validation split, `log-oversampling` uses the natural special fraction of the whole training split.
   */
  max_outside: z.number().int().positive().optional(),
  epochs: z.number().int().positive().max(10_000).default(10),
  batch_size: z.number().int().positive().default(128),
  optimizer: optimizerSchema.default({ name: 'sgd', lr: 0.01, momentum: 0.9, nesterov: false, schedule: { type: 'constant' } }),
  /**
   * Early stopping: the epoch whose weights each specialist keeps, judged on the validation split
   * (natural prior, before the dustbin correction): `last`, `valid_loss` (the specialist loss) or
   * `valid_accuracy` (argmax over its classes and dustbin). Each epoch then also costs a pass over
   * valid. The chosen epochs are in specialists.json (`best_epoch`).
   */
  select: z.enum(SELECT_RULES).default('last'),
  /**
   * Layers kept at the generalist's values while a specialist trains: `none` (the whole copy is
   * fine-tuned, as in the paper), `conv` (a CNN's convolution and batch-norm layers frozen: its dense
   * layers and head learn), `body` (only the head learns).
   */
  freeze: z.enum(SPECIALIST_FREEZE).default('none'),
  /**
   * The generalist's logits on the training split: `shared` (computed once by the stage into its
   * scratch folder, n x C x 4 bytes, and read by every job: the rows it trains on only), `per-job`
   * (each job runs the generalist over its training rows itself), or `auto` (shared when the file
   * takes at most half the free space of the run's disk). Same cells either way; shared saves K - 1
   * forward passes and most of the reduction. The validation split's are always shared.
   */
  train_logits: z.enum(['auto', 'shared', 'per-job']).default('auto'),
});

/** One row of `specialists.json`. */
export interface SpecialistSummary {
  id: string;
  size: number;
  classes: number[];
  within_examples: number;
  specialist_accuracy_within: number;
  generalist_accuracy_within: number;
  generalist_accuracy_within_full: number;
  natural_rate: number;
  mean_dustbin_prob: number;
  dustbin_offset: number;
  log_oversampling: number;
  specialist_auc: number;
  generalist_auc: number;
  /** The 1-based epoch whose weights the specialist kept (`select`). */
  best_epoch: number;
}

interface ClustersJson {
  k: number;
  clusters: { id: number; classes: number[]; names: string[] }[];
}

/**
 * `specialists`: one specialist per cluster, initialised from the generalist, trained on 50/50
 * batches with hard + soft targets, dustbin corrected. Independent jobs: `--workers N` runs them in
 * N processes, `--queue redis://...` on a BullMQ queue for `npm run worker` processes; finished ones are kept across a crash (in the stage's scratch folder).
 */
export const specialistsStage = defineStage({
  type: 'specialists',
  description: 'train one dustbin specialist per cluster, from the generalist (parallel with --workers)',
  schema,
  deps: (p) => [p.data, p.model, p.clusters],
  code: ['pipeline/stages/specialists.ts'],
  async run(ctx) {
    const p = ctx.params;
    const clustersFile = path.join(ctx.input(p.clusters), 'clusters.json');
    let clusters: ClustersJson;
    try {
      clusters = JSON.parse(readFileSync(clustersFile, 'utf8')) as ClustersJson;
    } catch (e) {
      throw new ArtifactError(`cannot read ${clustersFile}: ${(e as Error).message}; rerun the clusters stage with --force`);
    }
    const C = (JSON.parse(readFileSync(path.join(ctx.input(p.data), 'classes.json'), 'utf8')) as { classes: unknown[] }).classes.length;
    if (p.head === 'dustbin') {
      const full = clusters.clusters.find((c) => c.classes.length >= C);
      if (full) throw new UserError('config', `cluster ${full.id} covers all ${C} classes, so its dustbin would be empty; lower clusters.overlap or raise clusters.k`);
    }
    const dataDir = ctx.input(p.data);
    const width = String(Math.max(0, clusters.clusters.length - 1)).length;
    const idOf = (k: number): string => `specialist-${String(k).padStart(Math.max(width, 2), '0')}`;
    // The generalist's logits on the validation split, once for all jobs (each needs them whole),
    // and on the training split unless `train_logits` says otherwise (each job reads its rows).
    const validLogitsFile = path.join(ctx.scratchDir, 'generalist-valid-logits.f32');
    const trainLogitsPath = path.join(ctx.scratchDir, 'generalist-train-logits.f32');
    const jobDir = (k: number): string => path.join(ctx.scratchDir, idOf(k));
    let trainLogitsFile: string | undefined;
    if (clusters.clusters.some((_, k) => !isJobDone(jobDir(k)))) {
      const needValid = !existsSync(validLogitsFile);
      const needTrain = p.train_logits !== 'per-job' && !existsSync(trainLogitsPath);
      if (needValid || needTrain) {
        warnIfTrainedOnValid(ctx.input(p.model), p.model, "the specialists' comparison with it on valid (its accuracy within each subset)", ctx.log);
        const generalist = await loadModel(path.join(ctx.input(p.model), 'model'));
        try {
          if (needValid) {
            const started = Date.now();
            const valid = await readSplit(path.join(dataDir, 'valid.arrow'));
            writeTeacherLogitsFile(generalist, valid.x, valid.n, valid.dim, validLogitsFile);
            ctx.log.info(`generalist logits on ${valid.n} validation rows, shared by the ${clusters.clusters.length} jobs: ${((Date.now() - started) / 1000).toFixed(1)} s`);
          }
          if (needTrain) {
            const started = Date.now();
            const train = await readSplit(path.join(dataDir, 'train.arrow'));
            const bytes = train.n * C * 4;
            const free = freeBytes(ctx.scratchDir);
            if (p.train_logits === 'shared' || bytes <= free / 2) {
              writeTeacherLogitsFile(generalist, train.x, train.n, train.dim, trainLogitsPath);
              ctx.log.info(`generalist logits on ${train.n} training rows (${(bytes / 2 ** 20).toFixed(0)} MiB), shared by the ${clusters.clusters.length} jobs: ${((Date.now() - started) / 1000).toFixed(1)} s`);
            } else {
              ctx.log.info(`generalist logits on the training split would take ${(bytes / 2 ** 30).toFixed(1)} GiB, more than half the ${(free / 2 ** 30).toFixed(1)} GiB free in ${ctx.scratchDir}: each job computes its own (set specialists.train_logits: shared to force)`);
            }
          }
        } finally {
          generalist.dispose();
        }
      }
      if (existsSync(trainLogitsPath)) trainLogitsFile = trainLogitsPath;
    }
    const jobs: Job[] = clusters.clusters.map((c, k) => {
      const params: SpecialistJobParams = {
        generalistDir: path.join(ctx.input(p.model), 'model'),
        trainFile: path.join(dataDir, 'train.arrow'),
        validFile: path.join(dataDir, 'valid.arrow'),
        classes: c.classes,
        head: p.head,
        softWeight: p.soft_weight,
        T: p.temperature,
        correction: p.correction,
        epochs: p.epochs,
        batchSize: p.batch_size,
        optimizer: toOptimizerSpec(p.optimizer),
        seed: ctx.seed + 1000 * (k + 1),
        specialFraction: p.special_fraction,
        dustbinInit: p.dustbin_init,
        dustbinInitSample: p.dustbin_init_sample,
        ...(p.max_outside !== undefined ? { maxOutside: p.max_outside } : {}),
        ...(p.select !== 'last' ? { select: p.select } : {}),
        ...(p.freeze !== 'none' ? { freeze: p.freeze } : {}),
        validLogitsFile,
        ...(trainLogitsFile ? { trainLogitsFile } : {}),
        backend: ctx.backend.name,
      };
      return { id: idOf(k), outDir: jobDir(k), params };
    });
    await runStageJobs(ctx, 'specialists', 'specialists', 'specialist', jobs);
    removeTeacherLogitsFile(validLogitsFile);
    removeTeacherLogitsFile(trainLogitsPath);
    const summary: SpecialistSummary[] = [];
    let workerPeak = 0;
    for (const job of jobs) {
      const dest = path.join(ctx.outDir, job.id);
      await fs.mkdir(dest, { recursive: true });
      await fs.cp(path.join(job.outDir, 'model'), path.join(dest, 'model'), { recursive: true });
      await fs.copyFile(path.join(job.outDir, 'metrics.json'), path.join(dest, 'metrics.json'));
      const m = JSON.parse(readFileSync(path.join(job.outDir, 'metrics.json'), 'utf8')) as SpecialistMetrics & { id: string; peak_rss_mb?: number };
      workerPeak = Math.max(workerPeak, m.peak_rss_mb ?? 0);
      await writeTrainingCurves(dest, m.history);
      summary.push({
        id: job.id,
        size: m.size,
        classes: m.classes,
        within_examples: m.valid.within_examples,
        specialist_accuracy_within: m.valid.specialist_accuracy_within,
        generalist_accuracy_within: m.valid.generalist_accuracy_within,
        generalist_accuracy_within_full: m.valid.generalist_accuracy_within_full,
        natural_rate: m.valid.dustbin.natural_rate,
        mean_dustbin_prob: m.valid.dustbin.mean_dustbin_prob,
        dustbin_offset: m.valid.dustbin.offset,
        log_oversampling: m.valid.dustbin.log_oversampling,
        specialist_auc: m.valid.dustbin.special_vs_rest.specialist_auc,
        generalist_auc: m.valid.dustbin.special_vs_rest.generalist_auc,
        best_epoch: m.best_epoch,
      });
    }
    await writeJsonAtomic(path.join(ctx.outDir, 'specialists.json'), { head: p.head, correction: p.correction, select: p.select, freeze: p.freeze, specialists: summary });
    ctx.log.info(
      '\n' +
        formatTable(
          ['specialist', 'classes', 'valid n', 'spec acc', 'gen acc', 'dustbin offset', 'log odds', 'dustbin p', 'natural', 'AUC spec', 'AUC gen', 'epoch kept'],
          summary.map((s) => [s.id, s.size, s.within_examples, pct(s.specialist_accuracy_within), pct(s.generalist_accuracy_within), s.dustbin_offset, s.log_oversampling, s.mean_dustbin_prob, s.natural_rate, s.specialist_auc, s.generalist_auc, s.best_epoch]),
        ),
    );
    const mean = (f: (s: SpecialistSummary) => number): number => summary.reduce((a, s) => a + f(s) * s.within_examples, 0) / Math.max(1, summary.reduce((a, s) => a + s.within_examples, 0));
    return {
      specialists: jobs.length,
      specialist_accuracy_within: mean((s) => s.specialist_accuracy_within),
      generalist_accuracy_within: mean((s) => s.generalist_accuracy_within),
      // Peak resident memory of the largest specialist job (each reports its own).
      max_job_peak_rss_mb: workerPeak,
    };
  },
});

/** Bytes free to an unprivileged user on the filesystem holding `dir` (Infinity when unknown). */
function freeBytes(dir: string): number {
  try {
    const s = statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return Infinity;
  }
}
