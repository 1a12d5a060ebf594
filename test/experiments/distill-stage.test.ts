import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline, type RunResult } from '../../pipeline/runner.ts';
import { defineStage, type StageDef } from '../../pipeline/stage.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { readIngested } from '../../pipeline/stages/common.ts';
import type { BiasAdjustMetrics } from '../../pipeline/stages/bias-adjust.ts';
import type { EnsembleMetrics } from '../../pipeline/stages/train-ensemble.ts';
import { writePredictions } from '../../src/artifacts/predictions.ts';
import { readLogits } from '../../src/distill/logit-cache.ts';
import { initBackend } from '../../src/backend/select.ts';
import { loadModel } from '../../src/models/io.ts';
import { predictLogits } from '../../src/models/predict.ts';
import { subset } from '../../src/data/split-file.ts';
import { ArtifactError } from '../../src/util/errors.ts';
import { silentLogger } from '../../src/util/log.ts';
import { sharedCacheDir } from './shrink.ts';

/** Test-only stage: the softmax of a model on the train split, as `soft-targets-train.arrow`. */
const softSource = defineStage({
  type: 'soft-source',
  description: 'test: writes soft-targets-train.arrow from a model',
  schema: z.strictObject({ model: z.string(), misalign: z.boolean().default(false) }),
  deps: (p) => ['ingest', p.model],
  code: ['pipeline/stages/teachers.ts'],
  async run(ctx) {
    const data = await readIngested(ctx.input('ingest'));
    const model = await loadModel(path.join(ctx.input(ctx.params.model), 'model'));
    const z = predictLogits(model, data.train.x, data.train.n, data.train.dim);
    model.dispose();
    const C = z.length / data.train.n;
    const p = tf.tidy(() => tf.softmax(tf.tensor2d(z, [data.train.n, C])).dataSync() as Float32Array);
    const labels = Int32Array.from(data.train.y);
    if (ctx.params.misalign) labels.reverse();
    await writePredictions(path.join(ctx.outDir, 'soft-targets-train.arrow'), { labels, values: Float32Array.from(p), n: data.train.n, C }, 'probabilities');
  },
});
const registry = { ...STAGES, 'soft-source': softSource as unknown as StageDef<unknown> };

const yaml = (extra = '') => `name: distill-test
seed: 5
backend: wasm
stages:
  ingest: {dataset: {recipe: mnist, options: {limitTrain: 600, limitTest: 200}}, valid_fraction: 0.2}
  teacher: {type: train, hidden: [32], epochs: 2, batch_size: 50}
  ens: {type: train-ensemble, members: 2, hidden: [16], epochs: 1, batch_size: 50}
  d1: {type: distill, teacher: teacher, loss: {type: soft, T: 4}, hidden: [16], epochs: 1, batch_size: 50, transfer: {omit_classes: [3]}}
  d2: {type: distill, teacher: ens, combine: geometric, loss: {type: logits}, hidden: [16], epochs: 1, batch_size: 50}
  soft: {type: soft-source, model: teacher}
  d3: {type: distill, teacher_targets: soft, loss: {type: soft, T: 2, alpha: 1}, hidden: [16], epochs: 1, batch_size: 50, transfer: {fraction: 0.5}}
  b: {type: bias-adjust, model: d1, classes: [3], grid: {from: 0, to: 4, step: 1}}
  d4: {type: distill, teacher: ens, loss: {type: soft, T: 3, alpha: 0.5}, hidden: [16], epochs: 1, batch_size: 50, jitter: 1, transfer: {fraction: 0.5}}
${extra}`;

let out: string;
let first: RunResult;
let tensorsBefore: number;
const json = <T>(...p: string[]): T => JSON.parse(readFileSync(path.join(out, ...p), 'utf8')) as T;

