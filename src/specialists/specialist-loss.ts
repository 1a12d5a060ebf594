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
 * Teacher logits arrive as `batch.targets`, computed once outside any gradient tape (so no
 * gradient reaches the teacher), in one of two forms (option `targets`):
 * - `full`: the generalist's logits, n x C; the loss aggregates them into cells per batch.
 * - `cells` (dustbin head): the cell logits ALREADY aggregated, n x (|S|+1), as computed by
 *   {@link teacherCellLogits} or streamed by {@link streamTeacherCells}. Only these are needed,
 *   so a job over C = 10,000 classes keeps n x (|S|+1) floats instead of n x C. For the full
 *   head the cells are the logits themselves, so both forms are the same n x C array.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { describeFusedLoss } from '../backend/fused-ops.ts';
import { ConfigError, DataError } from '../util/errors.ts';
import type { LossType } from '../distill/loss-types.ts';
import type { LossFn } from '../models/types.ts';
import { normaliseClasses } from './specialist-model.ts';

/** A loss over a batch, as taken by `trainModel` in `src/models/train.ts`. */
export type SpecialistLossFn = LossFn;

/** What `batch.targets` holds: the generalist's full logits (n x C) or its cell logits (n x (|S|+1)). */
export type TeacherTargets = 'full' | 'cells';

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
  /** Form of `batch.targets` (see the module comment). Default `full`. */
  targets?: TeacherTargets;
}

/** Number of teacher cells of a specialist: |S| + 1 for the dustbin head, C for the full head. */
export function teacherCellCount(classes: readonly number[], C: number, head: 'dustbin' | 'full'): number {
  return head === 'full' ? C : normaliseClasses(classes, C, head).length + 1;
}

/**
 * A 1-D tensor of length C with -Infinity at the (sorted) special classes and 0 elsewhere: added to
 * logits, it removes the special classes from a log-sum-exp (exp(-inf) = 0) while leaving the
 * outside logits bit-identical. Much faster than gathering the ~C outside columns.
 */
function outsideMask(sorted: readonly number[], C: number): tf.Tensor1D {
  const m = new Float32Array(C);
  for (const c of sorted) m[c] = -Infinity;
  return tf.tensor1d(m);
}

/**
 * The teacher's cell logits from the generalist's logits (n x C): for `dustbin`,
 * `[z_S (sorted classes), logsumexp(z_outside)]` (n x (|S|+1)); for `full`, the logits unchanged.
 * Must be called inside `tf.tidy` or its result disposed.
 */
export function teacherCellLogits(generalistLogits: tf.Tensor2D, classes: readonly number[], C: number, head: 'dustbin' | 'full'): tf.Tensor2D {
  if (head === 'full') return generalistLogits.clone();
  const sorted = normaliseClasses(classes, C, head);
  return tf.tidy(() => {
    const zs = tf.gather(generalistLogits, tf.tensor1d(sorted, 'int32'), 1);
    const d = tf.logSumExp(tf.add(generalistLogits, outsideMask(sorted, C)), 1, true);
    return tf.concat([zs, d], 1) as tf.Tensor2D;
  });
}

/** The generalist's per-row reductions for one specialist, from {@link streamTeacherCells}. */
export interface TeacherCells {
  /** Rows. */
  n: number;
  /** Columns of `cells`: |S| + 1 (dustbin head). */
  k: number;
  /** Cell logits, row-major n x k: `[z_S (sorted classes), logsumexp(z_outside)]`, before any tempering. */
  cells: Float32Array;
  /** The generalist's argmax over ALL C classes, per row (first maximum). */
  argmax: Int32Array;
}

/** Options of {@link streamTeacherCells}. */
export interface StreamTeacherCellsOptions {
  /** Rows of `x` to use, in this order (default all n). Row r of the result is row `rows[r]` of `x`. */
  rows?: Int32Array;
  /** Rows per forward pass. Default 500. */
  batchSize?: number;
}

