/**
 * Distillation losses (Hinton, Vinyals & Dean 2015, section 2) as {@link LossFn} factories.
 *
 * Conventions, each one a "known mistake" avoided on purpose:
 * - The soft term is the cross-entropy `CE(p_T, q_T) = -sum_i p_i log q_i` with the TEACHER's
 *   tempered distribution `p_T` as the target and the STUDENT's `q_T` inside the log (KL
 *   argument order `KL(p || q)`, which differs from this CE only by the teacher's entropy, a
 *   constant). It is multiplied by `T^2`, so that its gradient `T (q - p)` keeps the same scale
 *   as the hard term's whatever T is.
 * - Logit matching is a squared error on per-case zero-meaned LOGITS, never on probabilities.
 * - Teacher outputs come from `batch.targets` and are passed through {@link stopGradient}:
 *   no gradient reaches them, nor any model they might have been computed from, even if a
 *   caller computes them inside `optimizer.minimize` (normally they are precomputed data,
 *   see `teacher.ts` / `logit-cache.ts`, and then they are not on the gradient tape at all).
 * - Log-probabilities are computed with log-sum-exp (`temperedLogSoftmax`), never
 *   `log(softmax(.))`.
 */
import { hardLoss as hardCrossEntropy } from '../models/losses.ts';
import { describeFusedLoss, fusedOps } from '../backend/fused-ops.ts';
import * as tf from '@tensorflow/tfjs';
import { ConfigError, DataError, assertUnreachable } from '../util/errors.ts';
import type { LossFn, TrainBatch } from './loss-types.ts';
import { assertTemperature, stopGradient, temperedLogSoftmax, temperedSoftmax } from './softmax.ts';

/**
 * What `batch.targets` holds: teacher `logits` (any per-row offset, e.g. the output of
 * `combineTeachers`), or teacher `probabilities` (rows summing to 1, e.g. an ensemble's
 * arithmetic mean `q`).
 */
export type TeacherTargetKind = 'logits' | 'probabilities';

/** Options of {@link softTargetLoss}. */
export interface SoftTargetOptions {
  /** Temperature shared by teacher and student (> 0). */
  T: number;
  /** What `batch.targets` holds; default `logits`. */
  teacher?: TeacherTargetKind;
}

/** Options of {@link distillationLoss}. */
export interface DistillationOptions {
  /** Temperature of the soft term (> 0). */
  T: number;
  /** Weight of the soft term, in [0, 1]; the hard term gets `1 - alpha`. */
  alpha: number;
  /** What `batch.targets` holds; default `logits`. */
  teacher?: TeacherTargetKind;
}

/** Options of {@link logitMatchingLoss}. */
export interface LogitMatchingOptions {
  /** Weight of the logit-matching term, in [0, 1]; the hard term gets `1 - alpha`. Default 1. */
  alpha?: number;
}

/** Smallest probability used when taking `log p` of teacher probabilities (avoids log 0). */
const PROB_FLOOR = 1e-30;

/** A loss chosen by configuration; see {@link makeLoss}. */
export type DistillLossSpec =
  | { type: 'hard' }
  | { type: 'soft'; T: number; alpha: number; teacher?: TeacherTargetKind }
  | { type: 'logits'; alpha: number };

function assertAlpha(alpha: number, where: string): void {
  if (!Number.isFinite(alpha) || alpha < 0 || alpha > 1) {
    throw new ConfigError(`${where}: alpha (weight of the soft/logit term) must be in [0, 1], got ${String(alpha)}`);
  }
}

function assertTeacherKind(kind: string, where: string): asserts kind is TeacherTargetKind {
  if (kind !== 'logits' && kind !== 'probabilities') {
    throw new ConfigError(`${where}: teacher must be 'logits' or 'probabilities', got '${kind}'`);
  }
}

