import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../../src/backend/select.ts';
import { buildMlp, type MlpSpec } from '../../src/models/mlp.ts';
import { evaluate } from '../../src/models/predict.ts';
import { trainModel, type EpochMetrics, type TrainOptions, type TrainSet } from '../../src/models/train.ts';
import { createLogger } from '../../src/util/log.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';

/** Three Gaussian blobs in 4-d (class c centred at 2 e_c), shaped [2, 2, 1] so jitter applies. */
function blobs(n: number, seed: number, noise = 0.5, flip = 0): TrainSet {
  const r = new Rng(seed);
  const dim = 4;
  const x = new Float32Array(n * dim);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    y[i] = r.next() < flip ? (c + 1) % 3 : c;
    for (let d = 0; d < dim; d++) x[i * dim + d] = r.normal() * noise + (d === c ? 2 : 0);
  }
  return { x, y, n, dim, shape: [2, 2, 1] };
}

const spec: MlpSpec = { inputDim: 4, hidden: [16], outputs: 3, activation: 'relu', inputDropout: 0, dropout: 0.2, maxNorm: null, seed: 3 };
const train = blobs(240, 1);
const valid = blobs(90, 2);
let tmp: string;

function base(model: tf.LayersModel, over: Partial<TrainOptions> = {}): TrainOptions {
  return { model, train, valid, epochs: 4, batchSize: 16, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9 }, seed: 5, ...over };
}
function weightsOf(m: tf.LayersModel): number[][] {
  return m.getWeights().map((t) => Array.from(t.dataSync()));
}

