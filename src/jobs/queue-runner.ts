/**
 * The {@link JobRunner} of a BullMQ queue on Redis: each job of a batch becomes one queued job
 * (name = job type, data = {@link JobPayload}), taken by `npm run worker` processes on machines
 * that see the run folder at the same path. The coordinator (this process) polls the jobs' states,
 * shows them as progress, and reads the results from the run folder: a job counts as finished only
 * when its folder holds the `done` marker, which the worker writes after the job succeeded.
 *
 * - Job ids are `<type>.<20 hex digits of sha256(stage cache key, run folder)>.<job index>`: a coordinator
 *   killed and rerun finds the jobs it queued before (waiting or running: it waits for them;
 *   finished: their `done` markers skip them) instead of queueing them twice.
 * - A job that throws is retried (`attempts`, default 2 in all) and then fails the batch with the
 *   worker's message; a worker killed mid-job loses its lock and BullMQ's stalled-job check hands
 *   the job to another worker (the worker's `lockDuration`, see `queue-worker.ts`).
 * - No worker takes a job within `pickupTimeoutMs` while none is running: an error saying how to
 *   start one. Redis unreachable for `redisTimeoutMs`, or a queued unfinished job gone from it
 *   (Redis restarted without persistence, or flushed): an error; finished jobs are kept and a rerun
 *   queues the rest again. Never a silently incomplete batch.
 * - After a batch fully succeeded its jobs are removed from Redis.
 */
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { sha256 } from '../artifacts/hash.ts';
import { isJobDone, type Job, type JobPoolResult } from '../specialists/worker-pool.ts';
import { UserError } from '../util/errors.ts';
import { silentLogger } from '../util/log.ts';
import type { JobBatch, JobRunner } from './job-runner.ts';
import type { JobPayload } from './payload.ts';
import { QUEUE_NAME, redisOptions } from './queue-connection.ts';
import { parseQueueUrl, type QueueAddress } from './queue-url.ts';

/** Options of {@link QueueJobRunner}. */
export interface QueueRunnerOptions {
  /** `redis://[user:pass@]HOST:PORT[/db]`. */
  url: string;
  /** Fail when no worker has taken a job for this long while none runs. Default 120 s. */
  pickupTimeoutMs?: number;
  /** Fail when Redis has been unreachable for this long. Default 30 s. */
  redisTimeoutMs?: number;
  /** How often the jobs' states are read. Default 500 ms. */
  pollMs?: number;
  /** Tries per job (a failing job is retried attempts - 1 times). Default 2. */
  attempts?: number;
}

/**
 * The queue id of job `index` of a batch: the same for a rerun of the same stage in the same run
 * folder (so it finds its jobs again), different for another stage, config or run folder.
 */
export function queueJobId(type: string, key: string, runDir: string, index: number): string {
  return `${type}.${sha256(`${key}\n${path.resolve(runDir)}`).slice(0, 20)}.${index}`;
}

/** Milliseconds as seconds for messages. */
const sec = (ms: number): string => `${Math.round(ms / 100) / 10} s`;

/** Runs batches as BullMQ jobs (see the module comment). */
export class QueueJobRunner implements JobRunner {
  readonly description: string;
  private readonly addr: QueueAddress;

  constructor(private readonly opts: QueueRunnerOptions) {
    this.addr = parseQueueUrl(opts.url);
    this.description = `queue ${QUEUE_NAME} at ${this.addr.display}`;
  }

