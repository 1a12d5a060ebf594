/**
 * Training one student model on a transfer set with a distillation loss, and measuring it on the
 * transfer set, valid and test. Shared by the `distill` and `distill-sweep` stages.
 */
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { buildLoss, distillLossSchema, lossType, type DistillLossConfig } from '../../src/distill/loss-registry.ts';
import type { TeacherTargetKind } from '../../src/distill/losses.ts';
import { onlineTeacherLoss, type EnsembleMode } from '../../src/distill/teacher.ts';
import type { ModelConfig } from '../../src/models/arch/index.ts';
import { initialModel, type InitFrom } from '../../src/models/init-from.ts';
import { evaluate } from '../../src/models/predict.ts';
import { trainModel, type EpochMetrics, type TrainSet } from '../../src/models/train.ts';
import { subset, type LabeledSet } from '../../src/data/split-file.ts';
import { silentLogger, type Logger } from '../../src/util/log.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { toDivergenceSpec, toOptimizerSpec, trainingSchema } from '../schemas.ts';
import type { SplitMetrics } from './common.ts';

/** Config schema of a distillation loss (the loss registry's `soft`, `logits` and `hard` types). */
export const lossSchema = distillLossSchema;
/** A parsed `loss:`. */
export type LossConfig = DistillLossConfig;

/** Schema of the training params alone (a job's copy of them; see {@link trainingParamsOf}). */
export const trainingParamsSchema = z.strictObject(trainingSchema);
/** Training params (`epochs`, `batch_size`, `optimizer`, `jitter`, `select`, `divergence`). */
export type TrainingParams = z.output<typeof trainingParamsSchema>;

/** The training params of a stage's params (which hold them among others), for a job's payload. */
export function trainingParamsOf(p: TrainingParams): TrainingParams {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(trainingSchema) as (keyof TrainingParams)[]) if (p[k] !== undefined) out[k] = p[k];
  return out as TrainingParams;
}

/** Teacher rows of the transfer set, as handed to the loss. */
export interface TeacherRows {
  /** `n x C` row-major. */
  targets: Float32Array;
  /** What the rows hold. */
  kind: TeacherTargetKind;
}

/** Options of {@link trainStudent}. */
export interface StudentOptions {
  transfer: LabeledSet;
  /** Teacher rows for the transfer set; required unless `loss.type` is `hard` or `online` is given. */
  teacher: TeacherRows | null;
  /** Instead of `teacher`: models queried on every training batch (after jitter); not disposed here. */
  online?: { models: tf.LayersModel[]; combine: EnsembleMode } | null;
  valid: LabeledSet;
  test: LabeledSet;
  classes: number;
  /** The student's architecture (`model:` of the stage, resolved); null: `initFrom`'s own architecture. */
  model: ModelConfig | null;
  /** A model stage whose weights the student starts from (`init_from`). */
  initFrom?: InitFrom | undefined;
  training: TrainingParams;
  loss: LossConfig;
  seed: number;
  checkpointDir?: string;
  log?: Logger;
}

/** What {@link trainStudent} returns; the caller owns (and must dispose) `model`. */
export interface StudentResult {
  model: tf.LayersModel;
  history: EpochMetrics[];
  bestEpoch: number;
  test: SplitMetrics;
  valid: SplitMetrics;
  /**
   * The selected model on the labelled rows of its transfer set (dropout off): the "train
   * accuracy"; null when every transfer row is unlabeled.
   */
  transfer: SplitMetrics | null;
}

/** The rows of `set` with a label (>= 0), copied; `count` is how many there are. */
function labelledSubset(set: LabeledSet, count: number): LabeledSet {
  const idx = new Int32Array(count);
  for (let i = 0, k = 0; i < set.n; i++) if (set.y[i]! >= 0) idx[k++] = i;
  return subset(set, idx);
}

/**
 * Builds a student of architecture `model` (seeded by `seed`; starting from `initFrom`'s weights when given) and trains it on the transfer set with the configured
 * loss (teacher rows as `batch.targets`), selecting the epoch on the VALID split per
 * `training.select`; then evaluates it (dropout off) on the transfer set, valid and test.
 * Logit matching needs logits: give it teacher rows of kind `logits` (convert probabilities
 * with their log first).
 * @throws ConfigError when a soft/logit loss has no teacher rows.
 */
export async function trainStudent(o: StudentOptions): Promise<StudentResult> {
  const log = o.log ?? silentLogger;
  const kind = lossType(o.loss.type);
  const needsTeacher = kind.needsTeacher(o.loss);
  const online = needsTeacher ? (o.online ?? null) : null;
  if (needsTeacher && !o.teacher && !online) throw new ConfigError(`loss '${o.loss.type}' needs a teacher: give 'teacher' or 'teacher_targets'`);
  const t = o.training;
  const model = await initialModel(o.model, { inputDim: o.transfer.dim, shape: o.transfer.shape, outputs: o.classes, seed: o.seed }, o.initFrom);
  // Unlabeled transfer rows (label -1): the hard term and the accuracy count them as nothing.
  let labelled = 0;
  for (let i = 0; i < o.transfer.n; i++) if (o.transfer.y[i]! >= 0) labelled++;
  const unlabeled = o.transfer.n - labelled;
  if (unlabeled > 0) log.info(`transfer set: ${unlabeled} of ${o.transfer.n} rows unlabeled (teacher targets only; training accuracy is over the ${labelled} labelled rows)`);
  try {
    const train: TrainSet = { ...o.transfer };
    if (needsTeacher && o.teacher && !online) {
      train.targets = o.teacher.targets;
      train.targetDim = o.classes;
    }
    // The online teacher hands the loss logits; stored rows are what they are (checked against the loss).
    const inner = buildLoss(o.loss, { teacher: needsTeacher ? (online ? 'logits' : (o.teacher?.kind ?? 'logits')) : null });
    const loss = online ? onlineTeacherLoss(inner, online.models, online.combine) : inner;
    const result = await trainModel({
      model,
      train,
      valid: o.valid,
      loss,
      epochs: t.epochs,
      batchSize: t.batch_size,
      optimizer: toOptimizerSpec(t.optimizer),
      jitter: t.jitter,
      seed: o.seed,
      select: t.select,
      ...(t.divergence ? { divergence: toDivergenceSpec(t.divergence)! } : {}),
      ...(o.checkpointDir ? { checkpointDir: o.checkpointDir } : {}),
      // Each epoch's line (loss, accuracies, throughput) is the end of its progress indicator.
      log,
    });
    return {
      model,
      history: result.history,
      bestEpoch: result.bestEpoch,
      test: evaluate(model, o.test),
      valid: evaluate(model, o.valid),
      transfer: unlabeled === 0 ? evaluate(model, o.transfer) : labelled > 0 ? evaluate(model, labelledSubset(o.transfer, labelled)) : null,
    };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