/**
 * The generalist's cell logits (see {@link teacherCellLogits}, dustbin head) and its argmax over
 * all classes for the rows of `x` (row-major n x dim), in one streaming pass: the generalist runs
 * on `batchSize` rows at a time (inference mode) and each batch is reduced to cells immediately
 * ({@link reduceTeacherCells}), so only n x (|S|+1) floats and n ints are kept, never n x C. No
 * tensors survive the call.
 * @throws DataError when `x` is not n x dim or a row index is out of range; ConfigError for a bad subset.
 */
export function streamTeacherCells(generalist: tf.LayersModel, x: Float32Array, n: number, dim: number, classes: readonly number[], opts: StreamTeacherCellsOptions = {}): TeacherCells {
  if (x.length !== n * dim) throw new DataError(`streamTeacherCells: feature array has ${x.length} values, expected n x dim = ${n} x ${dim}`);
  const C = generalist.outputs[0].shape[1] as number;
  const rows = opts.rows;
  const m = rows ? rows.length : n;
  if (rows) for (let r = 0; r < m; r++) if (!(rows[r] >= 0 && rows[r] < n)) throw new DataError(`streamTeacherCells: row index ${rows[r]} (position ${r}) outside [0, ${n})`);
  const bs = Math.max(1, Math.floor(opts.batchSize ?? 500));
  const xb = new Float32Array(Math.min(bs, Math.max(1, m)) * dim);
  return reduceTeacherCells(C, classes, m, bs, (start, b) => {
    let input: Float32Array;
    if (rows) {
      for (let r = 0; r < b; r++) {
        const i = rows[start + r];
        xb.set(x.subarray(i * dim, (i + 1) * dim), r * dim);
      }
      input = xb.subarray(0, b * dim);
    } else input = x.subarray(start * dim, (start + b) * dim);
    const t = tf.tidy(() => generalist.predict(tf.tensor2d(input, [b, dim])) as tf.Tensor2D);
    try {
      return { logits: t.dataSync() as Float32Array };
    } finally {
      t.dispose();
    }
  });
}

/** Values per row of {@link logitRowStats}: the maximum, its (first) index, and the sum of exp(z - max) over all classes. */
export const LOGIT_ROW_STATS = 3;

/**
 * Per-row statistics of b x C logits shared by every specialist's reduction, written into `out`
 * (b x {@link LOGIT_ROW_STATS} float64, row-major): `[max_j z_j, argmax (first maximum),
 * sum_j exp(z_j - max)]`, the sum in float64 in index order. Written once per split by the
 * specialists stage next to its logits file, so that each job's dustbin cell costs |S| exps per
 * row instead of C.
 */
export function logitRowStats(z: Float32Array, b: number, C: number, out: Float64Array): void {
  for (let r = 0; r < b; r++) {
    const o = r * C;
    let m = z[o];
    let a = 0;
    for (let j = 1; j < C; j++) if (z[o + j] > m) { m = z[o + j]; a = j; }
    let s = 0;
    for (let j = 0; j < C; j++) s += Math.exp(z[o + j] - m);
    out[r * LOGIT_ROW_STATS] = m;
    out[r * LOGIT_ROW_STATS + 1] = a;
    out[r * LOGIT_ROW_STATS + 2] = s;
  }
}

/**
 * Below this fraction of the row's mass outside the subset, the dustbin's log-sum-exp is not taken
 * as `log(total - inside)` (float64 cancellation: the relative error of the difference grows as
 * 1e-12 / fraction at C = 15,000) but summed directly over the outside classes.
 */
export const DUSTBIN_CANCELLATION_GUARD = 1e-3;

/** One batch of the generalist's logits for {@link reduceTeacherCells}, with its row statistics when known. */
export interface TeacherLogitsBatch {
  /** b x C logits, row-major. */
  logits: Float32Array;
  /** b x {@link LOGIT_ROW_STATS} from {@link logitRowStats} on these logits; computed when absent. */
  stats?: Float64Array;
}

