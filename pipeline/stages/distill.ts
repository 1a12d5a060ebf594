/**
 * `distill`: trains a student MLP on a transfer set (a subset of the train split) with the
 * paper's distillation loss against a teacher: one earlier model stage, several (an ensemble,
 * arithmetic or geometric mean), or precomputed probabilities (`teacher_targets`).
 */
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { sha256 } from '../../src/artifacts/hash.ts';
import type { LabeledSet } from '../../src/data/split-file.ts';
import { loadModel } from '../../src/models/io.ts';
import { ArtifactError, ConfigError } from '../../src/util/errors.ts';
import { defineStage, type StageContext } from '../stage.ts';
import { modelKeys, resolveModelOrInit, trainingSchema } from '../schemas.ts';
import { readIngested, writeModelOutputs, type IngestedData } from './common.ts';
import { lossType } from '../../src/distill/loss-registry.ts';
import { temperLogits, temperProbabilities } from '../../src/distill/temper.ts';
import { lossSchema, trainStudent, type LossConfig, type TeacherRows } from './student.ts';
import { cachedTeacherLogits, logOfProbabilities, modelDirsOf, readSoftTargets, TEACHER_LOGITS_FILE } from './teachers.ts';
import { describeTransfer, readUnlabeled, selectTransfer, transferSchema, transferSet, type TransferSpec } from './transfer.ts';

const stageName = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'a stage name');

/** Params every distillation stage shares: data, teacher, transfer set. */
export const distillSourceSchema = {
  /** The `ingest` stage whose splits to use. */
  data: stageName.default('ingest'),
  /** Earlier model stage(s) whose logits are the teacher: one name, or a list (an ensemble). */
  teacher: z
    .union([stageName, z.array(stageName).min(1)])
    .transform((v) => (Array.isArray(v) ? v : [v]))
    .optional(),
  /** How an ensemble teacher's members are combined (probabilities' arithmetic or geometric mean). */
  combine: z.enum(['arithmetic', 'geometric']).default('arithmetic'),
  /** Instead of `teacher`: an earlier stage that wrote `soft-targets-train.arrow` (probabilities). */
  teacher_targets: stageName.optional(),
  /** Which rows of the train split the student learns from (valid and test stay whole). */
  transfer: transferSchema,
  /**
   * Tempers the teacher's targets before the loss sees them: probabilities `p^(1/tau)`
   * renormalised, logits `v / tau`. Below 1 sharpens (an ensemble's softer q, say); 1 leaves them.
   * Unlike the loss's T it does not divide the student's logits: it changes what is matched.
   */
  teacher_temperature: z.number().positive().finite().default(1),
};

/** The teacher-related params, as parsed. */
export interface DistillSourceParams {
  data: string;
  teacher?: string[] | undefined;
  combine: 'arithmetic' | 'geometric';
  teacher_targets?: string | undefined;
  transfer: TransferSpec;
  teacher_temperature?: number | undefined;
  jitter: number;
  /** The loss's alpha (weight of the teacher term), when it has one. */
  alpha?: number | undefined;
}

