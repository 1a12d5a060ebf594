/** A generalist trained on train + valid: the stages that rely on valid say so, and the table marks it. */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { createLogger } from '../../src/util/log.ts';

const CONFIG = `
name: tiny-trained-on-valid
seed: 2
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 8, groups: 2, dim: 6, perClass: 20, seed: 3}}
  generalist: {hidden: [8], epochs: 2, batch_size: 16, train_on: train+valid, select: last, optimizer: {name: adam, lr: 0.01}}
  covariance: {}
  clusters: {k: 2}
  specialists: {epochs: 1, batch_size: 16, optimizer: {name: adam, lr: 0.005}}
  ensemble: {}
`;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('a generalist trained on train + valid', () => {
  it('trains on both splits, and covariance (split valid), specialists and ensemble warn that valid is biased', async () => {
    const out = mkdtempSync(path.join(os.tmpdir(), 'tov-'));
    const cache = mkdtempSync(path.join(os.tmpdir(), 'tov-cache-'));
    dirs.push(out, cache);
    const lines: string[] = [];
    await runPipeline(parseConfig(CONFIG, 'tiny.yaml', STAGES), { out, cacheDir: cache, log: createLogger({ write: (l) => lines.push(l) }) });
    const classes = JSON.parse(readFileSync(path.join(out, 'ingest', 'classes.json'), 'utf8')) as { rows: { train: number; valid: number } };
    const g = JSON.parse(readFileSync(path.join(out, 'generalist', 'metrics.json'), 'utf8')) as { trained_on: string; train_examples: number; best_epoch: number };
    expect(g).toMatchObject({ trained_on: 'train+valid', train_examples: classes.rows.train + classes.rows.valid, best_epoch: 2 });
    const warnings = lines.filter((l) => l.includes("warning: 'generalist' was trained on train + valid"));
    expect(warnings.some((l) => l.includes('the covariance (split: valid)'))).toBe(true);
    expect(warnings.some((l) => l.includes("the specialists' comparison with it on valid"))).toBe(true);
    expect(warnings.some((l) => l.includes('the specialist weight chosen and the metrics on valid'))).toBe(true);
    expect(warnings.every((l) => l.includes('train it with train_on: train'))).toBe(true);
  }, 60_000);
});