/** The teacher rows of the batch, checked against the student logits' shape, gradient-stopped. */
function teacherRows(logits: tf.Tensor2D, batch: TrainBatch, where: string): tf.Tensor2D {
  const t = batch.targets;
  if (t === undefined) {
    throw new ConfigError(
      `${where}: the batch has no 'targets' (teacher outputs); build the training set with teacher logits as targets, or use the 'hard' loss`,
    );
  }
  if (t.rank !== 2 || t.shape[0] !== logits.shape[0] || t.shape[1] !== logits.shape[1]) {
    throw new DataError(
      `${where}: teacher targets have shape [${t.shape.join(', ')}] but the student logits have shape [${logits.shape.join(', ')}]; the teacher and the student must have the same classes`,
    );
  }
  return stopGradient(t.dtype === 'float32' ? t : tf.cast(t, 'float32'));
}

/** Teacher distribution `p_T` from gradient-stopped rows. */
function teacherDistribution(rows: tf.Tensor2D, T: number, kind: TeacherTargetKind): tf.Tensor2D {
  switch (kind) {
    case 'logits':
      return temperedSoftmax(rows, T);
    case 'probabilities':
      // p^(1/T) renormalised == softmax(log p / T); at T = 1 the probabilities are used as given.
      return T === 1 ? rows : temperedSoftmax(tf.log(tf.maximum(rows, PROB_FLOOR)) as tf.Tensor2D, T);
    default:
      return assertUnreachable(kind);
  }
}

/** `mean_b T^2 * CE(p_T, q_T)`; must run inside a tidy. */
function softTerm(logits: tf.Tensor2D, batch: TrainBatch, T: number, kind: TeacherTargetKind, where: string): tf.Scalar {
  const p = teacherDistribution(teacherRows(logits, batch, where), T, kind);
  const logQ = temperedLogSoftmax(logits, T);
  const ce = tf.neg(tf.sum(tf.mul(p, logQ), -1));
  return tf.mul(tf.mean(ce), T * T) as tf.Scalar;
}

/** `mean_b CE(y, q_1)`; must run inside a tidy. */
function hardTerm(logits: tf.Tensor2D, batch: TrainBatch, where: string): tf.Scalar {
  const y = batch.y;
  if (y.rank !== 1 || y.shape[0] !== logits.shape[0]) {
    throw new DataError(`${where}: labels have shape [${y.shape.join(', ')}] but the logits have ${logits.shape[0]} rows`);
  }
  return hardCrossEntropy(logits, batch);
}

/** Per-case `1/2 sum_i (z_i - v_i)^2` of zero-meaned rows, averaged over the batch; inside a tidy. */
function logitTerm(logits: tf.Tensor2D, batch: TrainBatch, where: string): tf.Scalar {
  const v = teacherRows(logits, batch, where);
  const zc = tf.sub(logits, tf.mean(logits, -1, true));
  const vc = tf.sub(v, tf.mean(v, -1, true));
  return tf.mean(tf.mul(tf.sum(tf.square(tf.sub(zc, vc)), -1), 0.5)) as tf.Scalar;
}

/**
 * Soft-target loss: `mean over the batch of T^2 * CE(p_T, q_T)`, `p_T = softmax(v/T)` of the
 * teacher logits `v = batch.targets` (gradient-stopped), `q_T = softmax(z/T)` of the student
 * logits `z`. Its gradient w.r.t. `z` is `T (q_T - p_T) / B`.
 * With `teacher: 'probabilities'`, `p_T = softmax(log p / T)` (= p at T = 1).
 * @throws ConfigError for T <= 0; at call time, ConfigError when the batch has no targets.
 */
export function softTargetLoss(options: SoftTargetOptions): LossFn {
  const { T } = options;
  const kind = options.teacher ?? 'logits';
  assertTemperature(T, 'softTargetLoss');
  assertTeacherKind(kind, 'softTargetLoss');
  return (logits, batch) => tf.tidy(() => softTerm(logits, batch, T, kind, 'softTargetLoss'));
}

