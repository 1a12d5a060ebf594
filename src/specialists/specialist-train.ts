/**
 * Training one specialist end to end: initialise from the generalist, train on 50/50 batches with
 * hard targets (+ optional generalist soft targets), correct the dustbin, and measure the parts
 * separately (paper notes section 6: within-subset accuracy against the generalist's, dustbin
 * calibration, and the subset-vs-rest judgement against the generalist's).
 *
 * ## Scaling to many classes
 *
 * The generalist's outputs can be given in full (n x C logits) or, for the dustbin head, already
 * reduced per row (`TeacherCells` from `streamTeacherCells`: the n x (|S|+1) cell logits and the
 * argmax over all classes). Every quantity used here (soft targets, the generalist's accuracy
 * within the subset, its mass on the subset) is a function of these reductions, so both forms
 * give the same specialist and the same metrics (up to float rounding of the sums).
 *
 * Training can also be restricted to a subset of the training rows (`trainRows`, e.g. from
 * {@link selectTrainingRows}: all special examples plus a seeded sample of at most `maxOutside`
 * outside ones); the 50/50 sampler then draws the outside half from that sample. What does NOT
 * change: the dustbin initialisation samples the whole training split, the `log-oversampling`
 * factor uses the natural special fraction of the whole training split, and the `fitted`
 * correction matches the natural rate measured on the validation split.
 */
import * as tf from '@tensorflow/tfjs';
import { trainModel, type EpochMetrics, type TrainOptions } from '../models/train.ts';
import type { LabeledSet, TrainSet } from '../models/types.ts';
import { ConfigError, DataError } from '../util/errors.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { Rng } from '../util/rng.ts';
import { correctDustbin, dustbinColumns, type DustbinCorrection } from './dustbin.ts';
import { halfHalfSampler, naturalSpecialFraction, oversamplingFactor, splitBySpecial } from './sampling.ts';
import { buildLoss } from '../distill/loss-registry.ts';
import { teacherCellCount, type TeacherCells } from './specialist-loss.ts';
import { buildSpecialist, freezeSpecialistLayers, modelLogits, normaliseClasses, specialistCells, type DustbinInit, type SpecialistFreeze } from './specialist-model.ts';

