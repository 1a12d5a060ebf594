/**
 * Shared set-up of the job-queue tests (test/jobs/queue.test.ts, test/jobs/queue-stages.test.ts):
 * pipeline and worker processes started with tsx and their output collected, waiting for a
 * condition, and the output hashes of a run from its manifests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from '../../pipeline/runner.ts';
import { FAILPOINT_ENV } from '../../src/util/failpoint.ts';

/** A process under test and its output so far. */
export interface Proc {
  child: ChildProcess;
  output: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>;
}

/**
 * Starts `node --import tsx <script> ...args` in the repository; `onOutput` sees the whole output
 * after every chunk; with `failpoint`, the process SIGKILLs itself there (src/util/failpoint.ts).
 */
export function startScript(script: string, args: string[], onOutput?: (out: string, child: ChildProcess) => void, failpoint = ''): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, script), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, [FAILPOINT_ENV]: failpoint } });
  let out = '';
  const on = (b: Buffer): void => {
    out += b.toString();
    onOutput?.(out, child);
  };
  child.stdout!.on('data', on);
  child.stderr!.on('data', on);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, output: out })));
  return { child, output: () => out, exit };
}

/**
 * A queue worker process (`src/cli/worker.ts`, one job at a time) with short locks, so that a
 * killed worker's job moves on within seconds; with `failpoint`, it SIGKILLs itself there.
 */
export function startWorker(url: string, failpoint = ''): Proc {
  return startScript('src/cli/worker.ts', ['--queue', url, '--concurrency', '1', '--lock-ms', '1500', '--stalled-ms', '500'], undefined, failpoint);
}

/** Resolves once `cond()` holds; throws naming `what` after `ms`. */
export async function waitFor(what: string, cond: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** sha256 of every output of every stage of run folder `run`, from the manifests. */
export function runOutputs(run: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const s of readdirSync(run)) {
    const m = path.join(run, s, 'manifest.json');
    if (existsSync(m)) out[s] = (JSON.parse(readFileSync(m, 'utf8')) as { outputs: Record<string, string> }).outputs;
  }
  return out;
}

/** Kills every process of `procs` still running (SIGKILL) and waits for them. */
export async function killAll(procs: Proc[]): Promise<void> {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exit));
}
