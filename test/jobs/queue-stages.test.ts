/**
 * The members of `train-ensemble` and the students of `distill-sweep` as queued jobs, against a
 * real Redis (redis-server on a free port) and two real worker processes (`src/cli/worker.ts`):
 * a run with `--queue`, its coordinator SIGKILLed in the sweep and rerun (it reattaches; nothing
 * trained twice), gives the artifacts of a local run (in-process) byte for byte, and so does
 * `--workers 2` (local child processes); the workers reject payloads of the new job types naming paths outside
 * the run folder, and unknown job types; a job failing on its own fails the stage with the worker's
 * message after bounded retries; no worker gives the printed timeout's error.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { QUEUE_NAME } from '../../src/jobs/queue-connection.ts';
import { QueueJobRunner } from '../../src/jobs/queue-runner.ts';
import { runStageJobs } from '../../src/jobs/job-runner.ts';
import { haveRedisServer, startRedis, type TestRedis } from '../../src/jobs/local-redis.ts';
import type { Job } from '../../src/specialists/worker-pool.ts';
import type { EnsembleMemberJobParams } from '../../pipeline/jobs/ensemble-member-job.ts';
import type { SweepStudentJobParams } from '../../pipeline/jobs/sweep-student-job.ts';
import { silentLogger } from '../../src/util/log.ts';
import { modelConfigSchema } from '../../src/models/arch/index.ts';
import { trainingParamsSchema } from '../../pipeline/stages/student.ts';
import { writeImagesArrow } from '../models/image-fixture.ts';
import { killAll, runOutputs, startScript, startWorker, waitFor, type Proc } from '../helpers/queue-procs.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'queue-stages-'));
const images = writeImagesArrow(path.join(dir, 'images.arrow'), 160, 4, 4);

// 8x8 images, so that `jitter` works: `sweep` reads its teacher's targets from the file the stage
// writes once; `sweepj` queries the two members on every jittered batch (a list of model paths).
const CONFIG = `
name: queue-stages
seed: 9
backend: cpu
stages:
  ingest: {dataset: {path: ${JSON.stringify(images)}}, valid_fraction: 0.2, test_fraction: 0.2}
  generalist: {hidden: [8], epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  members: {type: train-ensemble, members: 2, hidden: [6], epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  sweep: {type: distill-sweep, teacher: generalist, widths: [4], depth: 1, temperatures: [2], epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  sweepj: {type: distill-sweep, teacher: members, jitter: 1, widths: [3], depth: 1, temperatures: [3], hard_baseline: false, epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
`;
const configFile = path.join(dir, 'queue-stages.yaml');
writeFileSync(configFile, CONFIG);

/** The jobs' stages: a queued rerun of a copy without them runs only their jobs. */
const JOB_STAGES = ['members', 'sweep', 'sweepj'];
/** Every job of the config, by id. */
const ALL_JOBS = ['member-0', 'member-1', 'w3-T3', 'w4-T2', 'w4-hard'];

const pipeline = (out: string, args: string[] = [], onOutput?: (o: string, c: ChildProcess) => void): Proc => startScript('pipeline/cli.ts', ['--config', configFile, '--out', out, ...args], onOutput);

/** A copy of the local reference run without the stages `drop`. */
function copyWithout(name: string, drop: string[]): string {
  const out = path.join(dir, name);
  cpSync(path.join(dir, 'local'), out, { recursive: true });
  for (const s of drop) rmSync(path.join(out, s), { recursive: true });
  return out;
}

/** How often each job was started, over the outputs of workers (`[worker] member-1: started`). */
function starts(...logs: string[]): Record<string, number> {
  const n: Record<string, number> = {};
  for (const log of logs) for (const m of log.matchAll(/\] (member-\d+|w\d+-(?:hard|T[\d.]+)): started/g)) n[m[1]!] = (n[m[1]!] ?? 0) + 1;
  return n;
}

const sorted = (o: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));

/** Params of a member job on the local reference run. */
function memberParams(): EnsembleMemberJobParams {
  const ingest = path.join(dir, 'local', 'ingest');
  return {
    trainFile: path.join(ingest, 'train.arrow'),
    validFile: path.join(ingest, 'valid.arrow'),
    testFile: path.join(ingest, 'test.arrow'),
    classes: 4,
    model: modelConfigSchema.parse({ type: 'mlp', hidden: [4] }),
    training: trainingParamsSchema.parse({ epochs: 1, batch_size: 16, optimizer: { name: 'adam', lr: 0.01 } }),
    seed: 1,
    backend: 'cpu',
  };
}

