/**
 * A tiny pipeline whose specialists have `head: full` (a softmax over all C classes): the ensemble
 * stage folds each one's C probabilities into its cells and combines them on the right cases.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { loadModel } from '../../src/models/io.ts';
import { readPredictions } from '../../src/artifacts/predictions.ts';
import { silentLogger } from '../../src/util/log.ts';
import { maxAbsDiff, recomputeTestQ } from './recompute-test-q.ts';

const CONFIG = `
name: tiny-full-head
seed: 11
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 12, groups: 3, dim: 8, perClass: 30, seed: 3, classSpread: 0.5}}
  generalist: {hidden: [8], epochs: 3, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  covariance: {}
  clusters: {k: 3, overlap: 1}
  specialists: {head: full, epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.005}}
  ensemble: {top_n: 2, weight: 1}
`;

const dirs: string[] = [];
const tmp = (p: string): string => {
  const d = mkdtempSync(path.join(os.tmpdir(), p));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

let out: string;
let statuses: string[];
beforeAll(async () => {
  out = tmp('full-head-');
  const r = await runPipeline(parseConfig(CONFIG, 'tiny-full-head.yaml', STAGES), { out, cacheDir: tmp('full-head-cache-'), log: silentLogger });
  statuses = r.stages.map((s) => `${s.name}:${s.status}`);
}, 60_000);

describe('ensemble stage with head: full specialists', () => {
  it('runs every stage; the specialists have C outputs', async () => {
    expect(statuses).toEqual(['ingest', 'generalist', 'covariance', 'clusters', 'specialists', 'ensemble'].map((s) => `${s}:ran`));
    const spec = JSON.parse(readFileSync(path.join(out, 'specialists', 'specialists.json'), 'utf8')) as { head: string; specialists: { id: string }[] };
    expect(spec.head).toBe('full');
    for (const s of spec.specialists) {
      const model = await loadModel(path.join(out, 'specialists', s.id, 'model'));
      expect(model.outputs[0]!.shape).toEqual([null, 12]);
      model.dispose();
    }
  });

  it('writes normalised test distributions and finite metrics', () => {
    const q = readPredictions(path.join(out, 'ensemble', 'predictions-test.arrow'), 'probabilities');
    expect(q.C).toBe(12);
    for (let r = 0; r < q.n; r++) {
      let s = 0;
      for (let i = 0; i < 12; i++) s += q.values[r * 12 + i]!;
      expect(s).toBeCloseTo(1, 5);
    }
    const m = JSON.parse(readFileSync(path.join(out, 'ensemble', 'metrics.json'), 'utf8')) as { ensemble: { accuracy: number }; generalist: { accuracy: number }; weight: number };
    expect(Number.isFinite(m.ensemble.accuracy)).toBe(true);
    expect(Number.isFinite(m.weight)).toBe(true);
  });

  it("q is the combination of each case's own generalist row and each specialist's folded output on that row", async () => {
    const r = await recomputeTestQ(out);
    expect(r.head).toBe('full');
    expect(r.labelsMatch).toBe(true);
    expect(maxAbsDiff(r.stored, r.recomputed)).toBeLessThan(1e-5);
  });
});
