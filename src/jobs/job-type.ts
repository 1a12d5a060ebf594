/**
 * What a job type is: the seam between a stage's independent jobs and the places they run (local
 * child processes, queue workers). A job type is one module that exports `runJob(job)` and its
 * {@link JobType} (made with {@link defineJobType}); registering it is one line in `JOB_TYPES`
 * (`job-types.ts`). The worker takes the module's path from here, never from a payload.
 */
import type { z } from 'zod';

/** One known job type. */
export interface JobType<N extends string = string> {
  /** The job type's name: the queued job's BullMQ name, what a worker accepts. */
  name: N;
  /** Absolute path of the module exporting `runJob(job)`. */
  module: string;
  /** Schema of the job's params (strict: unknown keys are rejected). */
  params: z.ZodType;
  /**
   * Keys of the params that are file or folder paths, or lists of them (absolute, inside the run
   * folder; checked before the job runs). An absent optional key is not checked.
   */
  pathKeys: readonly string[];
}

/**
 * A job type whose `pathKeys` are checked against its params schema at compile time (each must be
 * a key of the params; a typo does not compile).
 */
export function defineJobType<N extends string, S extends z.ZodType>(def: {
  name: N;
  module: string;
  params: S;
  pathKeys: readonly (keyof z.output<S> & string)[];
}): JobType<N> {
  return def;
}
