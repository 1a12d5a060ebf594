/**
 * The registry of job types a worker runs, and nothing else. Each names its job module (what the
 * child process imports; never taken from a payload), the schema of its params and the params that
 * are paths (checked to lie inside the run folder before the job runs). Adding a job type: one
 * module exporting `runJob` and a `defineJobType(...)` (see `job-type.ts`), plus one entry here.
 */
import { specialistJobType } from '../specialists/worker-specialist-job.ts';
import { ensembleMemberJobType } from '../../pipeline/jobs/ensemble-member-job.ts';
import { sweepStudentJobType } from '../../pipeline/jobs/sweep-student-job.ts';
import type { JobType } from './job-type.ts';

export type { JobType } from './job-type.ts';

const TYPES = [specialistJobType, ensembleMemberJobType, sweepStudentJobType] as const;

/** Name of a known job type. */
export type JobTypeName = (typeof TYPES)[number]['name'];

/** The job types by name. A queued job whose name is not here is rejected. */
export const JOB_TYPES: Readonly<Record<JobTypeName, JobType>> = Object.freeze(Object.fromEntries(TYPES.map((t) => [t.name, t])) as Record<JobTypeName, JobType>);

/** Whether `name` is a known job type. */
export function isJobTypeName(name: string): name is JobTypeName {
  return Object.hasOwn(JOB_TYPES, name);
}
