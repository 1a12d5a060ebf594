/**
 * The specialist's training loss: cross-entropy on hard targets (cell indices) plus, as the
 * section 6.1 regulariser, `softWeight * T^2 * CE(teacher_T, student_T)` against the generalist's
 * soft targets.
 *
 * For the dustbin head the teacher's cell logits are the generalist's logits of the special
 * classes and, for the dustbin, the log-sum-exp of its logits outside the subset. The logits are
 * aggregated FIRST and tempered AFTER: `softmax([z_S, LSE(z_out)] / T)`. (Tempering first and
 * summing the tempered probabilities outside the subset would hand the dustbin almost all the
 * mass at high T, since every one of the many outside classes gets a share: paper notes, section 6.)
 * For the full head the soft targets are the generalist's full distribution at T.
 *
 * Teacher logits arrive as `batch.targets` (n x C, the generalist's logits computed once, outside
 * any gradient tape), so no gradient reaches the teacher.
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../util/errors.ts';
import type { LossFn } from '../models/types.ts';
import { normaliseClasses, outsideClasses } from './specialist-model.ts';

/** A loss over a batch, as taken by `trainModel` in `src/models/train.ts`. */
export type SpecialistLossFn = LossFn;

/** Options of {@link specialistLoss}. */
export interface SpecialistLossOptions {
  /** The specialist's classes (any order; sorted internally). */
  classes: readonly number[];
  /** Number of classes of the generalist. */
  C: number;
  head: 'dustbin' | 'full';
  /** Weight of the soft-target term (0 = pure hard targets; then `batch.targets` is not needed). */
  softWeight: number;
  /** Temperature of the soft term (> 0). */
  T: number;
  /** Weight of the hard-target term. Default 1. */
  hardWeight?: number;
}

/**
 * The teacher's cell logits from the generalist's logits (n x C): for `dustbin`,
 * `[z_S (sorted classes), logsumexp(z_outside)]` (n x (|S|+1)); for `full`, the logits unchanged.
 * Must be called inside `tf.tidy` or its result disposed.
 */
export function teacherCellLogits(generalistLogits: tf.Tensor2D, classes: readonly number[], C: number, head: 'dustbin' | 'full'): tf.Tensor2D {
  if (head === 'full') return generalistLogits.clone();
  const sorted = normaliseClasses(classes, C, head);
  const out = outsideClasses(sorted, C);
  return tf.tidy(() => {
    const zs = tf.gather(generalistLogits, tf.tensor1d(sorted, 'int32'), 1);
    const zo = tf.gather(generalistLogits, tf.tensor1d(out, 'int32'), 1);
    const d = tf.logSumExp(zo, 1, true);
    return tf.concat([zs, d], 1) as tf.Tensor2D;
  });
}

/**
 * The specialist loss. `batch.y` holds CELL indices (see `specialistCells`): for the dustbin head
 * 0..|S|-1 for the special classes and |S| for the dustbin; for the full head the class ids.
 * Returns the batch mean of `hardWeight * CE(y, softmax(z)) + softWeight * T^2 * CE(p_T, softmax(z/T))`
 * with p_T the tempered teacher cell distribution.
 * @throws ConfigError for a non-positive T or negative weights; Error when soft targets are requested but `batch.targets` is missing.
 */
export function specialistLoss(opts: SpecialistLossOptions): SpecialistLossFn {
  const { C, head, softWeight, T } = opts;
  const hardWeight = opts.hardWeight ?? 1;
  if (!(T > 0)) throw new ConfigError(`specialist loss: temperature T must be > 0, got ${T}`);
  if (!(softWeight >= 0) || !(hardWeight >= 0)) throw new ConfigError(`specialist loss: weights must be >= 0 (softWeight ${softWeight}, hardWeight ${hardWeight})`);
  const classes = normaliseClasses(opts.classes, C, head);
  const cells = head === 'full' ? C : classes.length + 1;
  return (logits, batch) =>
    tf.tidy(() => {
      if (logits.shape[1] !== cells) throw new Error(`specialist loss: model has ${logits.shape[1]} outputs, expected ${cells}`);
      let total: tf.Scalar = tf.scalar(0);
      if (hardWeight > 0) {
        const logp = tf.logSoftmax(logits);
        const oneHot = tf.oneHot(tf.cast(batch.y, 'int32'), cells);
        const ce = tf.neg(tf.mean(tf.sum(tf.mul(oneHot, logp), 1)));
        total = tf.add(total, tf.mul(ce, hardWeight));
      }
      if (softWeight > 0) {
        if (!batch.targets) throw new Error('specialist loss: softWeight > 0 needs the generalist logits as batch.targets');
        if (batch.targets.shape[1] !== C) throw new Error(`specialist loss: batch.targets has ${batch.targets.shape[1]} columns, expected the generalist's C = ${C}`);
        const teacher = teacherCellLogits(batch.targets, classes, C, head);
        const pT = tf.softmax(tf.div(teacher, T));
        const logqT = tf.logSoftmax(tf.div(logits, T));
        const ce = tf.neg(tf.mean(tf.sum(tf.mul(pT, logqT), 1)));
        total = tf.add(total, tf.mul(ce, softWeight * T * T));
      }
      return total;
    });
}