/** Params of a sweep-student job with an online teacher on the local reference run. */
function studentParams(teacherModels: string[]): SweepStudentJobParams {
  const m = memberParams();
  return {
    trainFile: m.trainFile,
    validFile: m.validFile,
    testFile: m.testFile,
    rowsFile: path.join(dir, 'local', '.scratch-x', 'transfer-rows.i32'),
    teacherModels,
    combine: 'arithmetic',
    classes: 4,
    model: m.model,
    training: m.training,
    loss: { type: 'soft', T: 2, alpha: 0.9 },
    seed: 1,
    backend: 'cpu',
  };
}

const redisOk = haveRedisServer();
let redis: TestRedis;
const workers: Proc[] = [];
let reference: Record<string, Record<string, string>>;

beforeAll(async () => {
  if (!redisOk) return;
  redis = await startRedis();
  // Two workers, started while the reference runs.
  workers.push(startWorker(redis.url), startWorker(redis.url));
  const local = await pipeline(path.join(dir, 'local')).exit;
  expect(local.code, local.output).toBe(0);
  reference = runOutputs(path.join(dir, 'local'));
  expect(Object.keys(reference).sort()).toEqual(['generalist', 'ingest', ...JOB_STAGES]);
  await waitFor('two workers ready', () => workers.every((w) => /ready/.test(w.output())), 60_000);
}, 120_000);

