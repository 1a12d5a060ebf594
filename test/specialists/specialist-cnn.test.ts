/** Specialists from generalists other than the Sequential MLP: a CNN (with batch norm) and a functional model. */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/select.ts';
import { buildModel, modelConfigSchema } from '../../src/models/arch/index.ts';
import { evaluate, predictLogits } from '../../src/models/predict.ts';
import { trainModel } from '../../src/models/train.ts';
import { correctDustbin } from '../../src/specialists/dustbin.ts';
import { buildSpecialist, freezeSpecialistLayers, hiddenActivations } from '../../src/specialists/specialist-model.ts';
import { trainSpecialist } from '../../src/specialists/specialist-train.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { images } from '../models/image-fixture.ts';

const C = 6;
const SPECIAL = [1, 4];
const train = images(120, 1, C);
const valid = images(60, 2, C);
let generalist: tf.LayersModel;
let gValid: Float32Array;

beforeAll(async () => {
  await initBackend('cpu');
  const config = modelConfigSchema.parse({ type: 'cnn', conv: [{ filters: 4, kernel: 3, pool: 2, batch_norm: true }], dense: [16], dropout: 0.2, max_norm: 2 });
  generalist = buildModel(config, { inputDim: 64, shape: [8, 8, 1], outputs: C, seed: 2 });
  // trained a little, so the batch-norm moving statistics and the max-norm bound matter
  await trainModel({ model: generalist, train, epochs: 3, batchSize: 20, optimizer: { name: 'adam', lr: 0.01 }, jitter: 1, seed: 3 });
  gValid = predictLogits(generalist, valid.x, valid.n, valid.dim);
  // not a degenerate net whose logits ignore the input (chance: 1/6; measured 0.47)
  expect(evaluate(generalist, valid).accuracy).toBeGreaterThan(0.3);
}, 60_000);

/** Per row, the generalist's probability mass outside SPECIAL. */
function outsideMass(z: Float32Array, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = Array.from(z.subarray(i * C, (i + 1) * C));
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    out.push(e.reduce((s, v, c) => s + (SPECIAL.includes(c) ? 0 : v), 0) / e.reduce((a, b) => a + b));
  }
  return out;
}