  /** Queues the batch's unfinished jobs (or finds them queued) and waits for all of them. */
  async run(batch: JobBatch): Promise<JobPoolResult> {
    const log = batch.log ?? silentLogger;
    const pickupMs = this.opts.pickupTimeoutMs ?? 120_000;
    const redisMs = this.opts.redisTimeoutMs ?? 30_000;
    const pollMs = this.opts.pollMs ?? 500;
    const result: JobPoolResult = { completed: [], skipped: [], failed: [] };
    const open = new Map<string, { job: Job; index: number }>();
    batch.jobs.forEach((job, index) => {
      if (isJobDone(job.outDir)) {
        result.skipped.push(job.id);
        log.info(`${job.id}: already done, skipped`);
      } else open.set(queueJobId(batch.type, batch.key, batch.runDir, index), { job, index });
    });
    const allIds = batch.jobs.map((_, i) => queueJobId(batch.type, batch.key, batch.runDir, i));
    const queue = new Queue(QUEUE_NAME, { connection: redisOptions(this.addr, false) });
    if (open.size === 0) {
      // All done (e.g. by an earlier coordinator that was killed): drop their finished queue entries, if Redis is there.
      queue.on('error', () => undefined);
      await Promise.race([queue.waitUntilReady().then(() => Promise.all(allIds.map((id) => queue.remove(id).catch(() => 0)))).catch(() => undefined), sleep(5000)]);
      await queue.close().catch(() => undefined);
      return result;
    }
    let lastError = '';
    queue.on('error', (e: Error) => {
      lastError = e.message;
    });
    const where = `Redis at ${this.addr.display}`;
    try {
      const ready = await Promise.race([queue.waitUntilReady().then(() => true), sleep(redisMs).then(() => false)]);
      if (!ready) throw new UserError('queue', `cannot reach ${where} within ${sec(redisMs)}${lastError ? ` (${lastError})` : ''}; start redis-server there, or fix --queue / 'queue:' in the config`);
      let reattached = 0;
      for (const [id, { job }] of open) {
        const existing = await queue.getJob(id);
        if (existing) {
          const state = await existing.getState();
          if (state !== 'completed' && state !== 'failed') {
            reattached++;
            continue;
          }
          // Finished in an earlier run without leaving a done marker (it failed, or the files are gone): run it again.
          await existing.remove();
        }
        const data: JobPayload = { runDir: batch.runDir, job };
        await queue.add(batch.type, data, { jobId: id, attempts: this.opts.attempts ?? 2, backoff: { type: 'fixed', delay: 500 }, removeOnComplete: false, removeOnFail: false });
      }
      // Workers on this queue and database (CLIENT LIST shows every database's).
      const workersHere = (): Promise<number> =>
        queue
          .getWorkers()
          .then((ws) => ws.filter((w) => (w as { db?: string }).db === undefined || Number((w as { db?: string }).db) === this.addr.db).length)
          .catch(() => -1);
      const workers = await workersHere();
      log.info(
        `${open.size} ${batch.type} job(s) on ${this.description}${reattached ? ` (${reattached} already queued by an earlier run, reattached)` : ''}; ` +
          `${workers >= 0 ? `${workers} worker(s) connected now` : 'workers unknown'}; fails if no worker takes a job within ${sec(pickupMs)}`,
      );
      const progress = log.progress('jobs', open.size);
      const states = new Map<string, string>();
      let lastChange = Date.now();
      let lastOk = Date.now();
      const noMarkerSince = new Map<string, number>();
      /** Starts of each job reported so far. */
      const starts = new Map<string, number>();
      while (open.size > 0) {
        await sleep(pollMs);
        try {
          for (const [id, { job }] of [...open]) {
            const state = await queue.getJobState(id);
            lastOk = Date.now();
            if (state !== states.get(id)) {
              lastChange = Date.now();
              states.set(id, state);
            }
            // Every start of a job is reported once, by its start count: a job whose worker died can
            // be taken again, and even finish, between two polls.
            if (state === 'active' || state === 'completed') {
              const j = await queue.getJob(id);
              if (j && j.attemptsStarted > (starts.get(id) ?? 0)) {
                lastChange = Date.now();
                starts.set(id, j.attemptsStarted);
                log.info(`${job.id}: taken by worker ${j.processedBy ?? '?'}${j.attemptsStarted > 1 ? ` (start ${j.attemptsStarted})` : ''}`);
              }
            }
            if (state === 'completed' || state === 'unknown') {
              if (isJobDone(job.outDir)) {
                open.delete(id);
                result.completed.push(job.id);
                progress.tick(1, job.id);
              } else if (state === 'unknown') {
                throw new UserError(
                  'queue',
                  `${job.id} (queue id ${id}) is no longer on ${this.description} and did not finish: Redis was restarted without persistence or the queue was cleared; ` +
                    `finished jobs are kept in the run folder; rerun the stage to queue the rest again`,
                );
              } else {
                // A shared filesystem may show the marker a little later.
                const since = noMarkerSince.get(id) ?? Date.now();
                noMarkerSince.set(id, since);
                if (Date.now() - since > 15_000) {
                  open.delete(id);
                  result.failed.push({ id: job.id, error: `the worker reported it finished, but ${job.outDir} has no done marker here: does the worker see the run folder ${batch.runDir} at the same path (a shared filesystem)?` });
                  progress.tick(1, `${job.id} failed`);
                }
              }
            } else if (state === 'failed') {
              const j = await queue.getJob(id);
              open.delete(id);
              const error = `${j?.failedReason || 'failed'}${j ? ` (after ${j.attemptsMade} attempt(s), worker ${j.processedBy ?? '?'})` : ''}`;
              result.failed.push({ id: job.id, error });
              log.warn(`${job.id} failed: ${error}`);
              progress.tick(1, `${job.id} failed`);
            }
          }
        } catch (e) {
          if (e instanceof UserError) throw e;
          if (Date.now() - lastOk > redisMs) {
            throw new UserError('queue', `lost the connection to ${where} for ${sec(Date.now() - lastOk)} (${(e as Error).message}); finished jobs are kept in the run folder; rerun the stage once Redis is back`);
          }
          continue;
        }
        const now = [...open.keys()].map((id) => states.get(id));
        if (!now.includes('active') && now.some((s) => s === 'waiting' || s === 'prioritized') && Date.now() - lastChange > pickupMs) {
          const n = await workersHere();
          throw new UserError(
            'queue',
            `no worker took a job from ${this.description} within ${sec(pickupMs)} (${open.size} job(s) waiting, ${n >= 0 ? n : 'unknown'} worker(s) connected); start workers on machines that see ${batch.runDir} at the same path: ` +
              `npm run worker -- --queue ${this.addr.display}; the queued jobs stay, and a rerun of the stage reattaches to them`,
          );
        }
      }
      progress.done(`${result.completed.length} done, ${result.skipped.length} skipped, ${result.failed.length} failed`);
      if (result.failed.length === 0) for (const id of allIds) await queue.remove(id).catch(() => 0);
      return result;
    } finally {
      await queue.close().catch(() => undefined);
    }
  }
}
