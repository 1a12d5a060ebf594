import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/select.ts';
import { makeLoss } from '../../src/distill/losses.ts';
import { buildModel, findHead, modelConfigSchema, type CnnConfig } from '../../src/models/arch/index.ts';
import { loadModel, saveModel } from '../../src/models/io.ts';
import { evaluate, predictLogits } from '../../src/models/predict.ts';
import { trainModel, type TrainOptions } from '../../src/models/train.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { images } from './image-fixture.ts';

const config = (over: Partial<CnnConfig> = {}): CnnConfig =>
  ({ ...modelConfigSchema.parse({ type: 'cnn', conv: [{ filters: 4, kernel: 3, pool: 2, batch_norm: true }], dense: [8], dropout: 0.2, conv_dropout: 0.1 }), ...over }) as CnnConfig;
const input = { inputDim: 64, shape: [8, 8, 1], outputs: 3, seed: 3 };
const train = images(96, 1);
const valid = images(48, 2);
const weightsOf = (m: tf.LayersModel): number[][] => m.getWeights().map((t) => Array.from(t.dataSync()));
const base = (model: tf.LayersModel, over: Partial<TrainOptions> = {}): TrainOptions => ({
  model,
  train,
  valid,
  epochs: 3,
  batchSize: 16,
  optimizer: { name: 'adam', lr: 0.02 },
  jitter: 1,
  seed: 5,
  ...over,
});
let tmp: string;

