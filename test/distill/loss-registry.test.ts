import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/select.ts';
import { buildLoss, distillLossSchema, LOSS_TYPES, lossType, SOFT_LOSS_KEYS } from '../../src/distill/loss-registry.ts';
import { distillationLoss, hardLoss, logitMatchingLoss } from '../../src/distill/losses.ts';
import type { LossFn, TrainBatch } from '../../src/distill/loss-types.ts';
import { SPECIALIST_LOSS_KEYS, specialistLoss } from '../../src/specialists/specialist-loss.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { lossSchema } from '../../pipeline/stages/student.ts';

beforeAll(async () => {
  await initBackend('cpu');
});

const Z = [[1.5, -0.3, 0.2, 2.0], [-1, 0.5, 0.25, 0], [0.1, 0.2, -2, 1]];
const V = [[0.5, 1.0, -0.5, 0.0], [2, -1, 0, 1], [0, 0, 0, 3]];
const Y = [3, 1, 0];

/** Value and gradient w.r.t. the logits of `loss` on the fixed batch (teacher rows V). */
function valueAndGrad(loss: LossFn, targets: number[][] = V, y: number[] = Y): number[] {
  return tf.tidy(() => {
    const batch: TrainBatch = { x: tf.zeros([Z.length, 1]) as tf.Tensor2D, y: tf.tensor1d(y, 'int32'), targets: tf.tensor2d(targets) };
    const { value, grad } = tf.valueAndGrad((z: tf.Tensor) => loss(z as tf.Tensor2D, batch))(tf.tensor2d(Z));
    return [value.dataSync()[0]!, ...grad.dataSync()];
  });
}

describe('loss registry (one schema and one builder per loss type)', () => {
  it('registers hard, soft, logits and the specialists loss', () => {
    expect(Object.keys(LOSS_TYPES).sort()).toEqual(['hard', 'logits', 'soft', 'specialist']);
    for (const [k, t] of Object.entries(LOSS_TYPES)) expect(t.type).toBe(k);
  });

  it('each type builds exactly the loss of its factory (same values and gradients)', () => {
    const probs = V.map((r) => {
      const m = Math.max(...r);
      const e = r.map((v) => Math.exp(v - m));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    });
    const cases: [LossFn, LossFn, number[][]][] = [
      [buildLoss({ type: 'hard' }), hardLoss(), V],
      [buildLoss({ type: 'soft', T: 3 }, { teacher: 'logits' }), distillationLoss({ T: 3, alpha: 0.9, teacher: 'logits' }), V],
      [buildLoss({ type: 'soft', T: 2, alpha: 0.4 }, { teacher: 'probabilities' }), distillationLoss({ T: 2, alpha: 0.4, teacher: 'probabilities' }), probs],
      [buildLoss({ type: 'logits', alpha: 0.6 }, { teacher: 'logits' }), logitMatchingLoss({ alpha: 0.6 }), V],
    ];
    for (const [got, want, t] of cases) expect(valueAndGrad(got, t)).toEqual(valueAndGrad(want, t));
    // the specialists' loss: a dustbin specialist over classes {1, 3} of C = 4 (cells 0, 1 and the dustbin 2)
    const sp = { classes: [3, 1], C: 4, head: 'dustbin' as const, targets: 'full' as const };
    const cellY = [1, 0, 2];
    const got = buildLoss({ type: 'specialist', soft_weight: 0.5, temperature: 3 }, { teacher: 'logits', specialist: sp });
    const want = specialistLoss({ classes: [3, 1], C: 4, head: 'dustbin', softWeight: 0.5, T: 3, targets: 'full' });
    const z3 = Z.map((r) => r.slice(0, 3));
    const run = (l: LossFn) => tf.tidy(() => {
      const batch: TrainBatch = { x: tf.zeros([3, 1]) as tf.Tensor2D, y: tf.tensor1d(cellY, 'int32'), targets: tf.tensor2d(V) };
      const { value, grad } = tf.valueAndGrad((z: tf.Tensor) => l(z as tf.Tensor2D, batch))(tf.tensor2d(z3));
      return [value.dataSync()[0]!, ...grad.dataSync()];
    });
    expect(run(got)).toEqual(run(want));
    // defaults are the schema's: soft_weight 1, temperature 2
    expect(run(buildLoss({ type: 'specialist' }, { specialist: sp }))).toEqual(run(specialistLoss({ ...sp, softWeight: 1, T: 2 })));
  });

  it('the stages take their loss keys from the registry', () => {
    expect(lossSchema).toBe(distillLossSchema);
    const distill = STAGES['distill']!.schema as unknown as { _zod: { def: { in?: { shape: Record<string, unknown> }; shape?: Record<string, unknown> } } };
    const shapeOf = (s: unknown): Record<string, unknown> => {
      let d = (s as { _zod: { def: Record<string, unknown> } })._zod.def;
      while (!d.shape && d.in) d = (d.in as { _zod: { def: Record<string, unknown> } })._zod.def;
      while (!d.shape && d.schema) d = (d.schema as { _zod: { def: Record<string, unknown> } })._zod.def;
      return d.shape as Record<string, unknown>;
    };
    expect(shapeOf(distill).loss).toBe(distillLossSchema);
    expect(shapeOf(STAGES['specialists']!.schema).soft_weight).toBe(SPECIALIST_LOSS_KEYS.soft_weight);
    expect(shapeOf(STAGES['specialists']!.schema).temperature).toBe(SPECIALIST_LOSS_KEYS.temperature);
    expect(shapeOf(STAGES['distill-sweep']!.schema).alpha).toBe(SOFT_LOSS_KEYS.alpha);
  });

  it('what each type needs and accepts of the teacher', () => {
    expect(lossType('hard').needsTeacher({ type: 'hard' })).toBe(false);
    expect(lossType('soft').teacherKinds).toEqual(['logits', 'probabilities']);
    expect(lossType('logits').teacherKinds).toEqual(['logits']);
    expect(lossType('soft').teacherWeight({ type: 'soft', T: 2, alpha: 0.3 } as never)).toBe(0.3);
    expect(LOSS_TYPES.specialist.needsTeacher({ type: 'specialist', soft_weight: 0, temperature: 2 })).toBe(false);
  });

  it('bad configs are ConfigErrors naming the key and the fix', () => {
    expect(() => buildLoss({ type: 'mse' })).toThrow(ConfigError);
    expect(() => buildLoss({ type: 'mse' })).toThrow(/'soft', 'logits', 'hard', 'specialist'/);
    expect(() => buildLoss({ type: 'soft', T: -1 })).toThrow(/loss soft: T:/);
    expect(() => buildLoss({ type: 'soft', T: 2, beta: 1 })).toThrow(ConfigError);
    expect(() => buildLoss({ type: 'logits' }, { teacher: 'probabilities' })).toThrow(/needs teacher logits, got probabilities/);
    expect(() => buildLoss({ type: 'specialist' })).toThrow(/classes, C, head/);
    expect(() => lossType('constructor')).toThrow(ConfigError);
  });
});
