import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/select.ts';
import { adjustBiases, chooseBiasOffset } from '../../src/distill/bias.ts';
import { ConfigError, DataError } from '../../src/util/errors.ts';
import { maxAbsDiff } from './ref.ts';

beforeAll(async () => {
  await initBackend('cpu');
});

function model(): tf.Sequential {
  const m = tf.sequential();
  m.add(tf.layers.dense({ inputShape: [2], units: 3, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }), biasInitializer: 'ones' }));
  m.add(tf.layers.dense({ units: 4, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }), biasInitializer: tf.initializers.constant({ value: 0.5 }) }));
  return m;
}
const finalBias = (m: tf.LayersModel): number[] => Array.from(m.layers[1]!.getWeights()[1]!.dataSync());
const firstBias = (m: tf.LayersModel): number[] => Array.from(m.layers[0]!.getWeights()[1]!.dataSync());

describe('adjustBiases', () => {
  it('adds delta to the chosen classes of the final bias, shifts exactly those logits, and restores', () => {
    const m = model();
    const x = tf.tensor2d([
      [0.3, -1],
      [2, 0.5],
    ]);
    const before = tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync().slice());
    const restore = adjustBiases(m, [1, 3, 3], 3.5);
    expect(maxAbsDiff(finalBias(m), [0.5, 4, 0.5, 4])).toBeLessThan(1e-6);
    expect(firstBias(m)).toEqual([1, 1, 1]);
    const after = tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync().slice());
    const shift = Array.from(after, (v, i) => v - before[i]!);
    expect(maxAbsDiff(shift, [0, 3.5, 0, 3.5, 0, 3.5, 0, 3.5])).toBeLessThan(1e-5);
    const n0 = tf.memory().numTensors;
    restore();
    restore(); // idempotent
    expect(tf.memory().numTensors).toBe(n0);
    expect(maxAbsDiff(finalBias(m), [0.5, 0.5, 0.5, 0.5])).toBeLessThan(1e-7);
    // negative delta (the 7s-and-8s experiment lowers biases)
    const r2 = adjustBiases(m, [0], -7.6);
    expect(finalBias(m)[0]).toBeCloseTo(-7.1, 5);
    r2();
    x.dispose();
    m.dispose();
  });

  it('rejects classes out of range and models without a final bias', () => {
    const m = model();
    expect(() => adjustBiases(m, [4], 1)).toThrow(DataError);
    expect(() => adjustBiases(m, [-1], 1)).toThrow(DataError);
    expect(() => adjustBiases(m, [0], Number.NaN)).toThrow(DataError);
    const noBias = tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units: 3, useBias: false })] });
    expect(() => adjustBiases(noBias, [0], 1)).toThrow(ConfigError);
    m.dispose();
    noBias.dispose();
  });
});

describe('chooseBiasOffset', () => {
  it('picks the grid point with the lowest error (a parabola with its minimum at 3.5)', () => {
    const grid = Array.from({ length: 21 }, (_, i) => i * 0.5);
    const r = chooseBiasOffset({ evaluate: (d) => (d - 3.5) ** 2 + 0.1, grid });
    expect(r.delta).toBe(3.5);
    expect(r.error).toBeCloseTo(0.1, 12);
    expect(r.evaluations).toHaveLength(21);
  });

  it('ties go to the smallest |delta|; errors on empty grid or non-finite error', () => {
    expect(chooseBiasOffset({ evaluate: () => 1, grid: [2, -1, 0, 1] }).delta).toBe(0);
    expect(chooseBiasOffset({ evaluate: (d) => (Math.abs(d) >= 1 ? 0 : 1), grid: [3, -1, 1, 0] }).delta).toBe(-1);
    expect(() => chooseBiasOffset({ evaluate: () => 1, grid: [] })).toThrow(ConfigError);
    expect(() => chooseBiasOffset({ evaluate: () => Number.NaN, grid: [1] })).toThrow(DataError);
  });

  it('with adjustBiases: finds the offset that makes a never-predicted class win on its examples', () => {
    // A 1-layer "student" with zero weights: logits = bias. Validation: 3 cases of class 2, 1 of class 0.
    const m = tf.sequential({ layers: [tf.layers.dense({ inputShape: [1], units: 3, kernelInitializer: 'zeros', biasInitializer: tf.initializers.constant({ value: 0 }) })] });
    const restore0 = adjustBiases(m, [0], 1); // class 0 favoured: bias [1, 0, 0]
    const x = tf.zeros([4, 1]);
    const labels = [2, 2, 2, 0];
    const evaluate = (delta: number): number => {
      const restore = adjustBiases(m, [2], delta);
      const pred = tf.tidy(() => (tf.argMax(m.predict(x) as tf.Tensor, -1).dataSync() as Int32Array).slice());
      restore();
      return labels.filter((y, i) => pred[i] !== y).length / labels.length;
    };
    const r = chooseBiasOffset({ evaluate, grid: [0, 0.5, 1, 1.5, 2, 3] });
    expect(r.delta).toBe(1.5); // smallest offset > 1 that makes class 2 beat class 0
    expect(r.error).toBe(0.25);
    restore0();
    expect(Array.from(m.layers[0]!.getWeights()[1]!.dataSync())).toEqual([0, 0, 0]);
    x.dispose();
    m.dispose();
  });
});
