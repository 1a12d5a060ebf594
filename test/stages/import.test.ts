import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { silentLogger } from '../../src/util/log.ts';

const cache = mkdtempSync(path.join(os.tmpdir(), 'import-cache-'));
const source = `
seed: 2
backend: cpu
stages:
  ingest: {dataset: {recipe: synthetic, options: {classes: 4, groups: 2, dim: 4, perClass: 10, seed: 1}}}
  generalist: {hidden: [4], epochs: 1, batch_size: 8}
`;

describe('import stage', () => {
  it('copies a finished stage of another run, and refuses a modified one', async () => {
    const a = mkdtempSync(path.join(os.tmpdir(), 'run-a-'));
    await runPipeline(parseConfig(source, 'a.yaml', STAGES), { out: a, cacheDir: cache, log: silentLogger });
    const b = mkdtempSync(path.join(os.tmpdir(), 'run-b-'));
    const using = `backend: cpu\nstages:\n  teacher: {type: import, from: ${path.join(a, 'generalist')}}\n`;
    const r = await runPipeline(parseConfig(using, 'b.yaml', STAGES), { out: b, cacheDir: cache, log: silentLogger });
    expect(r.stages[0]!.status).toBe('ran');
    for (const f of ['model/model.json', 'model/weights.bin', 'metrics.json']) {
      expect(readFileSync(path.join(b, 'teacher', f))).toEqual(readFileSync(path.join(a, 'generalist', f)));
    }
    const again = await runPipeline(parseConfig(using, 'b.yaml', STAGES), { out: b, cacheDir: cache, log: silentLogger });
    expect(again.stages[0]!.status).toBe('skipped');
    writeFileSync(path.join(a, 'generalist', 'metrics.json'), '{}');
    const c = mkdtempSync(path.join(os.tmpdir(), 'run-c-'));
    await expect(runPipeline(parseConfig(using, 'c.yaml', STAGES), { out: c, cacheDir: cache, log: silentLogger })).rejects.toThrow(/metrics\.json is missing or differs from its manifest/);
  });

  it('names the missing source and what to run', async () => {
    const c = mkdtempSync(path.join(os.tmpdir(), 'run-c-'));
    const cfg = `backend: cpu\nstages:\n  teacher: {type: import, from: ${path.join(c, 'nope')}}\n`;
    await expect(runPipeline(parseConfig(cfg, 'c.yaml', STAGES), { out: c, cacheDir: cache, log: silentLogger })).rejects.toThrow(/input file .*nope\/manifest\.json does not exist/);
  });
});
