/**
 * Correcting a specialist's dustbin after training on oversampled data.
 *
 * - `log-oversampling` (the paper's rule): add `log(oversampling factor)` to the dustbin logit
 *   (derivation in `sampling.ts`). Right for a specialist trained on the 50/50 stream with hard
 *   targets only. With soft targets mixed in, the soft targets carry the NATURAL prior, so the
 *   trained specialist's prior sits between the sampled and the natural one and this fixed rule
 *   over-corrects: the dustbin then takes too much mass, at the expense of the special classes.
 * - `fitted`: the offset b that makes the mean dustbin probability on the validation split equal
 *   the split's natural rate of non-special examples. The mean dustbin probability is strictly
 *   increasing in b (each example's is a logistic function of b), so b is found by bracketing and
 *   bisection; the match is exact up to the bisection tolerance.
 * - `none`: offset 0.
 *
 * For the `full` head (a softmax over all classes), the "dustbin" is the set of all classes outside
 * the subset: the offset is added to each of their biases, which shifts their total mass exactly as
 * one dustbin logit would.
 *
 * Outside subsampling (`maxOutside` of a specialist job, `selectTrainingRows`) does not change
 * either correction's target: the natural rate of `fitted` is measured on the validation split,
 * which is never subsampled, and the oversampling factor of `log-oversampling` is computed from
 * the natural special fraction of the WHOLE training split (`trainSpecialist`). (With subsampling
 * the 50/50 stream's outside half is drawn uniformly from a uniform sample of the outside rows,
 * which is still a uniform draw from the outside side, so the derivation in `sampling.ts` holds.)
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, DataError, assertUnreachable } from '../util/errors.ts';
import type { LabeledSet } from '../models/types.ts';
import { modelLogits, normaliseClasses, outsideClasses, specialistHead } from './specialist-model.ts';

/** How a specialist's dustbin is corrected after training. */
export type DustbinCorrection = 'log-oversampling' | 'fitted' | 'none';

/** Columns of a specialist's output that make up its dustbin: `[|S|]` for the dustbin head, the outside classes for `full`. */
export function dustbinColumns(classes: readonly number[], C: number, head: 'dustbin' | 'full'): number[] {
  const sorted = normaliseClasses(classes, C, head);
  return head === 'dustbin' ? [sorted.length] : outsideClasses(sorted, C);
}

/** Stable logistic function. */
function sigmoid(a: number): number {
  if (a >= 0) return 1 / (1 + Math.exp(-a));
  const e = Math.exp(a);
  return e / (1 + e);
}

/**
 * Per example, the log-odds of the dustbin: `LSE(dustbin logits) - LSE(other logits)`, so that the
 * dustbin probability after adding an offset b to the dustbin logits is `sigmoid(a_i + b)`.
 * @param logits row-major n x cols.
 */
export function dustbinLogOdds(logits: ArrayLike<number>, n: number, cols: number, dustbin: readonly number[]): Float64Array {
  const isD = new Uint8Array(cols);
  for (const j of dustbin) {
    if (!(j >= 0 && j < cols)) throw new ConfigError(`dustbin column ${j} outside [0, ${cols})`);
    isD[j] = 1;
  }
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let md = -Infinity;
    let ms = -Infinity;
    for (let j = 0; j < cols; j++) {
      const v = logits[i * cols + j];
      if (isD[j]) md = Math.max(md, v);
      else ms = Math.max(ms, v);
    }
    let sd = 0;
    let ss = 0;
    for (let j = 0; j < cols; j++) {
      const v = logits[i * cols + j];
      if (isD[j]) sd += Math.exp(v - md);
      else ss += Math.exp(v - ms);
    }
    out[i] = md + Math.log(sd) - (ms + Math.log(ss));
  }
  return out;
}

/** Mean of `sigmoid(a_i + offset)`: the mean dustbin probability after adding `offset` to the dustbin logits. */
export function meanDustbinProbability(logOdds: Float64Array, offset = 0): number {
  let s = 0;
  for (let i = 0; i < logOdds.length; i++) s += sigmoid(logOdds[i] + offset);
  return s / logOdds.length;
}

/**
 * The offset b with `meanDustbinProbability(logOdds, b) = targetRate`, by bracketing (doubling) and
 * bisection to `tol` in b (default 1e-10). The function is continuous and strictly increasing in b.
 * @throws ConfigError for a target rate not strictly between 0 and 1; DataError for no examples.
 */
