/**
 * What a queued job carries, checked by the worker before anything runs: a known job type, a
 * payload matching its schema, and every path (the job's output folder, the params that are paths
 * or lists of paths) absolute and inside the run folder named in the payload (a folder holding the pipeline's run
 * marker), symbolic links resolved. Anything else
 * is rejected with a message saying which field is wrong.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { RUN_MARKER } from '../artifacts/run-folder.ts';
import type { Job } from '../specialists/worker-pool.ts';
import { isJobTypeName, JOB_TYPES, type JobTypeName } from './job-types.ts';

/** The data of one queued job. */
export interface JobPayload {
  /** The run folder (`artifacts/<config name>/`), absolute: the job reads and writes only inside it. */
  runDir: string;
  job: Job;
}

const payloadSchema = z.strictObject({
  runDir: z.string().min(1),
  job: z.strictObject({
    id: z.string().regex(/^[A-Za-z0-9._-]{1,100}$/, 'letters, digits, dot, dash or underscore only'),
    outDir: z.string().min(1),
    params: z.unknown(),
  }),
});

/** A payload that must not run. */
export class PayloadError extends Error {}

/** `p` with symbolic links of its longest existing prefix resolved (the rest appended as is). */
function realish(p: string): string {
  let head = p;
  const tail: string[] = [];
  while (!existsSync(head)) {
    const up = path.dirname(head);
    if (up === head) break;
    tail.unshift(path.basename(head));
    head = up;
  }
  return path.join(realpathSync(head), ...tail);
}

/** Whether `inner` is `outer` or below it. */
function isInside(outer: string, inner: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Checks a queued job (its BullMQ name and data) and returns it typed.
 * @throws PayloadError naming the job type, field and reason.
 */
export function checkPayload(type: string, data: unknown): { type: JobTypeName; payload: JobPayload } {
  if (!isJobTypeName(type)) throw new PayloadError(`unknown job type '${type}'; this worker runs only ${Object.keys(JOB_TYPES).join(', ')}`);
  const parsed = payloadSchema.safeParse(data);
  if (!parsed.success) throw new PayloadError(`${type} job: bad payload: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`);
  const { runDir, job } = parsed.data;
  const def = JOB_TYPES[type];
  const params = def.params.safeParse(job.params);
  if (!params.success) throw new PayloadError(`${type} job ${job.id}: bad params: ${params.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  if (!path.isAbsolute(runDir)) throw new PayloadError(`${type} job ${job.id}: runDir '${runDir}' is not an absolute path`);
  if (!existsSync(runDir) || !statSync(runDir).isDirectory()) {
    throw new PayloadError(`${type} job ${job.id}: the run folder ${runDir} does not exist on this machine; workers need the run folder at the same path as the coordinator (a shared filesystem)`);
  }
  if (!existsSync(path.join(runDir, RUN_MARKER))) {
    throw new PayloadError(`${type} job ${job.id}: ${runDir} is not a run folder (it has no ${RUN_MARKER}, which the pipeline writes); a worker writes only into run folders of the pipeline`);
  }
  const root = realpathSync(runDir);
  const paths: [string, unknown][] = [['outDir', job.outDir]];
  for (const k of def.pathKeys) {
    const value = (params.data as Record<string, unknown>)[k];
    // A list of paths (e.g. the models of an ensemble teacher): every entry is checked.
    if (Array.isArray(value)) value.forEach((v, i) => paths.push([`params.${k}[${i}]`, v]));
    else paths.push([`params.${k}`, value]);
  }
  for (const [field, value] of paths) {
    if (value === undefined) continue;
    if (typeof value !== 'string' || !path.isAbsolute(value)) throw new PayloadError(`${type} job ${job.id}: ${field} '${String(value)}' is not an absolute path`);
    if (!isInside(root, realish(path.resolve(value)))) throw new PayloadError(`${type} job ${job.id}: ${field} ${value} is outside the run folder ${runDir}; a worker reads and writes only inside the run folder`);
  }
  if (realish(path.resolve(job.outDir)) === root) throw new PayloadError(`${type} job ${job.id}: outDir is the run folder itself; a job writes into its own folder below it`);
  return { type, payload: { runDir, job: { id: job.id, outDir: job.outDir, params: params.data } } };
}