/** Schema-level checks of the teacher params (`needsTeacher`: the loss uses teacher rows). */
export function checkTeacherParams(p: DistillSourceParams, needsTeacher: boolean, ctx: z.RefinementCtx): void {
  if (p.teacher && p.teacher_targets) ctx.addIssue({ code: 'custom', path: ['teacher_targets'], message: "give either 'teacher' (model stages) or 'teacher_targets' (a stage with soft targets), not both" });
  if (needsTeacher && !p.teacher && !p.teacher_targets) {
    ctx.addIssue({ code: 'custom', path: ['teacher'], message: "this loss needs a teacher: list model stage(s) in 'teacher', or name a soft-target stage in 'teacher_targets' (or use loss {type: hard})" });
  }
  if (!needsTeacher && (p.teacher || p.teacher_targets)) {
    ctx.addIssue({ code: 'custom', path: ['teacher'], message: "loss {type: hard} uses no teacher; remove 'teacher'/'teacher_targets' or use a soft or logits loss" });
  }
  const source = p.transfer.source ?? 'train';
  if (source !== 'train' && !needsTeacher) {
    ctx.addIssue({ code: 'custom', path: ['transfer', 'source'], message: `unlabeled rows (source '${source}') need a teacher to label them: use a soft or logits loss with 'teacher' or 'teacher_targets'` });
  }
  if (source === 'unlabeled' && p.alpha !== undefined && p.alpha < 1) {
    ctx.addIssue({ code: 'custom', path: ['loss', 'alpha'], message: `transfer.source 'unlabeled' has no labels for the hard-label term: set alpha to 1 (now ${p.alpha}), or use source 'both'` });
  }
  const tau = p.teacher_temperature ?? 1;
  if (tau !== 1 && !needsTeacher) ctx.addIssue({ code: 'custom', path: ['teacher_temperature'], message: `teacher_temperature ${tau} tempers a teacher, but this loss uses none: remove it` });
  if (tau !== 1 && needsTeacher && p.jitter > 0) {
    ctx.addIssue({ code: 'custom', path: ['teacher_temperature'], message: `teacher_temperature ${tau} applies to cached teacher rows; a jittered teacher is queried per batch: set jitter to 0 or teacher_temperature to 1` });
  }
  if (needsTeacher && p.jitter > 0 && p.teacher_targets) {
    ctx.addIssue({ code: 'custom', path: ['jitter'], message: "precomputed 'teacher_targets' exist only for the unjittered transfer set: set jitter to 0, or give the teacher as model stage(s) in 'teacher' (queried on every jittered batch)" });
  }
}

/** Stage names a distillation stage reads. */
export function distillDeps(p: DistillSourceParams): string[] {
  return [p.data, ...(p.teacher ?? []), ...(p.teacher_targets ? [p.teacher_targets] : [])];
}


/** The data, transfer set and teacher rows of a distillation stage. */
export interface PreparedDistillation {
  data: IngestedData;
  classes: number;
  /** Train-split rows of the transfer set (ascending). */
  rows: Int32Array;
  /** Unlabeled rows appended after them (transfer.source `unlabeled` / `both`; else 0). */
  unlabeled: number;
  /** The train rows, then the unlabeled rows (label -1). */
  transfer: LabeledSet;
  /**
   * Teacher rows per kind the loss may need (`logits` for logit matching; `probabilities`
   * only when the teacher is given as probabilities). `logits` is a function: from
   * probabilities it makes an n x C copy (their logarithms), so only a loss that wants logits
   * pays for it. Null without a teacher.
   */
  teacher: { logits: () => TeacherRows; probabilities: TeacherRows | null } | null;
  /** What the teacher is, for metrics.json: stage names, or `targets:<stage>`. */
  teacherLabel: string[] | null;
  /** Number of teacher models combined (0 for precomputed targets or no teacher). */
  teacherModels: number;
  /**
   * With `jitter > 0`: the teacher models, loaded, to query on every (jittered) training batch
   * (then `teacher` is null). The caller must dispose them ({@link disposePrepared}).
   */
  online: { models: tf.LayersModel[]; combine: 'arithmetic' | 'geometric' } | null;
}

/** Frees what {@link prepareDistillation} loaded (the online teacher's models). */
export function disposePrepared(prep: PreparedDistillation): void {
  for (const m of prep.online?.models ?? []) m.dispose();
}

/**
 * Reads the ingested splits, selects the transfer set and gets the teacher rows for it: the
 * teacher models' logits (cached in the scratch folder across a crash and written to
 * `teacher-logits.arrow` in the stage folder), or the soft-target stage's probabilities.
 */
