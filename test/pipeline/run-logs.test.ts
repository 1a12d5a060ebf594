/**
 * What a run prints when its output is not a terminal (a log file, CI): each epoch and each
 * summary once, the report's final path, and the report titled with the config's name.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { createLogger } from '../../src/util/log.ts';

const root = mkdtempSync(path.join(os.tmpdir(), 'run-logs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const CONFIG = `
name: my-run
seed: 2
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 6, groups: 2, dim: 4, perClass: 20, seed: 3}}
  generalist: {hidden: [8], epochs: 3, batch_size: 16}
  covariance: {}
  clusters: {k: 2}
  student: {type: distill, teacher: generalist, loss: {type: soft, T: 3, alpha: 0.8}, hidden: [8], epochs: 2, batch_size: 16}
  report: {}
`;

describe('a non-TTY logger', () => {
  it('prints a fast progress indicator once, when it is done', () => {
    const lines: string[] = [];
    const log = createLogger({ tty: false, write: (l) => lines.push(l), prefix: 's' });
    const p = log.progress('epoch 1/2', 5);
    for (let i = 0; i < 5; i++) p.tick(1, 'loss 1');
    p.done('loss 0.5');
    expect(lines).toEqual([expect.stringMatching(/^\[s\] epoch 1\/2: done 5\/5 in \d+\.\ds loss 0\.5$/)]);
  });
});

describe('a pipeline run with a line sink', () => {
  it('prints each epoch and each summary once, the report at its final path, titled with the config name', async () => {
    const lines: string[] = [];
    const out = path.join(root, 'folder-name');
    await runPipeline(parseConfig(CONFIG, 'my-run.yaml', STAGES), { out, cacheDir: path.join(root, 'cache'), log: { info: (m) => lines.push(m), warn: (m) => lines.push(`warning: ${m}`), progress: () => ({ tick() {}, done() {} }) } });
    const count = (re: RegExp): number => lines.filter((l) => re.test(l)).length;
    for (const [stage, epochs] of [['generalist', 3], ['student', 2]] as const) {
      for (let e = 1; e <= epochs; e++) {
        expect(count(new RegExp(`^\\[${stage}\\] epoch ${e}\\b`)), `${stage} epoch ${e}:\n${lines.join('\n')}`).toBe(1);
        // the one line carries loss, accuracies and throughput
        expect(lines.find((l) => l.startsWith(`[${stage}] epoch ${e}/${epochs}: done`))).toMatch(/loss \d+\.\d{4} acc \d+\.\d\d% valid acc \d+\.\d\d% \(\d+ ex\/s\)$/);
      }
    }
    expect(count(/^\[ingest\] .*\b6 classes\b/)).toBe(1);
    expect(count(/^\[clusters\] .*\b2 clusters\b/)).toBe(1);
    const report = lines.filter((l) => /^\[report\] report: /.test(l));
    expect(report).toEqual([expect.stringContaining(`report: ${path.join(out, 'report', 'index.html')} (`)]);
    expect(lines.join('\n')).not.toContain('.tmp-report');
    const html = readFileSync(path.join(out, 'report', 'index.html'), 'utf8');
    expect(html).toContain('<title>my-run: run report</title>');
    expect(html).toContain('<h1>my-run</h1>');
    expect(html).not.toContain('<title>folder-name');
  }, 60_000);
});
