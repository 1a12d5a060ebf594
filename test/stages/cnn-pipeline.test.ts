/**
 * The whole specialist pipeline on tiny 8x8x1 images with a CNN generalist: ingest of a user's
 * Arrow file with a `shape`, a CNN generalist (jitter, batch norm, dropout), covariance, clusters,
 * specialists copied from the CNN, the ensemble, and distillation into a CNN and an MLP student.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { loadModel } from '../../src/models/io.ts';
import { readSplit } from '../../src/data/split-file.ts';
import { predictLogits } from '../../src/models/predict.ts';
import { silentLogger } from '../../src/util/log.ts';
import { describePath } from '../../src/cli/describe.ts';
import { writeImagesArrow } from '../models/image-fixture.ts';

const dirs: string[] = [];
const tmp = (p: string): string => {
  const d = mkdtempSync(path.join(os.tmpdir(), p));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const config = (file: string): string => `
name: tiny-cnn
seed: 3
backend: cpu
stages:
  ingest: {dataset: {path: ${JSON.stringify(file)}}, valid_fraction: 0.2, test_fraction: 0.2}
  generalist:
    model: {type: cnn, conv: [{filters: 4, kernel: 3, pool: 2, batch_norm: true}], dense: [16], dropout: 0.1}
    epochs: 4
    batch_size: 20
    jitter: 1
    optimizer: {name: adam, lr: 0.01}
  covariance: {}
  clusters: {k: 2}
  specialists: {epochs: 1, batch_size: 20, optimizer: {name: adam, lr: 0.005}}
  ensemble: {weight: 1, train_targets: true}
  student_cnn:
    type: distill
    teacher_targets: ensemble
    model: {type: cnn, conv: [{filters: 2, kernel: 3, pool: 2}], dense: [8]}
    loss: {type: soft, T: 2}
    epochs: 1
    batch_size: 20
    optimizer: {name: adam, lr: 0.01}
  student_mlp:
    type: distill
    teacher: generalist
    hidden: [16]
    loss: {type: soft, T: 2}
    epochs: 1
    batch_size: 20
    optimizer: {name: adam, lr: 0.01}
`;

let out: string;
let cache: string;
let file: string;
beforeAll(async () => {
  file = writeImagesArrow(path.join(tmp('cnn-data-'), 'images.arrow'), 300, 4, 6);
  out = tmp('cnn-run-');
  cache = tmp('cnn-cache-');
  const r = await runPipeline(parseConfig(config(file), 'tiny-cnn.yaml', STAGES), { out, cacheDir: cache, log: silentLogger });
  expect(r.stages.map((s) => [s.name, s.status])).toEqual(r.stages.map((s) => [s.name, 'ran']));
}, 120_000);

const json = (...p: string[]): Record<string, unknown> => JSON.parse(readFileSync(path.join(out, ...p), 'utf8')) as Record<string, unknown>;

describe('pipeline with a CNN generalist', () => {
  it('trains the CNN generalist on the image shape and records its architecture', async () => {
    const m = await loadModel(path.join(out, 'generalist', 'model'));
    expect(m.layers.map((l) => l.getClassName())).toEqual(['Reshape', 'Conv2D', 'BatchNormalization', 'Activation', 'MaxPooling2D', 'Flatten', 'Dense', 'Dropout', 'Dense']);
    // inspect counts every weight: 3*3*4 conv + 4*4 batch norm + 64*16+16 dense + 16*6+6 logits
    const total = m.weights.reduce((s, w) => s + w.shape.reduce((a: number, b) => a * (b ?? 1), 1), 0);
    expect(total).toBe(36 + 16 + 1040 + 102);
    expect(await describePath(path.join(out, 'generalist'))).toContain(`total parameters: ${total}`);
    m.dispose();
    expect(json('generalist', 'manifest.json')).toMatchObject({ params: { model: { type: 'cnn', dense: [16] } } });
    const test = (json('generalist', 'metrics.json') as { test: { accuracy: number } }).test;
    expect(test.accuracy).toBeGreaterThan(1 / 6);
  });

  it('builds each specialist from the CNN body and the ensemble from them', async () => {
    const specs = json('specialists', 'specialists.json') as unknown as { specialists?: unknown[] } | unknown[];
    const list = (Array.isArray(specs) ? specs : (specs.specialists ?? [])) as { id: string; classes: number[] }[];
    expect(list).toHaveLength(2);
    const valid = await readSplit(path.join(out, 'ingest', 'valid.arrow'));
    const gen = await loadModel(path.join(out, 'generalist', 'model'));
    for (const s of list) {
      const m = await loadModel(path.join(out, 'specialists', s.id, 'model'));
      expect(m.layers.map((l) => l.name)).toEqual(gen.layers.map((l) => l.name));
      expect(m.outputs[0]!.shape).toEqual([null, s.classes.length + 1]);
      expect(predictLogits(m, valid.x, valid.n, valid.dim).every(Number.isFinite)).toBe(true);
      m.dispose();
    }
    gen.dispose();
    const ens = json('ensemble', 'metrics.json') as { ensemble?: { correct: number } };
    expect(ens.ensemble?.correct).toBeGreaterThan(0);
  });

  it('distils into a CNN and an MLP student', async () => {
    const cnn = await loadModel(path.join(out, 'student_cnn', 'model'));
    expect(cnn.layers.map((l) => l.getClassName())).toContain('Conv2D');
    cnn.dispose();
    const mlp = await loadModel(path.join(out, 'student_mlp', 'model'));
    expect(mlp.layers.map((l) => l.name)).toEqual(['hidden_0', 'logits']);
    mlp.dispose();
    expect((json('student_cnn', 'metrics.json') as { test: { examples: number } }).test.examples).toBe(60);
  });

  it('reruns the CNN stages to the same outputs without leaking tensors', async () => {
    const before = tf.memory().numTensors; // after the first run: the backend's one-off tensors exist
    const hash = (stage: string): unknown => (json(stage, 'manifest.json') as { outputs: unknown }).outputs;
    const first = ['generalist', 'specialists', 'student_cnn'].map(hash);
    const r = await runPipeline(parseConfig(config(file), 'tiny-cnn.yaml', STAGES), { out, cacheDir: cache, log: silentLogger, only: ['generalist', 'specialists', 'student_cnn'], force: true });
    expect(r.stages.filter((s) => s.status === 'ran').map((s) => s.name)).toEqual(['generalist', 'specialists', 'student_cnn']);
    expect(tf.memory().numTensors).toBe(before);
    // deterministic: the same seeds give the same model files
    expect(['generalist', 'specialists', 'student_cnn'].map(hash)).toEqual(first);
  }, 120_000);
});
