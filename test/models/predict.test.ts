import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/select.ts';
import { buildMlp } from '../../src/models/mlp.ts';
import { evaluate, evaluateWithLoss, predictLogits } from '../../src/models/predict.ts';
import { hardLoss } from '../../src/models/losses.ts';
import { DataError } from '../../src/util/errors.ts';

/** A linear model with logits = x W + b, W = [[1, 0, -1], [0, 2, 1]], b = [0, 0, 0.5]. */
function linearModel(): tf.LayersModel {
  const m = buildMlp({ inputDim: 2, hidden: [], outputs: 3, activation: 'relu', inputDropout: 0.5, dropout: 0, maxNorm: null, seed: 1 });
  m.setWeights([tf.tensor2d([[1, 0, -1], [0, 2, 1]]), tf.tensor1d([0, 0, 0.5])]);
  return m;
}
const x = new Float32Array([1, 0, 0, 1, -1, -1, 2, 0.5, 0, 0]);
// logits by hand: [1,0,-0.5], [0,2,1.5], [-1,-2,0.5], [2,1,-1], [0,0,0.5]
const want = [1, 0, -0.5, 0, 2, 1.5, -1, -2, 0.5, 2, 1, -1, 0, 0, 0.5];

beforeAll(async () => {
  await initBackend('cpu');
});

describe('predictLogits', () => {
  it('returns n x C logits (dropout off), in any batch size', () => {
    const m = linearModel();
    const before = tf.memory().numTensors;
    for (const batchSize of [1, 2, 5, 100]) {
      expect(Array.from(predictLogits(m, x, 5, 2, { batchSize }))).toEqual(want);
    }
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });

  it('streams batches to onBatch and returns an empty array', () => {
    const m = linearModel();
    const got: Array<[number, number[], number]> = [];
    const out = predictLogits(m, x, 5, 2, { batchSize: 2, onBatch: (s, l, r) => got.push([s, Array.from(l), r]) });
    expect(out.length).toBe(0);
    expect(got.map((g) => [g[0], g[2]])).toEqual([[0, 2], [2, 2], [4, 1]]);
    expect(got.flatMap((g) => g[1])).toEqual(want);
    m.dispose();
  });

  it('rejects data of the wrong width', () => {
    const m = linearModel();
    expect(() => predictLogits(m, new Float32Array(6), 2, 3)).toThrow(DataError);
    expect(() => predictLogits(m, new Float32Array(5), 3, 2)).toThrow(/n x dim/);
    m.dispose();
  });
});

describe('evaluate', () => {
  it('counts errors and computes the mean cross-entropy by hand', () => {
    const m = linearModel();
    const y = new Int32Array([0, 1, 0, 1, 2]);
    // argmax: 0, 1, 2, 0, 2 -> errors at rows 2 and 3
    const r = evaluate(m, { x, y, n: 5, dim: 2 }, { batchSize: 2 });
    expect(r.errors).toBe(2);
    expect(r.examples).toBe(5);
    expect(r.accuracy).toBeCloseTo(0.6, 12);
    const ce = (z: number[], k: number) => Math.log(z.reduce((s, v) => s + Math.exp(v), 0)) - z[k]!;
    const rows = [0, 1, 2, 3, 4].map((i) => want.slice(3 * i, 3 * i + 3));
    const loss = rows.reduce((s, z, i) => s + ce(z, y[i]!), 0) / 5;
    expect(r.loss).toBeCloseTo(loss, 6);
    // the tensor path with hardLoss agrees
    const r2 = evaluateWithLoss(m, { x, y, n: 5, dim: 2 }, hardLoss, { batchSize: 2 });
    expect(r2.errors).toBe(2);
    expect(r2.loss).toBeCloseTo(loss, 5);
    m.dispose();
  });

  it('passes targets rows to a custom loss', () => {
    const m = linearModel();
    const y = new Int32Array([0, 1, 2, 1, 2]);
    // loss = mean over rows of sum((logits - t)^2) with t = logits + 1 -> exactly C = 3
    const targets = Float32Array.from(want, (v) => v + 1);
    const sq = (logits: tf.Tensor2D, b: { targets?: tf.Tensor2D }) => tf.mean(tf.sum(tf.square(tf.sub(logits, b.targets!)), 1)) as tf.Scalar;
    const r = evaluateWithLoss(m, { x, y, n: 5, dim: 2, targets, targetDim: 3 }, sq, { batchSize: 3 });
    expect(r.loss).toBeCloseTo(3, 5);
    m.dispose();
  });

  it('rejects labels outside the model classes', () => {
    const m = linearModel();
    expect(() => evaluate(m, { x, y: new Int32Array([0, 1, 3, 0, 0]), n: 5, dim: 2 })).toThrow(/row 2 has label 3/);
    m.dispose();
  });
});

describe('hardLoss', () => {
  it('is the mean softmax cross-entropy', () => {
    const v = tf.tidy(() => hardLoss(tf.tensor2d([[0, 0], [Math.log(3), 0]]), { x: tf.zeros([2, 1]), y: tf.tensor1d([0, 1], 'int32') }).dataSync()[0]!);
    // row 0: log 2; row 1: -log(1/4) = log 4
    expect(v).toBeCloseTo((Math.log(2) + Math.log(4)) / 2, 6);
  });
});
