import * as tf from '@tensorflow/tfjs';
import { fusedLossOf, fusedOps, type FusedMlpStep } from '../backend/fused-ops.ts';
import { fusedMlpLayers } from './fused-plan.ts';
import { sha256, stableStringify } from '../artifacts/hash.ts';
import { ConfigError, DataError } from '../util/errors.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { Rng } from '../util/rng.ts';
import { readCheckpoint, writeCheckpoint } from './checkpoint.ts';
import { checkTrainingKernels } from './kernel-check.ts';
import { checkDivergence, checkDivergenceSpec, type DivergenceSpec } from './divergence.ts';
import { imageShape, jitterBatch, type ImageShape } from './jitter.ts';
import { hardLoss } from './losses.ts';
import { ParamOptimizer, checkOptimizerSpec, learningRateAt, momentumAt, type OptimizerSpec } from './optimizer.ts';
import { evaluate, evaluateWithLoss, outputDim, targetDimOf } from './predict.ts';
import type { EpochMetrics, LossFn, SelectRule, TrainBatch, TrainSet } from './types.ts';
import { failpoint } from '../util/failpoint.ts';

export { hardLoss } from './losses.ts';
export type { LrSchedule, OptimizerSpec } from './optimizer.ts';
export type { DivergenceSpec } from './divergence.ts';
export type { EpochMetrics, LabeledSet, LossFn, SelectRule, TrainBatch, TrainSet } from './types.ts';

/** Options of {@link trainModel}. */
export interface TrainOptions {
  /** The model to train in place; it ends holding the selected epoch's weights. */
  model: tf.LayersModel;
  train: TrainSet;
  /** Validation split, evaluated after every epoch (dropout off). */
  valid?: TrainSet;
  /** Training loss (mean over the batch). Default {@link hardLoss}. */
  loss?: LossFn;
  /** What `valid_loss` means. Default {@link hardLoss}. */
  validLoss?: LossFn;
  epochs: number;
  batchSize: number;
  optimizer: OptimizerSpec;
  /** Max pixel shift for image-shaped x (`shape` [H,W] or [H,W,C]); 0 or absent = off. */
  jitter?: number;
  seed: number;
  /**
   * Index order of one epoch (0-based `epoch`); any length, repeats allowed; consecutive runs of
   * `batchSize` indices form the batches (the last may be shorter). Default: a seeded shuffle of
   * all training rows. `rng` is seeded from `seed` and the epoch, so orders are reproducible.
   */
  sampler?: (epoch: number, rng: Rng) => Int32Array;
  /**
   * Which epoch's weights to keep: best `valid_accuracy` (ties: earliest), lowest `valid_loss`
   * (ties: earliest), or the `last`. Default `valid_accuracy` when `valid` is given, else `last`.
   */
  select?: SelectRule;
  /**
   * If set: after each epoch the weights, the best weights, the optimizer state and the history
   * are saved here; on start a checkpoint of the same setup is resumed from (one of another
   * setup, or damaged, is ignored with a warning). Delete the folder to start over.
   */
  checkpointDir?: string;
  log?: Logger;
  /** Called after every epoch trained in this call (not for epochs restored from a checkpoint). */
  onEpoch?: (m: EpochMetrics) => void;
  /** Rows per forward pass when evaluating `valid`. Default 500. */
  evalBatchSize?: number;
  /** Finite-divergence thresholds (see `divergence.ts`); default `DIVERGENCE_DEFAULTS` there. */
  divergence?: DivergenceSpec;
}

/** Result of {@link trainModel}. */
export interface TrainResult {
  /** One entry per epoch, including epochs restored from a checkpoint. */
  history: EpochMetrics[];
  /** 1-based epoch whose weights the model ends with (0 when `epochs` is 0). */
  bestEpoch: number;
}

/** Steps between reads of the running loss for the progress status (the only in-epoch sync). */
const STATUS_EVERY = 25;

interface DropoutLayer {
  seed?: number;
}