beforeAll(async () => {
  await initBackend('cpu');
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'models-cnn-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('cnn architecture', () => {
  it('reshapes flat rows inside the model; named layers; the head last', () => {
    const m = buildModel(config(), input);
    expect(m.layers.map((l) => l.name)).toEqual(['reshape', 'conv_0', 'bn_0', 'act_0', 'pool_0', 'conv_dropout_0', 'flatten', 'dense_0', 'dropout_0', 'logits']);
    expect(m.inputs[0]!.shape).toEqual([null, 64]);
    expect(m.outputs[0]!.shape).toEqual([null, 3]);
    expect(findHead(m).name).toBe('logits');
    // conv without bias under batch norm; 4x4x4 after pooling
    expect(m.weights.map((w) => [w.originalName, w.shape])).toEqual([
      ['conv_0/kernel', [3, 3, 1, 4]],
      ['bn_0/gamma', [4]],
      ['bn_0/beta', [4]],
      ['dense_0/kernel', [64, 8]],
      ['dense_0/bias', [8]],
      ['logits/kernel', [8, 3]],
      ['logits/bias', [3]],
      // tfjs lists the non-trainable weights last
      ['bn_0/moving_mean', [4]],
      ['bn_0/moving_variance', [4]],
    ]);
    const plain = buildModel(config({ conv: [{ filters: 2, kernel: [3, 1], stride: 2, padding: 'valid', batch_norm: false, pool: null }], dense: [], conv_dropout: 0 }), input);
    expect(plain.layers.map((l) => l.name)).toEqual(['reshape', 'conv_0', 'flatten', 'logits']);
    expect(plain.layers[1]!.outputShape).toEqual([null, 3, 4, 2]);
    m.dispose();
    plain.dispose();
  });

  it('is seeded: the same seed gives the same weights, another seed others', () => {
    const a = buildModel(config(), input);
    const b = buildModel(config(), input);
    const c = buildModel(config(), { ...input, seed: 4 });
    expect(weightsOf(a)).toEqual(weightsOf(b));
    expect(weightsOf(a)[0]).not.toEqual(weightsOf(c)[0]);
    [a, b, c].forEach((m) => m.dispose());
  });

  it('refuses data without an image shape and blocks that shrink the image away, naming the fix', () => {
    expect(() => buildModel(config(), { ...input, shape: undefined })).toThrow(/needs image-shaped examples .*schema metadata shape/);
    expect(() => buildModel(config(), { ...input, shape: [8, 4, 2] })).not.toThrow();
    expect(() => buildModel(config(), { ...input, shape: [8, 8, 2] })).toThrow(/has 128 values, but the rows have 64/);
    const tooMany = { conv: [0, 1, 2, 3].map(() => ({ filters: 2, kernel: 3, stride: 1, padding: 'same' as const, batch_norm: false, pool: 2 })) };
    expect(() => buildModel(config(tooMany), input)).toThrow(/model\.conv\[3\]\.pool: the image is 1x1 there/);
    const valid5 = { conv: [{ filters: 2, kernel: 5, stride: 1, padding: 'valid' as const, batch_norm: false, pool: 2 }, { filters: 2, kernel: 3, stride: 1, padding: 'valid' as const, batch_norm: false, pool: null }] };
    expect(() => buildModel(config(valid5), input)).toThrow(ConfigError);
  });

  it('learns with jitter, batch norm and dropout, deterministically, without leaking tensors', async () => {
    const before = tf.memory().numTensors;
    const a = buildModel(config(), input);
    await trainModel(base(a, { epochs: 6 }));
    expect(evaluate(a, valid).accuracy).toBeGreaterThan(0.8); // chance: 1/3
    // the moving statistics were updated in training and are used at inference
    const mean = a.getLayer('bn_0').getWeights()[2]!.dataSync();
    expect(Array.from(mean).some((v) => v !== 0)).toBe(true);
    // the same seed trains to the same weights (jitter, dropout and order from seeded streams)
    const [b, c] = [buildModel(config(), input), buildModel(config(), input)];
    await trainModel(base(b, { epochs: 1 }));
    await trainModel(base(c, { epochs: 1 }));
    expect(weightsOf(c)).toEqual(weightsOf(b));
    [a, b, c].forEach((m) => m.dispose());
    expect(tf.memory().numTensors).toBe(before);
  });

  it('trains with SGD (nesterov) and Adam and the distillation losses', async () => {
    const targets = new Float32Array(train.n * 3);
    for (let i = 0; i < train.n; i++) targets[i * 3 + train.y[i]!] = 4;
    const set = { ...train, targets, targetDim: 3 };
    const runs: [TrainOptions['optimizer'], ReturnType<typeof makeLoss>][] = [
      [{ name: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true }, makeLoss({ type: 'hard' })],
      [{ name: 'adam', lr: 0.02 }, makeLoss({ type: 'soft', T: 2, alpha: 0.9, teacher: 'logits' })],
      [{ name: 'adam', lr: 0.02 }, makeLoss({ type: 'logits', alpha: 1 })],
    ];
    for (const [optimizer, loss] of runs) {
      const m = buildModel(config(), input);
      const r = await trainModel(base(m, { train: set, optimizer, loss, epochs: 2 }));
      expect(r.history.every((h) => Number.isFinite(h.train_loss))).toBe(true);
      expect(r.history.at(-1)!.train_loss).toBeLessThan(r.history[0]!.train_loss);
      m.dispose();
    }
  });

  it('bounds every filter and dense unit by max-norm, not the logits', async () => {
    const m = buildModel(config({ max_norm: 0.5 }), input);
    expect(m.trainableWeights.filter((w) => w.constraint).map((w) => w.originalName)).toEqual(['conv_0/kernel', 'dense_0/kernel']);
    await trainModel(base(m, { optimizer: { name: 'sgd', lr: 0.5, momentum: 0.9 }, epochs: 2 }));
    const conv = m.getLayer('conv_0').getWeights()[0]!;
    const filterNorms = tf.tidy(() => Array.from(tf.sqrt(tf.sum(tf.square(conv), [0, 1, 2])).dataSync()));
    expect(filterNorms.every((v) => v <= 0.5 + 1e-5)).toBe(true);
    const dense = m.getLayer('dense_0').getWeights()[0]!;
    const unitNorms = tf.tidy(() => Array.from(tf.sqrt(tf.sum(tf.square(dense), 0)).dataSync()));
    expect(unitNorms.every((v) => v <= 0.5 + 1e-5)).toBe(true);
    // without the bound the same run leaves norms above it (so the check above is not vacuous)
    const free = buildModel(config(), input);
    await trainModel(base(free, { optimizer: { name: 'sgd', lr: 0.5, momentum: 0.9 }, epochs: 2 }));
    const freeNorms = tf.tidy(() => Array.from(tf.sqrt(tf.sum(tf.square(free.getLayer('dense_0').getWeights()[0]!), 0)).dataSync()));
    expect(Math.max(...freeNorms)).toBeGreaterThan(0.5);
    m.dispose();
    free.dispose();
  });

  it('resumes from a checkpoint as an uninterrupted run ends (batch-norm statistics included)', async () => {
    const dir = path.join(tmp, 'ckpt');
    const ref = buildModel(config(), input);
    const refResult = await trainModel(base(ref, { epochs: 3 }));
    const a = buildModel(config(), input);
    await expect(
      trainModel(
        base(a, {
          epochs: 3,
          checkpointDir: dir,
          onEpoch: (h) => {
            if (h.epoch === 2) throw new Error('simulated crash');
          },
        }),
      ),
    ).rejects.toThrow('simulated crash');
    a.dispose();
    const b = buildModel(config(), input);
    const res = await trainModel(base(b, { epochs: 3, checkpointDir: dir }));
    expect(res.history.map((h) => h.train_loss)).toEqual(refResult.history.map((h) => h.train_loss));
    expect(weightsOf(b)).toEqual(weightsOf(ref));
    ref.dispose();
    b.dispose();
  });

  it('saves and loads to the same logits', async () => {
    const m = buildModel(config({ max_norm: 1 }), input);
    await trainModel(base(m, { epochs: 1 }));
    const dir = path.join(tmp, 'model');
    await saveModel(m, dir);
    const back = await loadModel(dir);
    expect(predictLogits(back, valid.x, valid.n, valid.dim)).toEqual(predictLogits(m, valid.x, valid.n, valid.dim));
    expect(evaluate(back, valid).accuracy).toBe(evaluate(m, valid).accuracy);
    m.dispose();
    back.dispose();
  });
});
