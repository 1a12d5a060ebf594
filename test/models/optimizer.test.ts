import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/select.ts';
import { ParamOptimizer, learningRateAt, momentumAt, type OptimizerSpec } from '../../src/models/optimizer.ts';
import { ConfigError } from '../../src/util/errors.ts';

beforeAll(async () => {
  await initBackend('cpu');
});

function values(v: tf.Tensor): number[] {
  return Array.from(v.dataSync());
}

describe('schedules', () => {
  it('learning rate follows the closed forms', () => {
    const sgd = (schedule: OptimizerSpec['schedule']): OptimizerSpec => ({ name: 'sgd', lr: 0.1, momentum: 0.5, schedule });
    expect(learningRateAt(sgd(undefined), 7, 10)).toBe(0.1);
    expect(learningRateAt(sgd({ type: 'step', every: 3, factor: 0.5 }), 2, 10)).toBeCloseTo(0.1, 12);
    expect(learningRateAt(sgd({ type: 'step', every: 3, factor: 0.5 }), 3, 10)).toBeCloseTo(0.05, 12);
    expect(learningRateAt(sgd({ type: 'step', every: 3, factor: 0.5 }), 7, 10)).toBeCloseTo(0.025, 12);
    expect(learningRateAt(sgd({ type: 'exponential', decay: 0.9 }), 2, 10)).toBeCloseTo(0.081, 12);
    const cos = sgd({ type: 'cosine', minLr: 0.01 });
    expect(learningRateAt(cos, 0, 4)).toBeCloseTo(0.1, 12);
    expect(learningRateAt(cos, 2, 4)).toBeCloseTo(0.055, 12);
    expect(learningRateAt(cos, 1, 4)).toBeCloseTo(0.01 + 0.09 * (1 + Math.SQRT1_2) / 2, 12);
  });

  it('momentum ramps linearly then stays', () => {
    const s: OptimizerSpec = { name: 'sgd', lr: 1, momentum: 0.5, finalMomentum: 0.99, momentumRampEpochs: 10 };
    expect(momentumAt(s, 0)).toBe(0.5);
    expect(momentumAt(s, 5)).toBeCloseTo(0.745, 12);
    expect(momentumAt(s, 10)).toBeCloseTo(0.99, 12);
    expect(momentumAt(s, 50)).toBeCloseTo(0.99, 12);
    expect(momentumAt({ name: 'sgd', lr: 1, momentum: 0.9 }, 50)).toBe(0.9);
  });

  it('rejects bad specs', () => {
    expect(() => new ParamOptimizer({ name: 'sgd', lr: 0, momentum: 0 }, [])).toThrow(ConfigError);
    expect(() => new ParamOptimizer({ name: 'sgd', lr: 1, momentum: 0.5, finalMomentum: 0.9 }, [])).toThrow(/momentumRampEpochs/);
    expect(() => new ParamOptimizer({ name: 'adam', lr: 1, beta1: 1 }, [])).toThrow(/beta1/);
  });
});

describe('ParamOptimizer', () => {
  it('sgd with classical momentum: v <- mu v - lr g, w <- w + v', () => {
    const w = tf.variable(tf.tensor1d([1, -2]));
    const opt = new ParamOptimizer({ name: 'sgd', lr: 0.1, momentum: 0.9 }, [w]);
    const g1 = tf.tensor1d([1, 2]);
    opt.step([g1], 0.1, 0.9); // v = [-0.1, -0.2]; w = [0.9, -2.2]
    expect(values(w)[0]).toBeCloseTo(0.9, 6);
    expect(values(w)[1]).toBeCloseTo(-2.2, 6);
    opt.step([g1], 0.05, 0.5); // v = 0.5 v - 0.05 g = [-0.1, -0.2]; w = [0.8, -2.4]
    expect(values(w)[0]).toBeCloseTo(0.8, 6);
    expect(values(w)[1]).toBeCloseTo(-2.4, 6);
    opt.dispose();
    tf.dispose([w, g1]);
  });

  it('nesterov: w <- w + mu v_new - lr g', () => {
    const w = tf.variable(tf.tensor1d([1]));
    const opt = new ParamOptimizer({ name: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true }, [w]);
    const g = tf.tensor1d([1]);
    opt.step([g], 0.1, 0.9); // v = -0.1; w = 1 + 0.9*-0.1 - 0.1 = 0.81
    expect(values(w)[0]).toBeCloseTo(0.81, 6);
    opt.step([g], 0.1, 0.9); // v = -0.19; w = 0.81 - 0.171 - 0.1 = 0.539
    expect(values(w)[0]).toBeCloseTo(0.539, 6);
    opt.dispose();
    tf.dispose([w, g]);
  });

  it('plain sgd without slots when momentum is 0', () => {
    const w = tf.variable(tf.tensor1d([1]));
    const opt = new ParamOptimizer({ name: 'sgd', lr: 0.5, momentum: 0 }, [w]);
    expect(opt.slotSizes()).toEqual([]);
    const g = tf.tensor1d([2]);
    opt.step([g], 0.5, 0);
    expect(values(w)[0]).toBeCloseTo(0, 6);
    opt.dispose();
    tf.dispose([w, g]);
  });

  it('adam: bias-corrected steps', () => {
    const w = tf.variable(tf.tensor1d([1, 1]));
    const opt = new ParamOptimizer({ name: 'adam', lr: 0.01, epsilon: 1e-8 }, [w]);
    const g1 = tf.tensor1d([0.5, -4]);
    opt.step([g1], 0.01, 0); // first step: m_hat = g, v_hat = g^2 -> w -= lr * sign(g)
    expect(values(w)[0]).toBeCloseTo(0.99, 6);
    expect(values(w)[1]).toBeCloseTo(1.01, 6);
    const g2 = tf.tensor1d([1, 1]);
    opt.step([g2], 0.01, 0);
    // by hand for coordinate 0: m = 0.9*0.05 + 0.1*1 = 0.145 (m1 = 0.05); v = 0.999*0.00025 + 0.001 = 0.00124975
    const m = 0.145 / (1 - 0.81);
    const v = 0.00124975 / (1 - 0.999 * 0.999);
    expect(values(w)[0]).toBeCloseTo(0.99 - (0.01 * m) / (Math.sqrt(v) + 1e-8), 6);
    opt.dispose();
    tf.dispose([w, g1, g2]);
  });

  it('state round-trips exactly', async () => {
    const mk = () => tf.variable(tf.tensor2d([[1, 2], [3, 4]]));
    const w1 = mk();
    const w2 = mk();
    const a = new ParamOptimizer({ name: 'adam', lr: 0.1 }, [w1]);
    const b = new ParamOptimizer({ name: 'adam', lr: 0.1 }, [w2]);
    const g = tf.tensor2d([[0.1, -0.2], [0.3, 0.4]]);
    a.step([g], 0.1, 0);
    b.step([g], 0.1, 0);
    const s = await a.getState();
    expect(s.steps).toBe(1);
    const c = new ParamOptimizer({ name: 'adam', lr: 0.1 }, [w2]);
    c.setState(s);
    a.step([g], 0.1, 0);
    c.step([g], 0.1, 0);
    expect(values(w2)).toEqual(values(w1));
    [a, b, c].forEach((o) => o.dispose());
    tf.dispose([w1, w2, g]);
  });
});
