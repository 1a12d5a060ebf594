import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/select.ts';
import { writeSplit } from '../../src/data/split-file.ts';
import { saveModel } from '../../src/models/io.ts';
import { predictLogits } from '../../src/models/predict.ts';
import { DUSTBIN_CANCELLATION_GUARD, reduceTeacherCells, streamTeacherCells } from '../../src/specialists/specialist-loss.ts';
import { logitStatsFile, readLogitsFile, removeTeacherLogitsFile, teacherCellsFromLogitsFile, writeTeacherLogitsFile } from '../../src/specialists/teacher-logits-file.ts';
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
    expect(statSync(logitStatsFile(file)).size).toBe(f.valid.n * 3 * 8);
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
        const b = teacherCellsFromLogitsFile(file, f.valid.n, C, classes, { batchSize: bs });
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

  it('a row subset reads only those rows, in their order, bit-identical to the model on the same rows', () => {
    const file = path.join(dir, 'train-rows.f32');
    writeTeacherLogitsFile(f.generalist, f.train.x, f.train.n, DIM, file, 50);
    // runs of consecutive rows, a repeat, out-of-order rows, the last row
    const rows = Int32Array.from([5, 6, 7, 8, 0, 1, f.train.n - 1, 3, 3, 100, 101, 40]);
    const a = streamTeacherCells(f.generalist, f.train.x, f.train.n, DIM, [2, 9], { rows, batchSize: 50 });
    const b = teacherCellsFromLogitsFile(file, f.train.n, C, [2, 9], { rows, batchSize: 50 });
    expect(Array.from(b.cells)).toEqual(Array.from(a.cells));
    expect(Array.from(b.argmax)).toEqual(Array.from(a.argmax));
    const all = readLogitsFile(file, f.train.n, C);
    const picked = readLogitsFile(file, f.train.n, C, rows);
    rows.forEach((i, r) => expect(Array.from(picked.subarray(r * C, (r + 1) * C))).toEqual(Array.from(all.subarray(i * C, (i + 1) * C))));
    expect(() => teacherCellsFromLogitsFile(file, f.train.n, C, [2, 9], { rows: Int32Array.from([f.train.n]) })).toThrow(/row index .* outside/);
    removeTeacherLogitsFile(file);
    expect(existsSync(file) || existsSync(logitStatsFile(file))).toBe(false);
  });

  it('the dustbin cell stays exact when almost all the mass is inside the subset (no cancellation)', () => {
    // Row 0: class 0 holds all but ~1e-21 of the mass: log(total - inside) would be log(0).
    // Row 1: outside mass just above the guard (the fast path); row 2: a plain row.
    // Row 3: outside mass 1.4e-13 of the total: total - inside keeps 3 significant digits (noise).
    const Cn = 5;
    const z = Float32Array.from([50, 1, 0, -1, 2, /* */ 0, 0, -5.5, -6, -7, /* */ 0.3, -0.2, 1.1, 0.5, -2, /* */ 0, 0, -30, -30, -30]);
    const r = reduceTeacherCells(Cn, [0, 1], 4, 3, (start, b) => ({ logits: z.subarray(start * Cn, (start + b) * Cn) }));
    const lse = (v: number[]): number => {
      const m = Math.max(...v);
      return m + Math.log(v.reduce((a, x) => a + Math.exp(x - m), 0));
    };
    for (let row = 0; row < 4; row++) {
      const zr = Array.from(z.subarray(row * Cn, (row + 1) * Cn));
      expect(r.cells[row * 3]).toBe(zr[0]);
      expect(r.cells[row * 3 + 1]).toBe(zr[1]);
      const want = lse(zr.slice(2));
      expect(Math.abs(r.cells[row * 3 + 2] - want), `row ${row}`).toBeLessThan(1e-6 * Math.max(1, Math.abs(want)));
      expect(r.argmax[row]).toBe(zr.indexOf(Math.max(...zr)));
    }
    // row 1's outside fraction lies above the guard, rows 0 and 3 below: both paths were taken
    const frac = (row: number): number => {
      const zr = Array.from(z.subarray(row * Cn, (row + 1) * Cn));
      return Math.exp(lse(zr.slice(2)) - lse(zr));
    };
    expect(frac(0)).toBeLessThan(DUSTBIN_CANCELLATION_GUARD);
    expect(frac(3)).toBeLessThan(DUSTBIN_CANCELLATION_GUARD);
    expect(frac(1)).toBeGreaterThan(DUSTBIN_CANCELLATION_GUARD);
  });

  it('a missing file or one of the wrong size is an ArtifactError naming the fix', () => {
    const wrong = path.join(dir, 'wrong.f32');
    writeFileSync(wrong, new Uint8Array(12 * 4));
    expect(() => teacherCellsFromLogitsFile(wrong, f.valid.n, C, [0, 1])).toThrow(ArtifactError);
    expect(() => teacherCellsFromLogitsFile(wrong, f.valid.n, C, [0, 1])).toThrow(/holds 48 bytes, expected .*--force/);
    expect(() => readLogitsFile(wrong, f.valid.n, C)).toThrow(ArtifactError);
    expect(() => teacherCellsFromLogitsFile(path.join(dir, 'absent.f32'), f.valid.n, C, [0, 1])).toThrow(/cannot open .*--force/);
    // logits whole but statistics missing or short
    const noStats = path.join(dir, 'no-stats.f32');
    writeTeacherLogitsFile(f.generalist, f.valid.x, f.valid.n, DIM, noStats);
    writeFileSync(logitStatsFile(noStats), new Uint8Array(24));
    expect(() => teacherCellsFromLogitsFile(noStats, f.valid.n, C, [0, 1])).toThrow(/no-stats\.f32\.stats holds 24 bytes, expected .*float64 statistics.*--force/);
    rmSync(logitStatsFile(noStats));
    expect(() => teacherCellsFromLogitsFile(noStats, f.valid.n, C, [0, 1])).toThrow(/cannot open .*no-stats\.f32\.stats/);
  });
});

