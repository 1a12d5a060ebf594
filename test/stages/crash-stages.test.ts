/**
 * SIGKILL at the failpoints of covariance, clusters, distill (while writing the teacher logits,
 * and between epochs) and report (src/util/failpoint.ts), one after another in one run folder:
 * each rerun resumes, and the last one ends with the output hashes of an uninterrupted run.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync, existsSync, cpSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../../pipeline/runner.ts';
import { FAILPOINT_ENV } from '../../src/util/failpoint.ts';

const CONFIG = `
name: crash-stages
seed: 7
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 6, groups: 2, dim: 6, perClass: 30, seed: 4, classSpread: 0.5}}
  generalist: {hidden: [8], epochs: 3, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  covariance: {}
  clusters: {k: 2}
  distill:
    teacher: [generalist]
    loss: {type: soft, T: 2}
    hidden: [6]
    epochs: 4
    batch_size: 16
    optimizer: {name: adam, lr: 0.01}
  report: {}
`;

const dir = mkdtempSync(path.join(os.tmpdir(), 'crash-stages-'));
const configFile = path.join(dir, 'crash-stages.yaml');
writeFileSync(configFile, CONFIG);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** Runs the pipeline CLI on `out`; with `failpoint`, the process kills itself there. */
function runCli(out: string, failpoint?: string): Promise<Run> {
  const env = { ...process.env };
  delete env[FAILPOINT_ENV];
  if (failpoint) env[FAILPOINT_ENV] = failpoint;
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'pipeline', 'cli.ts'), '--config', configFile, '--out', out], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr.on('data', (b: Buffer) => (output += b.toString()));
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, output })));
}

/** sha256 of every output of every stage, from the manifests. */
function outputs(run: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const s of readdirSync(run)) {
    const m = path.join(run, s, 'manifest.json');
    if (existsSync(m)) out[s] = (JSON.parse(readFileSync(m, 'utf8')) as { outputs: Record<string, string> }).outputs;
  }
  return out;
}

/** Temp and leftover entries anywhere below a run folder. */
function leftovers(run: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(run, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (/^\.(tmp-|scratch-|old-|lock-|read-)|\.tmp-\d+-[0-9a-f]{8}$|^\.lock$/.test(e.name)) out.push(r);
    if (e.isDirectory()) out.push(...leftovers(run, r));
  }
  return out;
}

/** The distill stage's scratch folder (`.scratch-distill-<key>`), or undefined. */
function distillScratch(run: string): string | undefined {
  const f = readdirSync(run).find((n) => n.startsWith('.scratch-distill-'));
  return f && path.join(run, f);
}

describe('SIGKILL at the failpoints of covariance, clusters, distill and report (real processes)', () => {
  it('each rerun resumes the killed stage; the last ends with the output hashes of an uninterrupted run', async () => {
    const ref = path.join(dir, 'reference');
    const a = await runCli(ref);
    expect(a.code, a.output).toBe(0);
    const reference = outputs(ref);
    expect(Object.keys(reference).sort()).toEqual(['clusters', 'covariance', 'distill', 'generalist', 'ingest', 'report']);

    // The finished ingest and generalist are copied; every later stage runs, and is killed, in turn.
    const out = path.join(dir, 'killed');
    cpSync(ref, out, { recursive: true });
    for (const s of ['covariance', 'clusters', 'distill', 'report']) rmSync(path.join(out, s), { recursive: true });

    const k1 = await runCli(out, 'covariance-written');
    expect(k1.signal, k1.output).toBe('SIGKILL');
    expect(k1.output).toMatch(/generalist: unchanged, skipped/);
    expect(existsSync(path.join(out, 'covariance'))).toBe(false);
    expect(readdirSync(path.join(out, '.tmp-covariance'))).toContain('covariance.bin'); // killed between its output files

    const k2 = await runCli(out, 'clusters-computed');
    expect(k2.signal, k2.output).toBe('SIGKILL');
    expect(k2.output).toMatch(/covariance: done/);
    expect(existsSync(path.join(out, 'clusters'))).toBe(false);

    // Killed with the teacher-logit cache complete as a temp file in scratch, not yet renamed.
    const k3 = await runCli(out, 'teacher-logits-temp-written');
    expect(k3.signal, k3.output).toBe('SIGKILL');
    expect(k3.output).toMatch(/clusters: done/);
    const scratch3 = distillScratch(out)!;
    expect(readdirSync(scratch3).some((f) => /^\.teacher-logits\.arrow\.tmp-/.test(f))).toBe(true);
    expect(readdirSync(scratch3)).not.toContain('teacher-logits.arrow');

    // Killed after the scratch copy is in place, before the stage folder's copy.
    const k4 = await runCli(out, 'teacher-logits-written:1');
    expect(k4.signal, k4.output).toBe('SIGKILL');
    expect(readdirSync(distillScratch(out)!)).toContain('teacher-logits.arrow');

    // Killed between epochs (after epoch 2's checkpoint); the teacher logits come from scratch.
    const k5 = await runCli(out, 'train-epoch-done:2');
    expect(k5.signal, k5.output).toBe('SIGKILL');
    expect(k5.output).toMatch(/teacher logits: reusing/);
    expect(k5.output).toMatch(/epoch 2\/4: done/);
    expect(k5.output).not.toMatch(/epoch 3\/4/);

    const k6 = await runCli(out, 'report-written');
    expect(k6.signal, k6.output).toBe('SIGKILL');
    expect(k6.output).toMatch(/resuming from the checkpoint .* after epoch 2 of 4/);
    expect(k6.output).not.toMatch(/epoch [12]\/4/);
    expect(k6.output).toMatch(/epoch 4\/4: done/);
    expect(k6.output).toMatch(/distill: done/);
    expect(existsSync(path.join(out, 'report'))).toBe(false);

    const done = await runCli(out);
    expect(done.code, done.output).toBe(0);
    for (const s of ['ingest', 'generalist', 'covariance', 'clusters', 'distill']) expect(done.output).toMatch(new RegExp(`${s}: unchanged, skipped`));
    expect(done.output).toMatch(/report: running/);
    expect(outputs(out)).toEqual(reference);
    expect(leftovers(out)).toEqual([]);
  }, 900_000);
});
