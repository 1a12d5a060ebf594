/** The {@link JobRunner} of local child processes: the worker pool of `src/specialists/worker-pool.ts`. */
import { runJobPool, type JobPoolResult } from '../specialists/worker-pool.ts';
import type { JobBatch, JobRunner } from './job-runner.ts';
import { JOB_TYPES } from './job-types.ts';

/** Runs each batch in `min(workers, jobs)` local processes (in this process for 1). */
export class LocalJobRunner implements JobRunner {
  readonly description = 'local processes';

  /** Runs the batch with the local worker pool. */
  run(batch: JobBatch): Promise<JobPoolResult> {
    return runJobPool({
      module: JOB_TYPES[batch.type].module,
      jobs: batch.jobs,
      workers: Math.max(1, Math.min(batch.workers, batch.jobs.length)),
      ...(batch.log ? { log: batch.log } : {}),
    });
  }
}