export function fitDustbinOffset(logOdds: Float64Array, targetRate: number, tol = 1e-10): number {
  if (logOdds.length === 0) throw new DataError('fitDustbinOffset: no examples to fit the dustbin offset on');
  if (!(targetRate > 0 && targetRate < 1)) throw new ConfigError(`fitDustbinOffset: target rate must be in (0, 1), got ${targetRate}`);
  const f = (b: number): number => meanDustbinProbability(logOdds, b) - targetRate;
  let lo = -1;
  let hi = 1;
  while (f(lo) > 0) {
    lo *= 2;
    if (lo < -1e4) throw new DataError('fitDustbinOffset: no finite offset reaches the target rate (logits are not finite?)');
  }
  while (f(hi) < 0) {
    hi *= 2;
    if (hi > 1e4) throw new DataError('fitDustbinOffset: no finite offset reaches the target rate (logits are not finite?)');
  }
  for (let it = 0; it < 200 && hi - lo > tol; it++) {
    const mid = 0.5 * (lo + hi);
    if (f(mid) < 0) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/** Adds `offset` to the bias of each of the given columns of the model's head (its logits layer; in place, the kernel untouched). */
export function shiftDustbinBias(model: tf.LayersModel, columns: readonly number[], offset: number): void {
  if (offset === 0) return;
  const bias = specialistHead(model).weights[1]!.read() as tf.Variable;
  const b = Float32Array.from(bias.dataSync());
  for (const j of columns) b[j] += offset;
  tf.tidy(() => bias.assign(tf.tensor1d(b)));
}

/** Options of {@link correctDustbin}. */
export interface DustbinCorrectionOptions {
  mode: DustbinCorrection;
  classes: readonly number[];
  C: number;
  head: 'dustbin' | 'full';
  /** `log-oversampling`: the factor (see `oversamplingFactor` in `sampling.ts`). */
  oversamplingFactor?: number;
  /** `fitted`: the validation split (natural class distribution). Also used for the diagnostics when given. */
  valid?: LabeledSet;
}

/** What {@link correctDustbin} did. */
export interface DustbinCorrectionResult {
  mode: DustbinCorrection;
  /** The amount added to the dustbin logit(s). */
  offset: number;
  /** Fraction of validation examples whose class is outside the subset (when `valid` was given). */
  naturalRate?: number;
  /** Mean dustbin probability on the validation split before / after the correction (when `valid` was given). */
  meanDustbinBefore?: number;
  meanDustbinAfter?: number;
}

/** Fraction of `labels` whose class is not among `classes`. */
export function naturalDustbinRate(labels: Int32Array, classes: readonly number[]): number {
  const inS = new Set(classes);
  let k = 0;
  for (let i = 0; i < labels.length; i++) if (!inS.has(labels[i])) k++;
  return k / labels.length;
}

/**
 * Applies the dustbin correction `mode` to a trained specialist IN PLACE (adds the offset to the
 * dustbin bias, or to the outside classes' biases for the full head) and returns the offset.
 * @throws ConfigError when the mode's input is missing (`oversamplingFactor` / `valid`);
 *   DataError when the validation split has no special or no outside example (`fitted`).
 */
export function correctDustbin(model: tf.LayersModel, opts: DustbinCorrectionOptions): DustbinCorrectionResult {
  const columns = dustbinColumns(opts.classes, opts.C, opts.head);
  const cols = model.outputs[0].shape[1] as number;
  let logOdds: Float64Array | undefined;
  let naturalRate: number | undefined;
  if (opts.valid) {
    const v = opts.valid;
    logOdds = dustbinLogOdds(modelLogits(model, v.x, v.n, v.dim), v.n, cols, columns);
    naturalRate = naturalDustbinRate(v.y, opts.classes);
  }
  let offset: number;
  switch (opts.mode) {
    case 'none':
      offset = 0;
      break;
    case 'log-oversampling': {
      const f = opts.oversamplingFactor;
      if (f === undefined || !(f > 0)) throw new ConfigError(`dustbin correction 'log-oversampling' needs a positive oversamplingFactor, got ${f}`);
      offset = Math.log(f);
      break;
    }
    case 'fitted': {
      if (!logOdds || naturalRate === undefined) throw new ConfigError("dustbin correction 'fitted' needs the validation split (valid)");
      if (naturalRate === 0 || naturalRate === 1) {
        throw new DataError(`dustbin correction 'fitted': the validation split has ${naturalRate === 0 ? 'no example outside' : 'no example inside'} the specialist's subset, so the natural rate cannot be matched; use 'log-oversampling' or a larger validation split`);
      }
      offset = fitDustbinOffset(logOdds, naturalRate);
      break;
    }
    default:
      return assertUnreachable(opts.mode);
  }
  shiftDustbinBias(model, columns, offset);
  const result: DustbinCorrectionResult = { mode: opts.mode, offset };
  if (logOdds && naturalRate !== undefined) {
    result.naturalRate = naturalRate;
    result.meanDustbinBefore = meanDustbinProbability(logOdds, 0);
    result.meanDustbinAfter = meanDustbinProbability(logOdds, offset);
  }
  return result;
}
