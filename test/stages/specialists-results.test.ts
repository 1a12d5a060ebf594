import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { readManifest } from '../../src/artifacts/manifest.ts';
import { initBackend } from '../../src/backend/select.ts';
import { silentLogger } from '../../src/util/log.ts';

/**
 * The whole specialist route on tiny synthetic data (12 classes, MLPs, cpu), its two controls and
 * the `results` stage of `kind: specialists`: every number of results.json is the one in the stage
 * file it comes from.
 */
const CONFIG = `
name: tiny-spres
seed: 7
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 12, groups: 3, dim: 8, perClass: 50, seed: 3, classSpread: 0.5}}
  generalist:
    hidden: [8]
    epochs: 3
    batch_size: 32
    optimizer: {name: adam, lr: 0.01}
  covariance: {}
  clusters: {k: 3, overlap: 1, overlap_threshold: 0.5}
  specialists: {epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.005}}
  ensemble: {top_n: 2, train_targets: true}
  student:
    type: distill
    teacher_targets: ensemble
    hidden: [8]
    loss: {type: soft, T: 2, alpha: 0.5}
    epochs: 6
    batch_size: 32
    optimizer: {name: adam, lr: 0.01}
  student_self:
    type: distill
    teacher: generalist
    hidden: [8]
    loss: {type: soft, T: 2, alpha: 0.5}
    epochs: 6
    batch_size: 32
    optimizer: {name: adam, lr: 0.01}
  generalist_more:
    type: train
    hidden: [8]
    epochs: 5
    batch_size: 32
    optimizer: {name: adam, lr: 0.01}
  results: {kind: specialists, student_self: student_self, generalist_more: generalist_more}
`;

let out: string;
let cache: string;
beforeAll(async () => {
  out = mkdtempSync(path.join(os.tmpdir(), 'spres-'));
  cache = mkdtempSync(path.join(os.tmpdir(), 'spres-cache-'));
  await initBackend('cpu');
  await runPipeline(parseConfig(CONFIG, 'tiny-spres.yaml', STAGES), { out, cacheDir: cache, log: silentLogger });
}, 180_000);
afterAll(() => {
  for (const d of [out, cache]) rmSync(d, { recursive: true, force: true });
});

/** A stage file read back to compare with results.json (the test reads fields of several shapes). */
const json = (...p: string[]): any => JSON.parse(readFileSync(path.join(out, ...p), 'utf8'));

