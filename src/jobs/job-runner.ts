/**
 * Where a stage's independent jobs run: a {@link JobRunner} takes a batch of jobs of one known
 * type and runs each once (a job whose folder holds the `done` marker is skipped), either in local
 * child processes (`local-runner.ts`, `--workers N`) or as BullMQ jobs on Redis taken by
 * `npm run worker` processes on any machine that sees the run folder at the same path
 * (`queue-runner.ts`, `--queue redis://...`). Both return the same {@link JobPoolResult}.
 */
import type { Job, JobPoolResult } from '../specialists/worker-pool.ts';
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
