import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, existsSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../../src/backend/select.ts';
import { buildMlp } from '../../src/models/mlp.ts';
import { checkDivergence, checkDivergenceSpec } from '../../src/models/divergence.ts';
import { trainModel, type TrainSet, type LossFn } from '../../src/models/train.ts';
import { hardLoss } from '../../src/models/losses.ts';
import { checkWeightsFit } from '../../src/models/weights-fit.ts';
import { buildModel, modelConfigSchema } from '../../src/models/arch/index.ts';
import { ConfigError, DataError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { silentLogger } from '../../src/util/log.ts';

function blobs(n: number, seed: number): TrainSet {
  const r = new Rng(seed);
  const dim = 4;
  const x = new Float32Array(n * dim);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    y[i] = c;
    for (let d = 0; d < dim; d++) x[i * dim + d] = r.normal() * 0.5 + (d === c ? 2 : 0);
  }
  return { x, y, n, dim };
}

const spec = { inputDim: 4, hidden: [8], outputs: 3, activation: 'relu' as const, inputDropout: 0, dropout: 0, maxNorm: null, seed: 3 };
const tmp = mkdtempSync(path.join(os.tmpdir(), 'divergence-'));

beforeAll(async () => {
  await initBackend('cpu');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('checkDivergence', () => {
  const h = (...losses: number[]) => losses.map((l, i) => ({ epoch: i + 1, train_loss: l }));
  it('throws after `epochs` consecutive epochs above factor x the first loss, naming the epoch and the learning rate', () => {
    const w = [tf.variable(tf.tensor1d([0.5, -2]))];
    expect(() => checkDivergence(h(1, 11, 12), w, 0.1, {})).not.toThrow(); // only 2 epochs above 10x
    expect(() => checkDivergence(h(1, 11, 5, 12, 13), w, 0.1, {})).not.toThrow(); // not consecutive
    expect(() => checkDivergence(h(1, 11, 12, 13), w, 0.1, {})).toThrow(
      /training diverged in epoch 4: the training loss was above 10 x its first-epoch value \(1\.0000\) for 3 epochs in a row \(now 13\.0000\); lower the learning rate \(optimizer\.lr, now 0\.1\)/,
    );
    expect(() => checkDivergence(h(1, 3, 3), w, 0.1, { factor: 2, epochs: 2 })).toThrow(ConfigError);
    expect(() => checkDivergence(h(1, 11, 12, 13), w, 0.1, { off: true })).not.toThrow();
    // A near-zero first loss is no scale: the comparison floor keeps tiny fluctuations from counting.
    expect(() => checkDivergence(h(1e-6, 1e-3, 2e-3, 3e-3), w, 0.1, {})).not.toThrow();
    tf.dispose(w);
  });
  it('throws for a weight beyond max_weight', () => {
    const w = [tf.variable(tf.tensor1d([1, -300]))];
    expect(() => checkDivergence(h(1), w, 0.5, {})).not.toThrow();
    expect(() => checkDivergence(h(1), w, 0.5, { maxWeight: 100 })).toThrow(/training diverged in epoch 1: a weight reached \|w\| = 300, above max_weight 100; lower the learning rate \(optimizer\.lr, now 0\.5\)/);
    tf.dispose(w);
  });
  it('rejects thresholds that make no sense', () => {
    expect(() => checkDivergenceSpec({ factor: 1 })).toThrow(/divergence\.factor must be a number > 1/);
    expect(() => checkDivergenceSpec({ epochs: 0 })).toThrow(/divergence\.epochs must be an integer >= 1/);
    expect(() => checkDivergenceSpec({ maxWeight: -1 })).toThrow(/divergence\.max_weight must be a number > 0/);
  });
});

describe('trainModel stops a finite divergence instead of finishing', () => {
  it('a loss that climbs 100x after epoch 1 stops the run at the 4th epoch, and leaks no tensors', async () => {
    const before = tf.memory().numTensors;
    const model = buildMlp(spec);
    let steps = 0;
    // The hard loss, scaled up 100x after the first epoch's steps (as a blow-up would).
    const loss: LossFn = (logits, batch) => tf.tidy(() => tf.mul(hardLoss(logits, batch), steps++ < 3 ? 1 : 100));
    const seen: number[] = [];
    await expect(trainModel({ model, train: blobs(48, 1), loss, epochs: 8, batchSize: 16, optimizer: { name: 'sgd', lr: 0.001, momentum: 0 }, seed: 1, onEpoch: (m) => seen.push(m.epoch) })).rejects.toThrow(
      /training diverged in epoch 4: the training loss was above 10 x its first-epoch value/,
    );
    expect(seen).toEqual([1, 2, 3]); // epoch 4 is neither reported as finished nor checkpointed
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
  it('healthy training with the default thresholds is not stopped', async () => {
    const model = buildMlp(spec);
    const r = await trainModel({ model, train: blobs(90, 1), valid: blobs(30, 2), epochs: 6, batchSize: 16, optimizer: { name: 'adam', lr: 0.05 }, seed: 2 });
    expect(r.history).toHaveLength(6);
    model.dispose();
  });
  it('an empty validation split with a select rule that needs it is a clear error', async () => {
    const model = buildMlp(spec);
    const empty: TrainSet = { x: new Float32Array(0), y: new Int32Array(0), n: 0, dim: 4 };
    await expect(trainModel({ model, train: blobs(30, 1), valid: empty, epochs: 1, batchSize: 16, optimizer: { name: 'adam', lr: 0.01 }, seed: 2 })).rejects.toThrow(DataError);
    model.dispose();
  });
});

describe('weights that cannot fit in memory', () => {
  it('are refused before allocating, naming the layer and the input features', () => {
    expect(() => checkWeightsFit([{ key: 'hidden[0]', inputs: 784, units: 100 }], 784, 1e9)).not.toThrow();
    expect(() => checkWeightsFit([{ key: 'hidden[0]', inputs: 200_000, units: 1000 }, { key: 'the logits layer (10 classes)', inputs: 1000, units: 10 }], 200_000, 2 ** 30)).toThrow(
      /weights need about 4\.5 GiB to train .* this machine has 1\.0 GiB; the largest layer is hidden\[0\] = 1000 units x 200000 inputs \(the data's 200000 features, column 'features'\): lower hidden\[0\] or use fewer input features/,
    );
    const before = tf.memory().numTensors;
    expect(() => buildMlp({ ...spec, inputDim: 1_000_000, hidden: [100_000] })).toThrow(/hidden\[0\] = 100000 units x 1000000 inputs/);
    expect(tf.memory().numTensors).toBe(before);
  });
  it("a cnn's dense layer after the convolutions too (the convolutions built so far are disposed)", () => {
    const before = tf.memory().numTensors;
    const cnn = modelConfigSchema.parse({ type: 'cnn', conv: [{ filters: 64, padding: 'same' }], dense: [100_000] });
    expect(() => buildModel(cnn, { inputDim: 28 * 28, shape: [28, 28, 1], outputs: 10, seed: 1 })).toThrow(/the largest layer is model\.dense\[0\] = 100000 units x 50176 inputs: lower model\.dense\[0\]/);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('in a pipeline', () => {
  it("a stage whose weights pass max_weight fails naming the stage, epoch and learning rate, and saves nothing as finished", async () => {
    const config = parseConfig(
      `name: div\nbackend: cpu\nstages:\n  ingest:\n    dataset: {recipe: synthetic, options: {classes: 3, groups: 1, dim: 4, perClass: 30, seed: 3}}\n  generalist: {hidden: [4], epochs: 3, batch_size: 16, optimizer: {name: sgd, lr: 0.5}, divergence: {max_weight: 0.5}}\n`,
      'div.yaml',
      STAGES,
    );
    const out = path.join(tmp, 'run');
    await expect(runPipeline(config, { out, cacheDir: path.join(tmp, 'cache'), log: silentLogger })).rejects.toThrow(
      /stage 'generalist': training diverged in epoch 1: a weight reached \|w\| = .*, above max_weight 0\.5; lower the learning rate \(optimizer\.lr, now 0\.5\)/,
    );
    expect(existsSync(path.join(out, 'generalist'))).toBe(false);
    expect(readdirSync(out).filter((f) => f.startsWith('.tmp-'))).toEqual([]);
  }, 60_000);
});
