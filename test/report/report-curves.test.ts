/**
 * Training curves of distilled students: the T²-scaled soft objective and the hard validation
 * loss are different quantities and get separate, labelled axes; the page title is the config's name.
 */
import { describe, it, expect, beforeEach } from 'vitest';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { collectRun, trainObjectiveOf } from '../../src/report/collect.ts';
import { trainingCurveSpec } from '../../src/report/charts.ts';
import { RUN_MARKER } from '../../src/artifacts/run-folder.ts';

let run: string;
beforeEach(() => {
  run = mkdtempSync(path.join(os.tmpdir(), 'report-curves-'));
});

function stage(name: string, type: string, files: Record<string, string>): void {
  const dir = path.join(run, name);
  mkdirSync(dir, { recursive: true });
  for (const [f, v] of Object.entries(files)) writeFileSync(path.join(dir, f), v);
  const t = new Date(Date.UTC(2024, 0, 1, 0, 0, name.length)).toISOString();
  writeFileSync(
    path.join(dir, 'manifest.json'),
    JSON.stringify({ stage: name, type, params: { hidden: [4] }, seed: 1, key: 'k', inputs: {}, code: { sha256: 'c', files: 1 }, outputs: {}, backend: { name: 'cpu', tfBackend: 'cpu', detail: 'x' }, started_at: t, ended_at: t, seconds: 1, peak_rss_mb: 1, package_version: '0.1.0', node_version: 'v20' }),
  );
}
const jsonl = (rows: object[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const epochs = (train: number, valid: number): object[] => [1, 2, 3].map((e) => ({ epoch: e, train_loss: train / e, train_accuracy: 0.5, valid_loss: valid / e, valid_accuracy: 0.5 }));
const test = { accuracy: 0.8, errors: 20, examples: 100 };

/** The y-axis titles and split filters of a training-curve spec's panels. */
function panels(spec: Record<string, unknown>): { title: string; y: string; filter: string }[] {
  return (spec.hconcat as Record<string, any>[]).map((p) => ({ title: p.title.text, y: p.encoding.y.title, filter: p.transform[0].filter }));
}

describe('distillation curves', () => {
  it('describes the training objective of soft and logit students; none for hard-label training', () => {
    expect(trainObjectiveOf({ loss: 'soft', T: 4, alpha: 0.7 })).toBe('0.7·T²·soft CE at T = 4 + 0.3·hard CE');
    expect(trainObjectiveOf({ loss: 'soft', T: 2, alpha: 1 })).toBe('T²·soft CE at T = 2');
    expect(trainObjectiveOf({ loss: 'logits', alpha: 0.9 })).toBe('0.9·logit MSE + 0.1·hard CE');
    expect(trainObjectiveOf({ loss: 'hard', T: null, alpha: null })).toBeUndefined();
    expect(trainObjectiveOf({ test })).toBeUndefined();
  });

  it('a soft-loss student gets separate charts for its objective and its validation loss; a generalist one loss axis', async () => {
    stage('generalist', 'generalist', { 'metrics.jsonl': jsonl(epochs(2, 2.1)), 'metrics.json': JSON.stringify({ test }) });
    stage('student', 'distill', { 'metrics.jsonl': jsonl(epochs(8, 2)), 'metrics.json': JSON.stringify({ test, loss: 'soft', T: 4, alpha: 0.9 }) });
    stage('hard_twin', 'distill', { 'metrics.jsonl': jsonl(epochs(2, 2)), 'metrics.json': JSON.stringify({ test, loss: 'hard', T: null, alpha: null }) });
    const data = await collectRun(run);
    const by = Object.fromEntries(data.curves.map((g) => [g.stage, g]));
    expect(by.student!.trainObjective).toBe('0.9·T²·soft CE at T = 4 + 0.1·hard CE');
    expect(by.generalist!.trainObjective).toBeUndefined();
    expect(by.hard_twin!.trainObjective).toBeUndefined();

    const student = trainingCurveSpec(by.student!) as Record<string, any>;
    expect(panels(student)).toEqual([
      { title: 'Training objective', y: 'training objective', filter: "isValid(datum.loss) && datum.split === 'train'" },
      { title: 'Validation loss', y: 'valid hard cross-entropy', filter: "isValid(datum.loss) && datum.split === 'valid'" },
      { title: 'Accuracy', y: 'accuracy', filter: 'isValid(datum.accuracy)' },
    ]);
    expect(student.hconcat[0].title.subtitle).toBe('0.9·T²·soft CE at T = 4 + 0.1·hard CE');
    expect(student.resolve.scale.y).toBe('independent');
    for (const g of [by.generalist!, by.hard_twin!]) {
      expect(panels(trainingCurveSpec(g) as Record<string, any>).map((p) => p.title)).toEqual(['Loss', 'Accuracy']);
    }
  });
});

describe('report title', () => {
  it('is the config name from the run marker, else the folder name', async () => {
    stage('generalist', 'generalist', { 'metrics.jsonl': jsonl(epochs(2, 2)), 'metrics.json': JSON.stringify({ test }) });
    expect((await collectRun(run)).title).toBe(path.basename(run));
    writeFileSync(path.join(run, RUN_MARKER), JSON.stringify({ tool: 'distill-kit', format: 1, name: 'mnist-paper', created_at: 'x', package_version: '0.1.0', origin: 'created' }));
    expect((await collectRun(run)).title).toBe('mnist-paper');
    expect((await collectRun(run, { title: 'Mine' })).title).toBe('Mine');
  });
});
