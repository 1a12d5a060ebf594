/**
 * Teachers: one trained model, or an ensemble of models whose outputs are combined into one
 * set of teacher LOGITS per example (paper section 2: "the arithmetic or geometric mean of
 * their individual predictive distributions").
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, DataError, assertUnreachable } from '../util/errors.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import type { LossFn } from './loss-types.ts';

/** How an ensemble's members are combined. */
export type EnsembleMode = 'arithmetic' | 'geometric';

function assertMode(mode: string): asserts mode is EnsembleMode {
  if (mode !== 'arithmetic' && mode !== 'geometric') {
    throw new ConfigError(`teacher ensemble mode must be 'arithmetic' or 'geometric', got '${mode}'`);
  }
}

/**
 * Combines the members' logits (`M` arrays of `n x C` row-major floats) into ensemble logits.
 *
 * - `arithmetic`: `log(mean_m softmax(z^m))`, computed in log space
 *   (`logSumExp_m log softmax(z^m) - log M`, in float64), so it is finite even where a member's
 *   probability underflows. `softmax` of the result is exactly the mean of the members'
 *   probabilities.
 * - `geometric`: `mean_m z^m`. `softmax` of it is the renormalised geometric mean of the
 *   members' probabilities (whose log equals the mean logits up to a per-row constant, which no
 *   softmax and no zero-meaned logit loss can see).
 *
 * The returned rows are what a soft loss at temperature T tempers: `p_T = softmax(v / T)`. For
 * the geometric mode that is exactly "the ensemble's logits at T". For the arithmetic mode it
 * means raising T on the ensemble's distribution, `p_T ∝ (mean_m p^m)^(1/T)`, the paper's
 * choice when the cumbersome model is an ensemble; it is NOT the mean of the members'
 * individually tempered distributions `mean_m softmax(z^m / T)` (a different, also
 * reasonable, teacher that this project does not use).
 * A single member returns a copy of its logits (both modes; arithmetic shifts each row by a
 * constant, invisible to softmax).
 * @param logitsPerMember one `Float32Array(n * C)` per member.
 * @throws DataError when a member's array does not have `n * C` entries; ConfigError for an
 *   empty member list or unknown mode.
 */
export function combineTeachers(logitsPerMember: Float32Array[], n: number, C: number, mode: EnsembleMode): Float32Array {
  assertMode(mode);
  const M = logitsPerMember.length;
  if (M === 0) throw new ConfigError('combineTeachers: the teacher ensemble has no members; list at least one teacher model');
  if (!Number.isInteger(n) || n < 0 || !Number.isInteger(C) || C < 1) {
    throw new DataError(`combineTeachers: n must be an integer >= 0 and C an integer >= 1, got n=${n}, C=${C}`);
  }
  logitsPerMember.forEach((a, m) => {
    if (a.length !== n * C) {
      throw new DataError(`combineTeachers: member ${m} has ${a.length} logits, expected n * C = ${n} * ${C} = ${n * C}`);
    }
  });
  const out = new Float32Array(n * C);
  if (M === 1) {
    out.set(logitsPerMember[0]!);
    if (mode === 'geometric') return out;
  }
  switch (mode) {
    case 'geometric': {
      const acc = new Float64Array(C);
      for (let r = 0; r < n; r++) {
        acc.fill(0);
        const base = r * C;
        for (const a of logitsPerMember) for (let i = 0; i < C; i++) acc[i]! += a[base + i]!;
        for (let i = 0; i < C; i++) out[base + i] = acc[i]! / M;
      }
      return out;
    }
    case 'arithmetic': {
      // logp[m][i] = z^m_i - lse(z^m); result_i = lse_m(logp[m][i]) - log M.
      const logp = new Float64Array(M * C);
      const logM = Math.log(M);
      for (let r = 0; r < n; r++) {
        const base = r * C;
        for (let m = 0; m < M; m++) {
          const a = logitsPerMember[m]!;
          let mx = -Infinity;
          for (let i = 0; i < C; i++) mx = Math.max(mx, a[base + i]!);
          let s = 0;
          for (let i = 0; i < C; i++) s += Math.exp(a[base + i]! - mx);
          const lse = mx + Math.log(s);
          for (let i = 0; i < C; i++) logp[m * C + i] = a[base + i]! - lse;
        }
        for (let i = 0; i < C; i++) {
          let mx = -Infinity;
          for (let m = 0; m < M; m++) mx = Math.max(mx, logp[m * C + i]!);
          let s = 0;
          for (let m = 0; m < M; m++) s += Math.exp(logp[m * C + i]! - mx);
          out[base + i] = mx + Math.log(s) - logM;
        }
      }
      return out;
    }
    default:
      return assertUnreachable(mode);
  }
}

/** True when the model's last layer applies a softmax (its output is probabilities). */
function endsInSoftmax(model: tf.LayersModel): boolean {
  const last = model.layers[model.layers.length - 1];
  if (last === undefined) return false;
  const cfg = last.getConfig() as { activation?: unknown };
  return last.getClassName() === 'Softmax' || cfg.activation === 'softmax';
}

