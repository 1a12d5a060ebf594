/**
 * Where a stage's independent jobs run: a {@link JobRunner} takes a batch of jobs of one known
 * type and runs each once (a job whose folder holds the `done` marker is skipped), either in local
 * child processes (`local-runner.ts`, `--workers N`) or as BullMQ jobs on Redis taken by
 * `npm run worker` processes on any machine that sees the run folder at the same path
 * (`queue-runner.ts`, `--queue redis://...`). Both return the same {@link JobPoolResult}.
 */
import path from 'node:path';
import type { Job, JobPoolResult } from '../specialists/worker-pool.ts';
import { UserError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import type { JobTypeName } from './job-types.ts';
import { LocalJobRunner } from './local-runner.ts';
import { QueueJobRunner, type QueueRunnerOptions } from './queue-runner.ts';

/** One batch of independent jobs of a stage. */
export interface JobBatch {
  type: JobTypeName;
  jobs: Job[];
  /** The run folder: every job's paths lie inside it. */
  runDir: string;
  /** The stage's cache key: with the job's index it makes the job's queue id (a rerun finds it again). */
  key: string;
  /** Local parallel processes (`--workers`); a queue ignores it. */
  workers: number;
  log?: Logger;
}

/** Runs batches of jobs. */
export interface JobRunner {
  /** Says where the jobs run, for the log. */
  readonly description: string;
  /** Runs the jobs not yet done; never throws for a failing job (see `failed`), throws when the runner itself cannot go on. */
  run(batch: JobBatch): Promise<JobPoolResult>;
}

/** The runner for a stage: the queue at `queue` when given, else local processes. */
export function createJobRunner(queue: string | undefined, opts: Omit<QueueRunnerOptions, 'url'> = {}): JobRunner {
  return queue ? new QueueJobRunner({ ...opts, url: queue }) : new LocalJobRunner();
}

/** What {@link runStageJobs} needs of a stage's context (`StageContext`). */
export interface StageJobContext {
  queue?: string | undefined;
  workers: number;
  runDir: string;
  key?: string | undefined;
  scratchDir: string;
  log: Logger;
}

/**
 * Runs a stage's batch of independent jobs where the run says (`--queue`, else `--workers` local
 * processes), logging where they run and how many were finished before a restart.
 * @param stage the stage type, the error's kind (e.g. `specialists`)
 * @param noun what the jobs are, plural, for the messages (e.g. `specialists`, `members`)
 * @throws UserError listing every failed job with the first line of its error (finished jobs are
 *   kept, so a rerun retries only the rest); the runner's own errors (no worker, Redis gone).
 */
export async function runStageJobs(ctx: StageJobContext, stage: string, noun: string, type: JobTypeName, jobs: Job[]): Promise<JobPoolResult> {
  const runner = createJobRunner(ctx.queue);
  ctx.log.info(`${jobs.length} ${noun} on ${ctx.queue ? runner.description : `${Math.min(ctx.workers, jobs.length)} local worker(s)`}`);
  const result = await runner.run({ type, jobs, runDir: ctx.runDir, key: ctx.key ?? path.basename(ctx.scratchDir), workers: ctx.workers, log: ctx.log });
  if (result.skipped.length) ctx.log.info(`${result.skipped.length} ${noun} had finished before a restart and were not retrained`);
  if (result.failed.length) {
    throw new UserError(
      stage,
      `${result.failed.length} of ${jobs.length} ${noun} failed (finished ones are kept; rerun to retry the rest):\n` +
        result.failed.map((f) => `  ${f.id}: ${f.error.split('\n')[0]}`).join('\n'),
    );
  }
  return result;
}