export async function prepareDistillation(ctx: StageContext<unknown>, p: DistillSourceParams, needsTeacher: boolean): Promise<PreparedDistillation> {
  const data = await readIngested(ctx.input(p.data));
  const C = data.classes.classes.length;
  const source = p.transfer.source ?? 'train';
  const rows = source === 'unlabeled' ? new Int32Array(0) : selectTransfer(data.train.y, C, p.transfer, ctx.seed);
  const extra = source === 'train' ? null : await readUnlabeled(ctx.input(p.data), p.data);
  const unlabeled = extra?.n ?? 0;
  const transfer = transferSet(data.train, rows, extra);
  ctx.log.info(`transfer set: ${describeTransfer(p.transfer, rows.length, unlabeled)}`);
  if (!needsTeacher) return { data, classes: C, rows, unlabeled, transfer, teacher: null, teacherLabel: null, teacherModels: 0, online: null };
  if (p.teacher_targets) {
    const stageDir = ctx.input(p.teacher_targets);
    let probabilities: Float32Array;
    let tc: number;
    if (rows.length > 0) ({ probabilities, C: tc } = await readSoftTargets(stageDir, p.teacher_targets, data.train.y, rows));
    else ({ probabilities, C: tc } = { probabilities: new Float32Array(0), C });
    if (extra) {
      const u = await readSoftTargets(stageDir, p.teacher_targets, extra.y, null, 'unlabeled');
      if (rows.length > 0 && u.C !== tc) throw new ArtifactError(`stage '${p.teacher_targets}': its soft targets on train have ${tc} classes but on the unlabeled rows ${u.C}; rerun it`);
      tc = u.C;
      if (probabilities.length === 0) probabilities = u.probabilities;
      else {
        const joined = new Float32Array(probabilities.length + u.probabilities.length);
        joined.set(probabilities);
        joined.set(u.probabilities, probabilities.length);
        probabilities = joined;
      }
    }
    if (tc !== C) throw new ConfigError(`teacher_targets '${p.teacher_targets}' has ${tc} classes but the data has ${C}`);
    const tau = p.teacher_temperature ?? 1;
    if (tau !== 1) {
      temperProbabilities(probabilities, C, tau);
      ctx.log.info(`teacher targets tempered at ${tau} (p^(1/${tau}) renormalised)`);
    }
    return {
      data,
      classes: C,
      rows,
      unlabeled,
      transfer,
      teacher: { logits: () => ({ targets: logOfProbabilities(probabilities), kind: 'logits' }), probabilities: { targets: probabilities, kind: 'probabilities' } },
      teacherLabel: [`targets:${p.teacher_targets}`],
      teacherModels: 0,
      online: null,
    };
  }
  const names = p.teacher!;
  const modelDirs = names.flatMap((t) => modelDirsOf(ctx.input(t), t));
  ctx.log.info(`teacher: ${names.join(' + ')} (${modelDirs.length} model${modelDirs.length > 1 ? 's' : ''}${modelDirs.length > 1 ? `, ${p.combine} mean` : ''})`);
  if (p.jitter > 0) {
    // Targets for jittered inputs cannot be cached per row: query the teacher on every batch.
    ctx.log.info(`teacher queried on every jittered batch (jitter ${p.jitter}); no teacher-logit cache`);
    const models: tf.LayersModel[] = [];
    try {
      for (const d of modelDirs) models.push(await loadModel(d));
    } catch (e) {
      for (const m of models) m.dispose();
      throw e;
    }
    const C0 = models[0]!.outputs[0]!.shape[1];
    if (C0 !== C) {
      for (const m of models) m.dispose();
      throw new ConfigError(`the teacher (${names.join(', ')}) has ${C0} outputs but the data has ${C} classes`);
    }
    return { data, classes: C, rows, unlabeled, transfer, teacher: null, teacherLabel: names, teacherModels: modelDirs.length, online: { models, combine: p.combine } };
  }
  const cacheName = TEACHER_LOGITS_FILE;
  const rowsKey = sha256(new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength));
  const { logits, C: tc } = await cachedTeacherLogits({
    modelDirs,
    combine: p.combine,
    x: transfer.x,
    n: transfer.n,
    dim: transfer.dim,
    // The train rows' hash alone, as before unlabeled rows existed (existing caches stay valid).
    transferKey: unlabeled === 0 ? rowsKey : sha256(`${rowsKey}+unlabeled:${unlabeled}:${source}`),
    lookIn: [path.join(ctx.scratchDir, cacheName)],
    writeTo: [path.join(ctx.scratchDir, cacheName), path.join(ctx.outDir, cacheName)],
    log: ctx.log,
  });
  if (tc !== C) throw new ConfigError(`the teacher (${names.join(', ')}) has ${tc} outputs but the data has ${C} classes`);
  const tau = p.teacher_temperature ?? 1;
  if (tau !== 1) {
    // After the cache is written: the cache holds the teacher's own logits, whatever the tempering.
    temperLogits(logits, tau);
    ctx.log.info(`teacher logits tempered at ${tau} (divided by ${tau})`);
  }
  return { data, classes: C, rows, unlabeled, transfer, teacher: { logits: () => ({ targets: logits, kind: 'logits' }), probabilities: null }, teacherLabel: names, teacherModels: modelDirs.length, online: null };
}

