import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fusedOps, registerFusedOps, unregisterFusedOps } from '../../src/backend/fused-ops.ts';
import { initBackend } from '../../src/backend/select.ts';
import { distillationLoss } from '../../src/distill/losses.ts';
import { hardLoss } from '../../src/models/losses.ts';
import { ParamOptimizer } from '../../src/models/optimizer.ts';

describe('fused-op dispatch (one seam, no backend names in callers)', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });
  afterEach(() => unregisterFusedOps('cpu'));

  const batch = () => ({ x: tf.zeros([2, 1]) as tf.Tensor2D, y: tf.tensor1d([0, 1], 'int32'), targets: tf.tensor2d([[1, 0], [0, 1]]) });

  it('the losses and the optimizer use what the active backend registered, and their tfjs ops otherwise', () => {
    const calls: string[] = [];
    registerFusedOps('cpu', {
      softmaxXent: (z, _t, _y, T, alpha) => {
        calls.push(`xent T=${T} alpha=${alpha}`);
        return tf.sum(z).mul(0).add(42) as tf.Scalar;
      },
      adamStep: () => {
        calls.push('adam');
        return true;
      },
    });
    const z = tf.tensor2d([[0, 0], [Math.log(3), 0]]);
    expect(tf.tidy(() => hardLoss(z, batch()).dataSync()[0])).toBe(42);
    expect(tf.tidy(() => distillationLoss({ T: 2, alpha: 0.5 })(z, batch()).dataSync()[0])).toBe(42);
    const w = tf.variable(tf.tensor1d([1, 2]));
    const opt = new ParamOptimizer({ name: 'adam', lr: 0.1 }, [w]);
    const g = tf.tensor1d([1, 1]);
    opt.step([g], 0.1, 0);
    expect(Array.from(w.dataSync())).toEqual([1, 2]); // the registered step "did" it
    expect(calls).toEqual(['xent T=1 alpha=0', 'xent T=2 alpha=0.5', 'adam']);

    unregisterFusedOps('cpu');
    expect(fusedOps()).toEqual({});
    // tfjs ops: mean CE of rows [0, 0] (label 0) and [log 3, 0] (label 1) = (log 2 + log 4) / 2
    expect(tf.tidy(() => hardLoss(z, batch()).dataSync()[0])).toBeCloseTo((Math.log(2) + Math.log(4)) / 2, 5);
    opt.step([g], 0.1, 0);
    expect(w.dataSync()[0]).toBeLessThan(1);
    opt.dispose();
    tf.dispose([z, w, g]);
  });

  it('an operation that declines (null / false) leaves the work to the tfjs ops', () => {
    registerFusedOps('cpu', { softmaxXent: () => null, sgdStep: () => false });
    const z = tf.tensor2d([[0, 0], [Math.log(3), 0]]);
    expect(tf.tidy(() => hardLoss(z, batch()).dataSync()[0])).toBeCloseTo((Math.log(2) + Math.log(4)) / 2, 5);
    const w = tf.variable(tf.tensor1d([1]));
    const opt = new ParamOptimizer({ name: 'sgd', lr: 0.5, momentum: 0 }, [w]);
    const g = tf.tensor1d([1]);
    opt.step([g], 0.5, 0);
    expect(w.dataSync()[0]).toBe(0.5);
    opt.dispose();
    tf.dispose([z, w, g]);
  });
});