/** Applies a weight's constraint after an update (exact max-norm: untouched columns keep their bits). */
type ConstraintOp = () => void;

function constraintOps(model: tf.LayersModel): ConstraintOp[] {
  const ops: ConstraintOp[] = [];
  for (const w of model.trainableWeights) {
    const c = w.constraint;
    if (!c) continue;
    const v = w.read() as tf.Variable;
    if (c.getClassName() === 'MaxNorm') {
      const cfg = c.getConfig() as { maxValue?: number; axis?: number };
      const maxValue = cfg.maxValue ?? 2;
      const axis = cfg.axis ?? 0;
      ops.push(() => {
        if (axis === 0 && fusedOps().maxNormCols?.(v, maxValue)) return;
        tf.tidy(() => {
          const norms = tf.sqrt(tf.sum(tf.square(v), axis, true));
          // maxValue / 0 = Infinity, so zero columns get scale 1 as well.
          const scale = tf.minimum(tf.div(maxValue, norms), 1);
          v.assign(tf.mul(v, scale));
        });
      });
    } else {
      ops.push(() => tf.tidy(() => v.assign(c.apply(v))));
    }
  }
  return ops;
}

/** Values of every weight of `model` (copies), in `model.weights` order. */
export async function snapshotWeights(model: tf.LayersModel): Promise<Float32Array[]> {
  return Promise.all(model.weights.map(async (w) => Float32Array.from((await w.read().data()) as Float32Array)));
}

/** Assigns values from {@link snapshotWeights} back exactly (constraints NOT re-applied). */
export function restoreWeights(model: tf.LayersModel, values: Float32Array[]): void {
  const ws = model.weights;
  if (values.length !== ws.length) throw new Error(`restoreWeights: ${values.length} arrays for ${ws.length} weights`);
  tf.tidy(() => ws.forEach((w, i) => (w.read() as tf.Variable).assign(tf.tensor(values[i]!, w.shape as number[], 'float32'))));
}

/** Checks a set's sizes and labels; `unlabeledOk`: label -1 (an unlabeled row) is allowed. */
function checkSet(name: string, set: TrainSet, inputDim: number | null, C: number, unlabeledOk = false): void {
  if (set.x.length !== set.n * set.dim) throw new DataError(`${name} set: x has ${set.x.length} values, expected n x dim = ${set.n} x ${set.dim}`);
  if (set.y.length !== set.n) throw new DataError(`${name} set: y has ${set.y.length} labels for ${set.n} rows`);
  if (inputDim !== null && inputDim !== set.dim) {
    throw new DataError(`${name} set has ${set.dim} features per example but the model takes ${inputDim}`);
  }
  for (let i = 0; i < set.n; i++) {
    const l = set.y[i]!;
    if (!(l >= 0 && l < C) && !(unlabeledOk && l === -1)) throw new DataError(`${name} set: row ${i} has label ${l}, outside [0, ${C}) of the model's outputs`);
  }
  targetDimOf(set);
}

function fingerprintOf(opts: TrainOptions, select: SelectRule, weightShapes: number[][]): string {
  const digest = (s: TrainSet | undefined): unknown =>
    s && { n: s.n, dim: s.dim, y: sha256(new Uint8Array(s.y.buffer, s.y.byteOffset, s.y.byteLength)), targetDim: s.targets ? targetDimOf(s) : 0 };
  return sha256(
    stableStringify({
      v: 1,
      epochs: opts.epochs,
      batchSize: opts.batchSize,
      optimizer: opts.optimizer,
      jitter: opts.jitter ?? 0,
      seed: opts.seed,
      select,
      sampler: Boolean(opts.sampler),
      customLoss: Boolean(opts.loss),
      train: digest(opts.train),
      valid: digest(opts.valid),
      weightShapes,
    }),
  );
}

