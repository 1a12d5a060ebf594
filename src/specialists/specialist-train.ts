/**
 * Training one specialist end to end: initialise from the generalist, train on 50/50 batches with
 * hard targets (+ optional generalist soft targets), correct the dustbin, and measure the parts
 * separately (paper notes section 6: within-subset accuracy against the generalist's, dustbin
 * calibration, and the subset-vs-rest judgement against the generalist's).
 */
import * as tf from '@tensorflow/tfjs';
import { trainModel, type EpochMetrics, type TrainOptions } from '../models/train.ts';
import type { LabeledSet, TrainSet } from '../models/types.ts';
import { DataError } from '../util/errors.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { Rng } from '../util/rng.ts';
import { correctDustbin, dustbinColumns, type DustbinCorrection } from './dustbin.ts';
import { halfHalfSampler, naturalSpecialFraction, oversamplingFactor } from './sampling.ts';
import { specialistLoss } from './specialist-loss.ts';
import { buildSpecialist, modelLogits, normaliseClasses, specialistCells, type DustbinInit } from './specialist-model.ts';

/** Options of {@link trainSpecialist}. */
export interface TrainSpecialistOptions {
  generalist: tf.LayersModel;
  /** The special classes (any order; the specialist's outputs follow ascending order). */
  classes: number[];
  train: LabeledSet;
  valid: LabeledSet;
  /** The generalist's logits on `train` (n x C), computed once (no gradients). */
  generalistTrainLogits: Float32Array;
  /** The generalist's logits on `valid` (n x C). */
  generalistValidLogits: Float32Array;
  C: number;
  head: 'dustbin' | 'full';
  /** Weight of the soft-target term (0 = hard targets only). */
  softWeight: number;
  /** Temperature of the soft-target term. */
  T: number;
  correction: DustbinCorrection;
  epochs: number;
  batchSize: number;
  optimizer: TrainOptions['optimizer'];
  seed: number;
  /** Fraction of each batch from the special subset. Default 0.5. */
  specialFraction?: number;
  /** Examples per epoch; default #special training examples / specialFraction. */
  epochSize?: number;
  /**
   * Dustbin initialisation (see `specialist-model.ts`): `logistic` (default) or `lstsq`, fitted on a
   * sample of the training inputs, or the data-free `mean` (weighted by the training class counts).
   */
  dustbinInit?: 'logistic' | 'lstsq' | 'mean';
  /** Rows of the training set used for the fitted dustbin initialisations. Default 2048. */
  dustbinInitSample?: number;
  /** Checkpoint selection (see `trainModel`); default `last` (the validation split has the natural, not the 50/50, prior). */
  select?: TrainOptions['select'];
  log?: Logger;
  checkpointDir?: string;
}

/** Subset-vs-rest judgement of a model: score = probability mass on the special classes. */
export interface SpecialVsRest {
  /** Area under the ROC curve of P(special) for "true class is special" (ties count 1/2). */
  specialist_auc: number;
  generalist_auc: number;
  /** Accuracy of the decision P(special) > 0.5. */
  specialist_accuracy: number;
  generalist_accuracy: number;
}

/** What a specialist is measured by, on the validation split. */
export interface SpecialistMetrics {
  classes: number[];
  /** Number of special classes. */
  size: number;
  head: 'dustbin' | 'full';
  valid: {
    examples: number;
    /** Validation examples whose true class is special. */
    within_examples: number;
    /** Specialist argmax over the special classes only, on `within` examples. */
    specialist_accuracy_within: number;
    /** Specialist argmax over all its outputs (dustbin included) equals the true cell, on `within` examples. */
    specialist_accuracy_within_with_dustbin: number;
    /** Generalist argmax restricted to the special classes, same examples. */
    generalist_accuracy_within: number;
    /** Generalist argmax over all classes, same examples. */
    generalist_accuracy_within_full: number;
    dustbin: {
      correction: DustbinCorrection;
      /** Fraction of validation examples outside the subset. */
      natural_rate: number;
      /** Mean dustbin probability after the correction (before it: `mean_dustbin_prob_uncorrected`). */
      mean_dustbin_prob: number;
      mean_dustbin_prob_uncorrected: number;
      /** Offset added to the dustbin logit(s). */
      offset: number;
      /** log of the oversampling factor of the training stream (the paper's correction). */
      log_oversampling: number;
      special_vs_rest: SpecialVsRest;
    };
  };
  /** Per-epoch records from `trainModel` (valid_loss is the specialist loss on the natural-prior validation split, before the correction). */
  history: EpochMetrics[];
}

