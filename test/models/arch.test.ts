import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { initBackend } from '../../src/backend/select.ts';
import { ARCHITECTURES, buildModel, describeModel, findHead, modelConfigSchema, modelOfParams, withWidth, type CnnConfig } from '../../src/models/arch/index.ts';
import { buildMlp } from '../../src/models/mlp.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { modelKeys, resolveModel } from '../../pipeline/schemas.ts';

beforeAll(async () => {
  await initBackend('cpu');
});

describe('architecture registry', () => {
  it('builds an MLP through the registry exactly as buildMlp does', () => {
    const before = tf.memory().numTensors;
    const config = modelConfigSchema.parse({ type: 'mlp', hidden: [5, 4], dropout: 0.5, max_norm: 2 });
    const a = buildModel(config, { inputDim: 6, outputs: 3, seed: 7 });
    const b = buildMlp({ inputDim: 6, hidden: [5, 4], outputs: 3, activation: 'relu', inputDropout: 0, dropout: 0.5, maxNorm: 2, seed: 7 });
    expect(a.layers.map((l) => l.name)).toEqual(b.layers.map((l) => l.name));
    const wa = a.getWeights().map((w) => Array.from(w.dataSync()));
    const wb = b.getWeights().map((w) => Array.from(w.dataSync()));
    expect(wa).toEqual(wb);
    expect(findHead(a).name).toBe(ARCHITECTURES.mlp.head);
    a.dispose();
    b.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects unknown types and unknown keys with the key named', () => {
    const bad = modelConfigSchema.safeParse({ type: 'transformer' });
    expect(bad.success).toBe(false);
    const extra = modelConfigSchema.safeParse({ type: 'mlp', hiden: [3] });
    expect(extra.success).toBe(false);
    expect(JSON.stringify(extra.error!.issues)).toMatch(/hiden/);
    expect(() => buildModel({ type: 'nope' } as never, { inputDim: 2, outputs: 2, seed: 1 })).toThrow(/unknown model type 'nope': use one of mlp, cnn/);
  });

  it('describes and widens configs for tables and sweeps', () => {
    const mlp = modelConfigSchema.parse({ type: 'mlp', hidden: [1200, 800] });
    expect(describeModel(mlp)).toBe('1200-800');
    expect(describeModel(withWidth(mlp, 30))).toBe('2x30');
    expect(() => withWidth(modelConfigSchema.parse({ type: 'mlp', hidden: [] }), 30)).toThrow(ConfigError);
    const cnn = modelConfigSchema.parse({ type: 'cnn', conv: [{ filters: 4 }, { filters: 8 }], dense: [16] }) as CnnConfig;
    expect(describeModel(cnn)).toBe('cnn 4-8, dense 16');
    expect(withWidth(cnn, 32)).toMatchObject({ dense: [32] });
    expect(() => withWidth({ ...cnn, dense: [] }, 32)).toThrow(/dense: \[32\]/);
  });

  it('reads the architecture of old and new manifests', () => {
    expect(modelOfParams({ hidden: [8, 8], dropout: 0.2 })).toEqual({ type: 'mlp', hidden: [8, 8], activation: 'relu', dropout: 0.2, input_dropout: 0, max_norm: null });
    expect(modelOfParams({ model: { type: 'cnn', conv: [{ filters: 4 }] } })).toMatchObject({ type: 'cnn', dense: [] });
    expect(modelOfParams({ from: 'x' })).toBeNull();
  });
});

describe('stage model keys', () => {
  const schema = z.strictObject({ epochs: z.number().default(1), ...modelKeys }).transform(resolveModel);

  it('turns the stage-level MLP keys into model: {type: mlp} (defaults filled) and drops them', () => {
    expect(schema.parse({ hidden: [8], max_norm: 3 })).toEqual({ epochs: 1, model: { type: 'mlp', hidden: [8], activation: 'relu', dropout: 0, input_dropout: 0, max_norm: 3 } });
    expect(schema.parse({})).toEqual({ epochs: 1, model: { type: 'mlp', hidden: [800, 800], activation: 'relu', dropout: 0, input_dropout: 0, max_norm: null } });
  });

  it('takes model: as given', () => {
    const p = schema.parse({ model: { type: 'cnn', conv: [{ filters: 4, kernel: 3, pool: 2 }], dense: [8] } });
    expect(p.model).toMatchObject({ type: 'cnn', dense: [8], conv: [{ filters: 4, kernel: 3, stride: 1, padding: 'same', pool: 2, batch_norm: false }] });
    expect(Object.keys(p).sort()).toEqual(['epochs', 'model']);
  });

  it('rejects model: together with a stage-level MLP key, saying how to write it', () => {
    const r = schema.safeParse({ model: { type: 'mlp' }, hidden: [8], dropout: 0.1 });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(['hidden']);
    expect(r.error!.issues[0]!.message).toMatch(/move hidden, dropout into model: \{type: mlp, \.\.\.\}/);
    const c = schema.safeParse({ model: { type: 'cnn', conv: [{ filters: 2 }] }, dropout: 0.1 });
    expect(c.error!.issues[0]!.message).toMatch(/remove dropout \(model type 'cnn' does not read them\)/);
  });
});

describe('distill-sweep students', () => {
  const base = { teacher: 'teacher', widths: [30, 64], temperatures: [2] };
  it('keep the stage-level form: depth hidden layers, the MLP keys', async () => {
    const { distillSweepStage } = await import('../../pipeline/stages/distill-sweep.ts');
    const p = distillSweepStage.schema.parse({ ...base, depth: 3, activation: 'tanh' });
    expect(p.model).toMatchObject({ type: 'mlp', hidden: [30, 30, 30], activation: 'tanh' });
    expect(p.depth).toBe(3);
    expect(distillSweepStage.schema.parse(base).depth).toBe(2);
  });

  it('take model: (any architecture with widths), refusing depth beside it', async () => {
    const { distillSweepStage } = await import('../../pipeline/stages/distill-sweep.ts');
    const cnn = distillSweepStage.schema.parse({ ...base, model: { type: 'cnn', conv: [{ filters: 4 }], dense: [10] } });
    expect(cnn.model).toMatchObject({ type: 'cnn', dense: [10] });
    expect(cnn.depth).toBeNull();
    const both = distillSweepStage.schema.safeParse({ ...base, depth: 2, model: { type: 'mlp', hidden: [8, 8] } });
    expect(both.error!.issues[0]).toMatchObject({ path: ['depth'] });
    const noDense = distillSweepStage.schema.safeParse({ ...base, model: { type: 'cnn', conv: [{ filters: 4 }] } });
    expect(noDense.error!.issues[0]!.message).toMatch(/widths\[0\]: a cnn has no dense layers .*dense: \[30\]/);
  });
});
