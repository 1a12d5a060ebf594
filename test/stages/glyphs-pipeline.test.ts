import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, parseConfig } from '../../pipeline/config.ts';
import { runPipeline, REPO_ROOT } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { silentLogger } from '../../src/util/log.ts';
import { loadPredictor } from '../../src/predict/predictor.ts';
import { predictFile } from '../../src/predict/predict-file.ts';

/**
 * The specialist pipeline on real characters: 24 GB2312 glyphs at 16 x 16 rendered by the glyphs
 * recipe, a CNN generalist, covariance, clusters, specialists copied from the CNN, the ensemble and
 * a CNN student distilled back; the shipped glyphs configs load.
 */
const CONFIG = `
name: tiny-glyphs
seed: 3
backend: auto                    # wasm-blas (native convolutions) where OpenBLAS is installed, as in CI
stages:
  ingest:
    dataset: {recipe: glyphs, options: {classes: 24, perClass: 12, validPerClass: 4, testPerClass: 4, size: 16, seed: 2}}
  generalist:
    model: {type: cnn, conv: [{filters: 6, kernel: 3, pool: 2}], dense: [32], dropout: 0.1}
    epochs: 10
    batch_size: 32
    optimizer: {name: adam, lr: 0.01}
  covariance: {}
  clusters: {k: 4, overlap: 1}
  specialists: {epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.003}}
  ensemble: {top_n: 2, train_targets: true}
  student:
    type: distill
    teacher_targets: ensemble
    model: {type: cnn, conv: [{filters: 6, kernel: 3, pool: 2}], dense: [32], dropout: 0.1}
    loss: {type: soft, T: 2, alpha: 0.7}
    epochs: 8
    batch_size: 32
    optimizer: {name: adam, lr: 0.01}
`;

let out: string;
let cache: string;
beforeAll(() => {
  out = mkdtempSync(path.join(os.tmpdir(), 'glyphs-run-'));
  cache = mkdtempSync(path.join(os.tmpdir(), 'glyphs-cache-'));
});
afterAll(() => {
  rmSync(out, { recursive: true, force: true });
  rmSync(cache, { recursive: true, force: true });
});

const json = (f: string): Record<string, unknown> => JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;

describe('glyphs through every stage', () => {
  it('runs with a CNN generalist, CNN specialists and a CNN student; predict reproduces the ensemble', async () => {
    const r = await runPipeline(parseConfig(CONFIG, 'tiny-glyphs.yaml', STAGES), { out, cacheDir: cache, log: silentLogger });
    expect(r.stages.map((s) => `${s.name}:${s.status}`)).toEqual(['ingest', 'generalist', 'covariance', 'clusters', 'specialists', 'ensemble', 'student'].map((s) => `${s}:ran`));
    const classes = json(path.join(out, 'ingest', 'classes.json')) as { classes: { name: string }[]; shape: number[] };
    expect(classes.shape).toEqual([16, 16, 1]);
    expect(classes.classes.map((c) => c.name)).toContain('啊');
    const gen = json(path.join(out, 'generalist', 'metrics.json')) as { test: { accuracy: number } };
    // 24 characters: chance is 4%; a CNN that learned something is far above it
    expect(gen.test.accuracy).toBeGreaterThan(0.2);
    const spec = json(path.join(out, 'specialists', 'specialists.json')) as { specialists: unknown[] };
    expect(spec.specialists).toHaveLength(4);
    const ens = json(path.join(out, 'ensemble', 'metrics.json')) as { ensemble: { accuracy: number }; by_membership: unknown[] };
    expect(ens.by_membership.length).toBeGreaterThan(0);
    const p = await loadPredictor(path.join(out, 'ensemble'));
    try {
      const pr = await predictFile(p, { input: path.join(out, 'ingest', 'test.arrow') });
      expect(pr.accuracy).toBe(ens.ensemble.accuracy);
    } finally {
      p.dispose();
    }
    expect((json(path.join(out, 'student', 'metrics.json')) as { test: { accuracy: number } }).test.accuracy).toBeGreaterThan(0.1);
  }, 180_000);

  it('the shipped glyphs configs load', () => {
    for (const name of ['glyphs-1k', 'glyphs-1k-24', 'glyphs-1k-narrow', 'glyphs-1k-16', 'glyphs-1k-tiny16', 'glyphs-1k-tiny16-300', 'glyphs-1k-tiny16-font', 'glyphs-1k-tiny16-degraded', 'glyphs-3755', 'glyphs-6763']) {
      const c = loadConfig(path.join(REPO_ROOT, 'pipeline', 'configs', `${name}.yaml`), STAGES);
      expect(c.name).toBe(name);
      expect(c.stages.map((s) => s.name)).toEqual(expect.arrayContaining(['ingest', 'generalist', 'covariance', 'clusters', 'specialists', 'ensemble', 'student', 'student_self', 'generalist_more']));
      // the results table of the specialist route, its controls included, just before the report
      expect(c.stages.slice(-2).map((s) => s.name)).toEqual(['results', 'report']);
      expect(c.stages.at(-2)!.params).toMatchObject({ kind: 'specialists', student: 'student', student_self: 'student_self', generalist_more: 'generalist_more' });
    }
  });
});
