/**
 * A queue worker: takes jobs from the BullMQ queue on Redis and runs each in one of `concurrency`
 * long-lived child processes (the same processes as the local pool: `WorkerChild` of
 * `src/specialists/worker-pool.ts`), each with `threads` BLAS threads. The worker's own event loop
 * stays free, so it keeps renewing the job locks while a job trains.
 *
 * Before a job runs, its payload is checked (`checkPayload`: a known job type, the type's schema,
 * every path inside the run folder); a rejected payload fails the job at once, with no retry.
 * A job already marked done is not run again. The `done` marker is written after the job
 * succeeded, so a worker killed mid-job (SIGKILL: its children exit when their channel closes)
 * leaves files that never count; after `lockDurationMs` BullMQ's stalled-job check (run by every
 * worker each `stalledIntervalMs`) gives the job to another worker, which starts it again (a
 * specialist resumes from its last checkpoint).
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UnrecoverableError, Worker, type Job as QueueJob } from 'bullmq';
import { writeJsonAtomic } from '../artifacts/atomic.ts';
import { DONE_MARKER, isJobDone, threadsPerWorker, WorkerChild } from '../specialists/worker-pool.ts';
import { failpoint } from '../util/failpoint.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { JOB_TYPES } from './job-types.ts';
import { checkPayload, PayloadError } from './payload.ts';
import { QUEUE_NAME, redisOptions } from './queue-connection.ts';
import { parseQueueUrl } from './queue-url.ts';

/** Options of {@link startQueueWorker}. */
export interface QueueWorkerOptions {
  /** `redis://[user:pass@]HOST:PORT[/db]`. */
  url: string;
  /** Jobs run at once (child processes). Default 1. */
  concurrency?: number;
  /** BLAS threads per job. Default max(1, floor(cores / concurrency)). */
  threads?: number;
  /** How long a job's lock lasts without renewal (renewed every half of it). Default 30 s. */
  lockDurationMs?: number;
  /** How often this worker looks for stalled jobs (locks lost by dead workers). Default 30 s. */
  stalledIntervalMs?: number;
  /** Times a job may stall (its worker died) before it fails. Default 3. */
  maxStalledCount?: number;
  /** Name reported to the coordinator. Default `<hostname>:<pid>`. */
  name?: string;
  log?: Logger;
}

/** A running worker. */
export interface QueueWorker {
  readonly name: string;
  /** Waits until the connection to Redis is up. */
  ready(): Promise<void>;
  /** Stops taking jobs, waits for the running ones, and stops the child processes. */
  close(): Promise<void>;
}

/** Starts a worker (see the module comment). */
export function startQueueWorker(opts: QueueWorkerOptions): QueueWorker {
  const log = opts.log ?? silentLogger;
  const addr = parseQueueUrl(opts.url);
  const concurrency = opts.concurrency ?? 1;
  const threads = opts.threads ?? threadsPerWorker(os.availableParallelism(), concurrency);
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  const name = opts.name ?? `${os.hostname()}:${process.pid}`;
  // One child process per type and lane, reused across jobs; `idle` holds the free ones.
  const idle: WorkerChild[] = [];
  const all: WorkerChild[] = [];
  const modules = new Map<WorkerChild, string>();
  const take = (module: string): WorkerChild => {
    const i = idle.findIndex((c) => modules.get(c) === module);
    if (i >= 0) return idle.splice(i, 1)[0]!;
    const c = new WorkerChild(module, env, log);
    modules.set(c, module);
    all.push(c);
    return c;
  };
  const processor = async (qjob: QueueJob): Promise<{ seconds: number; skipped: boolean }> => {
    let checked: ReturnType<typeof checkPayload>;
    try {
      checked = checkPayload(qjob.name, qjob.data);
    } catch (e) {
      if (e instanceof PayloadError) {
        log.warn(`rejected job ${qjob.id}: ${e.message}`);
        throw new UnrecoverableError(`rejected by worker ${name}: ${e.message}`);
      }
      throw e;
    }
    const { job } = checked.payload;
    if (isJobDone(job.outDir)) {
      log.info(`${job.id}: already done, not run again`);
      return { seconds: 0, skipped: true };
    }
    const t0 = Date.now();
    log.info(`${job.id}: started (queue id ${qjob.id}, start ${qjob.attemptsStarted})`);
    await fs.mkdir(job.outDir, { recursive: true });
    const child = take(JOB_TYPES[checked.type].module);
    let err: string | undefined;
    try {
      err = await child.run(job);
    } finally {
      idle.push(child);
    }
    if (err !== undefined) {
      log.warn(`${job.id} failed: ${err.split('\n')[0]}`);
      throw new Error(err);
    }
    const seconds = (Date.now() - t0) / 1000;
    failpoint('queue-job-finished'); // crash tests: the job's files are all written, its done marker not yet
    await writeJsonAtomic(path.join(job.outDir, DONE_MARKER), { id: job.id, finished: new Date().toISOString(), seconds, worker: name });
    log.info(`${job.id}: done in ${seconds.toFixed(1)} s`);
    return { seconds, skipped: false };
  };
  const worker = new Worker(QUEUE_NAME, processor, {
    connection: redisOptions(addr, true),
    concurrency,
    name,
    lockDuration: opts.lockDurationMs ?? 30_000,
    stalledInterval: opts.stalledIntervalMs ?? 30_000,
    maxStalledCount: opts.maxStalledCount ?? 3,
  });
  let lastError = '';
  worker.on('error', (e: Error) => {
    if (e.message !== lastError) log.warn(`queue ${addr.display}: ${e.message}`);
    lastError = e.message;
  });
  worker.on('ready', () => {
    if (lastError) log.info(`queue ${addr.display}: connected again`);
    lastError = '';
  });
  log.info(`worker ${name}: ${concurrency} job(s) at a time, ${threads} BLAS thread(s) each, on queue ${QUEUE_NAME} at ${addr.display}; job types: ${Object.keys(JOB_TYPES).join(', ')}`);
  return {
    name,
    ready: () => worker.waitUntilReady().then(() => undefined),
    async close() {
      await worker.close();
      for (const c of all) c.stop();
    },
  };
}

