/**
 * Runs independent jobs (a stage's specialists, ensemble members or sweep students: the job types of
 * `src/jobs/job-types.ts`) in N parallel child processes.
 *
 * A job module is any ESM/TS module exporting `runJob(job: Job): Promise<unknown>`. With
 * `workers > 1` every job runs in a fresh `node --import tsx worker-entry.ts` child (a crash or
 * a leak in one job cannot affect the others), told its job over IPC; with `workers = 1` jobs
 * run in this process, one after the other. A job whose output folder holds the `done` marker is
 * skipped, and the marker is written (atomically) only after the job resolved, so a finished
 * specialist is never retrained after a crash and an unfinished one is always redone. A failing
 * job does not stop the others; its id and error are returned in `failed`.
 *
 * Each child gets `OPENBLAS_NUM_THREADS` (and `OMP_NUM_THREADS`) = max(1, floor(cores / N)) so
 * that N workers using a native BLAS do not oversubscribe the machine.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeJsonAtomic } from '../artifacts/atomic.ts';
import { ConfigError } from '../util/errors.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { CODE_EXT, COMPILED } from '../util/package-root.ts';

/** One unit of work. `params` must be JSON-serialisable (it crosses a process boundary). */
export interface Job {
  /** Unique id, e.g. `specialist-3`. */
  id: string;
  /** The job's output folder; holds the `done` marker when finished. */
  outDir: string;
  params?: unknown;
}

/** What a job module exports. */
export interface JobModule {
  runJob(job: Job): Promise<unknown>;
}

/** Parent -> child message. */
export interface WorkerRequest {
  module: string;
  job: Job;
}

/** Child -> parent message. */
export type WorkerReply = { ok: true } | { ok: false; error: string; stack?: string | undefined };

/** Options of {@link runJobPool}. */
export interface JobPoolOptions {
  /** Path of the job module (absolute, or relative to the current directory). */
  module: string;
  jobs: Job[];
  /** Number of parallel workers (>= 1). 1 = in this process. */
  workers: number;
  /** Cores to share between workers. Default `os.availableParallelism()`. */
  cores?: number;
  /** Extra environment for the children. */
  env?: Record<string, string>;
  log?: Logger;
}

/** Outcome of {@link runJobPool}. */
export interface JobPoolResult {
  /** Jobs run to completion now. */
  completed: string[];
  /** Jobs skipped because their `done` marker existed. */
  skipped: string[];
  /** Jobs that threw or whose process died, with the error. */
  failed: { id: string; error: string }[];
}

/** Name of the marker file written in a job's output folder when it finished. */
export const DONE_MARKER = 'done';

/** Whether a job's output folder holds the `done` marker. */
export function isJobDone(outDir: string): boolean {
  return existsSync(path.join(outDir, DONE_MARKER));
}

/** OpenBLAS threads per worker: max(1, floor(cores / workers)). */
export function threadsPerWorker(cores: number, workers: number): number {
  return Math.max(1, Math.floor(cores / Math.max(1, workers)));
}

const require = createRequire(import.meta.url);

/** The file URL of tsx's ESM loader (what `node --import tsx` loads), resolved from this package. */
function tsxLoaderUrl(): string {
  const dir = path.dirname(require.resolve('tsx/package.json'));
  return pathToFileURL(path.join(dir, 'dist', 'loader.mjs')).href;
}

/**
 * The child's entry file and node flags: from the TypeScript sources `worker-entry.ts` under tsx's
 * loader; compiled (an installed package, no tsx) plain `node worker-entry.js`. Started by path,
 * so not an import:
 */
// code-key: ./worker-entry.ts
const ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), `worker-entry${CODE_EXT}`);
const entryExecArgv = (): string[] => (COMPILED ? [] : ['--import', tsxLoaderUrl()]);

/** Keeps the last `max` characters written to it. */
class Tail {
  private text = '';
  constructor(private readonly max: number) {}
  push(s: string): void {
    this.text = (this.text + s).slice(-this.max);
  }
  toString(): string {
    return this.text.trim();
  }
}

/**
 * One long-lived worker process (also used by the queue worker, `src/jobs/queue-worker.ts`): it runs jobs one after another (the code is loaded and the tensor
 * backend initialised once, not per job). If it dies during a job, that job fails and the next
 * job gets a fresh process.
 */
export class WorkerChild {
  private child: ChildProcess | undefined;
  private current: { job: Job; resolve: (err: string | undefined) => void; reply?: WorkerReply } | undefined;
  private readonly tail = new Tail(4000);

  constructor(
    private readonly module: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly log: Logger,
  ) {}