describe('results kind specialists, end to end', () => {
  it("results.json's numbers are those of the stage files they come from", () => {
    const r = json('results', 'results.json');
    const md = readFileSync(path.join(out, 'results', 'results.md'), 'utf8');
    const ens = json('ensemble', 'metrics.json');
    const spec = json('specialists', 'specialists.json');
    const clusters = json('clusters', 'clusters.json');
    expect(r.experiment).toBe('specialists');
    // The five models score differently on this run, so a row given another stage's numbers fails below.
    const accs = ['generalist', 'ensemble', 'student', 'student_self', 'generalist_more'].map((s) => (s === 'ensemble' ? ens.ensemble.accuracy : json(s, 'metrics.json').test.accuracy));
    expect(new Set(accs).size).toBe(5);
    expect(r.not_run).toEqual([]);
    for (const s of ['generalist', 'student', 'student_self', 'generalist_more']) {
      const m = json(s, 'metrics.json');
      const man = readManifest(path.join(out, s))!;
      expect(r.models[s], s).toMatchObject({ stage: s, test_accuracy: m.test.accuracy, test_errors: m.test.errors, valid_accuracy: m.valid.accuracy, seconds: man.seconds, peak_rss_mb: man.stage_peak_rss_mb });
    }
    const ensMan = readManifest(path.join(out, 'ensemble'))!;
    expect(r.models.ensemble).toMatchObject({ test_accuracy: ens.ensemble.accuracy, test_errors: ens.examples - ens.ensemble.correct, valid_accuracy: ens.valid.ensemble.accuracy, weight: ens.weight, weight_table: ens.weight_table, seconds: ensMan.seconds, peak_rss_mb: ensMan.stage_peak_rss_mb });
    // the ensemble scored the same generalist on the same test cases
    expect(r.models.ensemble.generalist_test_accuracy).toBe(r.models.generalist.test_accuracy);
    const specMan = readManifest(path.join(out, 'specialists'))!;
    expect(r.models.specialists).toMatchObject({ count: spec.specialists.length, seconds: specMan.seconds, peak_rss_mb: specMan.stage_peak_rss_mb, job_peak_rss_mb: specMan.summary!.max_job_peak_rss_mb });
    expect(r.coverage).toEqual(ens.by_membership.filter((x: { examples: number }) => x.examples > 0));
    expect(r.coverage.reduce((a: number, x: { examples: number }) => a + x.examples, 0)).toBe(ens.examples);
    expect(r.clusters).toMatchObject({ k: clusters.k, size_min: Math.min(...clusters.clusters.map((c: { size: number }) => c.size)), size_max: Math.max(...clusters.clusters.map((c: { size: number }) => c.size)), classes_per_coverage: clusters.classes_per_coverage });

    // per specialist: the numbers of specialists.json, gain = specialist - generalist in its own subset
    expect(r.specialists.per_specialist).toHaveLength(spec.specialists.length);
    spec.specialists.forEach((s: Record<string, number | string>, k: number) => {
      const p = r.specialists.per_specialist[k];
      expect(p).toMatchObject({ id: s.id, size: s.size, within_examples: s.within_examples, specialist_accuracy_within: s.specialist_accuracy_within, generalist_accuracy_within: s.generalist_accuracy_within, mean_dustbin_prob: s.mean_dustbin_prob, natural_rate: s.natural_rate });
      expect(p.gain).toBeCloseTo((s.specialist_accuracy_within as number) - (s.generalist_accuracy_within as number), 12);
    });
    const within = spec.specialists.reduce((a: number, s: { within_examples: number }) => a + s.within_examples, 0);
    const pooled = spec.specialists.reduce((a: number, s: { within_examples: number; specialist_accuracy_within: number }) => a + s.within_examples * s.specialist_accuracy_within, 0) / within;
    expect(r.targets.a.examples).toBe(within);
    expect(r.targets.a.specialists_accuracy).toBeCloseTo(pooled, 12);
    expect(r.targets.a.beat).toBe(spec.specialists.filter((s: { specialist_accuracy_within: number; generalist_accuracy_within: number }) => s.specialist_accuracy_within > s.generalist_accuracy_within).length);

    // the targets from the rows
    const gen = r.models.generalist.test_accuracy;
    const gain = ens.ensemble.accuracy - gen;
    expect(r.targets.b).toMatchObject({ met: gain >= 0.01 - 1e-9, ensemble_accuracy: ens.ensemble.accuracy, generalist_accuracy: gen });
    const sGain = r.models.student.test_accuracy - r.models.student_self.test_accuracy;
    expect(r.targets.d.student_gain).toBeCloseTo(sGain, 12);
    expect(r.targets.d.ensemble_gain).toBeCloseTo(gain, 12);
    expect(r.targets.d.met).toBe(gain > 0 && sGain >= 0.5 * gain - 1e-9);
    if (gain > 0) expect(r.targets.d.ratio).toBeCloseTo(sGain / gain, 12);
    else expect(r.targets.d.ratio).toBeNull();

    // the specialist route's time: the three stages' manifest seconds
    const studentMan = readManifest(path.join(out, 'student'))!;
    expect(r.compute.route_seconds).toBeCloseTo(specMan.seconds + ensMan.seconds + studentMan.seconds, 9);
    expect(r.compute.generalist_more_seconds).toBe(readManifest(path.join(out, 'generalist_more'))!.seconds);

    // the markdown carries the same numbers
    expect(md).toContain(`| ensemble 'ensemble' (generalist + specialists, weight ${ens.weight}) | ${(100 * ens.ensemble.accuracy).toFixed(2)}% | ${ens.examples - ens.ensemble.correct} |`);
    expect(md).toMatch(/- \(a\) .*\*\*(met|not met)\*\*/);
    expect(md).toMatch(/- \(b\) .*\*\*(met|not met)\*\*/);
    expect(md).toMatch(/- \(d\) .*\*\*(met|not met)\*\*/);
    expect(md).toContain("control 'student_self'");
    expect(md).toContain("control 'generalist_more'");
  });
});

describe('specialists stage: the shared training logits', () => {
  it('per-job and shared training logits give byte-identical specialists; no logits file is left behind', async () => {
    const out2 = mkdtempSync(path.join(os.tmpdir(), 'spres-perjob-'));
    try {
      const perJob = CONFIG.replace('specialists: {epochs: 2,', 'specialists: {train_logits: per-job, epochs: 2,');
      expect(perJob).not.toBe(CONFIG);
      const r = await runPipeline(parseConfig(perJob, 'tiny-spres.yaml', STAGES), { out: out2, cacheDir: cache, log: silentLogger, only: ['ingest', 'generalist', 'covariance', 'clusters', 'specialists'] });
      expect(r.stages.find((s) => s.name === 'specialists')?.status).toBe('ran');
      const ids = (json('specialists', 'specialists.json').specialists as { id: string }[]).map((s) => s.id);
      expect(ids.length).toBeGreaterThan(1);
      for (const id of ids) {
        expect(json('specialists', id, 'metrics.json').teacher_source, id).toEqual({ train: 'file', valid: 'file' });
        expect(JSON.parse(readFileSync(path.join(out2, 'specialists', id, 'metrics.json'), 'utf8')).teacher_source, id).toEqual({ train: 'model', valid: 'file' });
        const a = readFileSync(path.join(out, 'specialists', id, 'model', 'weights.bin'));
        const b = readFileSync(path.join(out2, 'specialists', id, 'model', 'weights.bin'));
        expect(b.equals(a), id).toBe(true);
      }
      for (const d of [out, out2]) expect(readdirSync(d, { recursive: true }).map(String).filter((f) => f.endsWith('.f32') || f.endsWith('.f32.stats'))).toEqual([]);
    } finally {
      rmSync(out2, { recursive: true, force: true });
    }
  }, 120_000);
});
