import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/select.ts';
import { readSplit, writeSplit } from '../../src/data/split-file.ts';
import { loadModel, saveModel } from '../../src/models/io.ts';
import { predictLogits } from '../../src/models/predict.ts';
import { SPECIALIST_JOB_MODULE, runJob, type SpecialistJobParams } from '../../src/specialists/worker-specialist-job.ts';
import type { SpecialistMetrics } from '../../src/specialists/specialist-train.ts';
import { DONE_MARKER, runJobPool, type Job } from '../../src/specialists/worker-pool.ts';
import { DIM, makeFixture } from './specialist-fixture.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'specialist-job-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let jobs: Job[];
let params: (classes: number[]) => SpecialistJobParams;
beforeAll(async () => {
  await initBackend('cpu');
  const f = await makeFixture(1);
  await saveModel(f.generalist, path.join(dir, 'generalist', 'model'));
  await writeSplit(path.join(dir, 'train.arrow'), f.train);
  await writeSplit(path.join(dir, 'valid.arrow'), f.valid);
  f.generalist.dispose();
  params = (classes: number[]): SpecialistJobParams => ({
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

describe('specialist job: cell targets and outside subsampling (in process)', () => {
  type JobMetrics = SpecialistMetrics & { id: string; train_rows: number; teacher_targets: string; peak_rss_mb: number };
  const run = async (id: string, over: Partial<SpecialistJobParams>): Promise<JobMetrics> => {
    const outDir = path.join(dir, 'in-process', id);
    await runJob({ id, outDir, params: { ...params([0, 1, 2, 3]), ...over } });
    expect(existsSync(path.join(outDir, 'checkpoint'))).toBe(false);
    return JSON.parse(readFileSync(path.join(outDir, 'metrics.json'), 'utf8')) as JobMetrics;
  };

  it("streamed cells (the dustbin default) give the same specialist as the full logits", async () => {
    const full = await run('full', { teacherTargets: 'full' });
    const cells = await run('cells', { predictBatch: 256 });
    expect(full.teacher_targets).toBe('full');
    expect(cells.teacher_targets).toBe('cells');
    expect(cells.train_rows).toBe(2800);
    expect(cells.peak_rss_mb).toBeGreaterThan(0);
    const a = full.valid;
    const b = cells.valid;
    expect(b.within_examples).toBe(a.within_examples);
    expect(b.specialist_accuracy_within).toBe(a.specialist_accuracy_within);
    expect(b.generalist_accuracy_within).toBe(a.generalist_accuracy_within);
    expect(b.generalist_accuracy_within_full).toBe(a.generalist_accuracy_within_full);
    expect(b.dustbin.offset).toBeCloseTo(a.dustbin.offset, 4);
    expect(b.dustbin.mean_dustbin_prob).toBeCloseTo(a.dustbin.mean_dustbin_prob, 6);
    expect(b.dustbin.special_vs_rest.generalist_auc).toBeCloseTo(a.dustbin.special_vs_rest.generalist_auc, 6);
    cells.history.forEach((h, e) => expect(h.train_loss).toBeCloseTo(full.history[e].train_loss, 4));
  });

  it('maxOutside: all special rows plus maxOutside outside rows; natural rate unchanged', async () => {
    const labels = (await readSplit(path.join(dir, 'train.arrow'))).y;
    const nSpecial = Array.from(labels).filter((c) => c < 4).length;
    const m = await run('max-outside', { maxOutside: 500 });
    expect(m.train_rows).toBe(nSpecial + 500);
    const all = await run('all-rows', {});
    expect(m.valid.dustbin.natural_rate).toBe(all.valid.dustbin.natural_rate);
    expect(m.valid.dustbin.log_oversampling).toBe(all.valid.dustbin.log_oversampling);
    expect(Math.abs(m.valid.dustbin.mean_dustbin_prob - m.valid.dustbin.natural_rate)).toBeLessThan(1e-3);
  });

  it("rejects teacherTargets 'cells' for the full head", async () => {
    await expect(runJob({ id: 'bad-cells', outDir: path.join(dir, 'in-process', 'bad'), params: { ...params([0, 1]), head: 'full', teacherTargets: 'cells' } })).rejects.toThrow(/needs head 'dustbin'/);
  });
});

