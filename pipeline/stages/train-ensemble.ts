/**
 * `train-ensemble`: K models of one architecture trained on hard labels from different random
 * seeds (initialisation, order, dropout), evaluated alone and as an ensemble (paper section 4).
 * A `distill` stage can name it as its teacher: its `members.json` lists the members' models.
 */
import { existsSync, readFileSync, promises as fs } from 'node:fs';
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
import { readIngested, writeModelOutputs, type SplitMetrics } from './common.ts';
import { trainStudent } from './student.ts';
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
  description: 'train K models of one architecture from different seeds; evaluate each and their ensemble',
  schema,
  deps: (p) => [p.data],
  code: ['pipeline/stages/train-ensemble.ts'],
  async run(ctx) {
    const p = ctx.params;
    const data = await readIngested(ctx.input(p.data));
    const C = data.classes.classes.length;
    const members: MemberSummary[] = [];
    const rel: string[] = [];
    for (let k = 0; k < p.members; k++) {
      const name = `member-${k}`;
      const scratch = path.join(ctx.scratchDir, name);
      const seed = memberSeed(ctx.seed, k);
      if (!existsSync(path.join(scratch, 'metrics.json'))) {
        ctx.log.info(`member ${k + 1}/${p.members} (seed ${seed}): training`);
        const r = await trainStudent({
          transfer: data.train,
          teacher: null,
          valid: data.valid,
          test: data.test,
          classes: C,
          model: p.model,
          training: p,
          loss: { type: 'hard' },
          seed,
          checkpointDir: path.join(ctx.scratchDir, `checkpoint-${k}`),
          log: ctx.log,
        });
        try {
          const tmp = `${scratch}.partial`;
          await fs.rm(tmp, { recursive: true, force: true });
          await writeModelOutputs(tmp, r.model, r.history, { test: r.test, valid: r.valid, best_epoch: r.bestEpoch, classes: C, seed });
          await fs.rm(scratch, { recursive: true, force: true });
          await fs.rename(tmp, scratch);
        } finally {
          r.model.dispose();
        }
        await fs.rm(path.join(ctx.scratchDir, `checkpoint-${k}`), { recursive: true, force: true });
      } else {
        ctx.log.info(`member ${k + 1}/${p.members}: finished before, reused`);
      }
      await fs.cp(scratch, path.join(ctx.outDir, name), { recursive: true });
      const m = JSON.parse(readFileSync(path.join(scratch, 'metrics.json'), 'utf8')) as MemberSummary;
      members.push({ seed, test: m.test, valid: m.valid, best_epoch: m.best_epoch });
      rel.push(`${name}/model`);
      ctx.log.info(`member ${k + 1}: ${m.test.errors} test errors`);
    }
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