beforeAll(async () => {
  await initBackend('wasm');
  out = mkdtempSync(path.join(os.tmpdir(), 'distill-stage-'));
  tensorsBefore = tf.memory().numTensors;
  first = await runPipeline(parseConfig(yaml(), 'distill-test.yaml', registry), { out, log: silentLogger, cacheDir: sharedCacheDir() });
});
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('distill and its companion stages on a small MNIST subset', () => {
  it('runs every stage, leaks no tensors, and skips everything on a rerun', async () => {
    expect(first.stages.map((s) => s.status)).toEqual(Array(9).fill('ran'));
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    const again = await runPipeline(parseConfig(yaml(), 'distill-test.yaml', registry), { out, log: silentLogger, cacheDir: sharedCacheDir() });
    expect(again.stages.map((s) => s.status)).toEqual(Array(9).fill('skipped'));
  });

  it('single teacher: cached logits are the teacher logits of the transfer rows (no 3s); metrics.json', async () => {
    const data = await readIngested(path.join(out, 'ingest'));
    const rows = Int32Array.from([...data.train.y.keys()].filter((i) => data.train.y[i] !== 3));
    const cache = await readLogits(path.join(out, 'd1', 'teacher-logits.arrow'));
    expect(cache.n).toBe(rows.length);
    expect(cache.C).toBe(10);
    expect(cache.meta.key).toMatch(/^[0-9a-f]{64}$/);
    const teacher = await loadModel(path.join(out, 'teacher', 'model'));
    const sub = subset(data.train, rows);
    const want = predictLogits(teacher, sub.x, sub.n, sub.dim);
    teacher.dispose();
    // the arithmetic combination of one member is its log-softmax: the logits up to a per-row constant
    let maxDiff = 0;
    for (let r = 0; r < rows.length; r++) {
      const shift = cache.logits[r * 10]! - want[r * 10]!;
      for (let c = 0; c < 10; c++) maxDiff = Math.max(maxDiff, Math.abs(want[r * 10 + c]! + shift - cache.logits[r * 10 + c]!));
    }
    expect(maxDiff).toBeLessThan(1e-4);
    const m = json<Record<string, unknown>>('d1', 'metrics.json');
    expect(m).toMatchObject({ teacher: ['teacher'], loss: 'soft', T: 4, alpha: 0.9, transfer_examples: rows.length, best_epoch: 1, classes: 10 });
    expect(m.test).toMatchObject({ examples: 200 });
    expect((m.transfer as { examples: number }).examples).toBe(rows.length);
    expect(existsSync(path.join(out, 'd1', 'model', 'model.json'))).toBe(true);
    expect(readFileSync(path.join(out, 'd1', 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('ensemble teacher: geometric combination = mean of the members\' logits; train-ensemble metrics', async () => {
    const data = await readIngested(path.join(out, 'ingest'));
    const members = json<{ members: string[] }>('ens', 'members.json').members;
    expect(members).toEqual(['member-0/model', 'member-1/model']);
    const logits: Float32Array[] = [];
    for (const m of members) {
      const model = await loadModel(path.join(out, 'ens', m));
      logits.push(predictLogits(model, data.train.x, data.train.n, data.train.dim));
      model.dispose();
    }
    const cache = await readLogits(path.join(out, 'd2', 'teacher-logits.arrow'));
    expect(cache.n).toBe(data.train.n);
    let maxDiff = 0;
    for (let i = 0; i < cache.logits.length; i++) maxDiff = Math.max(maxDiff, Math.abs((logits[0]![i]! + logits[1]![i]!) / 2 - cache.logits[i]!));
    expect(maxDiff).toBeLessThan(1e-4);
    expect(json('d2', 'metrics.json')).toMatchObject({ teacher: ['ens'], combine: 'geometric', loss: 'logits', T: null, alpha: 1 });
    const em = json<EnsembleMetrics>('ens', 'metrics.json');
    expect(em.members).toHaveLength(2);
    expect(em.members[0]!.seed).not.toBe(em.members[1]!.seed);
    for (const mm of em.members) expect(Number.isInteger(mm.test.errors)).toBe(true);
    expect(em.single_mean.test_errors).toBeCloseTo((em.members[0]!.test.errors + em.members[1]!.test.errors) / 2, 12);
    expect(em.test.examples).toBe(200);
  });

  it('jitter with model teachers: the teacher is queried on every jittered batch, nothing cached', () => {
    expect(existsSync(path.join(out, 'd4', 'teacher-logits.arrow'))).toBe(false);
    const m = json<Record<string, unknown>>('d4', 'metrics.json');
    expect(m).toMatchObject({ teacher: ['ens'], teacher_models: 2, combine: 'arithmetic', teacher_online: true, loss: 'soft', T: 3, alpha: 0.5 });
    expect((m.test as { examples: number }).examples).toBe(200);
    expect(json<Record<string, unknown>>('d1', 'metrics.json').teacher_online).toBe(false);
  });

  it('precomputed soft targets: uses the probabilities of the transfer rows, no logit cache', () => {
    const m = json<Record<string, unknown>>('d3', 'metrics.json');
    expect(m).toMatchObject({ teacher: ['targets:soft'], T: 2, alpha: 1, loss: 'soft' });
    // fraction 0.5, stratified: sum over classes of round(count / 2), close to half of 480
    expect(Math.abs((m.transfer_examples as number) - 240)).toBeLessThanOrEqual(5);
    expect(existsSync(path.join(out, 'd3', 'teacher-logits.arrow'))).toBe(false);
  });

  it('bias-adjust: offset chosen on valid (never worse there), only class 3\'s bias moved', async () => {
    const b = json<BiasAdjustMetrics>('b', 'metrics.json');
    expect([0, 1, 2, 3, 4]).toContain(b.delta);
    expect(b.evaluations.map((e) => e.delta)).toEqual([0, 1, 2, 3, 4]);
    expect(b.after.valid.errors).toBeLessThanOrEqual(b.before.valid.errors);
    expect(b.evaluations.find((e) => e.delta === b.delta)!.error).toBeCloseTo(b.after.valid.errors / b.after.valid.examples, 12);
    expect(b.before.test.classes['3']!.examples).toBeGreaterThan(0);
    expect(b.test.errors).toBe(b.after.test.errors);
    const before = await loadModel(path.join(out, 'd1', 'model'));
    const after = await loadModel(path.join(out, 'b', 'model'));
    const bias = (m: tf.LayersModel) => m.getLayer('logits').getWeights()[1]!.dataSync() as Float32Array;
    const b0 = bias(before);
    const b1 = bias(after);
    for (let c = 0; c < 10; c++) expect(b1[c]! - b0[c]!).toBeCloseTo(c === 3 ? b.delta : 0, 5);
    before.dispose();
    after.dispose();
  });

  it('teacher_temperature tempers what the student matches (soft targets and model logits), and is recorded', async () => {
    const extra =
      '  d6: {type: distill, teacher_targets: soft, teacher_temperature: 0.5, loss: {type: soft, T: 2, alpha: 1}, hidden: [16], epochs: 1, batch_size: 50, transfer: {fraction: 0.5}}\n' +
      '  d7: {type: distill, teacher: teacher, teacher_temperature: 0.5, loss: {type: soft, T: 4}, hidden: [16], epochs: 1, batch_size: 50, transfer: {omit_classes: [3]}}\n';
    const r = await runPipeline(parseConfig(yaml(extra), 'distill-test.yaml', registry), { out, log: silentLogger, cacheDir: sharedCacheDir() });
    expect(r.stages.filter((s) => s.status === 'ran').map((s) => s.name)).toEqual(['d6', 'd7']);
    type M = { teacher_temperature?: number; test: { accuracy: number } };
    expect(json<M>('d6', 'metrics.json').teacher_temperature).toBe(0.5);
    expect(json<M>('d3', 'metrics.json').teacher_temperature).toBeUndefined();
    const loss = (s: string) => (JSON.parse(readFileSync(path.join(out, s, 'metrics.jsonl'), 'utf8').split('\n')[0]!) as { train_loss: number }).train_loss;
    // Same data, seed, schedule and teacher; only the tempering differs: so does the loss.
    expect(loss('d6')).not.toEqual(loss('d3'));
    expect(loss('d7')).not.toEqual(loss('d1'));
    // The cache keeps the teacher's own logits: d7's are d1's, untempered.
    const a = await readLogits(path.join(out, 'd1', 'teacher-logits.arrow'));
    const b = await readLogits(path.join(out, 'd7', 'teacher-logits.arrow'));
    expect(b.logits).toEqual(a.logits);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  it('teacher_temperature with a jittered teacher or without a teacher is refused by the schema', () => {
    const jittered = '  d8: {type: distill, teacher: ens, teacher_temperature: 0.5, loss: {type: soft, T: 3}, hidden: [16], epochs: 1, jitter: 1}\n';
    expect(() => parseConfig(yaml(jittered), 'distill-test.yaml', registry)).toThrow(/teacher_temperature 0.5 applies to cached teacher rows/);
    const none = '  d9: {type: distill, teacher_temperature: 0.5, loss: {type: hard}, hidden: [16], epochs: 1}\n';
    expect(() => parseConfig(yaml(none), 'distill-test.yaml', registry)).toThrow(/this loss uses none/);
  });

  it('soft targets that do not line up with the train split are refused', async () => {
    const extra = '  bad: {type: soft-source, model: teacher, misalign: true}\n  d5: {type: distill, teacher_targets: bad, loss: {type: soft, T: 2}, hidden: [8], epochs: 1}\n';
    await expect(runPipeline(parseConfig(yaml(extra), 'distill-test.yaml', registry), { out, log: silentLogger, cacheDir: sharedCacheDir() })).rejects.toThrow(
      ArtifactError,
    );
    await expect(runPipeline(parseConfig(yaml(extra), 'distill-test.yaml', registry), { out, log: silentLogger, cacheDir: sharedCacheDir() })).rejects.toThrow(
      /not aligned with the train split/,
    );
  });
});
