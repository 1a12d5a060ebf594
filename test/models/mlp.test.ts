import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/select.ts';
import { buildMlp, type MlpSpec } from '../../src/models/mlp.ts';
import { ConfigError } from '../../src/util/errors.ts';

const base: MlpSpec = { inputDim: 6, hidden: [5, 4], outputs: 3, activation: 'relu', inputDropout: 0.2, dropout: 0.5, maxNorm: 3, seed: 7 };

beforeAll(async () => {
  await initBackend('cpu');
});

describe('buildMlp', () => {
  it('builds dense/dropout layers with stable names and shapes', () => {
    const m = buildMlp(base);
    expect(m.layers.map((l) => l.name)).toEqual(['input_dropout', 'hidden_0', 'dropout_0', 'hidden_1', 'dropout_1', 'logits']);
    expect(m.inputs[0]!.shape).toEqual([null, 6]);
    expect(m.outputs[0]!.shape).toEqual([null, 3]);
    expect(m.weights.map((w) => [w.originalName, w.shape])).toEqual([
      ['hidden_0/kernel', [6, 5]],
      ['hidden_0/bias', [5]],
      ['hidden_1/kernel', [5, 4]],
      ['hidden_1/bias', [4]],
      ['logits/kernel', [4, 3]],
      ['logits/bias', [3]],
    ]);
    // 6*5+5 + 5*4+4 + 4*3+3
    expect(m.countParams()).toBe(35 + 24 + 15);
    m.dispose();
  });

  it('omits dropout layers for rate 0 and supports no hidden layer', () => {
    const m = buildMlp({ ...base, hidden: [], inputDropout: 0, dropout: 0.5 });
    expect(m.layers.map((l) => l.name)).toEqual(['logits']);
    expect(m.outputs[0]!.shape).toEqual([null, 3]);
    m.dispose();
  });

  it('has a linear output and the requested activation', () => {
    const m = buildMlp({ ...base, hidden: [4], inputDropout: 0, dropout: 0, activation: 'tanh', maxNorm: null });
    const cfg = m.layers.map((l) => (l.getConfig() as { activation?: string }).activation);
    expect(cfg).toEqual(['tanh', 'linear']);
    // logits = W2 tanh(W1 x + b1) + b2, biases zero: check against a hand computation
    const x = [0.5, -1, 2, 0, 1, -0.5];
    const [w1, , w2] = m.getWeights().map((t) => Array.from(t.dataSync()));
    const h = [0, 1, 2, 3].map((j) => Math.tanh(x.reduce((s, xi, i) => s + xi * w1![i * 4 + j]!, 0)));
    const z = [0, 1, 2].map((k) => h.reduce((s, hj, j) => s + hj * w2![j * 3 + k]!, 0));
    const out = tf.tidy(() => (m.predict(tf.tensor2d([x])) as tf.Tensor).dataSync());
    z.forEach((v, k) => expect(out[k]).toBeCloseTo(v, 5));
    expect(z.some((v) => v < 0) || z.reduce((a, b) => a + b, 0) !== 1).toBe(true);
    m.dispose();
  });

  it('attaches max-norm constraints to hidden kernels only (unless maxNormOutput)', () => {
    const m = buildMlp(base);
    expect(m.trainableWeights.filter((w) => w.constraint).map((w) => w.originalName)).toEqual(['hidden_0/kernel', 'hidden_1/kernel']);
    const c = m.trainableWeights[0]!.constraint!.getConfig();
    expect(c).toMatchObject({ maxValue: 3, axis: 0 });
    m.dispose();
    const m2 = buildMlp({ ...base, maxNormOutput: true });
    expect(m2.trainableWeights.filter((w) => w.constraint).map((w) => w.originalName)).toContain('logits/kernel');
    m2.dispose();
    const m3 = buildMlp({ ...base, maxNorm: null });
    expect(m3.trainableWeights.some((w) => w.constraint)).toBe(false);
    m3.dispose();
  });

  it('initialises deterministically from the seed', () => {
    const a = buildMlp(base);
    const b = buildMlp(base);
    const c = buildMlp({ ...base, seed: 8 });
    const wa = a.getWeights().map((t) => Array.from(t.dataSync()));
    expect(b.getWeights().map((t) => Array.from(t.dataSync()))).toEqual(wa);
    expect(c.getWeights().map((t) => Array.from(t.dataSync()))[0]).not.toEqual(wa[0]);
    // Glorot uniform: |w| <= sqrt(6 / (fanIn + fanOut)); biases zero
    expect(Math.max(...wa[0]!.map(Math.abs))).toBeLessThanOrEqual(Math.sqrt(6 / 11));
    expect(wa[1]).toEqual([0, 0, 0, 0, 0]);
    [a, b, c].forEach((m) => m.dispose());
  });

  it('rejects invalid specs with ConfigError', () => {
    expect(() => buildMlp({ ...base, dropout: 1 })).toThrow(ConfigError);
    expect(() => buildMlp({ ...base, hidden: [0] })).toThrow(/hidden\[0\]/);
    expect(() => buildMlp({ ...base, outputs: 1 })).toThrow(ConfigError);
    expect(() => buildMlp({ ...base, maxNorm: 0 })).toThrow(/maxNorm/);
  });
});
