import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../../pipeline/runner.ts';

/**
 * Bounded memory of the ensemble stage (issue #23): its peak RSS does not grow with the number of
 * cases. Two runs differ only in the test split, 2,000 vs 80,000 rows of 200 classes (8 and 313
 * blocks of 256 rows: the block arrays are the same size in both); the
 * ensemble runs alone in its own CLI process (`--only ensemble`) and its `stage_peak_rss_mb` is
 * read from its manifest.
 *
 * Why the bound holds: the ensemble reads the split and the generalist's cached logits in blocks
 * of `block_rows` rows, solves, scores and writes each block before the next (one block's
 * block_rows x C arrays at a time). The earlier whole-split code held the n x C logits, their
 * softmax, the solution q and the predictions file's bytes: going from 2,000 to 80,000 rows added
 * 78,000 x 200 x 4 bytes = 60 MB per such array, some 300 MB in all. Measured on 2026-12-02 with
 * 40,000 rows: 225 -> 252 MiB, garbage not yet collected (the per-case allocations of a block). The limit, one such
 * array, leaves room for garbage not yet collected and fails for anything that holds the
 * split's n x C values even once.
 */

const CLASSES = 200;
const SIZES = { small: 10, large: 400 } as const; // test rows per class
type Size = keyof typeof SIZES;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ens-memory-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function config(size: Size): string {
  const file = path.join(dir, `${size}.yaml`);
  writeFileSync(
    file,
    `name: ens-memory-${size}
seed: 1
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: ${CLASSES}, groups: 4, dim: 8, perClass: 5, validPerClass: 2, testPerClass: ${SIZES[size]}, seed: 3}}
  generalist: {hidden: [8], epochs: 1, batch_size: 256, optimizer: {name: adam, lr: 0.01}}
  covariance: {split: valid}
  clusters: {k: 2, iterations: 1}
  specialists: {epochs: 1, batch_size: 256, max_outside: 200, optimizer: {name: adam, lr: 0.01}}
  ensemble: {weight: 1, max_iterations: 20, block_rows: 256}
`,
  );
  return file;
}

function runCli(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'pipeline', 'cli.ts'), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

async function measure(size: Size): Promise<{ mb: number; seconds: number; examples: number }> {
  const out = path.join(dir, `run-${size}`);
  const head = await runCli(['--config', config(size), '--out', out, '--only', 'ingest,generalist,covariance,clusters,specialists']);
  expect(head.code, head.output).toBe(0);
  const ens = await runCli(['--config', config(size), '--out', out, '--only', 'ensemble']);
  expect(ens.code, ens.output).toBe(0);
  const m = JSON.parse(readFileSync(path.join(out, 'ensemble', 'manifest.json'), 'utf8')) as { stage_peak_rss_mb: number; seconds: number };
  const metrics = JSON.parse(readFileSync(path.join(out, 'ensemble', 'metrics.json'), 'utf8')) as { examples: number };
  return { mb: m.stage_peak_rss_mb, seconds: m.seconds, examples: metrics.examples };
}

describe('memory of the ensemble does not grow with the cases', () => {
  it('2,000 -> 80,000 test cases of 200 classes: the stage peak grows by less than one n x C array', async () => {
    const [small, large] = await Promise.all([measure('small'), measure('large')]);
    expect([small.examples, large.examples]).toEqual([CLASSES * SIZES.small, CLASSES * SIZES.large]);
    const extraArrayMb = ((large.examples - small.examples) * CLASSES * 4) / 2 ** 20; // 59.5 MB
    const report = { small, large, extraArrayMb: +extraArrayMb.toFixed(1) };
    console.log(`ensemble memory: ${JSON.stringify(report)}`);
    expect(large.mb - small.mb, JSON.stringify(report)).toBeLessThan(extraArrayMb);
  }, 600_000);
});