  private start(): ChildProcess {
    const child = fork(ENTRY, [], { execArgv: entryExecArgv(), env: this.env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const forward = (chunk: Buffer): void => {
      const s = chunk.toString('utf8');
      this.tail.push(s);
      const id = this.current?.job.id;
      for (const line of s.split('\n')) if (line.trim()) this.log.info(!id || line.startsWith(`[${id}]`) ? line : `[${id}] ${line}`);
    };
    child.stdout?.on('data', forward);
    child.stderr?.on('data', forward);
    child.on('message', (m) => {
      const reply = m as WorkerReply & { id?: string };
      const cur = this.current;
      if (!cur || reply.id !== cur.job.id) return;
      this.current = undefined;
      cur.resolve(reply.ok ? undefined : reply.error);
    });
    const died = (why: string): void => {
      if (this.child === child) this.child = undefined;
      const cur = this.current;
      if (!cur) return;
      this.current = undefined;
      cur.resolve(`worker process ${why} without reporting a result${this.tail.toString() ? `; last output:\n${this.tail}` : ''}`);
    };
    child.on('error', (e) => died(`could not start (${e.message})`));
    child.on('exit', (code, signal) => died(`died (${signal ? `signal ${signal}` : `exit code ${code}`})`));
    return child;
  }

  /** Runs one job; resolves with its error message, or undefined on success. */
  run(job: Job): Promise<string | undefined> {
    if (!this.child || this.child.exitCode !== null || !this.child.connected) this.child = this.start();
    const child = this.child;
    return new Promise((resolve) => {
      this.current = { job, resolve };
      const req: WorkerRequest = { module: this.module, job };
      child.send(req);
    });
  }

  /** Lets the process exit (it leaves when its IPC channel closes). */
  stop(): void {
    if (this.child?.connected) this.child.disconnect();
    this.child = undefined;
  }
}

/**
 * Runs `jobs` with `workers` parallel workers (see the module comment), skipping those already
 * marked done. Never throws for a failing job: see `failed` in the result.
 * @throws ConfigError for duplicate job ids, a missing module, or workers < 1.
 */
export async function runJobPool(opts: JobPoolOptions): Promise<JobPoolResult> {
  const log = opts.log ?? silentLogger;
  const workers = opts.workers;
  if (!Number.isInteger(workers) || workers < 1) throw new ConfigError(`worker pool: workers must be an integer >= 1, got ${workers}`);
  const module = path.resolve(opts.module);
  if (!existsSync(module)) throw new ConfigError(`worker pool: job module ${module} does not exist`);
  const ids = new Set<string>();
  for (const j of opts.jobs) {
    if (ids.has(j.id)) throw new ConfigError(`worker pool: job id '${j.id}' is used twice`);
    ids.add(j.id);
  }
  const result: JobPoolResult = { completed: [], skipped: [], failed: [] };
  const pending: Job[] = [];
  for (const j of opts.jobs) {
    if (isJobDone(j.outDir)) {
      result.skipped.push(j.id);
      log.info(`${j.id}: already done, skipped`);
    } else pending.push(j);
  }
  const cores = opts.cores ?? os.availableParallelism();
  const threads = threadsPerWorker(cores, workers);
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), ...opts.env };
  let inProcess: JobModule | undefined;
  if (workers === 1 && pending.length > 0) {
    const mod = (await import(pathToFileURL(module).href)) as Partial<JobModule>;
    if (typeof mod.runJob !== 'function') throw new ConfigError(`worker pool: job module ${module} does not export a function runJob(job)`);
    inProcess = mod as JobModule;
  }
  const progress = log.progress('jobs', pending.length);
  let next = 0;
  const runOne = async (job: Job, child: WorkerChild | undefined): Promise<void> => {
    const t0 = Date.now();
    await fs.mkdir(job.outDir, { recursive: true });
    let err: string | undefined;
    if (inProcess) {
      try {
        await inProcess.runJob(job);
      } catch (e) {
        err = (e as Error)?.message ?? String(e);
      }
    } else err = await child!.run(job);
    if (err === undefined) {
      await writeJsonAtomic(path.join(job.outDir, DONE_MARKER), { id: job.id, finished: new Date().toISOString(), seconds: (Date.now() - t0) / 1000 });
      result.completed.push(job.id);
      progress.tick(1, job.id);
    } else {
      result.failed.push({ id: job.id, error: err });
      log.warn(`${job.id} failed: ${err}`);
      progress.tick(1, `${job.id} failed`);
    }
  };
  const lane = async (): Promise<void> => {
    const mine = inProcess ? undefined : new WorkerChild(module, env, log);
    try {
      while (next < pending.length) {
        await runOne(pending[next++]!, mine);
      }
    } finally {
      mine?.stop();
    }
  };
  await Promise.all(Array.from({ length: Math.min(workers, Math.max(1, pending.length)) }, lane));
  progress.done(`${result.completed.length} done, ${result.skipped.length} skipped, ${result.failed.length} failed`);
  return result;
}