/** The teacher rows a loss should get: probabilities when the loss takes them and that is what we have. */
export function teacherRowsFor(prep: PreparedDistillation, loss: LossConfig): TeacherRows | null {
  const t = lossType(loss.type);
  if (!prep.teacher || !t.needsTeacher(loss)) return null;
  if (t.teacherKinds.includes('probabilities') && prep.teacher.probabilities) return prep.teacher.probabilities;
  return prep.teacher.logits();
}

const schema = z
  .strictObject({
    ...distillSourceSchema,
    ...modelKeys,
    ...trainingSchema,
    /**
     * An earlier model stage (`train`, `distill`, `model`: e.g. your own student architecture with
     * its starting weights) whose model the student starts from. Without `model:` (or the MLP
     * keys) the student is that model's own architecture; with it, the architecture must match.
     */
    init_from: stageName.optional(),
    /** `{type: soft, T, alpha}`, `{type: logits, alpha}` or `{type: hard}`. */
    loss: lossSchema,
  })
  .superRefine((p, ctx) => checkTeacherParams({ ...p, alpha: lossType(p.loss.type).teacherWeight(p.loss) }, lossType(p.loss.type).needsTeacher(p.loss), ctx))
  .transform(resolveModelOrInit);
/** Params of the `distill` stage. */
export type DistillParams = z.output<typeof schema>;

/** `distill`: a student trained on a transfer set against a teacher's soft targets or logits. */
export const distillStage = defineStage({
  type: 'distill',
  description: 'train a student (`model:`, default an MLP) on a transfer set with a distillation loss (teacher: model stage(s) or soft targets)',
  schema,
  deps: (p) => [...distillDeps(p), ...(p.init_from !== undefined && !distillDeps(p).includes(p.init_from) ? [p.init_from] : [])],
  code: ['pipeline/stages/distill.ts'],
  async run(ctx) {
    const p = ctx.params;
    const prep = await prepareDistillation(ctx as StageContext<unknown>, p, lossType(p.loss.type).needsTeacher(p.loss));
    const { data } = prep;
    const r = await trainStudent({
      transfer: prep.transfer,
      teacher: teacherRowsFor(prep, p.loss),
      online: prep.online,
      valid: data.valid,
      test: data.test,
      classes: prep.classes,
      model: p.model,
      initFrom: p.init_from !== undefined ? { dir: path.join(ctx.input(p.init_from), 'model'), where: `${ctx.name}.init_from '${p.init_from}'` } : undefined,
      training: p,
      loss: p.loss,
      seed: ctx.seed,
      checkpointDir: path.join(ctx.scratchDir, 'checkpoint'),
      log: ctx.log,
    }).finally(() => disposePrepared(prep));
    try {
      await writeModelOutputs(ctx.outDir, r.model, r.history, {
        test: r.test,
        valid: r.valid,
        best_epoch: r.bestEpoch,
        classes: prep.classes,
        teacher: prep.teacherLabel,
        combine: prep.teacherModels > 1 ? p.combine : null,
        teacher_models: prep.teacherModels,
        teacher_online: prep.online !== null,
        loss: p.loss.type,
        T: p.loss.type === 'soft' ? p.loss.T : null,
        alpha: p.loss.type === 'hard' ? null : p.loss.alpha,
        ...(p.teacher_temperature !== 1 ? { teacher_temperature: p.teacher_temperature } : {}),
        transfer_examples: prep.transfer.n,
        ...(prep.unlabeled > 0 ? { transfer_unlabeled: prep.unlabeled } : {}),
        transfer_spec: p.transfer,
        transfer: r.transfer,
        ...(p.init_from !== undefined ? { init_from: p.init_from } : {}),
      });
    } finally {
      r.model.dispose();
    }
    ctx.log.info(
      `test accuracy ${(100 * r.test.accuracy).toFixed(2)}% (${r.test.errors} errors of ${r.test.examples}); ` +
        (r.transfer ? `transfer-set accuracy ${(100 * r.transfer.accuracy).toFixed(2)}% (labelled rows); ` : '') +
        `best epoch ${r.bestEpoch} on valid`,
    );
    return { test_accuracy: r.test.accuracy, test_errors: r.test.errors, valid_accuracy: r.valid.accuracy, best_epoch: r.bestEpoch, transfer_examples: prep.transfer.n };
  },
});