/** Softmax of each row of `logits` (n x k), float32. */
export function softmaxRows(logits: ArrayLike<number>, n: number, k: number): Float32Array {
  const out = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, logits[i * k + j]);
    let s = 0;
    for (let j = 0; j < k; j++) s += Math.exp(logits[i * k + j] - m);
    for (let j = 0; j < k; j++) out[i * k + j] = Math.exp(logits[i * k + j] - m) / s;
  }
  return out;
}

/**
 * A specialist's probabilities for `x` (row-major n x dim): n x (|S|+1) for the dustbin head
 * (n x C for the full head), with the dustbin correction applied (it is stored in the model's
 * dustbin bias by {@link trainSpecialist}).
 */
export function specialistProbabilities(model: tf.LayersModel, x: Float32Array, n: number, dim: number): Float32Array {
  const k = model.outputs[0].shape[1] as number;
  return softmaxRows(modelLogits(model, x, n, dim), n, k);
}

/** ROC AUC of `score` for the positives `pos` (Mann-Whitney, ties count 1/2). NaN when a class is absent. */
export function rocAuc(score: ArrayLike<number>, pos: ArrayLike<boolean>): number {
  const n = score.length;
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => score[a] - score[b]);
  let nPos = 0;
  let rankSumPos = 0;
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && score[idx[j + 1]] === score[idx[i]]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (pos[idx[k]]) {
        nPos++;
        rankSumPos += avgRank;
      }
    }
    i = j + 1;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/** Index of the largest of `v[off + j]` for j in `cols`; returns the position in `cols`. */
function argmaxOver(v: ArrayLike<number>, off: number, cols: readonly number[]): number {
  let best = 0;
  for (let j = 1; j < cols.length; j++) if (v[off + cols[j]] > v[off + cols[best]]) best = j;
  return best;
}

/**
 * Measures a (corrected) specialist against the generalist on a labelled split.
 * @param specialistProbs n x k probabilities of the specialist (k = |S|+1 or C).
 * @param generalistLogits n x C.
 */