beforeAll(async () => {
  await initBackend('cpu');
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'models-train-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('trainModel', () => {
  it('learns a separable problem, with one history entry per epoch', async () => {
    const m = buildMlp(spec);
    const r = await trainModel(base(m, { epochs: 6, select: 'last' }));
    expect(r.history.map((h) => h.epoch)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(r.bestEpoch).toBe(6);
    const last = r.history[5]!;
    expect(last.valid_accuracy).toBeGreaterThanOrEqual(0.95);
    expect(last.train_loss).toBeLessThan(r.history[0]!.train_loss);
    expect(last.lr).toBe(0.1);
    expect(last.examples_per_s).toBeGreaterThan(0);
    const ev = evaluate(m, valid);
    expect(ev.accuracy).toBe(last.valid_accuracy);
    expect(ev.loss).toBeCloseTo(last.valid_loss!, 6);
    m.dispose();
  });

  it('keeps every hidden unit within the max-norm bound after each step', async () => {
    const m = buildMlp({ ...spec, maxNorm: 0.4 });
    const r = await trainModel(base(m, { epochs: 3, optimizer: { name: 'sgd', lr: 0.5, momentum: 0.9 }, select: 'last' }));
    const k = m.getWeights()[0]!;
    const norms = tf.tidy(() => Array.from(tf.sqrt(tf.sum(tf.square(k), 0)).dataSync()));
    expect(norms).toHaveLength(16);
    for (const v of norms) expect(v).toBeLessThanOrEqual(0.4 * (1 + 1e-5));
    // the bound is active (the unconstrained net grows beyond it), and training still works
    expect(norms.filter((v) => v > 0.4 * (1 - 1e-3)).length).toBeGreaterThan(0);
    expect(r.history[2]!.valid_accuracy).toBeGreaterThan(0.9);
    m.dispose();
  });

  it('is deterministic for a seed (dropout, jitter, shuffle) and leaks no tensors', async () => {
    const runs: number[][][] = [];
    const counts: number[] = [];
    for (let i = 0; i < 2; i++) {
      const m = buildMlp({ ...spec, inputDropout: 0.1 });
      const before = tf.memory().numTensors;
      await trainModel(base(m, { jitter: 1, epochs: 3, onEpoch: () => counts.push(tf.memory().numTensors - before) }));
      expect(tf.memory().numTensors).toBe(before);
      runs.push(weightsOf(m));
      m.dispose();
    }
    expect(runs[1]).toEqual(runs[0]);
    // during training only the optimizer's momentum slots (one per trainable weight) are extra
    expect(counts).toEqual(counts.map(() => 4));
    const m = buildMlp({ ...spec, inputDropout: 0.1 });
    await trainModel(base(m, { jitter: 1, epochs: 3, seed: 6 }));
    expect(weightsOf(m)).not.toEqual(runs[0]);
    m.dispose();
  });

  it('draws a fresh dropout mask every step (and none in evaluation)', async () => {
    const m = buildMlp({ ...spec, dropout: 0.5 });
    const seen: number[][] = [];
    const record = (logits: tf.Tensor2D): tf.Scalar => {
      seen.push(Array.from(logits.dataSync()));
      return tf.mean(tf.mul(tf.sum(logits), 0)) as tf.Scalar; // zero gradient: weights unchanged
    };
    // the same example every step
    await trainModel(base(m, { epochs: 1, batchSize: 1, sampler: () => new Int32Array(6), loss: (l) => record(l), select: 'last', valid: undefined }));
    expect(new Set(seen.map((s) => s.join(','))).size).toBeGreaterThan(1);
    const p1 = tf.tidy(() => Array.from((m.predict(tf.tensor2d(train.x.subarray(0, 4), [1, 4])) as tf.Tensor).dataSync()));
    const p2 = tf.tidy(() => Array.from((m.predict(tf.tensor2d(train.x.subarray(0, 4), [1, 4])) as tf.Tensor).dataSync()));
    expect(p2).toEqual(p1);
    expect(seen.every((s) => s.join(',') !== p1.join(','))).toBe(true); // some hidden unit dropped each step
    m.dispose();
  });

  it('follows the sampler order in batches and passes targets rows to the loss', async () => {
    const m = buildMlp(spec);
    const targets = Float32Array.from({ length: train.n * 2 }, (_, i) => i);
    const batches: Array<{ y: number[]; t: number[] }> = [];
    const loss = (logits: tf.Tensor2D, b: { y: tf.Tensor1D; targets?: tf.Tensor2D }): tf.Scalar => {
      batches.push({ y: Array.from(b.y.dataSync()), t: Array.from(b.targets!.dataSync()) });
      return tf.mean(tf.mul(tf.sum(logits), 0)) as tf.Scalar;
    };
    const order = new Int32Array([5, 1, 2, 7, 3]);
    await trainModel(base(m, { train: { ...train, targets, targetDim: 2 }, batchSize: 2, epochs: 1, sampler: () => order, loss, select: 'last' }));
    expect(batches.map((b) => b.y)).toEqual([[train.y[5], train.y[1]], [train.y[2], train.y[7]], [train.y[3]]]);
    expect(batches.map((b) => b.t)).toEqual([[10, 11, 2, 3], [4, 5, 14, 15], [6, 7]]);
    m.dispose();
  });

  it("select 'valid_accuracy' / 'valid_loss' end with the best epoch's weights (ties: earliest)", async () => {
    const cases = [
      { select: 'valid_accuracy' as const, validSeed: 9, lr: 0.3 },
      { select: 'valid_accuracy' as const, validSeed: 11, lr: 1 },
      { select: 'valid_loss' as const, validSeed: 9, lr: 0.3 },
    ];
    const bestEpochs: number[] = [];
    for (const c of cases) {
      const m = buildMlp({ ...spec, dropout: 0, maxNorm: 1 });
      const snaps: number[][][] = [];
      const noisyValid = blobs(60, c.validSeed, 1.2, 0.3);
      const r = await trainModel(
        base(m, { valid: noisyValid, select: c.select, epochs: 6, optimizer: { name: 'sgd', lr: c.lr, momentum: 0.9 }, onEpoch: () => snaps.push(weightsOf(m)) }),
      );
      const scores = r.history.map((h) => (c.select === 'valid_loss' ? -h.valid_loss! : h.valid_accuracy!));
      const best = scores.indexOf(Math.max(...scores)) + 1; // indexOf: the earliest of ties
      expect(r.bestEpoch).toBe(best);
      expect(weightsOf(m)).toEqual(snaps[best - 1]);
      const ev = evaluate(m, noisyValid);
      expect(ev.accuracy).toBe(r.history[best - 1]!.valid_accuracy);
      bestEpochs.push(best);
      if (c.validSeed === 11) expect(scores.filter((s) => s === scores[best - 1]).length).toBeGreaterThan(1); // a real tie
      m.dispose();
    }
    // the scenarios really have a best epoch before the last
    expect(bestEpochs.every((b) => b < 6)).toBe(true);
  });

  it('resumes from a checkpoint at the next epoch and ends as an uninterrupted run would', async () => {
    const dir = path.join(tmp, 'ckpt');
    const opts = (m: tf.LayersModel, over: Partial<TrainOptions> = {}): TrainOptions =>
      base(m, { epochs: 4, jitter: 1, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.5, finalMomentum: 0.9, momentumRampEpochs: 3 }, ...over });

    const ref = buildMlp(spec);
    const refResult = await trainModel(opts(ref));

    const a = buildMlp(spec);
    await expect(
      trainModel(
        opts(a, {
          checkpointDir: dir,
          onEpoch: (h) => {
            if (h.epoch === 2) throw new Error('simulated crash');
          },
        }),
      ),
    ).rejects.toThrow('simulated crash');
    a.dispose();
    expect(JSON.parse(await fs.readFile(path.join(dir, 'state.json'), 'utf8')).epochsDone).toBe(2);

    const b = buildMlp(spec);
    const lines: string[] = [];
    const seenEpochs: number[] = [];
    const res = await trainModel(opts(b, { checkpointDir: dir, log: createLogger({ write: (l) => lines.push(l), tty: false }), onEpoch: (h: EpochMetrics) => seenEpochs.push(h.epoch) }));
    expect(lines.some((l) => /resuming .* after epoch 2 of 4/.test(l))).toBe(true);
    expect(seenEpochs).toEqual([3, 4]);
    expect(res.history.map((h) => h.epoch)).toEqual([1, 2, 3, 4]);
    expect(res.bestEpoch).toBe(refResult.bestEpoch);
    expect(res.history.map((h) => h.train_loss)).toEqual(refResult.history.map((h) => h.train_loss));
    expect(weightsOf(b)).toEqual(weightsOf(ref));
    expect((await fs.readdir(dir)).sort()).toEqual(['ckpt-0004.bin', 'state.json']);

    // a different setup ignores the checkpoint with a warning and trains from scratch
    const c = buildMlp(spec);
    const warn: string[] = [];
    const rc = await trainModel(opts(c, { checkpointDir: dir, seed: 77, epochs: 1, log: createLogger({ write: (l) => warn.push(l), tty: false }) }));
    expect(warn.some((l) => /warning: ignoring the checkpoint/.test(l))).toBe(true);
    expect(rc.history).toHaveLength(1);
    [ref, b, c].forEach((m) => m.dispose());
  });

  it('trains with adam and a custom loss on soft targets', async () => {
    const m = buildMlp({ ...spec, dropout: 0 });
    // targets: the logits a teacher would give, here 3 * one-hot(y); loss = mean squared error to them
    const targets = new Float32Array(train.n * 3);
    for (let i = 0; i < train.n; i++) targets[i * 3 + train.y[i]!] = 3;
    const mse = (l: tf.Tensor2D, b: { targets?: tf.Tensor2D }) => tf.mean(tf.square(tf.sub(l, b.targets!))) as tf.Scalar;
    const r = await trainModel(base(m, { train: { ...train, targets, targetDim: 3 }, loss: mse, optimizer: { name: 'adam', lr: 0.02 }, epochs: 8, select: 'last' }));
    expect(r.history[7]!.train_loss).toBeLessThan(0.2);
    expect(r.history[7]!.valid_accuracy).toBeGreaterThan(0.95);
    m.dispose();
  });

  it('rejects inconsistent options', async () => {
    const m = buildMlp(spec);
    await expect(trainModel(base(m, { valid: undefined, select: 'valid_loss' }))).rejects.toThrow(ConfigError);
    await expect(trainModel(base(m, { train: { ...train, shape: undefined }, jitter: 2 }))).rejects.toThrow(/image-shaped/);
    await expect(trainModel(base(m, { train: { ...train, dim: 3, x: train.x.subarray(0, train.n * 3) } }))).rejects.toThrow(/4/);
    m.dispose();
  });
});
