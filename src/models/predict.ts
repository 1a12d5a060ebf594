// Models run on the tensor backend's kernels (native ones on wasm-blas), which key the cache too:
// code-key: ../backend/blas-kernels.ts
import * as tf from '@tensorflow/tfjs';
import { DataError } from '../util/errors.ts';
import type { LabeledSet, LossFn, TrainBatch, TrainSet } from './types.ts';

/** Default rows per forward pass in {@link predictLogits} and {@link evaluate}. */
export const DEFAULT_PREDICT_BATCH = 500;

/** Options of {@link predictLogits}. */
export interface PredictOptions {
  /** Rows per forward pass. Default {@link DEFAULT_PREDICT_BATCH}. */
  batchSize?: number;
  /**
   * Streaming mode: called with each batch's first row index, its logits (`rows x C`, row-major;
   * the array is only valid during the call) and its row count. When given, nothing is
   * accumulated and an empty array is returned.
   */
  onBatch?: (start: number, logits: Float32Array, rows: number) => void;
}

/** Width of the model's (single) output, i.e. the number of logits C. */
export function outputDim(model: tf.LayersModel): number {
  const shape = model.outputs[0]!.shape;
  const c = shape[shape.length - 1];
  if (typeof c !== 'number') throw new Error(`model output has no fixed width: [${shape.join(', ')}]`);
  return c;
}

function checkInput(model: tf.LayersModel, n: number, dim: number, xLength: number): void {
  const inShape = model.inputs[0]!.shape;
  const want = inShape[inShape.length - 1];
  if (typeof want === 'number' && want !== dim) {
    throw new DataError(`the model takes ${want} input features but the data has ${dim} per example: were the model and data made by the same pipeline?`);
  }
  if (xLength !== n * dim) throw new DataError(`feature array has ${xLength} values, expected n x dim = ${n} x ${dim} = ${n * dim}`);
}

/**
 * Logits of `model` (evaluation mode: dropout off) for the `n x dim` row-major inputs `x`, in
 * batches. Returns `n x C` row-major, or streams batches to `opts.onBatch` and returns an empty
 * array (for large C, e.g. covariance accumulation). Synchronous (reads each batch with
 * `dataSync`); no tensors survive the call.
 * @throws DataError when `dim` does not match the model's input width or `x` has the wrong length.
 */
export function predictLogits(model: tf.LayersModel, x: Float32Array, n: number, dim: number, opts: PredictOptions = {}): Float32Array {
  checkInput(model, n, dim, x.length);
  const bs = Math.max(1, Math.floor(opts.batchSize ?? DEFAULT_PREDICT_BATCH));
  const C = outputDim(model);
  const out = opts.onBatch ? new Float32Array(0) : new Float32Array(n * C);
  for (let start = 0; start < n; start += bs) {
    const rows = Math.min(bs, n - start);
    const t = tf.tidy(() => model.predict(tf.tensor2d(x.subarray(start * dim, (start + rows) * dim), [rows, dim])) as tf.Tensor);
    const values = t.dataSync() as Float32Array;
    t.dispose();
    if (opts.onBatch) opts.onBatch(start, values, rows);
    else out.set(values, start * C);
  }
  return out;
}

/** Accuracy and mean loss of a model on one split. */
export interface EvalResult {
  /** Fraction of rows whose arg-max logit is the label (NaN for an empty set). */
  accuracy: number;
  /** Number of misclassified rows. */
  errors: number;
  /** Number of rows. */
  examples: number;
  /** Mean loss per row (NaN for an empty set). */
  loss: number;
}

/**
 * Accuracy, errors and mean hard-label softmax cross-entropy (natural log, computed in float64
 * from the logits) of `model` on `set`, dropout off. The predicted class is the first arg-max.
 * @throws DataError when a label is outside [0, C) or the shapes do not match the model.
 */
export function evaluate(model: tf.LayersModel, set: LabeledSet, opts: { batchSize?: number } = {}): EvalResult {
  const C = outputDim(model);
  let errors = 0;
  let lossSum = 0;
  predictLogits(model, set.x, set.n, set.dim, {
    batchSize: opts.batchSize,
    onBatch: (start, logits, rows) => {
      for (let r = 0; r < rows; r++) {
        const label = set.y[start + r]!;
        if (!(label >= 0 && label < C)) throw new DataError(`row ${start + r} has label ${label}, outside [0, ${C}) of the model's ${C} classes`);
        const o = r * C;
        let best = 0;
        let max = logits[o]!;
        for (let c = 1; c < C; c++) {
          if (logits[o + c]! > max) {
            max = logits[o + c]!;
            best = c;
          }
        }
        let sum = 0;
        for (let c = 0; c < C; c++) sum += Math.exp(logits[o + c]! - max);
        lossSum += max + Math.log(sum) - logits[o + label]!;
        if (best !== label) errors++;
      }
    },
  });
  const n = set.n;
  return { accuracy: n ? (n - errors) / n : NaN, errors, examples: n, loss: n ? lossSum / n : NaN };
}

/**
 * Like {@link evaluate} but the loss is an arbitrary {@link LossFn} (e.g. a distillation loss
 * that reads `set.targets`), averaged over batches weighted by their row counts; accuracy is
 * against the hard labels `set.y`.
 */
export function evaluateWithLoss(model: tf.LayersModel, set: TrainSet, loss: LossFn, opts: { batchSize?: number } = {}): EvalResult {
  checkInput(model, set.n, set.dim, set.x.length);
  const bs = Math.max(1, Math.floor(opts.batchSize ?? DEFAULT_PREDICT_BATCH));
  const td = set.targets ? targetDimOf(set) : 0;
  let correct = 0;
  let lossSum = 0;
  for (let start = 0; start < set.n; start += bs) {
    const rows = Math.min(bs, set.n - start);
    const r = tf.tidy(() => {
      const batch: TrainBatch = {
        x: tf.tensor2d(set.x.subarray(start * set.dim, (start + rows) * set.dim), [rows, set.dim]),
        y: tf.tensor1d(set.y.subarray(start, start + rows), 'int32'),
      };
      if (set.targets) batch.targets = tf.tensor2d(set.targets.subarray(start * td, (start + rows) * td), [rows, td]);
      const logits = model.predict(batch.x) as tf.Tensor2D;
      const l = loss(logits, batch);
      const ok = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), batch.y), 'int32'));
      return tf.stack([tf.cast(l, 'float32'), tf.cast(ok, 'float32')]);
    });
    const [l, ok] = r.dataSync();
    r.dispose();
    lossSum += l! * rows;
    correct += ok!;
  }
  const n = set.n;
  return { accuracy: n ? correct / n : NaN, errors: n - correct, examples: n, loss: n ? lossSum / n : NaN };
}

/** Width of `set.targets` rows, checked against the array length. */
export function targetDimOf(set: TrainSet): number {
  if (!set.targets) return 0;
  const td = set.targetDim ?? (set.n > 0 ? set.targets.length / set.n : 0);
  if (!Number.isInteger(td) || td * set.n !== set.targets.length) {
    throw new DataError(`targets array has ${set.targets.length} values, not n x targetDim = ${set.n} x ${String(set.targetDim)}`);
  }
  return td;
}
