import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { silentLogger } from '../../src/util/log.ts';
import { initBackend } from '../../src/backend/select.ts';

/**
 * The report stage without a `stages:` list shows every stage above it that has run: `--only
 * report` on a folder where some stages never ran writes the page (naming none of them as
 * missing inputs), and the page is rebuilt once they have run. With a list, those stages are
 * required.
 */
const CONFIG = (stages = '{}'): string => `
name: tiny-report
seed: 5
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 6, groups: 2, dim: 4, perClass: 12, seed: 2}}
  first:
    type: train
    hidden: [4]
    epochs: 1
    batch_size: 16
    optimizer: {name: adam, lr: 0.01}
  second:
    type: train
    hidden: [6]
    epochs: 1
    batch_size: 16
    optimizer: {name: adam, lr: 0.01}
  report: ${stages}
`;

let out: string;
let cache: string;
beforeAll(async () => {
  out = mkdtempSync(path.join(os.tmpdir(), 'report-stage-'));
  cache = mkdtempSync(path.join(os.tmpdir(), 'report-stage-cache-'));
  await initBackend('cpu');
});
afterAll(() => {
  for (const d of [out, cache]) rmSync(d, { recursive: true, force: true });
});

const run = (only: string, stages?: string, log = silentLogger) => runPipeline(parseConfig(CONFIG(stages), 'tiny-report.yaml', STAGES), { out, cacheDir: cache, log, only: only.split(',') });
const manifest = (): { inputs: Record<string, string> } => JSON.parse(readFileSync(path.join(out, 'report', 'manifest.json'), 'utf8'));

describe('report stage', () => {
  it('--only report shows the stages that have run and is rebuilt once the others have', async () => {
    await run('ingest,first');
    const lines: string[] = [];
    await run('report', undefined, { ...silentLogger, info: (m: string) => lines.push(m) });
    expect(manifest().inputs).toMatchObject({ second: 'absent' });
    expect(manifest().inputs.first).toMatch(/^[0-9a-f]{64}$/);
    expect(lines.join('\n')).toMatch(/report: 'second' has not run in .*: left out/);
    const page = readFileSync(path.join(out, 'report', 'index.html'), 'utf8');
    expect(page).toContain('first');
    expect(page).not.toMatch(/>second</);
    await run('second');
    await run('report');
    expect(manifest().inputs.second).toMatch(/^[0-9a-f]{64}$/);
    expect(readFileSync(path.join(out, 'report', 'index.html'), 'utf8')).toMatch(/>second</);
  }, 60_000);

  it('with a stages list, those stages must have run', async () => {
    rmSync(out, { recursive: true, force: true });
    await run('ingest,first');
    await expect(run('report', '{stages: [first, second]}')).rejects.toThrow(/stage 'report' needs the outputs of 'second', which has not run/);
    await run('report', '{stages: [first]}');
    expect(Object.keys(manifest().inputs)).toEqual(['first']);
  }, 60_000);
});