/**
 * The paper's distillation objective:
 * `alpha * T^2 * CE(p_T, q_T) + (1 - alpha) * CE(y, q_1)`, each averaged over the batch.
 * The student is used at T = 1 after training. A term whose weight is 0 is not computed (so
 * `alpha = 0` needs no targets). `teacher` says whether `batch.targets` are logits or
 * probabilities (see {@link softTargetLoss}).
 * @throws ConfigError for T <= 0 or alpha outside [0, 1].
 */
export function distillationLoss(options: DistillationOptions): LossFn {
  const { T, alpha } = options;
  const kind = options.teacher ?? 'logits';
  assertTemperature(T, 'distillationLoss');
  assertAlpha(alpha, 'distillationLoss');
  assertTeacherKind(kind, 'distillationLoss');
  const fn: LossFn = (logits, batch) =>
    tf.tidy(() => {
      // One fused pass per row where the backend has it (value and gradient); the tfjs ops below elsewhere.
      const fused = fusedOps().softmaxXent?.(logits, batch.targets, batch.y, T, alpha, kind);
      if (fused) return fused;
      if (alpha === 0) return hardTerm(logits, batch, 'distillationLoss');
      const soft = softTerm(logits, batch, T, kind, 'distillationLoss');
      if (alpha === 1) return soft;
      return tf.add(tf.mul(soft, alpha), tf.mul(hardTerm(logits, batch, 'distillationLoss'), 1 - alpha)) as tf.Scalar;
    });
  // The same formula as the fused training step's loss, which may replace it.
  return describeFusedLoss(fn, { T, alpha, kind });
}

/**
 * Logit matching (the high-temperature limit of distillation):
 * `alpha * mean_b [ 1/2 sum_i (z_i - v_i)^2 ] + (1 - alpha) * CE(y, q_1)`, with the student
 * logits `z` and the teacher logits `v = batch.targets` (gradient-stopped) each zero-meaned per
 * case. Per case, the gradient of the first term w.r.t. `z` is `zc - vc` (zero-meaned).
 * `batch.targets` must be logits (a per-row offset is harmless: it is removed by the centring).
 * @throws ConfigError for alpha outside [0, 1].
 */
export function logitMatchingLoss(options: LogitMatchingOptions = {}): LossFn {
  const alpha = options.alpha ?? 1;
  assertAlpha(alpha, 'logitMatchingLoss');
  return (logits, batch) =>
    tf.tidy(() => {
      if (alpha === 0) return hardTerm(logits, batch, 'logitMatchingLoss');
      const match = logitTerm(logits, batch, 'logitMatchingLoss');
      if (alpha === 1) return match;
      return tf.add(tf.mul(match, alpha), tf.mul(hardTerm(logits, batch, 'logitMatchingLoss'), 1 - alpha)) as tf.Scalar;
    });
}

/** Ordinary softmax cross-entropy on the hard labels `batch.y` (int32), averaged over the batch. */
export function hardLoss(): LossFn {
  return describeFusedLoss<LossFn>((logits, batch) => tf.tidy(() => hardTerm(logits, batch, 'hardLoss')), { T: 1, alpha: 0, kind: 'logits' });
}

/**
 * Builds the loss described by `spec`: `hard` = {@link hardLoss}, `soft` =
 * {@link distillationLoss} (`alpha` on the soft term), `logits` = {@link logitMatchingLoss}.
 * @throws ConfigError for an unknown type or invalid T / alpha.
 */
export function makeLoss(spec: DistillLossSpec): LossFn {
  switch (spec.type) {
    case 'hard':
      return hardLoss();
    case 'soft':
      return distillationLoss({ T: spec.T, alpha: spec.alpha, teacher: spec.teacher ?? 'logits' });
    case 'logits':
      return logitMatchingLoss({ alpha: spec.alpha });
    default: {
      const t = (spec as { type?: unknown }).type;
      throw new ConfigError(`loss.type must be one of 'hard', 'soft', 'logits', got '${String(t)}'`);
    }
  }
}
