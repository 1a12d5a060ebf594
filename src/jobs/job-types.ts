/**
 * The job types a worker runs, and nothing else: each names its job module (what the child
 * process imports; never taken from a payload), the schema of its params and the params that are
 * paths (checked to lie inside the run folder before the job runs).
 */
import type { z } from 'zod';
import { SPECIALIST_JOB_MODULE, specialistParamsSchema } from '../specialists/worker-specialist-job.ts';

/** One known job type. */
export interface JobType {
  /** Absolute path of the module exporting `runJob(job)`. */
  module: string;
  /** Schema of the job's params. */
  params: z.ZodType;
  /** Keys of the params that are file or folder paths (absolute, inside the run folder). */
  pathKeys: readonly string[];
}

/** The job types by name. A queued job whose name is not here is rejected. */
export const JOB_TYPES = {
  specialist: {
    module: SPECIALIST_JOB_MODULE,
    params: specialistParamsSchema,
    pathKeys: ['generalistDir', 'trainFile', 'validFile', 'validLogitsFile'],
  },
} as const satisfies Record<string, JobType>;

/** Name of a known job type. */
export type JobTypeName = keyof typeof JOB_TYPES;

/** Whether `name` is a known job type. */
export function isJobTypeName(name: string): name is JobTypeName {
  return Object.hasOwn(JOB_TYPES, name);
}
