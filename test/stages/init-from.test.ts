/** `init_from`: a train stage continues an earlier stage's model; bad sources fail clearly. */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { silentLogger } from '../../src/util/log.ts';

const HEAD = `
name: tiny-init-from
seed: 4
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 6, groups: 2, dim: 5, perClass: 30, seed: 3}}
  teacher: {type: train, hidden: [16], epochs: 8, batch_size: 16, optimizer: {name: adam, lr: 0.02}}
`;
// lr 1e-9: one epoch cannot move the weights measurably, so the metrics show where training started
const STILL = `epochs: 1, batch_size: 16, select: last, optimizer: {name: sgd, lr: 1.0e-9, momentum: 0}`;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function run(extra: string): Promise<(stage: string) => { test: { loss: number; accuracy: number } }> {
  const out = mkdtempSync(path.join(os.tmpdir(), 'initfrom-'));
  const cache = mkdtempSync(path.join(os.tmpdir(), 'initfrom-cache-'));
  dirs.push(out, cache);
  await runPipeline(parseConfig(HEAD + extra, 'tiny.yaml', STAGES), { out, cacheDir: cache, log: silentLogger });
  return (stage) => JSON.parse(readFileSync(path.join(out, stage, 'metrics.json'), 'utf8'));
}

describe('train stage init_from', () => {
  it("starts from the named stage's model, not from a fresh initialisation", async () => {
    const metrics = await run(`
  cont: {type: train, init_from: teacher, hidden: [16], ${STILL}}
  fresh: {type: train, hidden: [16], ${STILL}}
`);
    const t = metrics('teacher').test;
    expect(metrics('cont').test.loss).toBeCloseTo(t.loss, 5);
    expect(metrics('cont').test.accuracy).toBe(t.accuracy);
    expect(Math.abs(metrics('fresh').test.loss - t.loss)).toBeGreaterThan(0.1);
  }, 60_000);

  it('rejects another architecture and a stage without a model, saying how to fix it', async () => {
    await expect(run(`  cont: {type: train, init_from: teacher, hidden: [17], ${STILL}}\n`)).rejects.toThrow(
      /cont\.init_from 'teacher': its model's weights \[5, 16\].* do not match the model this stage builds \[5, 17\].*same model: \(architecture and widths\)/,
    );
    await expect(run(`  cont: {type: train, init_from: ingest, hidden: [16], ${STILL}}\n`)).rejects.toThrow(
      /cont\.init_from 'ingest': that stage wrote no model .*name a train, generalist, distill or model stage/,
    );
  }, 60_000);
});
