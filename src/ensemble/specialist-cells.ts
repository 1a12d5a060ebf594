/**
 * A specialist's output as the combination sees it: |S| + 1 probabilities, one per special class
 * (in ascending class order) and the dustbin last (see `problem.ts`).
 *
 * - `dustbin` head: the model has exactly |S| + 1 logits in that order; the cells are their softmax.
 * - `full` head: the model has C logits, one per class (the generalist's order). Its distribution
 *   is folded onto the cells: cell t is `p_{S_t}`, the dustbin is the sum of `p_j` over the classes
 *   outside S. In log space, with `Z = LSE_j z_j` over all C logits,
 *   `log p_{S_t} = z_{S_t} - Z` and `log p_dustbin = LSE_{j not in S} z_j - Z`, which is what
 *   {@link foldFullHead} evaluates (in float64, so a dustbin of many tiny probabilities keeps its
 *   mass). A subset covering every class has an empty dustbin: its cell is 0.
 */
import type * as tf from '@tensorflow/tfjs';
import { modelLogits } from '../specialists/specialist-model.ts';
import { softmaxRows } from '../specialists/specialist-train.ts';
import { outputDim } from '../models/predict.ts';
import { ArtifactError, DataError } from '../util/errors.ts';

/** How a specialist's output layer is laid out (`specialists.head` of the specialists stage). */
export type SpecialistHead = 'dustbin' | 'full';

/** Number of logits a specialist over `classes` must have for `head`. */
export function headWidth(classes: ArrayLike<number>, C: number, head: SpecialistHead): number {
  return head === 'full' ? C : classes.length + 1;
}

/**
 * Folds a full head's logits (n x C) onto the cells of subset `classes`: n x (|S| + 1), the
 * special classes' probabilities in the order of `classes`, then the summed probability of every
 * class outside it (see the module documentation for the log-space form).
 * @param classes the special classes, sorted ascending, distinct, in 0..C-1
 * @throws DataError when the sizes disagree or a class is out of range / not sorted
 */
export function foldFullHead(logits: ArrayLike<number>, n: number, C: number, classes: ArrayLike<number>): Float32Array {
  if (logits.length !== n * C) throw new DataError(`foldFullHead: ${logits.length} logits, expected ${n} x ${C}`);
  const k = classes.length;
  const inS = new Uint8Array(C);
  for (let t = 0; t < k; t++) {
    const c = classes[t]!;
    if (!(Number.isInteger(c) && c >= 0 && c < C)) throw new DataError(`foldFullHead: class ${c} is outside 0..${C - 1}`);
    if (t > 0 && c <= classes[t - 1]!) throw new DataError(`foldFullHead: classes must be sorted and distinct (${classes[t - 1]} then ${c})`);
    inS[c] = 1;
  }
  const width = k + 1;
  const out = new Float32Array(n * width);
  for (let r = 0; r < n; r++) {
    const o = r * C;
    let m = -Infinity;
    let mOut = -Infinity;
    for (let j = 0; j < C; j++) {
      const v = logits[o + j]!;
      if (v > m) m = v;
      if (!inS[j] && v > mOut) mOut = v;
    }
    let s = 0;
    let sOut = 0;
    for (let j = 0; j < C; j++) {
      const v = logits[o + j]!;
      s += Math.exp(v - m);
      if (!inS[j]) sOut += Math.exp(v - mOut);
    }
    const z = m + Math.log(s); // LSE over all C
    const w = r * width;
    for (let t = 0; t < k; t++) out[w + t] = Math.exp(logits[o + classes[t]!]! - z);
    out[w + k] = k < C ? Math.exp(mOut + Math.log(sOut) - z) : 0;
  }
  return out;
}

/**
 * A specialist's cells on `x` (row-major n x dim): n x (|S| + 1) probabilities for either head.
 * @param label names the specialist in errors, e.g. `specialist-03 (specialists/specialist-03/model)`
 * @throws ArtifactError when the model's output width does not match `head` and `classes`
 *   (a specialists.json whose head or classes do not describe its models)
 */
export function specialistCells(model: tf.LayersModel, x: Float32Array, n: number, dim: number, classes: ArrayLike<number>, C: number, head: SpecialistHead, label: string): Float32Array {
  const width = outputDim(model);
  const want = headWidth(classes, C, head);
  if (width !== want) {
    throw new ArtifactError(
      `${label} has ${width} outputs, but a '${head}' head over its ${classes.length} special classes (of ${C}) has ${want}` +
        `${head === 'dustbin' && width === C ? " (it looks like a 'full' head)" : head === 'full' && width === classes.length + 1 ? " (it looks like a 'dustbin' head)" : ''}` +
        '; specialists.json does not describe its models: rerun the specialists stage with --force',
    );
  }
  const logits = modelLogits(model, x, n, dim);
  return head === 'full' ? foldFullHead(logits, n, C, classes) : softmaxRows(logits, n, width);
}
