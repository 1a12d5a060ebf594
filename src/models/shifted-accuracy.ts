/**
 * Accuracy of models, and of their arithmetic-mean ensemble, on a split and on the same rows
 * shifted by up to `jitter` pixels: what a teacher queried online on a jittered transfer set gets
 * right. A teacher trained without shifts can be much worse on shifted rows, and then its soft
 * targets there teach errors (scripts/shifted-accuracy.ts prints this for saved models).
 */
import type * as tf from '@tensorflow/tfjs';
import type { LabeledSet } from '../data/split-file.ts';
import { countCorrect } from '../ensemble/metrics.ts';
import { softmaxRows } from '../specialists/specialist-train.ts';
import { Rng } from '../util/rng.ts';
import { imageShape, jitterBatch } from './jitter.ts';
import { predictLogits } from './predict.ts';

/** Accuracy on the rows as they are and shifted (one shift per row, the same for every model). */
export interface ShiftedAccuracy {
  plain: number;
  shifted: number;
}

/** Result of {@link shiftedAccuracy}: per model (input order), and their mean ensemble. */
export interface ShiftedAccuracyResult {
  models: ShiftedAccuracy[];
  mean: ShiftedAccuracy;
}

function accuracyOf(scores: Float32Array, labels: Int32Array, C: number): number {
  return labels.length ? countCorrect(scores, labels, C) / labels.length : NaN;
}

/**
 * @param set labelled rows with an image shape (or a square single-channel dim)
 * @param jitter largest shift in pixels (0: the shifted rows are the rows)
 * @param models models over the same classes; `load(i)` is called once per model, and the model is disposed after use
 * @param seed seed of the shifts
 */
export async function shiftedAccuracy(set: LabeledSet, jitter: number, count: number, load: (i: number) => Promise<tf.LayersModel>, seed = 1): Promise<ShiftedAccuracyResult> {
  const shifted = jitterBatch(set.x, set.n, imageShape(set.shape, set.dim), jitter, new Rng(seed));
  const models: ShiftedAccuracy[] = [];
  let C = 0;
  let meanPlain: Float32Array | null = null;
  let meanShifted: Float32Array | null = null;
  for (let i = 0; i < count; i++) {
    const model = await load(i);
    try {
      const plain = predictLogits(model, set.x, set.n, set.dim);
      const moved = predictLogits(model, shifted, set.n, set.dim);
      C = plain.length / set.n;
      models.push({ plain: accuracyOf(plain, set.y, C), shifted: accuracyOf(moved, set.y, C) });
      const [pp, pm] = [softmaxRows(plain, set.n, C), softmaxRows(moved, set.n, C)];
      meanPlain ??= new Float32Array(set.n * C);
      meanShifted ??= new Float32Array(set.n * C);
      for (let k = 0; k < pp.length; k++) {
        meanPlain[k]! += pp[k]! / count;
        meanShifted[k]! += pm[k]! / count;
      }
    } finally {
      model.dispose();
    }
  }
  const mean = meanPlain && meanShifted ? { plain: accuracyOf(meanPlain, set.y, C), shifted: accuracyOf(meanShifted, set.y, C) } : { plain: NaN, shifted: NaN };
  return { models, mean };
}