/**
 * Runs the teacher model(s) on `x` and returns the (combined) teacher logits, `n x C`
 * row-major. Inference only: `model.predict` (dropout etc. in inference mode), in batches of
 * `batchSize` inside `tf.tidy`, values copied out to plain arrays, so the result carries no
 * gradient tape and no tensors are left behind.
 * A model whose last layer is a softmax is read as log-probabilities (`log softmax`), which are
 * its logits up to a per-row constant.
 * @param models one model, or the members of an ensemble (same input dim and classes).
 * @param x `n x dim` inputs, row-major, or a `[n, dim]` tensor (not disposed).
 * @param mode how to combine several members, see {@link combineTeachers}.
 * @throws ConfigError for no models, bad batch size or mismatched models; DataError when `x`
 *   does not have `n x dim` entries.
 */
export function computeTeacherLogits(
  models: tf.LayersModel[],
  x: Float32Array | tf.Tensor2D,
  n: number,
  dim: number,
  mode: EnsembleMode,
  batchSize: number,
  log: Logger = silentLogger,
): Float32Array {
  assertMode(mode);
  if (models.length === 0) throw new ConfigError('computeTeacherLogits: no teacher model given');
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new ConfigError(`computeTeacherLogits: batchSize must be an integer >= 1, got ${batchSize}`);
  }
  const size = x instanceof Float32Array ? x.length : x.size;
  if (size !== n * dim || (!(x instanceof Float32Array) && (x.shape[0] !== n || x.shape[1] !== dim))) {
    throw new DataError(`computeTeacherLogits: inputs have ${size} values, expected n * dim = ${n} * ${dim}`);
  }
  const classes = models.map((m, k) => {
    const shape = m.outputs[0]?.shape;
    const c = shape?.[shape.length - 1];
    if (m.outputs.length !== 1 || shape === undefined || shape.length !== 2 || typeof c !== 'number') {
      throw new ConfigError(`computeTeacherLogits: teacher ${k} must have one [batch, C] output, got ${JSON.stringify(shape)}`);
    }
    return c;
  });
  const C = classes[0]!;
  if (classes.some((c) => c !== C)) {
    throw new ConfigError(`computeTeacherLogits: the teachers disagree on the number of classes (${classes.join(', ')})`);
  }
  const softmaxOut = models.map(endsInSoftmax);
  const out = new Float32Array(n * C);
  const progress = log.progress('teacher logits', n);
  for (let start = 0; start < n; start += batchSize) {
    const b = Math.min(batchSize, n - start);
    // The outputs are read after the tidy has released the batch's intermediates: a read inside
    // it ran 15-20x slower on the wasm backend (5.2 s vs 0.24 s for 5,000 rows of a small CNN).
    const zs = tf.tidy(() => {
      const xb =
        x instanceof Float32Array ? tf.tensor2d(x.subarray(start * dim, (start + b) * dim), [b, dim]) : tf.slice(x, [start, 0], [b, dim]);
      return models.map((m, k) => {
        const y = m.predict(xb) as tf.Tensor2D;
        return softmaxOut[k] ? tf.log(tf.maximum(y, 1e-30)) : y;
      });
    });
    const perMember = zs.map((z) => {
      const v = Float32Array.from(z.dataSync() as Float32Array);
      z.dispose();
      return v;
    });
    out.set(combineTeachers(perMember, b, C, mode), start * C);
    progress.tick(b);
  }
  progress.done();
  return out;
}

/**
 * The (combined) teacher logits of one batch as a tensor, `[b, C]`, computed like
 * {@link computeTeacherLogits} (inference mode; softmax outputs read as log-probabilities;
 * members combined by {@link combineTeachers}' rule) but without leaving the tensor world, for
 * a teacher queried on every training batch. The caller owns the result (call it inside a
 * `tf.tidy`); wrap it in {@link stopGradient} before a loss uses it.
 * @throws ConfigError for no models or an unknown mode.
 */
export function teacherLogitsOfBatch(models: tf.LayersModel[], x: tf.Tensor2D, mode: EnsembleMode): tf.Tensor2D {
  assertMode(mode);
  if (models.length === 0) throw new ConfigError('teacherLogitsOfBatch: no teacher model given');
  return tf.tidy((): tf.Tensor2D => {
    const zs = models.map((m): tf.Tensor2D => {
      const y = m.predict(x) as tf.Tensor2D;
      return endsInSoftmax(m) ? tf.log(tf.maximum(y, 1e-30) as tf.Tensor2D) : y;
    });
    if (zs.length === 1) return zs[0]!;
    if (mode === 'geometric') return tf.mean(tf.stack(zs), 0) as tf.Tensor2D;
    const logp = tf.stack(zs.map((z) => tf.logSoftmax(z)));
    return tf.sub(tf.logSumExp(logp, 0), Math.log(zs.length)) as tf.Tensor2D;
  });
}

/**
 * A loss whose teacher is queried on every training batch instead of read from cached rows:
 * `inner` gets the batch with `targets` = the teacher's logits on `batch.x` (the inputs as the
 * student sees them, i.e. after jitter), so a jittered transfer set gets targets for the
 * shifted images, not for the originals. `inner` must expect teacher LOGITS (`makeLoss` with
 * `teacher: 'logits'`); the losses pass targets through `stopGradient`, so no gradient reaches
 * the teacher, whose variables are not trained anyway. The models stay owned by the caller.
 */
export function onlineTeacherLoss(inner: LossFn, models: tf.LayersModel[], mode: EnsembleMode): LossFn {
  assertMode(mode);
  if (models.length === 0) throw new ConfigError('onlineTeacherLoss: no teacher model given');
  return (logits, batch) => inner(logits, { ...batch, targets: teacherLogitsOfBatch(models, batch.x, mode) });
}