afterAll(async () => {
  await killAll(workers);
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!redisOk)('train-ensemble members and distill-sweep students on a BullMQ queue (real Redis, two workers)', () => {
  it('a queued run (its coordinator SIGKILLed in the sweep and rerun) gives the artifacts of a local run byte for byte; both workers train, every job once', async () => {
    const mark = workers.map((w) => w.output().length);
    const out = copyWithout('queued', JOB_STAGES);
    // The first coordinator queues the members, then the sweep's students, and is killed once a
    // worker took one of them; the workers go on, and the rerun reattaches to what is still queued.
    const first = pipeline(out, ['--queue', redis.url], (o, child) => {
      if (/\[sweep\] w4-\w+: taken by worker/.test(o)) child.kill('SIGKILL');
    });
    const r1 = await first.exit;
    expect(r1.signal, r1.output).toBe('SIGKILL');
    expect(r1.output).toMatch(/\[members\] 2 members on queue distill-kit-jobs at redis:\/\/127\.0\.0\.1:\d+\/0/);
    expect(r1.output).toMatch(/\[members\] 2 ensemble-member job\(s\) on queue .*; \d+ worker\(s\) connected now; fails if no worker takes a job within 120 s/);
    expect(r1.output).toMatch(/\[members\] member-\d: taken by worker /);
    expect(r1.output).toMatch(/members: done/);
    const r = await pipeline(out, ['--queue', redis.url]).exit;
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/members: unchanged, skipped/);
    expect(r.output).toMatch(/\[sweep\] .*(already queued by an earlier run, reattached|already done, skipped)/);
    expect(r.output).toMatch(/\[sweepj\] 1 sweep-student job\(s\) on queue/);
    expect(r.output).toMatch(/\[sweepj\] w3-T3: taken by worker /);
    expect(runOutputs(out)).toEqual(reference);
    const logs = workers.map((w, i) => w.output().slice(mark[i]));
    expect(sorted(starts(...logs))).toEqual(Object.fromEntries(ALL_JOBS.map((id) => [id, 1])));
    // Each worker trained: with one job at a time, the members' two jobs go one to each.
    for (const log of logs) expect(Object.keys(starts(log)).length, log).toBeGreaterThan(0);
    // The finished batches' jobs are removed from Redis.
    const q = new Queue(QUEUE_NAME, { connection: { host: '127.0.0.1', port: redis.port } });
    expect(await q.getJobCounts('completed', 'waiting', 'active', 'failed')).toEqual({ completed: 0, waiting: 0, active: 0, failed: 0 });
    await q.close();
  }, 120_000);

  it('local processes (--workers 2) give the same artifacts', async () => {
    const out = copyWithout('workers2', JOB_STAGES);
    const r = await pipeline(out, ['--workers', '2']).exit;
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/\[members\] 2 members on 2 local worker\(s\)/);
    expect(runOutputs(out)).toEqual(reference);
  }, 120_000);

  it('workers reject payloads of the new job types naming paths outside the run folder, and unknown job types', async () => {
    const run = path.join(dir, 'local');
    const outside = path.join(dir, 'outside');
    const q = new Queue(QUEUE_NAME, { connection: { host: '127.0.0.1', port: redis.port } });
    try {
      const scratch = path.join(run, '.scratch-evil');
      await q.add('ensemble-member', { runDir: run, job: { id: 'member-0', outDir: path.join(scratch, 'member-0'), params: { ...memberParams(), trainFile: '/etc/passwd' } } }, { jobId: 'evil-m1', attempts: 3 });
      await q.add('ensemble-member', { runDir: run, job: { id: 'member-0', outDir: path.join(outside, 'member-0'), params: memberParams() } }, { jobId: 'evil-m2', attempts: 3 });
      const teacher = path.join(run, 'members', 'member-0', 'model');
      await q.add('sweep-student', { runDir: run, job: { id: 'w3-T2', outDir: path.join(scratch, 'w3-T2'), params: studentParams([teacher, path.join(outside, 'model')]) } }, { jobId: 'evil-s1', attempts: 3 });
      await q.add('sweep-student', { runDir: run, job: { id: 'w3-T2', outDir: path.join(scratch, 'w3-T2'), params: { ...studentParams([teacher]), rowsFile: path.join(run, '..', 'outside', 'rows.i32') } } }, { jobId: 'evil-s2', attempts: 3 });
      await q.add('sweep-student', { runDir: run, job: { id: 'w3-T2', outDir: path.join(scratch, 'w3-T2'), params: { ...studentParams([teacher]), module: '/tmp/evil.ts' } } }, { jobId: 'evil-s3', attempts: 3 });
      await q.add('train-anything', { runDir: run, job: { id: 'x', outDir: path.join(scratch, 'x'), params: {} } }, { jobId: 'evil-u', attempts: 3 });
      const until = Date.now() + 30_000;
      while ((await q.getJobCounts('failed')).failed < 6 && Date.now() < until) await sleep(100);
      const reason = async (id: string): Promise<string> => {
        const j = (await q.getJob(id))!;
        expect(j.attemptsMade, id).toBe(1); // a rejected payload is not retried
        return j.failedReason;
      };
      expect(await reason('evil-m1')).toMatch(/rejected by worker .*: ensemble-member job member-0: params\.trainFile \/etc\/passwd is outside the run folder/);
      expect(await reason('evil-m2')).toMatch(/ensemble-member job member-0: outDir .*outside.* is outside the run folder/);
      expect(await reason('evil-s1')).toMatch(/sweep-student job w3-T2: params\.teacherModels\[1\] .*outside.* is outside the run folder/);
      expect(await reason('evil-s2')).toMatch(/sweep-student job w3-T2: params\.rowsFile .* is outside the run folder/);
      expect(await reason('evil-s3')).toMatch(/sweep-student job w3-T2: bad params: .*module/);
      expect(await reason('evil-u')).toMatch(/unknown job type 'train-anything'; this worker runs only specialist, ensemble-member, sweep-student/);
      expect(existsSync(outside)).toBe(false);
      expect(existsSync(path.join(run, '.scratch-evil'))).toBe(false);
      await q.obliterate({ force: true });
    } finally {
      await q.close();
    }
  }, 60_000);

  it('a member failing on its own fails the stage with the worker message, after bounded retries', async () => {
    const run = path.join(dir, 'local');
    const scratchDir = path.join(run, '.scratch-fail');
    mkdirSync(scratchDir, { recursive: true });
    const job: Job = { id: 'member-0', outDir: path.join(scratchDir, 'member-0'), params: { ...memberParams(), trainFile: path.join(run, 'ingest', 'no-such.arrow') } };
    const t0 = Date.now();
    const ctx = { queue: redis.url, workers: 1, runDir: run, key: 'fail-key', scratchDir, log: silentLogger };
    await expect(runStageJobs(ctx, 'train-ensemble', 'members', 'ensemble-member', [job])).rejects.toThrow(
      /1 of 1 members failed \(finished ones are kept; rerun to retry the rest\):\n {2}member-0: .*no-such\.arrow.*\(after 2 attempt\(s\), worker /,
    );
    expect(existsSync(path.join(job.outDir, 'done'))).toBe(false);
    expect(Date.now() - t0).toBeLessThan(30_000);
  }, 60_000);

  it('no worker on the queue: the sweep students fail clearly after the printed timeout', async () => {
    const run = path.join(dir, 'local');
    const job: Job = { id: 'w3-T2', outDir: path.join(run, '.scratch-none', 'w3-T2'), params: studentParams([path.join(run, 'generalist', 'model')]) };
    const lines: string[] = [];
    const log = { info: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), progress: () => ({ tick: () => undefined, done: () => undefined }) };
    // Database 3: the workers listen on database 0.
    const p = new QueueJobRunner({ url: `${redis.url}/3`, pickupTimeoutMs: 1500, pollMs: 100 }).run({ type: 'sweep-student', jobs: [job], runDir: run, key: 'none', workers: 1, log });
    await expect(p).rejects.toThrow(/no worker took a job from queue distill-kit-jobs at redis:\/\/127.0.0.1:\d+\/3 within 1.5 s \(1 job\(s\) waiting, 0 worker\(s\) connected\); start workers .*npm run worker -- --queue/);
    expect(lines.join('\n')).toMatch(/1 sweep-student job\(s\) on queue .*0 worker\(s\) connected now; fails if no worker takes a job within 1.5 s/);
  }, 30_000);
});