describe('specialist job with the shared logits files', () => {
  let params: (over: Partial<SpecialistJobParams>) => SpecialistJobParams;
  beforeAll(async () => {
    await saveModel(f.generalist, path.join(dir, 'generalist', 'model'));
    await writeSplit(path.join(dir, 'train.arrow'), f.train);
    await writeSplit(path.join(dir, 'valid.arrow'), f.valid);
    writeTeacherLogitsFile(f.generalist, f.valid.x, f.valid.n, DIM, path.join(dir, 'shared.f32'));
    writeTeacherLogitsFile(f.generalist, f.train.x, f.train.n, DIM, path.join(dir, 'shared-train.f32'));
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
    expect(m.teacher_source).toEqual({ train: p.trainLogitsFile ? 'file' : 'model', valid: p.validLogitsFile ? 'file' : 'model' });
    delete m.teacher_source;
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
      const both = await run(`${head}-shared-both`, params({ head, classes: head === 'full' ? [0, 1, 2] : [4, 5, 6, 7], validLogitsFile: path.join(dir, 'shared.f32'), trainLogitsFile: path.join(dir, 'shared-train.f32') }));
      expect(both.metrics).toEqual(before.metrics);
      expect(both.weights.equals(before.weights)).toBe(true);
      // with a sample of the outside rows the job reads only its rows from the training file
      const sampled = await run(`${head}-sampled`, params({ head, classes: head === 'full' ? [0, 1, 2] : [4, 5, 6, 7], maxOutside: 40 }));
      const sampledShared = await run(`${head}-sampled-shared`, params({ head, classes: head === 'full' ? [0, 1, 2] : [4, 5, 6, 7], maxOutside: 40, trainLogitsFile: path.join(dir, 'shared-train.f32') }));
      expect(sampledShared.metrics).toEqual(sampled.metrics);
      expect(sampledShared.weights.equals(sampled.weights)).toBe(true);
      expect(sampled.metrics.train_rows).toBeLessThan(f.train.n);
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
    await expect(runJob({ id: 'specialist', outDir: path.join(dir, 'jobs', 'bad-train'), params: params({ trainLogitsFile: path.join(dir, 'shared.f32') }) })).rejects.toThrow(/expected .* rows x 12 classes/);
  });
});