/**
 * The reduction of {@link streamTeacherCells} over any source of the generalist's logits: rows
 * `[start, start + b)` come from `batchLogits(start, b)`, `batchSize` rows at a time, each batch
 * reduced at once (in float64, then stored as float32) to `[z_S, logsumexp(z_outside)]` and the
 * argmax over all C. The dustbin cell is `max + log(total - inside)` from the row statistics
 * ({@link logitRowStats}: computed here, or read with the logits from a file), so with the
 * statistics given a row costs |S| exps, not C; rows whose outside mass is under
 * {@link DUSTBIN_CANCELLATION_GUARD} of the total are summed over the outside classes directly.
 * Logits from the model or from a file (`teacherCellsFromLogitsFile`) give bit-identical cells.
 * @throws ConfigError for a bad subset; DataError when a batch has the wrong size
 */
export function reduceTeacherCells(C: number, classes: readonly number[], m: number, batchSize: number, batchLogits: (start: number, b: number) => TeacherLogitsBatch): TeacherCells {
  const sorted = normaliseClasses(classes, C, 'dustbin');
  const S = sorted.length;
  const k = S + 1;
  const cells = new Float32Array(m * k);
  const argmax = new Int32Array(m);
  const inside = new Uint8Array(C);
  for (const c of sorted) inside[c] = 1;
  const bs = Math.max(1, Math.floor(batchSize));
  let own: Float64Array | undefined;
  for (let start = 0; start < m; start += bs) {
    const b = Math.min(bs, m - start);
    const batch = batchLogits(start, b);
    const z = batch.logits;
    if (z.length < b * C) throw new DataError(`reduceTeacherCells: batch at row ${start} has ${z.length} logits, expected ${b} x ${C}`);
    let st = batch.stats;
    if (!st) {
      own ??= new Float64Array(bs * LOGIT_ROW_STATS);
      logitRowStats(z, b, C, own);
      st = own;
    } else if (st.length < b * LOGIT_ROW_STATS) throw new DataError(`reduceTeacherCells: batch at row ${start} has ${st.length} row statistics, expected ${b} x ${LOGIT_ROW_STATS}`);
    for (let r = 0; r < b; r++) {
      const o = r * C;
      const mx = st[r * LOGIT_ROW_STATS];
      const total = st[r * LOGIT_ROW_STATS + 2];
      const out = (start + r) * k;
      let sin = 0;
      for (let i = 0; i < S; i++) {
        const v = z[o + sorted[i]];
        cells[out + i] = v;
        sin += Math.exp(v - mx);
      }
      const rest = total - sin;
      let d: number;
      if (rest > DUSTBIN_CANCELLATION_GUARD * total) d = mx + Math.log(rest);
      else {
        let mo = -Infinity;
        for (let j = 0; j < C; j++) if (!inside[j] && z[o + j] > mo) mo = z[o + j];
        let s = 0;
        for (let j = 0; j < C; j++) if (!inside[j]) s += Math.exp(z[o + j] - mo);
        d = mo + Math.log(s);
      }
      cells[out + S] = d;
      argmax[start + r] = st[r * LOGIT_ROW_STATS + 1];
    }
  }
  return { n: m, k, cells, argmax };
}

/**
 * The specialist loss. `batch.y` holds CELL indices (see `specialistCells`): for the dustbin head
 * 0..|S|-1 for the special classes and |S| for the dustbin; for the full head the class ids.
 * Returns the batch mean of `hardWeight * CE(y, softmax(z)) + softWeight * T^2 * CE(p_T, softmax(z/T))`
 * with p_T the tempered teacher cell distribution (`batch.targets` as set by `opts.targets`).
 * @throws ConfigError for a non-positive T or negative weights; Error when soft targets are requested but `batch.targets` is missing or has the wrong width.
 */