describe('specialists from a CNN generalist', () => {
  it('reproduce the generalist logits on their classes at initialisation, bit for bit; the dustbin its outside mass', () => {
    const before = tf.memory().numTensors;
    const spec = buildSpecialist(generalist, SPECIAL, { head: 'dustbin', dustbinInit: { method: 'logistic', x: train.x, n: train.n } });
    expect(spec.layers.map((l) => l.name)).toEqual(generalist.layers.map((l) => l.name));
    expect(spec.outputs[0]!.shape).toEqual([null, 3]);
    const z = predictLogits(spec, valid.x, valid.n, valid.dim);
    const mass = outsideMass(gValid, valid.n);
    let gap = 0;
    for (let i = 0; i < valid.n; i++) {
      SPECIAL.forEach((c, k) => expect(z[i * 3 + k]).toBe(gValid[i * C + c]));
      const m = Math.max(z[i * 3]!, z[i * 3 + 1]!, z[i * 3 + 2]!);
      const e = [0, 1, 2].map((k) => Math.exp(z[i * 3 + k]! - m));
      gap += Math.abs(e[2]! / (e[0]! + e[1]! + e[2]!) - mass[i]!);
    }
    // a linear unit on 16 penultimate features approximates the log-sum-exp of 4 outside logits
    expect(gap / valid.n).toBeLessThan(0.1);
    // the body is the generalist's (batch-norm statistics included) and shares no variable with it
    const gw = generalist.getLayer('bn_0').getWeights().map((t) => Array.from(t.dataSync()));
    expect(spec.getLayer('bn_0').getWeights().map((t) => Array.from(t.dataSync()))).toEqual(gw);
    const gVars = new Set(generalist.weights.map((w) => w.read().id));
    expect(spec.weights.some((w) => gVars.has(w.read().id))).toBe(false);
    // correcting the dustbin moves only the specialist's head
    correctDustbin(spec, { mode: 'log-oversampling', classes: SPECIAL, C, head: 'dustbin', oversamplingFactor: 3 });
    expect(Array.from(predictLogits(generalist, valid.x, valid.n, valid.dim))).toEqual(Array.from(gValid));
    spec.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('full head: every logit equals the generalist one', () => {
    const spec = buildSpecialist(generalist, SPECIAL, { head: 'full' });
    expect(Array.from(predictLogits(spec, valid.x, valid.n, valid.dim))).toEqual(Array.from(gValid));
    spec.dispose();
  });

  it('fits the dustbin on the penultimate features (the head input)', () => {
    const { h, dim } = hiddenActivations(generalist, valid.x, valid.n);
    expect(dim).toBe(16);
    const feats = tf.model({ inputs: generalist.inputs, outputs: generalist.getLayer('dense_0').output as tf.SymbolicTensor });
    const want = tf.tidy(() => (feats.predict(tf.tensor2d(valid.x, [valid.n, 64])) as tf.Tensor).dataSync());
    expect(Array.from(h)).toEqual(Array.from(want, (v) => v));
  });
});

describe('specialist training options: freeze, select', () => {
  const base = () => ({
    generalist,
    classes: SPECIAL,
    train,
    valid,
    generalistTrainLogits: predictLogits(generalist, train.x, train.n, train.dim),
    generalistValidLogits: gValid,
    C,
    head: 'dustbin' as const,
    softWeight: 1,
    T: 2,
    correction: 'fitted' as const,
    epochs: 3,
    batchSize: 20,
    optimizer: { name: 'adam' as const, lr: 0.01 },
    seed: 5,
  });
  const weightsOf = (m: tf.LayersModel, layer: string): number[][] => m.getLayer(layer).getWeights().map((t) => Array.from(t.dataSync()));

  it("freeze 'conv' keeps the convolution and batch-norm layers at the generalist's values; the dense layers learn", async () => {
    const before = tf.memory().numTensors;
    const { model, metrics } = await trainSpecialist({ ...base(), freeze: 'conv' });
    expect(metrics.frozen).toEqual(['conv_0', 'bn_0']);
    expect(weightsOf(model, 'conv_0')).toEqual(weightsOf(generalist, 'conv_0'));
    expect(weightsOf(model, 'bn_0').slice(0, 2)).toEqual(weightsOf(generalist, 'bn_0').slice(0, 2));
    expect(weightsOf(model, 'dense_0')).not.toEqual(weightsOf(generalist, 'dense_0'));
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  }, 60_000);

  it("freeze 'body' trains only the head; 'none' trains the convolutions too", async () => {
    const body = await trainSpecialist({ ...base(), freeze: 'body' });
    expect(body.metrics.frozen).toEqual(['conv_0', 'bn_0', 'dense_0']);
    expect(weightsOf(body.model, 'dense_0')).toEqual(weightsOf(generalist, 'dense_0'));
    const all = await trainSpecialist(base());
    expect(all.metrics.frozen).toEqual([]);
    expect(weightsOf(all.model, 'conv_0')).not.toEqual(weightsOf(generalist, 'conv_0'));
    body.model.dispose();
    all.model.dispose();
  }, 60_000);

  it("freeze 'conv' on an MLP is refused, naming the alternatives", () => {
    const input = tf.input({ shape: [64] });
    const out = tf.layers.dense({ units: C, name: 'logits' }).apply(tf.layers.dense({ units: 5, activation: 'relu', name: 'h' }).apply(input) as tf.SymbolicTensor) as tf.SymbolicTensor;
    const g = tf.model({ inputs: input, outputs: out });
    expect(() => freezeSpecialistLayers(g, 'conv')).toThrow(/no convolution layers.*'body'/);
    g.dispose();
  });

  it("select 'valid_loss' keeps the epoch of least validation loss", async () => {
    const { model, metrics } = await trainSpecialist({ ...base(), epochs: 4, optimizer: { name: 'adam' as const, lr: 0.05 }, select: 'valid_loss' });
    const losses = metrics.history.map((h) => h.valid_loss!);
    expect(losses).toHaveLength(4);
    expect(metrics.select).toBe('valid_loss');
    expect(metrics.best_epoch).toBe(losses.indexOf(Math.min(...losses)) + 1);
    model.dispose();
  }, 60_000);
});

describe('specialists from a functional model', () => {
  it('find the head as the output Dense layer and rebuild the topology', () => {
    const input = tf.input({ shape: [64] });
    const hidden = tf.layers.dense({ units: 5, activation: 'tanh', name: 'features' }).apply(input) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: C, name: 'scores' }).apply(hidden) as tf.SymbolicTensor;
    const g = tf.model({ inputs: input, outputs: out });
    const zg = predictLogits(g, valid.x, valid.n, valid.dim);
    const spec = buildSpecialist(g, SPECIAL, { head: 'dustbin' });
    expect(spec.getClassName()).toBe('Model');
    const z = predictLogits(spec, valid.x, valid.n, valid.dim);
    for (let i = 0; i < valid.n; i++) SPECIAL.forEach((c, k) => expect(z[i * 3 + k]).toBe(zg[i * C + c]));
    spec.dispose();
    g.dispose();
  });

  it('refuse a head that is not a linear Dense layer, naming it', () => {
    const input = tf.input({ shape: [64] });
    const soft = tf.layers.dense({ units: C, activation: 'softmax', name: 'probs' }).apply(input) as tf.SymbolicTensor;
    const g = tf.model({ inputs: input, outputs: soft });
    expect(() => buildSpecialist(g, SPECIAL, { head: 'full' })).toThrow(/head 'probs' has activation 'softmax'.*linear/);
    const flat = tf.layers.flatten({ name: 'flat' }).apply(tf.layers.reshape({ targetShape: [8, 8] }).apply(input)) as tf.SymbolicTensor;
    const g2 = tf.model({ inputs: input, outputs: flat });
    expect(() => buildSpecialist(g2, SPECIAL, { head: 'full' })).toThrow(ConfigError);
    expect(() => buildSpecialist(g2, SPECIAL, { head: 'full' })).toThrow(/output layer 'flat' is a Flatten layer/);
    g.dispose();
    g2.dispose();
  });
});
