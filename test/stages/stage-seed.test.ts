/** A train stage's own `seed`, and results' `teacher_seeds` (the teacher's recipe from other seeds). */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { silentLogger } from '../../src/util/log.ts';

const HEAD = `
name: tiny-stage-seed
seed: 4
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 6, groups: 2, dim: 5, perClass: 30, seed: 3}}
`;
const RECIPE = `hidden: [16], dropout: 0.3, epochs: 3, batch_size: 16, optimizer: {name: adam, lr: 0.02}`;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

type Reader = ((stage: string, file?: string) => Record<string, unknown>) & { text: (stage: string, file: string) => string };

async function run(extra: string): Promise<Reader> {
  const out = mkdtempSync(path.join(os.tmpdir(), 'stageseed-'));
  const cache = mkdtempSync(path.join(os.tmpdir(), 'stageseed-cache-'));
  dirs.push(out, cache);
  await runPipeline(parseConfig(HEAD + extra, 'tiny.yaml', STAGES), { out, cacheDir: cache, log: silentLogger });
  const text = (stage: string, file: string): string => readFileSync(path.join(out, stage, file), 'utf8');
  return Object.assign((stage: string, file = 'metrics.json') => JSON.parse(text(stage, file)) as Record<string, unknown>, { text });
}

describe("train stage 'seed' and results 'teacher_seeds'", () => {
  it("the run's seed given as the stage's seed trains the same model; another seed another one; results summarise the seeds", async () => {
    const read = await run(`
  a: {type: train, ${RECIPE}}
  same: {type: train, seed: 4, ${RECIPE}}
  other: {type: train, seed: 5, ${RECIPE}}
  results: {kind: mnist-paper, teacher: a, baseline: a, distilled: a, teacher_seeds: [other]}
`);
    type M = { test: { loss: number; errors: number }; seed: number };
    const a = read('a') as unknown as M;
    const same = read('same') as unknown as M;
    const other = read('other') as unknown as M;
    expect(same.test.loss).toBe(a.test.loss);
    expect(a.seed).toBe(4);
    expect(other.seed).toBe(5);
    expect(other.test.loss).not.toBe(a.test.loss);
    const r = read('results', 'results.json') as { teacher_seeds: { runs: number; errors: number[]; mean: number; min: number; max: number; other_seeds: string[] } };
    expect(r.teacher_seeds).toEqual({
      runs: 2,
      errors: [a.test.errors, other.test.errors],
      mean: (a.test.errors + other.test.errors) / 2,
      min: Math.min(a.test.errors, other.test.errors),
      max: Math.max(a.test.errors, other.test.errors),
      other_seeds: ['other'],
    });
    expect(read.text('results', 'results.md')).toContain(
      `the teacher's recipe from 2 seeds (the reported teacher, 'other'): ${a.test.errors}, ${other.test.errors} test errors`,
    );
    expect(read.text('results', 'results.md')).toMatch(/\| teacher's recipe, another seed 'other': 1x16, dropout 0\/0\.3, hard labels, no jitter, Adam, \d+ epochs, seed 5 \|/);
  }, 60_000);

  it('rejects a seed run that is not the teacher\'s recipe, or has the teacher\'s seed, saying what differs', async () => {
    await expect(run(`
  a: {type: train, ${RECIPE}}
  wider: {type: train, seed: 5, hidden: [17], dropout: 0.3, epochs: 3, batch_size: 16, optimizer: {name: adam, lr: 0.02}}
  results: {kind: mnist-paper, teacher: a, baseline: a, distilled: a, teacher_seeds: [wider]}
`)).rejects.toThrow(/results\.teacher_seeds: 'wider' differs from the teacher 'a' in model\.hidden \(\[17\] vs \[16\]\); a seed run must be the teacher's recipe with only 'seed' changed/);
    await expect(run(`
  a: {type: train, ${RECIPE}}
  same: {type: train, seed: 4, ${RECIPE}}
  results: {kind: mnist-paper, teacher: a, baseline: a, distilled: a, teacher_seeds: [same]}
`)).rejects.toThrow(/results\.teacher_seeds: 'same' trained from the same seed as the teacher 'a' \(4\); give it another 'seed'/);
  }, 60_000);
});
