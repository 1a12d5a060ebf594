import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/select.ts';
import { writeSplit } from '../../src/data/split-file.ts';
import { saveModel } from '../../src/models/io.ts';
import { predictLogits } from '../../src/models/predict.ts';
import { streamTeacherCells } from '../../src/specialists/specialist-loss.ts';
import { readLogitsFile, teacherCellsFromLogitsFile, writeTeacherLogitsFile } from '../../src/specialists/teacher-logits-file.ts';
import { runJob, type SpecialistJobParams } from '../../src/specialists/worker-specialist-job.ts';
import { ArtifactError } from '../../src/util/errors.ts';
import { C, DIM, makeFixture, type Fixture } from './specialist-fixture.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'teacher-logits-file-'));
let f: Fixture;
beforeAll(async () => {
  await initBackend('cpu');
  f = await makeFixture(3);
});
afterAll(() => {
  f.generalist.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('generalist logits written once, reduced per specialist', () => {
  it('the file holds exactly the model logits (n x C Float32), written atomically', () => {
    const file = path.join(dir, 'valid.f32');
    const before = tf.memory().numTensors;
    expect(writeTeacherLogitsFile(f.generalist, f.valid.x, f.valid.n, DIM, file, 37)).toBe(C);
    expect(tf.memory().numTensors).toBe(before);
    expect(statSync(file).size).toBe(f.valid.n * C * 4);
    expect(readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
    const direct = predictLogits(f.generalist, f.valid.x, f.valid.n, DIM, { batchSize: 37 });
    expect(Array.from(readLogitsFile(file, f.valid.n, C))).toEqual(Array.from(direct));
  });

  it('cells from the file are bit-identical to streamTeacherCells on the model (several subsets and batch sizes)', () => {
    for (const bs of [500, 64, 7]) {
      const file = path.join(dir, `valid-${bs}.f32`);
      writeTeacherLogitsFile(f.generalist, f.valid.x, f.valid.n, DIM, file, bs);
      for (const classes of [[0, 1, 2, 3], [11, 5], [2, 3, 4, 5, 6, 7, 8, 9, 10]]) {
        const before = tf.memory().numTensors;
        const a = streamTeacherCells(f.generalist, f.valid.x, f.valid.n, DIM, classes, { batchSize: bs });
        const b = teacherCellsFromLogitsFile(file, f.valid.n, C, classes, bs);
        expect(tf.memory().numTensors).toBe(before);
        expect(b.n).toBe(a.n);
        expect(b.k).toBe(classes.length + 1);
        expect(Array.from(b.cells)).toEqual(Array.from(a.cells));
        expect(Array.from(b.argmax)).toEqual(Array.from(a.argmax));
      }
    }
    // And by hand for one row: the dustbin cell is log sum_{outside} exp(z).
    const file = path.join(dir, 'valid-500.f32');
    const z = readLogitsFile(file, f.valid.n, C).subarray(0, C);
    const cells = teacherCellsFromLogitsFile(file, f.valid.n, C, [1, 4]);
    let s = 0;
    for (let i = 0; i < C; i++) if (i !== 1 && i !== 4) s += Math.exp(z[i]!);
    expect(cells.cells[0]).toBe(z[1]);
    expect(cells.cells[1]).toBe(z[4]);
    expect(cells.cells[2]).toBeCloseTo(Math.log(s), 5);
  });

  it('a missing file or one of the wrong size is an ArtifactError naming the fix', () => {
    const wrong = path.join(dir, 'wrong.f32');
    writeFileSync(wrong, new Uint8Array(12 * 4));
    expect(() => teacherCellsFromLogitsFile(wrong, f.valid.n, C, [0, 1])).toThrow(ArtifactError);
    expect(() => teacherCellsFromLogitsFile(wrong, f.valid.n, C, [0, 1])).toThrow(/holds 48 bytes, expected .*--force/);
    expect(() => readLogitsFile(wrong, f.valid.n, C)).toThrow(ArtifactError);
    expect(() => teacherCellsFromLogitsFile(path.join(dir, 'absent.f32'), f.valid.n, C, [0, 1])).toThrow(/cannot open .*--force/);
  });
});

describe('specialist job with the shared validation logits', () => {
  let params: (over: Partial<SpecialistJobParams>) => SpecialistJobParams;
  beforeAll(async () => {
    await saveModel(f.generalist, path.join(dir, 'generalist', 'model'));
    await writeSplit(path.join(dir, 'train.arrow'), f.train);
    await writeSplit(path.join(dir, 'valid.arrow'), f.valid);
    writeTeacherLogitsFile(f.generalist, f.valid.x, f.valid.n, DIM, path.join(dir, 'shared.f32'));
    params = (over) => ({
      generalistDir: path.join(dir, 'generalist', 'model'),
      trainFile: path.join(dir, 'train.arrow'),
      validFile: path.join(dir, 'valid.arrow'),
      classes: [0, 1, 2, 3],
      head: 'dustbin',
      softWeight: 1,
      T: 2,
      correction: 'fitted',
      epochs: 2,
      batchSize: 32,
      optimizer: { name: 'adam', lr: 0.003 },
      seed: 5,
      backend: 'cpu',
      ...over,
    });
  });
  /** metrics.json without the wall-clock / memory fields, and the saved weights. */
  const run = async (id: string, p: SpecialistJobParams): Promise<{ metrics: Record<string, unknown>; weights: Buffer }> => {
    const outDir = path.join(dir, 'jobs', id);
    await runJob({ id: 'specialist', outDir, params: p });
    const m = JSON.parse(readFileSync(path.join(outDir, 'metrics.json'), 'utf8')) as Record<string, unknown>;
    delete m.teacher_seconds;
    delete m.peak_rss_mb;
    const hist = m.history as Record<string, unknown>[];
    for (const h of hist) for (const k of Object.keys(h)) if (k.endsWith('seconds') || k === 'examples_per_s') delete h[k];
    expect(existsSync(path.join(outDir, 'model', 'weights.bin'))).toBe(true);
    return { metrics: m, weights: readFileSync(path.join(outDir, 'model', 'weights.bin')) };
  };

  for (const head of ['dustbin', 'full'] as const) {
    it(`gives the same specialist as recomputing the generalist's pass (${head} head): metrics and weights identical`, async () => {
      const before = await run(`${head}-recomputed`, params({ head, classes: head === 'full' ? [0, 1, 2] : [4, 5, 6, 7] }));
      const after = await run(`${head}-shared`, params({ head, classes: head === 'full' ? [0, 1, 2] : [4, 5, 6, 7], validLogitsFile: path.join(dir, 'shared.f32') }));
      expect(after.metrics).toEqual(before.metrics);
      expect(after.weights.equals(before.weights)).toBe(true);
      // The run is not trivial: the specialist was measured on the validation split.
      const valid = after.metrics.valid as { within_examples: number; dustbin: { natural_rate: number } };
      expect(valid.within_examples).toBeGreaterThan(0);
      expect(valid.dustbin.natural_rate).toBeGreaterThan(0);
    });
  }

  it('a logits file of another split fails the job with an ArtifactError', async () => {
    const other = path.join(dir, 'train-as-valid.f32');
    writeTeacherLogitsFile(f.generalist, f.train.x, f.train.n, DIM, other);
    await expect(runJob({ id: 'specialist', outDir: path.join(dir, 'jobs', 'bad'), params: params({ validLogitsFile: other }) })).rejects.toThrow(/expected .* rows x 12 classes/);
  });
});