export function measureSpecialist(opts: {
  classes: readonly number[];
  C: number;
  head: 'dustbin' | 'full';
  split: LabeledSet;
  specialistProbs: Float32Array;
  generalistLogits: Float32Array;
}): { within_examples: number; specialist_accuracy_within: number; specialist_accuracy_within_with_dustbin: number; generalist_accuracy_within: number; generalist_accuracy_within_full: number; mean_dustbin_prob: number; special_vs_rest: SpecialVsRest } {
  const { C, head, split } = opts;
  const sorted = normaliseClasses(opts.classes, C, head);
  const cells = specialistCells(sorted, C, head);
  const k = head === 'full' ? C : sorted.length + 1;
  const specialCols = head === 'full' ? sorted : sorted.map((_, j) => j);
  const allCols = Array.from({ length: k }, (_, j) => j);
  const dustCols = dustbinColumns(sorted, C, head);
  const inS = new Uint8Array(C);
  for (const c of sorted) inS[c] = 1;
  const gProbs = softmaxRows(opts.generalistLogits, split.n, C);
  const allClasses = Array.from({ length: C }, (_, j) => j);
  let within = 0;
  let sAcc = 0;
  let sAccD = 0;
  let gAcc = 0;
  let gAccFull = 0;
  let dustSum = 0;
  let sSvR = 0;
  let gSvR = 0;
  const sScore = new Float64Array(split.n);
  const gScore = new Float64Array(split.n);
  const pos: boolean[] = new Array(split.n);
  for (let i = 0; i < split.n; i++) {
    const y = split.y[i];
    const sp = i * k;
    let dust = 0;
    for (const j of dustCols) dust += opts.specialistProbs[sp + j];
    dustSum += dust;
    let gIn = 0;
    for (const c of sorted) gIn += gProbs[i * C + c];
    sScore[i] = 1 - dust;
    gScore[i] = gIn;
    pos[i] = inS[y] === 1;
    if (sScore[i] > 0.5 === pos[i]) sSvR++;
    if (gScore[i] > 0.5 === pos[i]) gSvR++;
    if (!pos[i]) continue;
    within++;
    const trueCell = cells[y];
    if (specialCols[argmaxOver(opts.specialistProbs, sp, specialCols)] === trueCell) sAcc++;
    if (allCols[argmaxOver(opts.specialistProbs, sp, allCols)] === trueCell) sAccD++;
    if (sorted[argmaxOver(opts.generalistLogits, i * C, sorted)] === y) gAcc++;
    if (argmaxOver(opts.generalistLogits, i * C, allClasses) === y) gAccFull++;
  }
  const frac = (a: number): number => (within > 0 ? a / within : NaN);
  return {
    within_examples: within,
    specialist_accuracy_within: frac(sAcc),
    specialist_accuracy_within_with_dustbin: frac(sAccD),
    generalist_accuracy_within: frac(gAcc),
    generalist_accuracy_within_full: frac(gAccFull),
    mean_dustbin_prob: dustSum / split.n,
    special_vs_rest: {
      specialist_auc: rocAuc(sScore, pos),
      generalist_auc: rocAuc(gScore, pos),
      specialist_accuracy: sSvR / split.n,
      generalist_accuracy: gSvR / split.n,
    },
  };
}

/** Labels mapped to specialist cells. */
function mapLabels(y: Int32Array, cells: Int32Array): Int32Array {
  const out = new Int32Array(y.length);
  for (let i = 0; i < y.length; i++) out[i] = cells[y[i]];
  return out;
}

/** A random subset of rows of `set.x` (without replacement) for the dustbin initialisation. */
function sampleRows(set: LabeledSet, m: number, rng: Rng): { x: Float32Array; n: number } {
  const n = Math.min(m, set.n);
  const perm = rng.permutation(set.n);
  const x = new Float32Array(n * set.dim);
  for (let i = 0; i < n; i++) x.set(set.x.subarray(perm[i] * set.dim, (perm[i] + 1) * set.dim), i * set.dim);
  return { x, n };
}

/**
 * Trains one specialist: builds it from the generalist (hidden weights copied, dustbin initialised
 * to approximate the generalist's outside mass), trains it on 50/50 batches with
 * `CE(hard) + softWeight * T^2 * CE(soft)` (soft targets: the generalist's logits aggregated into
 * cells, then tempered), applies the dustbin correction to the model's dustbin bias, and measures
 * it on the validation split against the generalist.
 * @throws DataError when the logits arrays do not match the splits, or a side of the subset is empty.
 */
