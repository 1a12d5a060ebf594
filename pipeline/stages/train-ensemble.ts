/**
 * `train-ensemble`: K models of one architecture trained on hard labels from different random
 * seeds (initialisation, order, dropout), evaluated alone and as an ensemble (paper section 4).
 * A `distill` stage can name it as its teacher: its `members.json` lists the members' models.
 * The members are independent jobs (`ensemble-member`): `--workers N` trains them in N local
 * processes, `--queue redis://...` on queue workers; a finished member is kept across a crash.
 */
import { readFileSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { writeJsonAtomic } from '../../src/artifacts/atomic.ts';
import { combineTeachers } from '../../src/distill/teacher.ts';
import { loadModel } from '../../src/models/io.ts';
import { predictLogits } from '../../src/models/predict.ts';
import type { LabeledSet } from '../../src/data/split-file.ts';
import { Rng } from '../../src/util/rng.ts';
import { defineStage } from '../stage.ts';
import { modelKeys, resolveModel, trainingSchema } from '../schemas.ts';
import { runStageJobs } from '../../src/jobs/job-runner.ts';
import type { Job } from '../../src/specialists/worker-pool.ts';
import type { EnsembleMemberJobParams } from '../jobs/ensemble-member-job.ts';
import { MODEL_OUTPUTS, readClasses, readIngested, type SplitMetrics } from './common.ts';
import { trainingParamsOf } from './student.ts';
import { MEMBERS_FILE, type MembersFile } from './teachers.ts';

const schema = z.strictObject({
  /** The `ingest` stage whose splits to train on. */
  data: z.string().default('ingest'),
  /** Number of members K. */
  members: z.number().int().min(1).max(100).default(10),
  /** How members are combined for the ensemble's prediction. */
  combine: z.enum(['arithmetic', 'geometric']).default('arithmetic'),
  ...modelKeys,
  ...trainingSchema,
}).transform(resolveModel);
/** Params of the `train-ensemble` stage. */
export type TrainEnsembleParams = z.output<typeof schema>;

/** One member's summary in `metrics.json`. */
export interface MemberSummary {
  seed: number;
  test: SplitMetrics;
  valid: SplitMetrics;
  best_epoch: number;
}

/** Content of the stage's `metrics.json`. */
export interface EnsembleMetrics {
  /** The ensemble's accuracy / errors (combined members). */
  test: Omit<SplitMetrics, 'loss'>;
  valid: Omit<SplitMetrics, 'loss'>;
  combine: 'arithmetic' | 'geometric';
  members: MemberSummary[];
  /** Mean over members of their own test accuracy and errors. */
  single_mean: { test_accuracy: number; test_errors: number };
}

/** Seed of member `k` (0-based) of a run with seed `runSeed`. */
export function memberSeed(runSeed: number, k: number): number {
  return Rng.derive(runSeed, `ensemble-member/${k}`).seed();
}

/** Accuracy of combined member logits (`members` arrays of `n x C`) against `labels`. */
export function ensembleAccuracy(memberLogits: Float32Array[], labels: Int32Array, C: number, mode: 'arithmetic' | 'geometric'): Omit<SplitMetrics, 'loss'> {
  const n = labels.length;
  const z = combineTeachers(memberLogits, n, C, mode);
  let errors = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < C; c++) if (z[i * C + c]! > z[i * C + best]!) best = c;
    if (best !== labels[i]) errors++;
  }
  return { accuracy: n ? (n - errors) / n : NaN, errors, examples: n };
}

/** `train-ensemble`: K independently seeded models and their ensemble. */
export const trainEnsembleStage = defineStage({
  type: 'train-ensemble',
  description: 'train K models of one architecture from different seeds (parallel with --workers or --queue); evaluate each and their ensemble',
  schema,
  deps: (p) => [p.data],
  code: ['pipeline/stages/train-ensemble.ts'],
  async run(ctx) {
    const p = ctx.params;
    const dataDir = ctx.input(p.data);
    const C = readClasses(dataDir).classes.length;
    // One job per member (`pipeline/jobs/ensemble-member-job.ts`): in this process, in --workers
    // local processes or on the --queue; a member's folder counts once its done marker is written.
    const jobs: Job[] = Array.from({ length: p.members }, (_, k) => {
      const params: EnsembleMemberJobParams = {
        trainFile: path.join(dataDir, 'train.arrow'),
        validFile: path.join(dataDir, 'valid.arrow'),
        testFile: path.join(dataDir, 'test.arrow'),
        classes: C,
        model: p.model,
        training: trainingParamsOf(p),
        seed: memberSeed(ctx.seed, k),
        backend: ctx.backend.name,
      };
      return { id: `member-${k}`, outDir: path.join(ctx.scratchDir, `member-${k}`), params };
    });
    await runStageJobs(ctx, 'train-ensemble', 'members', 'ensemble-member', jobs);
    const members: MemberSummary[] = [];
    const rel: string[] = [];
    for (const [k, job] of jobs.entries()) {
      const dest = path.join(ctx.outDir, job.id);
      await fs.mkdir(dest, { recursive: true });
      for (const entry of MODEL_OUTPUTS) await fs.cp(path.join(job.outDir, entry), path.join(dest, entry), { recursive: true });
      const m = JSON.parse(readFileSync(path.join(job.outDir, 'metrics.json'), 'utf8')) as MemberSummary;
      members.push({ seed: memberSeed(ctx.seed, k), test: m.test, valid: m.valid, best_epoch: m.best_epoch });
      rel.push(`${job.id}/model`);
      ctx.log.info(`member ${k + 1}: ${m.test.errors} test errors`);
    }
    const data = await readIngested(dataDir);
    const logitsOn = async (set: LabeledSet): Promise<Float32Array[]> => {
      const out: Float32Array[] = [];
      for (const r of rel) {
        const model = await loadModel(path.join(ctx.outDir, r));
        try {
          out.push(predictLogits(model, set.x, set.n, set.dim));
        } finally {
          model.dispose();
        }
      }
      return out;
    };
    const test = ensembleAccuracy(await logitsOn(data.test), data.test.y, C, p.combine);
    const valid = ensembleAccuracy(await logitsOn(data.valid), data.valid.y, C, p.combine);
    const single_mean = {
      test_accuracy: members.reduce((a, m) => a + m.test.accuracy, 0) / members.length,
      test_errors: members.reduce((a, m) => a + m.test.errors, 0) / members.length,
    };
    const metrics: EnsembleMetrics = { test, valid, combine: p.combine, members, single_mean };
    await writeJsonAtomic(path.join(ctx.outDir, 'metrics.json'), metrics);
    const membersFile: MembersFile = { members: rel };
    await writeJsonAtomic(path.join(ctx.outDir, MEMBERS_FILE), membersFile);
    ctx.log.info(`ensemble of ${p.members}: ${test.errors} test errors; members ${single_mean.test_errors.toFixed(1)} on average`);
    return { test_accuracy: test.accuracy, test_errors: test.errors, single_mean_test_errors: single_mean.test_errors };
  },
});
