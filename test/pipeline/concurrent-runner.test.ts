import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { runPipelineConcurrently } from '../../pipeline/concurrent-runner.ts';
import { configFingerprint, startStageProcess } from '../../pipeline/stage-process.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { readManifest, type Manifest } from '../../src/artifacts/manifest.ts';
import { UserError } from '../../src/util/errors.ts';
import { createLogger, silentLogger } from '../../src/util/log.ts';

/**
 * A chain (ingest -> generalist -> covariance -> clusters) and a longer stage beside it ('other');
 * the generalist takes a few seconds, so its run and other's overlap whatever their processes'
 * start-up times.
 */
const CONFIG = `
name: concurrent
seed: 7
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 12, groups: 3, dim: 8, perClass: 30, seed: 3, classSpread: 0.5}}
  generalist:
    hidden: [8]
    epochs: 40
    batch_size: 4
    optimizer: {name: adam, lr: 0.01}
  covariance: {}
  clusters: {k: 3}
  other:
    type: train
    hidden: [16]
    epochs: 120
    batch_size: 4
    optimizer: {name: adam, lr: 0.01}
`;

let dir: string;
let file: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'concurrent-'));
  file = path.join(dir, 'concurrent.yaml');
  writeFileSync(file, CONFIG);
});

const manifest = (run: string, stage: string): Manifest => readManifest(path.join(run, stage))!;
const interval = (m: Manifest): [number, number] => [Date.parse(m.started_at), Date.parse(m.ended_at)];

describe('concurrent stages (--workers N --concurrent-stages)', () => {
  it('runs a stage beside the chain it does not read, with the outputs a sequential run writes', async () => {
    const out = path.join(dir, 'par');
    const r = await runPipelineConcurrently(loadConfig(file, STAGES), { out, cacheDir: path.join(dir, 'cache'), workers: 2, log: silentLogger });
    expect(r.stages.map((s) => s.name).sort()).toEqual(['clusters', 'covariance', 'generalist', 'ingest', 'other']);
    expect(r.stages.every((s) => s.status === 'ran')).toBe(true);
    // 'other' started after ingest and ran while the generalist, which only ingest also precedes, ran.
    const [os0, oe] = interval(manifest(out, 'other'));
    const [gs, ge] = interval(manifest(out, 'generalist'));
    expect(os0).toBeGreaterThanOrEqual(interval(manifest(out, 'ingest'))[1]);
    expect(os0 < ge && gs < oe).toBe(true);
    // The same rules as the sequential runner: the same outputs byte for byte (cpu backend).
    const seq = path.join(dir, 'seq');
    await runPipeline(parseConfig(CONFIG, file, STAGES), { out: seq, cacheDir: path.join(dir, 'cache'), log: silentLogger });
    for (const s of ['ingest', 'generalist', 'covariance', 'clusters', 'other']) {
      expect(manifest(out, s).outputs, s).toEqual(manifest(seq, s).outputs);
      expect(manifest(out, s).key, s).toBe(manifest(seq, s).key);
    }
    // A second run finds every stage unchanged.
    const again = await runPipelineConcurrently(loadConfig(file, STAGES), { out, cacheDir: path.join(dir, 'cache'), workers: 2, log: silentLogger });
    expect(again.stages.map((s) => s.status)).toEqual(again.stages.map(() => 'skipped'));
  }, 120_000);

  it('a failing stage stops new stages; the one running beside it finishes; its error keeps its kind', async () => {
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, `${CONFIG}  imported:\n    type: import\n    from: ${path.join(dir, 'no-such-model', 'model.json')}\n`);
    const out = path.join(dir, 'failing');
    const lines: string[] = [];
    const log = createLogger({ tty: false, write: (l) => lines.push(l) });
    const err = await runPipelineConcurrently(loadConfig(bad, STAGES), { out, cacheDir: path.join(dir, 'cache'), workers: 2, log }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).kind).toBe('data');
    expect((err as Error).message).toMatch(/stage 'imported': input file .*no-such-model.* does not exist/);
    // ingest (most downstream stages) and 'imported' started together, the only two ready stages:
    // ingest, running when 'imported' failed, finished; no stage started after the failure.
    expect(existsSync(path.join(out, 'ingest', 'manifest.json'))).toBe(true);
    expect(existsSync(path.join(out, 'imported'))).toBe(false);
    const failedAt = lines.findIndex((l) => l.startsWith('imported: failed'));
    expect(failedAt).toBeGreaterThanOrEqual(0);
    expect(lines.slice(failedAt).filter((l) => /^\w+: starting/.test(l))).toEqual([]);
    // Every stage started before the failure finished.
    for (const l of lines.slice(0, failedAt).filter((x) => /^\w+: starting/.test(x))) {
      const s = l.split(':')[0]!;
      if (s !== 'imported') expect(existsSync(path.join(out, s, 'manifest.json')), s).toBe(true);
    }
    expect(readdirSync(out).filter((f) => f.startsWith('.tmp-'))).toEqual([]);
  }, 60_000);

  it('a stage process refuses a config file that changed after the run was planned', async () => {
    const config = loadConfig(file, STAGES);
    const changed = parseConfig(CONFIG.replace('epochs: 40', 'epochs: 41'), file, STAGES);
    expect(configFingerprint(changed)).not.toBe(configFingerprint(config));
    const proc = startStageProcess(
      { configFile: file, fingerprint: configFingerprint(changed), stage: 'generalist', out: path.join(dir, 'par'), cacheDir: path.join(dir, 'cache'), force: true, workers: 1 },
      process.env,
      silentLogger,
    );
    const reply = await proc.done;
    expect(reply).toMatchObject({ ok: false, kind: 'config' });
    expect(reply.ok ? '' : reply.error).toMatch(/changed after this run started/);
    // Nothing was rerun: the generalist's manifest is the first run's.
    expect(manifest(path.join(dir, 'par'), 'generalist').key).toBe(manifest(path.join(dir, 'seq'), 'generalist').key);
  }, 60_000);

  it('needs --workers 2 or more', async () => {
    await expect(runPipelineConcurrently(loadConfig(file, STAGES), { out: path.join(dir, 'one'), workers: 1, log: silentLogger })).rejects.toThrow(/--workers 2 or more/);
    expect(existsSync(path.join(dir, 'one'))).toBe(false);
  });
});
