import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../../src/backend/select.ts';
import { buildMlp, type MlpSpec } from '../../src/models/mlp.ts';
import { loadModel, saveModel } from '../../src/models/io.ts';
import { predictLogits } from '../../src/models/predict.ts';
import { ArtifactError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';

const spec: MlpSpec = { inputDim: 5, hidden: [7, 6], outputs: 4, activation: 'relu', inputDropout: 0.1, dropout: 0.3, maxNorm: 0.5, seed: 11 };
let tmp: string;

function randomX(n: number, dim: number, seed: number): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n * dim }, () => r.normal());
}

beforeAll(async () => {
  await initBackend('cpu');
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'models-io-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('saveModel / loadModel', () => {
  it('round-trips to identical logits and writes the tfjs layers format', async () => {
    // max-norm 0.5 is below the Glorot columns' norms: a constraint re-applied on load would change weights
    const m = buildMlp(spec);
    const dir = path.join(tmp, 'rt');
    await saveModel(m, dir);
    const json = JSON.parse(await fs.readFile(path.join(dir, 'model.json'), 'utf8'));
    expect(json.format).toBe('layers-model');
    expect(json.generatedBy).toMatch(/TensorFlow\.js/);
    expect(json).toHaveProperty('convertedBy');
    expect(json.modelTopology.class_name).toBe('Sequential');
    expect(json.weightsManifest).toHaveLength(1);
    expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);
    expect(json.weightsManifest[0].weights.map((w: { name: string }) => w.name)).toEqual(m.weights.map((w) => w.originalName));
    const bytes = (await fs.stat(path.join(dir, 'weights.bin'))).size;
    expect(bytes).toBe(4 * m.countParams());
    expect((await fs.readdir(dir)).sort()).toEqual(['model.json', 'weights.bin']);

    const before = tf.memory().numTensors;
    const l = await loadModel(dir);
    expect(l.layers.map((x) => x.name)).toEqual(m.layers.map((x) => x.name));
    const x = randomX(9, 5, 1);
    expect(Array.from(predictLogits(l, x, 9, 5))).toEqual(Array.from(predictLogits(m, x, 9, 5)));
    const wa = m.getWeights().map((t) => Array.from(t.dataSync()));
    expect(l.getWeights().map((t) => Array.from(t.dataSync()))).toEqual(wa);
    // the constraint survives the round trip (config), and the dropout layers too
    expect(l.trainableWeights[0]!.constraint?.getConfig()).toMatchObject({ maxValue: 0.5 });
    l.dispose();
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });

  it('throws ArtifactError naming a missing file', async () => {
    await expect(loadModel(path.join(tmp, 'nope'))).rejects.toThrow(ArtifactError);
    await expect(loadModel(path.join(tmp, 'nope'))).rejects.toThrow(/model\.json is missing/);
    const m = buildMlp(spec);
    const dir = path.join(tmp, 'nobin');
    await saveModel(m, dir);
    await fs.rm(path.join(dir, 'weights.bin'));
    await expect(loadModel(dir)).rejects.toThrow(/weights\.bin is missing/);
    m.dispose();
  });

  it('throws ArtifactError "corrupted ... --force" for a truncated weights file', async () => {
    const m = buildMlp(spec);
    const dir = path.join(tmp, 'trunc');
    await saveModel(m, dir);
    const bin = await fs.readFile(path.join(dir, 'weights.bin'));
    await fs.writeFile(path.join(dir, 'weights.bin'), bin.subarray(0, bin.length - 8));
    const err = await loadModel(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArtifactError);
    expect((err as Error).message).toMatch(/corrupted/);
    expect((err as Error).message).toMatch(/--force/);
    expect((err as Error).message).toMatch(/weights\.bin has \d+ bytes/);
    m.dispose();
  });

  it('detects corrupted JSON and weights that do not belong to model.json', async () => {
    const m = buildMlp(spec);
    const other = buildMlp({ ...spec, seed: 99 });
    const a = path.join(tmp, 'a');
    const b = path.join(tmp, 'b');
    await saveModel(m, a);
    await saveModel(other, b);
    // same size, different weights: caught by the recorded hash
    await fs.copyFile(path.join(b, 'weights.bin'), path.join(a, 'weights.bin'));
    await expect(loadModel(a)).rejects.toThrow(/corrupted.*hash/);
    await fs.writeFile(path.join(b, 'model.json'), '{"modelTopology": {');
    await expect(loadModel(b)).rejects.toThrow(/corrupted.*not valid JSON/);
    m.dispose();
    other.dispose();
  });
});