export function specialistLoss(opts: SpecialistLossOptions): SpecialistLossFn {
  const { C, head, softWeight, T } = opts;
  const hardWeight = opts.hardWeight ?? 1;
  const form: TeacherTargets = opts.targets ?? 'full';
  if (!(T > 0)) throw new ConfigError(`specialist loss: temperature T must be > 0, got ${T}`);
  if (!(softWeight >= 0) || !(hardWeight >= 0)) throw new ConfigError(`specialist loss: weights must be >= 0 (softWeight ${softWeight}, hardWeight ${hardWeight})`);
  if (form !== 'full' && form !== 'cells') throw new ConfigError(`specialist loss: targets must be 'full' or 'cells', got '${String(form)}'`);
  const classes = normaliseClasses(opts.classes, C, head);
  const cells = head === 'full' ? C : classes.length + 1;
  const targetWidth = form === 'cells' ? cells : C;
  const fn: SpecialistLossFn = (logits, batch) =>
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
        if (!batch.targets) throw new Error(`specialist loss: softWeight > 0 needs the generalist's ${form === 'cells' ? 'cell logits' : 'logits'} as batch.targets`);
        if (batch.targets.shape[1] !== targetWidth) {
          throw new Error(`specialist loss: batch.targets has ${batch.targets.shape[1]} columns, expected ${targetWidth} (${form === 'cells' ? "the teacher's cell logits" : "the generalist's C logits"})`);
        }
        const teacher = form === 'cells' ? batch.targets : teacherCellLogits(batch.targets, classes, C, head);
        const pT = tf.softmax(tf.div(teacher, T));
        const logqT = tf.logSoftmax(tf.div(logits, T));
        const ce = tf.neg(tf.mean(tf.sum(tf.mul(pT, logqT), 1)));
        total = tf.add(total, tf.mul(ce, softWeight * T * T));
      }
      return total;
    });
  // With the teacher's cells as targets this is the fused softmax cross-entropy scaled by the sum
  // of the weights: (hw + sw) * [alpha T^2 soft + (1 - alpha) hard], alpha = sw / (hw + sw), so a
  // fused training step may replace it.
  const sum = hardWeight + softWeight;
  if (sum > 0 && (form === 'cells' || head === 'full')) describeFusedLoss(fn, { T, alpha: softWeight / sum, kind: 'logits', scale: sum });
  return fn;
}

/**
 * The specialists' loss keys (the `specialists` stage's `soft_weight` and `temperature`), as the
 * `specialist` entry of the loss registry (`src/distill/loss-registry.ts`) defines them.
 */
export const SPECIALIST_LOSS_KEYS = {
  /** Weight of the soft targets from the generalist (0 = hard targets only; the paper's section 6.1 regulariser). */
  soft_weight: z.number().min(0).default(1),
  /** Temperature of the soft targets (the dustbin's teacher logit is aggregated before tempering). */
  temperature: z.number().positive().default(2),
};

const specialistLossSchema = z.strictObject({ type: z.literal('specialist'), ...SPECIALIST_LOSS_KEYS });

/**
 * The `specialist` loss type of the loss registry: {@link specialistLoss} with `softWeight =
 * soft_weight`, `T = temperature`, hard weight 1; the context gives the specialist's classes, the
 * generalist's C, the head and the form of the teacher targets.
 */
export const SPECIALIST_LOSS: LossType<z.output<typeof specialistLossSchema>> = {
  type: 'specialist',
  description: "a specialist's hard targets over its cells plus soft_weight x T^2 x the soft targets of the generalist's cell logits",
  schema: specialistLossSchema,
  needsTeacher: (p) => p.soft_weight > 0,
  teacherKinds: ['logits'],
  teacherWeight: (p) => p.soft_weight,
  build: (p, ctx) => {
    const sp = ctx.specialist;
    if (!sp) throw new ConfigError("loss 'specialist' is built for one specialist: give its classes, C, head and targets form");
    return specialistLoss({ classes: sp.classes, C: sp.C, head: sp.head, softWeight: p.soft_weight, T: p.temperature, targets: sp.targets });
  },
};
