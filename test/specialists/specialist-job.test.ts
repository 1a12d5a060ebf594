import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/select.ts';
import { writeSplit } from '../../src/data/split-file.ts';
import { loadModel, saveModel } from '../../src/models/io.ts';
import { predictLogits } from '../../src/models/predict.ts';
import { SPECIALIST_JOB_MODULE, type SpecialistJobParams } from '../../src/specialists/worker-specialist-job.ts';
import { DONE_MARKER, runJobPool, type Job } from '../../src/specialists/worker-pool.ts';
import { DIM, makeFixture } from './specialist-fixture.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'specialist-job-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let jobs: Job[];
beforeAll(async () => {
  await initBackend('cpu');
  const f = await makeFixture(1);
  await saveModel(f.generalist, path.join(dir, 'generalist', 'model'));
  await writeSplit(path.join(dir, 'train.arrow'), f.train);
  await writeSplit(path.join(dir, 'valid.arrow'), f.valid);
  f.generalist.dispose();
  const params = (classes: number[]): SpecialistJobParams => ({
    generalistDir: path.join(dir, 'generalist', 'model'),
    trainFile: path.join(dir, 'train.arrow'),
    validFile: path.join(dir, 'valid.arrow'),
    classes,
    head: 'dustbin',
    softWeight: 1,
    T: 2,
    correction: 'fitted',
    epochs: 2,
    batchSize: 32,
    optimizer: { name: 'adam', lr: 0.003 },
    seed: 5,
    backend: 'cpu',
  });
  jobs = [
    { id: 'specialist-0', outDir: path.join(dir, 'specialists', 'specialist-0'), params: params([0, 1, 2, 3]) },
    { id: 'specialist-1', outDir: path.join(dir, 'specialists', 'specialist-1'), params: params([4, 5, 6, 7]) },
  ];
});

describe('specialist job module', () => {
  it('trains specialists from files in 2 worker processes; a rerun skips them', async () => {
    const r = await runJobPool({ module: SPECIALIST_JOB_MODULE, jobs, workers: 2 });
    expect(r.failed).toEqual([]);
    expect([...r.completed].sort()).toEqual(['specialist-0', 'specialist-1']);
    for (const j of jobs) {
      expect(existsSync(path.join(j.outDir, DONE_MARKER))).toBe(true);
      expect(existsSync(path.join(j.outDir, 'checkpoint'))).toBe(false);
      const m = JSON.parse(readFileSync(path.join(j.outDir, 'metrics.json'), 'utf8'));
      expect(m.id).toBe(j.id);
      expect(m.history.length).toBe(2);
      expect(Math.abs(m.valid.dustbin.mean_dustbin_prob - m.valid.dustbin.natural_rate)).toBeLessThan(1e-3);
      const model = await loadModel(path.join(j.outDir, 'model'));
      expect(model.outputs[0].shape[1]).toBe(5);
      expect(predictLogits(model, new Float32Array(DIM), 1, DIM).every(Number.isFinite)).toBe(true);
      model.dispose();
    }
    const again = await runJobPool({ module: SPECIALIST_JOB_MODULE, jobs, workers: 2 });
    expect([...again.skipped].sort()).toEqual(['specialist-0', 'specialist-1']);
  });

  it('reports bad params with the job id', async () => {
    const bad: Job = { id: 'specialist-bad', outDir: path.join(dir, 'specialists', 'bad'), params: { classes: 'oops' } };
    const r = await runJobPool({ module: SPECIALIST_JOB_MODULE, jobs: [bad], workers: 1 });
    expect(r.failed.length).toBe(1);
    expect(r.failed[0].id).toBe('specialist-bad');
    expect(r.failed[0].error).toMatch(/specialist job specialist-bad: bad params/);
  });
});