/**
 * Trains `opts.model` in place with a custom loop (so any {@link LossFn} can be used) and leaves
 * it holding the selected epoch's weights.
 *
 * Each step: gather the batch rows (and `targets` rows) in JS, jitter them if asked, reseed the
 * Dropout layers from the epoch's stream, run `model.apply(x, { training: true })`, take
 * gradients of the loss with `tf.variableGrads`, update with the optimizer, then apply the kernel
 * constraints. (tfjs 4.22 applies constraints only in `LayerVariable.write`, which neither `fit`
 * nor optimizers call, so without this step max-norm would silently do nothing; max-norm here
 * rescales only the columns above the bound, leaving the others bit-identical.) Loss and accuracy are accumulated on the device and read every 25 steps for the progress
 * status. Randomness (order, jitter, dropout) comes from streams derived from `seed` and the epoch
 * number, so a run is deterministic per backend and a resumed run equals an uninterrupted one.
 *
 * @throws ConfigError for invalid options (e.g. a `select` rule needing `valid` without it, jitter
 * on non-image data) or a diverged run (non-finite loss); DataError for data not matching the model.
 */
export async function trainModel(opts: TrainOptions): Promise<TrainResult> {
  const { model, train } = opts;
  const log = opts.log ?? silentLogger;
  const select: SelectRule = opts.select ?? (opts.valid ? 'valid_accuracy' : 'last');
  if (select !== 'last' && !opts.valid) throw new ConfigError(`select '${select}' needs a validation split, but none was given: use select 'last' or provide one`);
  if (select !== 'last' && opts.valid && opts.valid.n === 0) throw new DataError(`select '${select}' needs validation rows, but the validation split is empty: give the valid split rows (ingest's valid_fraction) or use select 'last'`);
  if (!Number.isInteger(opts.epochs) || opts.epochs < 0) throw new ConfigError(`epochs must be a non-negative integer, got ${opts.epochs}`);
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new ConfigError(`batch size must be a positive integer, got ${opts.batchSize}`);
  checkOptimizerSpec(opts.optimizer);
  checkDivergenceSpec(opts.divergence);
  const jitter = opts.jitter ?? 0;
  if (!Number.isInteger(jitter) || jitter < 0) throw new ConfigError(`jitter must be a non-negative integer, got ${jitter}`);
  const img: ImageShape | null = jitter > 0 ? imageShape(train.shape, train.dim) : null;
  const inShape = model.inputs[0]!.shape;
  const inputDim = typeof inShape[inShape.length - 1] === 'number' ? (inShape[inShape.length - 1] as number) : null;
  const C = outputDim(model);
  checkSet('training', train, inputDim, C, true);
  if (opts.valid) checkSet('validation', opts.valid, inputDim, C);
  if (train.n === 0 && !opts.sampler) throw new DataError('the training set is empty');
  const targetDim = targetDimOf(train);

  const lossFn = opts.loss ?? hardLoss;
  const evalValid = (): { loss: number; accuracy: number } => {
    const v = opts.valid!;
    const r = opts.validLoss ? evaluateWithLoss(model, v, opts.validLoss, { batchSize: opts.evalBatchSize }) : evaluate(model, v, { batchSize: opts.evalBatchSize });
    return { loss: r.loss, accuracy: r.accuracy };
  };
  const scoreOf = (m: EpochMetrics): number => (select === 'valid_accuracy' ? m.valid_accuracy! : select === 'valid_loss' ? -m.valid_loss! : m.epoch);

  checkTrainingKernels(model);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  if (vars.length === 0) throw new ConfigError('the model has no trainable weights');
  const constraints = constraintOps(model);
  const dropouts = model.layers.filter((l) => l.getClassName() === 'Dropout') as unknown as DropoutLayer[];
  const dropoutSeeds = dropouts.map((d) => d.seed);
  const optimizer = new ParamOptimizer(opts.optimizer, vars);
  // A plain MLP with a softmax cross-entropy loss: the whole gradient step in one fused call per
  // batch where the backend has it (same maths; the generic tfjs path below otherwise).
  const fusedLoss = fusedLossOf(lossFn);
  const fusedLayers = fusedLoss && dropouts.length === 0 && (targetDim === C || fusedLoss.alpha === 0) ? fusedMlpLayers(model) : null;
  let fusedStep: FusedMlpStep | null = null;

  let history: EpochMetrics[] = [];
  let bestEpoch = 0;
  let bestScore: number | null = null;
  let best: Float32Array[] | null = null;
  let start = 0;
  const fingerprint = fingerprintOf(opts, select, model.weights.map((w) => w.shape as number[]));
  const weightSizes = model.weights.map((w) => w.shape.reduce((a: number, b) => a * (b ?? 1), 1));

  try {
    if (fusedLayers) fusedStep = fusedOps().mlpGradStep?.(fusedLayers, fusedLoss!, opts.batchSize) ?? null;
    if (opts.checkpointDir) {
      const r = await readCheckpoint(opts.checkpointDir, { fingerprint, weightSizes, slotSizes: optimizer.slotSizes() });
      if ('checkpoint' in r) {
        const ck = r.checkpoint;
        restoreWeights(model, ck.weights);
        optimizer.setState({ steps: ck.optimizerSteps, slots: ck.optimizerSlots });
        history = ck.history;
        bestEpoch = ck.bestEpoch;
        bestScore = ck.bestScore;
        best = ck.best;
        start = ck.epochsDone;
        log.info(`resuming from the checkpoint in ${opts.checkpointDir} after epoch ${start} of ${opts.epochs}`);
      } else if (r.reason !== 'none') {
        log.warn(`ignoring the checkpoint in ${opts.checkpointDir} (${r.reason}); training from scratch`);
      }
    }

    for (let e = start; e < opts.epochs; e++) {
      const t0 = performance.now();
      const lr = learningRateAt(opts.optimizer, e, opts.epochs);
      const mu = momentumAt(opts.optimizer, e);
      const order = opts.sampler ? opts.sampler(e, Rng.derive(opts.seed, `sampler/${e}`)) : Rng.derive(opts.seed, `shuffle/${e}`).permutation(train.n);
      let labelled = 0;
      for (let i = 0; i < order.length; i++) {
        const k = order[i]!;
        if (!(k >= 0 && k < train.n)) throw new Error(`sampler returned index ${k} at position ${i}, outside [0, ${train.n})`);
        if (train.y[k]! >= 0) labelled++;
      }
      const jitterRng = Rng.derive(opts.seed, `jitter/${e}`);
      const dropoutRng = Rng.derive(opts.seed, `dropout/${e}`);
      const steps = Math.ceil(order.length / opts.batchSize);
      const progress = log.progress(`epoch ${e + 1}/${opts.epochs}`, steps);
      let lossJs = 0; // the fused step's sums (read directly, no device sync)
      let correctJs = 0;
      let lossSum = tf.keep(tf.scalar(0));
      let correctSum = tf.keep(tf.scalar(0));
      let status = '';
      let trainLoss = NaN;
      let trainAcc = NaN;
      try {
        for (let s = 0; s < steps; s++) {
          const lo = s * opts.batchSize;
          const rows = Math.min(opts.batchSize, order.length - lo);
          let xb: Float32Array = new Float32Array(rows * train.dim);
          const yb = new Int32Array(rows);
          const tb = targetDim ? new Float32Array(rows * targetDim) : null;
          for (let r = 0; r < rows; r++) {
            const k = order[lo + r]!;
            xb.set(train.x.subarray(k * train.dim, (k + 1) * train.dim), r * train.dim);
            yb[r] = train.y[k]!;
            if (tb) tb.set(train.targets!.subarray(k * targetDim, (k + 1) * targetDim), r * targetDim);
          }
          if (img) xb = jitterBatch(xb, rows, img, jitter, jitterRng);
          for (const d of dropouts) d.seed = dropoutRng.seed();
          if (fusedStep) {
            const r = fusedStep.run(rows, xb, yb, tb);
            optimizer.step(fusedStep.grads, lr, mu);
            for (const c of constraints) c();
            lossJs += r.loss * rows;
            correctJs += r.correct;
          } else {
            const batch: TrainBatch = { x: tf.tensor2d(xb, [rows, train.dim]), y: tf.tensor1d(yb, 'int32') };
            if (tb) batch.targets = tf.tensor2d(tb, [rows, targetDim]);
            let correct: tf.Scalar | undefined;
            const { value, grads } = tf.variableGrads(() => {
              const logits = model.apply(batch.x, { training: true }) as tf.Tensor2D;
              correct = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), batch.y), 'float32')) as tf.Scalar);
              return lossFn(logits, batch);
            }, vars);
            optimizer.step(
              vars.map((v) => grads[v.name] ?? undefined),
              lr,
              mu,
            );
            for (const c of constraints) c();
            const [l2, c2] = tf.tidy(() => [tf.add(lossSum, tf.mul(value, rows)), tf.add(correctSum, correct!)]) as tf.Scalar[];
            tf.dispose([lossSum, correctSum, value, correct!, batch.x, batch.y, batch.targets ?? [], ...Object.values(grads)]);
            lossSum = l2!;
            correctSum = c2!;
          }
          if ((s + 1) % STATUS_EVERY === 0 || s === steps - 1) {
            const seen = lo + rows;
            status = `loss ${((fusedStep ? lossJs : lossSum.dataSync()[0]!) / seen).toFixed(4)}`;
            await new Promise<void>((res) => setImmediate(res));
          }
          progress.tick(1, status);
        }
        trainLoss = order.length ? (fusedStep ? lossJs : lossSum.dataSync()[0]!) / order.length : NaN;
        trainAcc = labelled ? (fusedStep ? correctJs : correctSum.dataSync()[0]!) / labelled : NaN; // unlabeled rows (label -1) are not scored
      } finally {
        for (let i = 0; i < dropouts.length; i++) dropouts[i]!.seed = dropoutSeeds[i];
        tf.dispose([lossSum, correctSum]);
      }
      const trainSeconds = (performance.now() - t0) / 1000;
      const seen = order.length;
      if (seen && !Number.isFinite(trainLoss)) {
        progress.done('diverged');
        throw new ConfigError(`training diverged in epoch ${e + 1} (loss ${trainLoss}): lower the learning rate (now ${lr})`);
      }
      const m: EpochMetrics = { epoch: e + 1, train_loss: trainLoss, train_accuracy: trainAcc, lr, seconds: 0, examples_per_s: trainSeconds > 0 ? seen / trainSeconds : 0 };
      if (opts.valid) {
        const v = evalValid();
        m.valid_loss = v.loss;
        m.valid_accuracy = v.accuracy;
      }
      m.seconds = (performance.now() - t0) / 1000;
      history.push(m);
      progress.done(
        `loss ${trainLoss.toFixed(4)} acc ${Number.isNaN(trainAcc) ? '- (no labelled rows)' : `${(100 * trainAcc).toFixed(2)}%`}` +
          (m.valid_accuracy !== undefined ? ` valid acc ${(100 * m.valid_accuracy).toFixed(2)}%` : '') +
          ` (${m.examples_per_s.toFixed(0)} ex/s)`,
      );
      if (seen) checkDivergence(history, vars, lr, opts.divergence);
      const score = scoreOf(m);
      if (select === 'last' || bestScore === null || score > bestScore || Number.isNaN(bestScore)) {
        bestScore = score;
        bestEpoch = m.epoch;
        if (select !== 'last') best = await snapshotWeights(model);
      }
      if (opts.checkpointDir) {
        const state = await optimizer.getState();
        await writeCheckpoint(opts.checkpointDir, {
          fingerprint,
          epochsDone: e + 1,
          history,
          bestEpoch,
          bestScore,
          weights: await snapshotWeights(model),
          best,
          optimizerSteps: state.steps,
          optimizerSlots: state.slots,
        });
      }
      opts.onEpoch?.(m);
      failpoint('train-epoch-done');
    }
    if (best && select !== 'last') restoreWeights(model, best);
  } finally {
    fusedStep?.dispose();
    optimizer.dispose();
  }
  return { history, bestEpoch };
}