export async function trainSpecialist(opts: TrainSpecialistOptions): Promise<{ model: tf.LayersModel; metrics: SpecialistMetrics }> {
  const log = opts.log ?? silentLogger;
  const { C, head, train, valid } = opts;
  const classes = normaliseClasses(opts.classes, C, head);
  if (opts.generalistTrainLogits.length !== train.n * C) throw new DataError(`trainSpecialist: generalistTrainLogits has ${opts.generalistTrainLogits.length} values, expected train.n * C = ${train.n * C}`);
  if (opts.generalistValidLogits.length !== valid.n * C) throw new DataError(`trainSpecialist: generalistValidLogits has ${opts.generalistValidLogits.length} values, expected valid.n * C = ${valid.n * C}`);
  const cells = specialistCells(classes, C, head);
  const special = new Set(classes);
  const specialFraction = opts.specialFraction ?? 0.5;

  let init: DustbinInit;
  const initMethod = opts.dustbinInit ?? 'logistic';
  if (initMethod !== 'mean') {
    init = { method: initMethod, ...sampleRows(train, opts.dustbinInitSample ?? 2048, Rng.derive(opts.seed, 'dustbin-init')) };
  } else {
    const counts = new Float64Array(C);
    for (let i = 0; i < train.n; i++) counts[train.y[i]]++;
    init = { method: 'mean', prior: counts };
  }
  const model = buildSpecialist(opts.generalist, classes, { head, dustbinInit: init });

  const loss = specialistLoss({ classes, C, head, softWeight: opts.softWeight, T: opts.T });
  const trainSet: TrainSet = { x: train.x, y: mapLabels(train.y, cells), n: train.n, dim: train.dim, targets: opts.generalistTrainLogits, targetDim: C };
  const validSet: TrainSet = { x: valid.x, y: mapLabels(valid.y, cells), n: valid.n, dim: valid.dim, targets: opts.generalistValidLogits, targetDim: C };
  if (train.shape) trainSet.shape = train.shape;
  if (valid.shape) validSet.shape = valid.shape;
  const sampler = halfHalfSampler(train.y, special, { specialFraction, epochSize: opts.epochSize });
  log.info(`specialist over ${classes.length} classes (${head} head): softWeight ${opts.softWeight}, T ${opts.T}, ${opts.epochs} epochs`);
  // Per-epoch validation costs a pass over the whole (natural-prior) validation split, typically
  // ten times an epoch of the specialist's own 50/50 stream: only done when it selects the epoch.
  const select = opts.select ?? 'last';
  const trainOpts: TrainOptions = {
    model,
    train: trainSet,
    ...(select === 'last' ? {} : { valid: validSet, validLoss: loss }),
    loss,
    epochs: opts.epochs,
    batchSize: opts.batchSize,
    optimizer: opts.optimizer,
    seed: opts.seed,
    sampler,
    select,
    log,
  };
  if (opts.checkpointDir) trainOpts.checkpointDir = opts.checkpointDir;
  const result = await trainModel(trainOpts);

  const naturalTrain = naturalSpecialFraction(train.y, special);
  const factor = oversamplingFactor(naturalTrain, specialFraction);
  const corr = correctDustbin(model, { mode: opts.correction, classes, C, head, oversamplingFactor: factor, valid });
  const probs = specialistProbabilities(model, valid.x, valid.n, valid.dim);
  const m = measureSpecialist({ classes, C, head, split: valid, specialistProbs: probs, generalistLogits: opts.generalistValidLogits });
  const metrics: SpecialistMetrics = {
    classes,
    size: classes.length,
    head,
    valid: {
      examples: valid.n,
      within_examples: m.within_examples,
      specialist_accuracy_within: m.specialist_accuracy_within,
      specialist_accuracy_within_with_dustbin: m.specialist_accuracy_within_with_dustbin,
      generalist_accuracy_within: m.generalist_accuracy_within,
      generalist_accuracy_within_full: m.generalist_accuracy_within_full,
      dustbin: {
        correction: opts.correction,
        natural_rate: corr.naturalRate ?? NaN,
        mean_dustbin_prob: m.mean_dustbin_prob,
        mean_dustbin_prob_uncorrected: corr.meanDustbinBefore ?? NaN,
        offset: corr.offset,
        log_oversampling: Math.log(factor),
        special_vs_rest: m.special_vs_rest,
      },
    },
    history: result.history,
  };
  log.info(
    `specialist within-subset accuracy ${(100 * m.specialist_accuracy_within).toFixed(2)}% vs generalist ${(100 * m.generalist_accuracy_within).toFixed(2)}% (${m.within_examples} examples); dustbin offset ${corr.offset.toFixed(3)}, mean dustbin ${m.mean_dustbin_prob.toFixed(4)} vs natural ${(corr.naturalRate ?? NaN).toFixed(4)}`,
  );
  return { model, metrics };
}
