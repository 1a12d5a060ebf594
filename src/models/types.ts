import type * as tf from '@tensorflow/tfjs';
import type { LabeledSet } from '../data/split-file.ts';

/** The checkpoint selection rules (on the validation split, never on test), for config and job schemas. */
export const SELECT_RULES = ['valid_accuracy', 'valid_loss', 'last'] as const;

/** Checkpoint selection rule (on the validation split, never on test). */
export type SelectRule = (typeof SELECT_RULES)[number];

/** A labelled split in memory (x row-major n x dim); defined in `src/data/split-file.ts`. */
export type { LabeledSet };

/**
 * A training set: a {@link LabeledSet} plus optional per-example extra rows (teacher logits, soft
 * targets...), `targets` being row-major `n x targetDim`.
 */
export interface TrainSet extends LabeledSet {
  targets?: Float32Array;
  targetDim?: number;
}

/** One mini-batch as seen by a loss function. */
export interface TrainBatch {
  /** Inputs, `[b, dim]` float32 (already jittered when jitter is on). */
  x: tf.Tensor2D;
  /**
   * Integer labels, `[b]` int32; -1 on an unlabeled row (a transfer row only a teacher term can
   * use: the hard-label cross-entropy's one-hot row is all zeros there, so it adds 0).
   */
  y: tf.Tensor1D;
  /** The batch's rows of {@link TrainSet.targets}, `[b, targetDim]`, when the set has targets. */
  targets?: tf.Tensor2D;
}

/**
 * A loss: logits `[b, C]` and the batch in, the MEAN loss over the batch's rows out (the training
 * loop weights batches by their row count when it averages over an epoch).
 */
export type LossFn = (logits: tf.Tensor2D, batch: TrainBatch) => tf.Scalar;

/** What one training epoch measured (one line of `metrics.jsonl`). */
export interface EpochMetrics {
  /** 1-based epoch number (the number of epochs completed). */
  epoch: number;
  /** Mean training loss over the epoch's batches (dropout and jitter on), weighted by batch rows. */
  train_loss: number;
  /** Fraction of the epoch's training rows classified correctly during training (dropout on). */
  train_accuracy: number;
  /** Validation loss (`validLoss`, default hard cross-entropy) after the epoch, dropout off. */
  valid_loss?: number;
  /** Validation accuracy after the epoch, dropout off. */
  valid_accuracy?: number;
  /** Learning rate used during the epoch. */
  lr: number;
  /** Wall-clock seconds of the epoch (training + validation). */
  seconds: number;
  /** Training rows per second (training steps only). */
  examples_per_s: number;
}
