/**
 * The `ensemble-member` and `sweep-student` job modules run in this process on tiny 8x8 images:
 * what they write, that they leave no tensors behind (also with an online teacher of two models,
 * jitter on), that they resume nothing stale (their checkpoint folder is gone at the end), and
 * that they refuse bad params and a teacher file of the wrong size.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../../src/backend/select.ts';
import { writeSplit } from '../../src/data/split-file.ts';
import { writeArrayFile } from '../../src/jobs/array-file.ts';
import { buildModel, modelConfigSchema } from '../../src/models/arch/index.ts';
import { saveModel } from '../../src/models/io.ts';
import { runJob as runMember, type EnsembleMemberJobParams } from '../../pipeline/jobs/ensemble-member-job.ts';
import { runJob as runStudent, type SweepStudentJobParams, type SweepStudentMetrics } from '../../pipeline/jobs/sweep-student-job.ts';
import { trainingParamsSchema } from '../../pipeline/stages/student.ts';
import { images } from '../models/image-fixture.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'stage-jobs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const files = { trainFile: path.join(dir, 'train.arrow'), validFile: path.join(dir, 'valid.arrow'), testFile: path.join(dir, 'test.arrow') };
const rowsFile = path.join(dir, 'rows.i32');
const C = 3;
const training = trainingParamsSchema.parse({ epochs: 2, batch_size: 10, optimizer: { name: 'adam', lr: 0.01 } });
const model = modelConfigSchema.parse({ type: 'mlp', hidden: [5] });
const teachers = [path.join(dir, 't0'), path.join(dir, 't1')];

beforeAll(async () => {
  await initBackend('cpu');
  await writeSplit(files.trainFile, images(40, 1, C));
  await writeSplit(files.validFile, images(12, 2, C));
  await writeSplit(files.testFile, images(12, 3, C));
  await writeArrayFile(rowsFile, Int32Array.from({ length: 20 }, (_, i) => 2 * i));
  for (const [k, d] of teachers.entries()) {
    const m = buildModel(model, { inputDim: 64, shape: [8, 8, 1], outputs: C, seed: 10 + k });
    await saveModel(m, d);
    m.dispose();
  }
});

const student = (over: Partial<SweepStudentJobParams> = {}): SweepStudentJobParams => ({
  ...files,
  rowsFile,
  classes: C,
  model,
  training: { ...training, jitter: 1 },
  loss: { type: 'soft', T: 2, alpha: 0.9 },
  seed: 4,
  ...over,
});

describe('the train-ensemble and distill-sweep job modules', () => {
  it('ensemble-member: writes the model outputs, removes its checkpoint, leaves no tensors', async () => {
    const params: EnsembleMemberJobParams = { ...files, classes: C, model, training, seed: 7 };
    const outDir = path.join(dir, 'member-0');
    const before = tf.memory().numTensors;
    await runMember({ id: 'member-0', outDir, params });
    expect(tf.memory().numTensors).toBe(before);
    expect(readdirSync(outDir).sort()).toEqual(['metrics.json', 'metrics.jsonl', 'model', 'tb']);
    const m = JSON.parse(readFileSync(path.join(outDir, 'metrics.json'), 'utf8')) as Record<string, unknown>;
    expect(Object.keys(m)).toEqual(['test', 'valid', 'best_epoch', 'classes', 'seed']);
    expect(m.seed).toBe(7);
    await expect(runMember({ id: 'member-1', outDir: path.join(dir, 'member-1'), params: { ...params, seed: 1.5 } })).rejects.toThrow(/ensemble-member job member-1: bad params: seed/);
  });

  it('sweep-student: an online teacher of two models (jitter) and a teacher file; no tensors left', async () => {
    const before = tf.memory().numTensors;
    const online = path.join(dir, 'w5-T2');
    await runStudent({ id: 'w5-T2', outDir: online, params: student({ teacherModels: teachers, combine: 'geometric' }) });
    expect(tf.memory().numTensors).toBe(before);
    expect(readdirSync(online).sort()).toEqual(['metrics.json', 'tb']);
    const m = JSON.parse(readFileSync(path.join(online, 'metrics.json'), 'utf8')) as SweepStudentMetrics;
    expect(m.test.examples).toBe(12);
    expect(m.transfer_accuracy).toBeGreaterThanOrEqual(0);
    // Targets from a file: 20 transfer rows x 3 classes.
    const teacherFile = path.join(dir, 'teacher.f32');
    await writeArrayFile(teacherFile, Float32Array.from({ length: 20 * C }, (_, i) => (i % C) - 1));
    const fromFile = path.join(dir, 'w5-T2-file');
    await runStudent({ id: 'w5-T2', outDir: fromFile, params: student({ training, teacherFile, teacherKind: 'logits' }) });
    expect(tf.memory().numTensors).toBe(before);
    expect(existsSync(path.join(fromFile, 'checkpoint'))).toBe(false);
    // A teacher file for another number of rows is refused, naming the sizes.
    await writeArrayFile(teacherFile, new Float32Array(19 * C));
    await expect(runStudent({ id: 'w5-T2', outDir: path.join(dir, 'bad'), params: student({ training, teacherFile, teacherKind: 'logits' }) })).rejects.toThrow(
      /the teacher's targets .*teacher\.f32 holds 228 bytes, expected 60 float32 values = 240/,
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});