/** Options of {@link trainSpecialist}. */
export interface TrainSpecialistOptions {
  generalist: tf.LayersModel;
  /** The special classes (any order; the specialist's outputs follow ascending order). */
  classes: number[];
  train: LabeledSet;
  valid: LabeledSet;
  /**
   * The generalist's logits on the training rows (one row per entry of `trainRows`, or per row of
   * `train`), n x C, computed once (no gradients). Give this or `generalistTrainCells`.
   */
  generalistTrainLogits?: Float32Array;
  /**
   * Dustbin head: the generalist's cell logits on the training rows (same rows as
   * `generalistTrainLogits`), n x (|S|+1), see `streamTeacherCells`. Give this or `generalistTrainLogits`.
   */
  generalistTrainCells?: Float32Array;
  /** The generalist's logits on `valid` (n x C). Give this or `generalistValidCells`. */
  generalistValidLogits?: Float32Array;
  /** Dustbin head: the generalist's reductions on `valid` (`streamTeacherCells`). Give this or `generalistValidLogits`. */
  generalistValidCells?: TeacherCells;
  /**
   * Indices into `train` of the rows to train on (e.g. {@link selectTrainingRows}); default all.
   * Every special row must be included (the oversampling factor assumes the whole special side).
   */
  trainRows?: Int32Array;
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
  /**
   * Checkpoint selection (see `trainModel`): `last` (default), or early stopping on the validation
   * split with its natural prior (`valid_loss`: the specialist loss; `valid_accuracy`: argmax over
   * the cells, dustbin included), which costs a pass over the split every epoch.
   */
  select?: TrainOptions['select'];
  /** Layers kept at the generalist's values (`freezeSpecialistLayers`): `none` (default), `conv`, `body`. */
  freeze?: SpecialistFreeze;
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
  /** The checkpoint rule, and the 1-based epoch whose weights the specialist kept. */
  select: NonNullable<TrainOptions['select']>;
  best_epoch: number;
  /** The layers kept at the generalist's values (empty: the whole copy trained). */
  frozen: string[];
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
 * Measures a (corrected) specialist against the generalist on a labelled split. The generalist is
 * given either by its logits (`generalistLogits`, n x C) or, for the dustbin head, by its per-row
 * reductions (`generalistCells`, see `streamTeacherCells`): its argmax over all classes, and its cell
 * logits, from which its argmax restricted to the subset (the first |S| cells) and its mass on the
 * subset (`1 - softmax(cells)[|S|]`, exact since the cells' log-sum-exp is that of all C logits) follow.
 * @param specialistProbs n x k probabilities of the specialist (k = |S|+1 or C).
 * @throws DataError when the generalist's arrays do not match the split; ConfigError when neither (or cells with the full head) is given.
 */
export function measureSpecialist(opts: {
  classes: readonly number[];
  C: number;
  head: 'dustbin' | 'full';
  split: LabeledSet;
  specialistProbs: Float32Array;
  generalistLogits?: Float32Array;
  generalistCells?: TeacherCells;
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
  const gen = generalistView(opts.generalistLogits, opts.generalistCells, sorted, C, head, split.n, 'measureSpecialist');
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
    sScore[i] = 1 - dust;
    gScore[i] = gen.specialMass(i);
    pos[i] = inS[y] === 1;
    if (sScore[i] > 0.5 === pos[i]) sSvR++;
    if (gScore[i] > 0.5 === pos[i]) gSvR++;
    if (!pos[i]) continue;
    within++;
    const trueCell = cells[y];
    if (specialCols[argmaxOver(opts.specialistProbs, sp, specialCols)] === trueCell) sAcc++;
    if (allCols[argmaxOver(opts.specialistProbs, sp, allCols)] === trueCell) sAccD++;
    if (gen.argmaxWithin(i) === y) gAcc++;
    if (gen.argmaxAll(i) === y) gAccFull++;
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

/** Per-row questions about the generalist, answered from full logits or from cell reductions. */
interface GeneralistView {
  /** Generalist probability mass on the special classes. */
  specialMass(i: number): number;
  /** The generalist's argmax restricted to the special classes (a class id). */
  argmaxWithin(i: number): number;
  /** The generalist's argmax over all classes. */
  argmaxAll(i: number): number;
}

function generalistView(logits: Float32Array | undefined, cells: TeacherCells | undefined, sorted: readonly number[], C: number, head: 'dustbin' | 'full', n: number, where: string): GeneralistView {
  if (logits && cells) throw new ConfigError(`${where}: give the generalist's logits or its cells, not both`);
  if (cells) {
    if (head !== 'dustbin') throw new ConfigError(`${where}: the generalist's cell reductions are for the dustbin head; give full logits for head 'full'`);
    const k = sorted.length + 1;
    if (cells.k !== k || cells.n !== n || cells.cells.length !== n * k || cells.argmax.length !== n) {
      throw new DataError(`${where}: the generalist's cells are ${cells.n} x ${cells.k} (${cells.cells.length} values, ${cells.argmax.length} argmax), expected ${n} x ${k}`);
    }
    const cv = cells.cells;
    return {
      specialMass(i) {
        const o = i * k;
        let m = -Infinity;
        for (let j = 0; j < k; j++) m = Math.max(m, cv[o + j]);
        let s = 0;
        for (let j = 0; j < k; j++) s += Math.exp(cv[o + j] - m);
        return 1 - Math.exp(cv[o + k - 1] - m) / s;
      },
      argmaxWithin: (i) => sorted[argmaxOver(cv, i * k, specialCellCols(k - 1))],
      argmaxAll: (i) => cells.argmax[i],
    };
  }
  if (!logits) throw new ConfigError(`${where}: the generalist's logits (or, for the dustbin head, its cells) are required`);
  if (logits.length !== n * C) throw new DataError(`${where}: generalist logits have ${logits.length} values, expected n x C = ${n} x ${C}`);
  const gProbs = softmaxRows(logits, n, C);
  const allClasses = Array.from({ length: C }, (_, j) => j);
  return {
    specialMass(i) {
      let gIn = 0;
      for (const c of sorted) gIn += gProbs[i * C + c];
      return gIn;
    },
    argmaxWithin: (i) => sorted[argmaxOver(logits, i * C, sorted)],
    argmaxAll: (i) => argmaxOver(logits, i * C, allClasses),
  };
}

const cellColsCache = new Map<number, number[]>();
/** [0, 1, ..., s-1], cached. */
function specialCellCols(s: number): number[] {
  let v = cellColsCache.get(s);
  if (!v) {
    v = Array.from({ length: s }, (_, j) => j);
    cellColsCache.set(s, v);
  }
  return v;
}

/**
 * The training rows of a specialist with outside subsampling: every row whose label is special,
 * plus a seeded uniform sample (without replacement) of at most `maxOutside` of the other rows
 * (all of them when there are fewer, or when `maxOutside` is undefined). Ascending indices.
 * @throws ConfigError for a `maxOutside` that is not a positive integer.
 */
export function selectTrainingRows(labels: Int32Array, classes: readonly number[], maxOutside: number | undefined, seed: number): Int32Array {
  if (maxOutside !== undefined && !(Number.isInteger(maxOutside) && maxOutside >= 1)) throw new ConfigError(`selectTrainingRows: maxOutside must be a positive integer, got ${maxOutside}`);
  const { inside, outside } = splitBySpecial(labels, new Set(classes));
  if (maxOutside === undefined || outside.length <= maxOutside) {
    const all = new Int32Array(labels.length);
    for (let i = 0; i < all.length; i++) all[i] = i;
    return all;
  }
  // Partial Fisher-Yates: the first maxOutside entries of a seeded shuffle of the outside rows.
  const rng = Rng.derive(seed, 'max-outside');
  const pool = Int32Array.from(outside);
  for (let i = 0; i < maxOutside; i++) {
    const j = i + rng.int(pool.length - i);
    const t = pool[i];
    pool[i] = pool[j];
    pool[j] = t;
  }
  const rows = new Int32Array(inside.length + maxOutside);
  rows.set(inside);
  rows.set(pool.subarray(0, maxOutside), inside.length);
  return rows.sort();
}

/** The rows `rows` of a labelled set (x and y gathered, in the order of `rows`). */
function subsetRows(set: LabeledSet, rows: Int32Array): LabeledSet {
  const x = new Float32Array(rows.length * set.dim);
  const y = new Int32Array(rows.length);
  for (let r = 0; r < rows.length; r++) {
    const i = rows[r];
    x.set(set.x.subarray(i * set.dim, (i + 1) * set.dim), r * set.dim);
    y[r] = set.y[i];
  }
  const out: LabeledSet = { x, y, n: rows.length, dim: set.dim };
  if (set.shape) out.shape = set.shape;
  return out;
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
 * it on the validation split against the generalist. The generalist's outputs come as full logits
 * or (dustbin head) cell reductions, and training may use a subset of rows (`trainRows`): see the
 * module comment.
 * @throws DataError when the generalist's arrays do not match the splits, `trainRows` is invalid or
 *   omits special rows, or a side of the subset is empty; ConfigError when both or neither form of
 *   the generalist's outputs is given for a split, or cells are given for the full head.
 */
export async function trainSpecialist(opts: TrainSpecialistOptions): Promise<{ model: tf.LayersModel; metrics: SpecialistMetrics }> {
  const log = opts.log ?? silentLogger;
  const { C, head, train, valid } = opts;
  const classes = normaliseClasses(opts.classes, C, head);
  const cells = specialistCells(classes, C, head);
  const special = new Set(classes);
  const specialFraction = opts.specialFraction ?? 0.5;
  const rows = opts.trainRows;
  const nRows = rows ? rows.length : train.n;
  if (rows) {
    let specialRows = 0;
    for (let r = 0; r < rows.length; r++) {
      if (!(rows[r] >= 0 && rows[r] < train.n)) throw new DataError(`trainSpecialist: trainRows[${r}] = ${rows[r]} is outside [0, ${train.n})`);
      if (special.has(train.y[rows[r]])) specialRows++;
    }
    let specialAll = 0;
    for (let i = 0; i < train.n; i++) if (special.has(train.y[i])) specialAll++;
    if (specialRows !== specialAll) throw new DataError(`trainSpecialist: trainRows holds ${specialRows} of the ${specialAll} special training rows; it must hold all of them (see selectTrainingRows)`);
  }
  // The soft targets for the training rows: full logits (n x C) or cells (n x (|S|+1)).
  if ((opts.generalistTrainLogits === undefined) === (opts.generalistTrainCells === undefined)) {
    throw new ConfigError('trainSpecialist: give exactly one of generalistTrainLogits and generalistTrainCells');
  }
  if (opts.generalistTrainCells && head !== 'dustbin') throw new ConfigError("trainSpecialist: generalistTrainCells are for the dustbin head; give generalistTrainLogits for head 'full'");
  const targetForm = opts.generalistTrainCells ? 'cells' : 'full';
  const targetDim = targetForm === 'cells' ? teacherCellCount(classes, C, head) : C;
  const trainTargets = (opts.generalistTrainCells ?? opts.generalistTrainLogits) as Float32Array;
  const what = targetForm === 'cells' ? 'generalistTrainCells' : 'generalistTrainLogits';
  if (trainTargets.length !== nRows * targetDim) throw new DataError(`trainSpecialist: ${what} has ${trainTargets.length} values, expected ${rows ? 'trainRows.length' : 'train.n'} x ${targetDim} = ${nRows * targetDim}`);
  if ((opts.generalistValidLogits === undefined) === (opts.generalistValidCells === undefined)) {
    throw new ConfigError('trainSpecialist: give exactly one of generalistValidLogits and generalistValidCells');
  }
  if (opts.generalistValidLogits && opts.generalistValidLogits.length !== valid.n * C) throw new DataError(`trainSpecialist: generalistValidLogits has ${opts.generalistValidLogits.length} values, expected valid.n * C = ${valid.n * C}`);
  // Checks the cells' shape (and the head) before any training.
  generalistView(opts.generalistValidLogits, opts.generalistValidCells, classes, C, head, valid.n, 'trainSpecialist (valid)');
  const used = rows ? subsetRows(train, rows) : train;

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
  let frozen: string[];
  try {
    frozen = freezeSpecialistLayers(model, opts.freeze ?? 'none');
  } catch (e) {
    model.dispose();
    throw e;
  }

  // The registry's `specialist` loss (src/distill/loss-registry.ts), as every stage builds its loss.
  const loss = buildLoss({ type: 'specialist', soft_weight: opts.softWeight, temperature: opts.T }, { teacher: 'logits', specialist: { classes, C, head, targets: targetForm } });
  const trainSet: TrainSet = { x: used.x, y: mapLabels(used.y, cells), n: used.n, dim: used.dim, targets: trainTargets, targetDim };
  if (used.shape) trainSet.shape = used.shape;
  const sampler = halfHalfSampler(used.y, special, { specialFraction, epochSize: opts.epochSize });
  log.info(
    `specialist over ${classes.length} classes (${head} head): softWeight ${opts.softWeight}, T ${opts.T}, ${opts.epochs} epochs, ${used.n} of ${train.n} training rows, ${targetForm} teacher targets` +
      (frozen.length > 0 ? `, frozen: ${frozen.join(', ')}` : ''),
  );
  // Per-epoch validation costs a pass over the whole (natural-prior) validation split, typically
  // ten times an epoch of the specialist's own 50/50 stream: only done when it selects the epoch.
  const select = opts.select ?? 'last';
  let validSet: TrainSet | undefined;
  if (select !== 'last') {
    // Valid loss targets in the same form as the training targets.
    const vt = targetForm === 'cells' ? opts.generalistValidCells?.cells : opts.generalistValidLogits;
    if (!vt) throw new ConfigError(`trainSpecialist: select '${select}' computes the validation loss, which needs the generalist's validation ${targetForm === 'cells' ? 'cells' : 'logits'} (the same form as the training targets)`);
    validSet = { x: valid.x, y: mapLabels(valid.y, cells), n: valid.n, dim: valid.dim, targets: vt, targetDim };
    if (valid.shape) validSet.shape = valid.shape;
  }
  const trainOpts: TrainOptions = {
    model,
    train: trainSet,
    ...(validSet ? { valid: validSet, validLoss: loss } : {}),
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
  const m = measureSpecialist({ classes, C, head, split: valid, specialistProbs: probs, generalistLogits: opts.generalistValidLogits, generalistCells: opts.generalistValidCells });
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
    select,
    best_epoch: result.bestEpoch,
    frozen,
  };
  log.info(
    `specialist within-subset accuracy ${(100 * m.specialist_accuracy_within).toFixed(2)}% vs generalist ${(100 * m.generalist_accuracy_within).toFixed(2)}% (${m.within_examples} examples); dustbin offset ${corr.offset.toFixed(3)}, mean dustbin ${m.mean_dustbin_prob.toFixed(4)} vs natural ${(corr.naturalRate ?? NaN).toFixed(4)}`,
  );
  return { model, metrics };
}
