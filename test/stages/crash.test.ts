import { describe, it, expect } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../../pipeline/runner.ts';

/** Every stage of the specialist pipeline on a tiny synthetic problem, on the cpu backend. */
const CONFIG = `
name: crash
seed: 5
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 12, groups: 3, dim: 8, perClass: 40, seed: 3, classSpread: 0.5}}
  generalist: {hidden: [8], epochs: 6, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  covariance: {}
  clusters: {k: 3}
  specialists: {epochs: 4, batch_size: 16, optimizer: {name: adam, lr: 0.005}}
  ensemble: {}
`;

const dir = mkdtempSync(path.join(os.tmpdir(), 'crash-'));
const configFile = path.join(dir, 'crash.yaml');
writeFileSync(configFile, CONFIG);

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** Runs the pipeline CLI; with `killOn`, sends `signal` when a line of output matches it. */
function runCli(out: string, killOn?: RegExp, signal: NodeJS.Signals = 'SIGKILL'): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'pipeline', 'cli.ts'), '--config', configFile, '--out', out], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let killed = false;
    const onData = (b: Buffer): void => {
      output += b.toString();
      if (killOn && !killed && killOn.test(output)) {
        killed = true;
        child.kill(signal);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code, sig) => resolve({ code, signal: sig, output }));
  });
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

describe('crash safety and determinism (real processes)', () => {
  let reference: Record<string, Record<string, string>>;

  it('two uninterrupted runs give identical output hashes in every manifest', async () => {
    const a = await runCli(path.join(dir, 'a'));
    expect(a.code, a.output).toBe(0);
    const b = await runCli(path.join(dir, 'b'));
    expect(b.code, b.output).toBe(0);
    reference = outputs(path.join(dir, 'a'));
    expect(Object.keys(reference).sort()).toEqual(['clusters', 'covariance', 'ensemble', 'generalist', 'ingest', 'specialists']);
    expect(outputs(path.join(dir, 'b'))).toEqual(reference);
  }, 240_000);

  it('SIGKILL during training, between and during specialists: the rerun finishes with the same artifacts and redoes nothing finished', async () => {
    const out = path.join(dir, 'killed');
    const k1 = await runCli(out, /epoch 3\/6/);
    expect(k1.signal).toBe('SIGKILL');
    expect(existsSync(path.join(out, 'generalist'))).toBe(false); // no half-written stage folder
    const k2 = await runCli(out, /specialist-01\]? .*within-subset|jobs: 1\/3/);
    expect(k2.output).toMatch(/ingest: unchanged, skipped/);
    expect(k2.output).not.toMatch(/epoch 1\/6/); // generalist resumed from its checkpoint, not from epoch 1
    const k3 = await runCli(out, /specialist-02\] epoch 2/);
    expect(k3.output).toMatch(/already done, skipped|had finished before a restart/);
    const done = await runCli(out);
    expect(done.code, done.output).toBe(0);
    expect(outputs(out)).toEqual(reference);
  }, 300_000);

  it('SIGINT stops cleanly with a message and the run resumes', async () => {
    const out = path.join(dir, 'interrupted');
    const r = await runCli(out, /generalist: running/, 'SIGINT');
    expect(r.code).toBe(130);
    expect(r.output).toMatch(/interrupted during stage 'generalist': finished stages are kept; rerun the same command to resume/);
    expect(existsSync(path.join(out, '.lock'))).toBe(false);
    const done = await runCli(out);
    expect(done.code, done.output).toBe(0);
    expect(outputs(out)).toEqual(reference);
  }, 240_000);
});
