import { describe, it, expect, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync, existsSync, cpSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../../pipeline/runner.ts';
import { FAILPOINT_ENV, parseFailpoints } from '../../src/util/failpoint.ts';

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
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** A pipeline CLI process under test: its child process, its output so far, and its end. */
interface Started {
  child: ReturnType<typeof spawn>;
  output: () => string;
  done: Promise<Run>;
}

/**
 * Starts the pipeline CLI on `out` with `args` added; `onOutput` sees the output so far after
 * every chunk. With `failpoint`, the process kills itself at that named point (src/util/failpoint.ts).
 */
function startCli(out: string, args: string[] = [], onOutput?: (output: string, child: ReturnType<typeof spawn>) => void, failpoint?: string): Started {
  const env = { ...process.env };
  delete env[FAILPOINT_ENV];
  if (failpoint) env[FAILPOINT_ENV] = failpoint;
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'pipeline', 'cli.ts'), '--config', configFile, '--out', out, ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  let output = '';
  const onData = (b: Buffer): void => {
    output += b.toString();
    onOutput?.(output, child);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const done = new Promise<Run>((resolve) => child.on('exit', (code, sig) => resolve({ code, signal: sig, output })));
  return { child, output: () => output, done };
}

/**
 * Runs the pipeline CLI; with `killOn`, sends `signal` when a line of output matches it. With
 * `failpoint`, the process kills itself at that named point (src/util/failpoint.ts).
 */
function runCli(out: string, killOn?: RegExp, signal: NodeJS.Signals = 'SIGKILL', failpoint?: string): Promise<Run> {
  let killed = false;
  return startCli(
    out,
    [],
    (output, child) => {
      if (killOn && !killed && killOn.test(output)) {
        killed = true;
        child.kill(signal);
      }
    },
    failpoint,
  ).done;
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

/** Temp and leftover entries anywhere below a run folder: stage temp folders, scratch, swap folders, atomic-write temp files, stage locks. */
function leftovers(run: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(run, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (/^\.(tmp-|scratch-|old-|lock-|read-)|\.tmp-\d+-[0-9a-f]{8}$|^\.lock$/.test(e.name)) out.push(r);
    if (e.isDirectory()) out.push(...leftovers(run, r));
  }
  return out;
}

/** A copy of the reference run without some stage folders (they rerun; the others are skipped). */
function copyWithout(name: string, stages: string[]): string {
  const out = path.join(dir, name);
  cpSync(path.join(dir, 'a'), out, { recursive: true });
  for (const s of stages) rmSync(path.join(out, s), { recursive: true });
  return out;
}

describe('failpoints', () => {
  it('parses name and name:k lists, and rejects anything else', () => {
    expect([...parseFailpoints('ingest-split-written:2, ensemble-valid-solved')]).toEqual([
      ['ingest-split-written', 2],
      ['ensemble-valid-solved', 1],
    ]);
    expect(() => parseFailpoints('ingest:0')).toThrow(/DISTILL_KIT_FAILPOINT: cannot parse "ingest:0"; expected name or name:k with k >= 1/);
    expect(() => parseFailpoints('a b')).toThrow(/cannot parse "a b"/);
  });
});

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

  it('two processes in one run folder: the stage one runs is refused to the other, the stages it reads are shared', async () => {
    const out = copyWithout('side-by-side', ['generalist', 'covariance', 'clusters', 'specialists', 'ensemble']);
    let paused!: () => void;
    const isPaused = new Promise<void>((resolve) => (paused = resolve));
    let sent = false;
    // The first process is paused (SIGSTOP) inside 'generalist': it holds that stage for writing
    // and 'ingest' for reading, as a long training run would.
    const first = startCli(out, ['--only', 'generalist'], (output, child) => {
      if (!sent && /generalist: running/.test(output)) {
        sent = true;
        child.kill('SIGSTOP');
        paused();
      }
    });
    await isPaused;
    try {
      const same = await startCli(out, ['--only', 'generalist']).done;
      expect(same.code, same.output).toBe(1);
      expect(same.output).toMatch(new RegExp(`error: stage 'generalist' in .* is being run by another pipeline process \\(pid ${first.child.pid}, started [^)]+\\); wait for it to finish, then rerun`));
      const reader = await startCli(out, ['--only', 'ingest']).done;
      expect(reader.code, reader.output).toBe(0);
      expect(reader.output).toMatch(/ingest: unchanged, skipped/);
      const rerun = await startCli(out, ['--only', 'ingest', '--force']).done;
      expect(rerun.code, rerun.output).toBe(1);
      expect(rerun.output).toMatch(new RegExp(`error: stage 'ingest' in .* needs to run, but another pipeline process \\(pid ${first.child.pid}, started [^)]+\\) is reading it as an input`));
    } finally {
      first.child.kill('SIGCONT');
    }
    const done = await first.done;
    expect(done.code, done.output).toBe(0);
    expect(outputs(out).generalist).toEqual(reference.generalist);
    expect(leftovers(out)).toEqual([]);
  }, 240_000);

  it('SIGINT stops cleanly with a message and the run resumes', async () => {
    const out = path.join(dir, 'interrupted');
    const r = await runCli(out, /generalist: running/, 'SIGINT');
    expect(r.code).toBe(130);
    expect(r.output).toMatch(/interrupted during stage 'generalist': finished stages are kept; rerun the same command to resume/);
    expect(readdirSync(out).filter((f) => /^\.(lock|read)-/.test(f))).toEqual([]); // no stage lock left behind
    const done = await runCli(out);
    expect(done.code, done.output).toBe(0);
    expect(outputs(out)).toEqual(reference);
  }, 240_000);
  it('SIGKILL inside ingest (while copying rows, then after train.arrow is written): nothing half-written is used, the rerun redoes only ingest', async () => {
    const out = copyWithout('ingest-killed', ['ingest']);
    const k1 = await runCli(out, undefined, 'SIGKILL', 'ingest-batch-written:1');
    expect(k1.signal, k1.output).toBe('SIGKILL');
    expect(existsSync(path.join(out, 'ingest'))).toBe(false);
    // The killed stage's temp folder holds only temp files: no split under its final name.
    expect(readdirSync(path.join(out, '.tmp-ingest')).filter((f) => !f.startsWith('.'))).toEqual([]);
    const k2 = await runCli(out, undefined, 'SIGKILL', 'ingest-split-written:1');
    expect(k2.signal, k2.output).toBe('SIGKILL');
    expect(existsSync(path.join(out, 'ingest'))).toBe(false);
    const partial = readdirSync(path.join(out, '.tmp-ingest'));
    expect(partial).toContain('train.arrow'); // finished and renamed...
    expect(partial.some((f) => /^\.valid\.arrow\.tmp-/.test(f))).toBe(true); // ...the next one was still a temp file
    expect(partial).not.toContain('valid.arrow');
    const done = await runCli(out);
    expect(done.code, done.output).toBe(0);
    expect(done.output).toMatch(/ingest: running/);
    // Same ingest outputs, so every later stage is found unchanged.
    for (const s of ['generalist', 'covariance', 'clusters', 'specialists', 'ensemble']) expect(done.output).toMatch(new RegExp(`${s}: unchanged, skipped`));
    expect(outputs(out)).toEqual(reference);
    expect(leftovers(out)).toEqual([]);
  }, 120_000);

  it('SIGKILL inside the ensemble (after the valid cases are solved): the rerun finishes with the same artifacts', async () => {
    const out = copyWithout('ensemble-killed', ['ensemble']);
    const k = await runCli(out, undefined, 'SIGKILL', 'ensemble-valid-solved');
    expect(k.signal, k.output).toBe('SIGKILL');
    expect(k.output).toMatch(/ensemble: running/);
    expect(existsSync(path.join(out, 'ensemble'))).toBe(false);
    const done = await runCli(out);
    expect(done.code, done.output).toBe(0);
    expect(done.output).toMatch(/specialists: unchanged, skipped/);
    expect(done.output).toMatch(/ensemble: running/);
    expect(outputs(out)).toEqual(reference);
    expect(leftovers(out)).toEqual([]);
  }, 120_000);
});
