/**
 * The job queue against a real Redis (Debian's redis-server, started here on 127.0.0.1 with a free
 * port and a temporary folder) and real worker processes (`src/cli/worker.ts`): the specialists of
 * a tiny pipeline on two workers give the artifacts of a local run, byte for byte, also when one
 * worker is SIGKILLed mid-job or the coordinator is SIGKILLed and rerun (nothing trained twice);
 * a failing job fails the batch with the worker's message after bounded retries; payloads naming
 * paths outside the run folder or unknown job types are rejected; no worker and a Redis restart
 * give clear errors.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { QueueJobRunner } from '../../src/jobs/queue-runner.ts';
import { QUEUE_NAME } from '../../src/jobs/queue-connection.ts';
import type { Job } from '../../src/specialists/worker-pool.ts';
import type { SpecialistJobParams } from '../../src/specialists/worker-specialist-job.ts';
import { haveRedisServer, startRedis, type TestRedis } from '../../src/jobs/local-redis.ts';
import { killAll, runOutputs, startScript, startWorker, waitFor, type Proc } from '../helpers/queue-procs.ts';

const CONFIG = `
name: queue
seed: 5
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 12, groups: 3, dim: 8, perClass: 40, seed: 3, classSpread: 0.5}}
  generalist: {hidden: [8], epochs: 6, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  covariance: {}
  clusters: {k: 3}
  specialists: {epochs: 4, batch_size: 16, optimizer: {name: adam, lr: 0.005}}
`;

const dir = mkdtempSync(path.join(os.tmpdir(), 'queue-'));
const configFile = path.join(dir, 'queue.yaml');
writeFileSync(configFile, CONFIG);

const pipeline = (out: string, args: string[] = [], onOutput?: (o: string, c: ChildProcess) => void): Proc => startScript('pipeline/cli.ts', ['--config', configFile, '--out', out, ...args], onOutput);
const worker = startWorker;
const outputs = runOutputs;

/** A copy of the local reference run without its specialists (only they rerun). */
function copyWithoutSpecialists(name: string): string {
  const out = path.join(dir, name);
  cpSync(path.join(dir, 'local'), out, { recursive: true });
  rmSync(path.join(out, 'specialists'), { recursive: true });
  return out;
}

/** How often each specialist was started, over the outputs of workers (`[worker] specialist-01: started`). */
function starts(...logs: string[]): Record<string, number> {
  const n: Record<string, number> = {};
  for (const log of logs) for (const m of log.matchAll(/\] (specialist-\d+): started/g)) n[m[1]!] = (n[m[1]!] ?? 0) + 1;
  return n;
}

/** Valid params of a tiny specialist job on the local reference run. */
function goodParams(): SpecialistJobParams {
  const run = path.join(dir, 'local');
  return {
    generalistDir: path.join(run, 'generalist', 'model'),
    trainFile: path.join(run, 'ingest', 'train.arrow'),
    validFile: path.join(run, 'ingest', 'valid.arrow'),
    classes: [0, 1, 2, 3],
    head: 'dustbin',
    softWeight: 1,
    T: 2,
    correction: 'fitted',
    epochs: 1,
    batchSize: 16,
    optimizer: { name: 'adam', lr: 0.005 } as SpecialistJobParams['optimizer'],
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
  const local = await pipeline(path.join(dir, 'local')).exit;
  expect(local.code, local.output).toBe(0);
  reference = outputs(path.join(dir, 'local'));
}, 180_000);

afterAll(async () => {
  await killAll(workers);
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!redisOk)('specialists on a BullMQ queue (real Redis, real workers)', () => {
  it('two workers, one SIGKILLed mid-job: its job goes to the other, and the artifacts equal a local run byte for byte', async () => {
    // Worker a dies (SIGKILL) when its first job has written all its files but not its done marker.
    const a = worker(redis.url, 'queue-job-finished');
    const b = worker(redis.url);
    workers.push(a, b);
    await waitFor('two workers ready', () => /ready/.test(a.output()) && /ready/.test(b.output()), 60_000);
    const out = copyWithoutSpecialists('killed-worker');
    const r = await pipeline(out, ['--queue', redis.url]).exit;
    expect((await a.exit).signal, a.output()).toBe('SIGKILL');
    expect(a.output()).not.toMatch(/done in/);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/job\(s\) on queue distill-kit-jobs at redis:\/\/127\.0\.0\.1:\d+\/0; \d worker\(s\) connected now; fails if no worker takes a job within 120 s/);
    expect(r.output).toMatch(/taken by worker .*\(start 2\)/);
    expect(outputs(out)).toEqual(reference);
    // Worker b ran the killed worker's job again, and every job ran on some worker.
    const s = starts(a.output(), b.output());
    expect(Object.keys(s).sort()).toEqual(['specialist-00', 'specialist-01', 'specialist-02']);
    expect(Object.values(s).reduce((x, y) => x + y, 0)).toBe(4);
  }, 240_000);

  it('a coordinator SIGKILLed and rerun reattaches to its queued jobs: nothing is trained twice, same artifacts', async () => {
    const c = worker(redis.url);
    workers.push(c);
    await waitFor('worker c ready', () => /ready/.test(c.output()), 60_000);
    const live = workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
    const mark = live.map((w) => w.output().length);
    const out = copyWithoutSpecialists('killed-coordinator');
    const first = pipeline(out, ['--queue', redis.url], (o, child) => {
      if (/taken by worker/.test(o)) child.kill('SIGKILL');
    });
    const r1 = await first.exit;
    expect(r1.signal).toBe('SIGKILL');
    const r2 = await pipeline(out, ['--queue', redis.url]).exit;
    expect(r2.code, r2.output).toBe(0);
    expect(r2.output).toMatch(/already queued by an earlier run, reattached|already done, skipped/);
    expect(outputs(out)).toEqual(reference);
    const s = starts(...live.map((w, i) => w.output().slice(mark[i])));
    expect(s).toEqual({ 'specialist-00': 1, 'specialist-01': 1, 'specialist-02': 1 });
    // The finished batch's jobs are removed from Redis.
    const q = new Queue(QUEUE_NAME, { connection: { host: '127.0.0.1', port: redis.port } });
    expect(await q.getJobCounts('completed', 'waiting', 'active', 'failed')).toEqual({ completed: 0, waiting: 0, active: 0, failed: 0 });
    await q.close();
  }, 240_000);

  it('a job that fails on its own fails the batch with the worker message, after bounded retries', async () => {
    const run = path.join(dir, 'local');
    const good = goodParams();
    const job: Job = { id: 'specialist-00', outDir: path.join(run, '.scratch-fail', 'specialist-00'), params: { ...good, generalistDir: path.join(run, 'no-such-model') } };
    const t0 = Date.now();
    const r = await new QueueJobRunner({ url: redis.url, pollMs: 100 }).run({ type: 'specialist', jobs: [job], runDir: run, key: 'fail-key', workers: 1 });
    expect(r.completed).toEqual([]);
    expect(r.failed).toHaveLength(1);
    expect(r.failed[0]!.error).toMatch(/no-such-model/);
    expect(r.failed[0]!.error).toMatch(/after 2 attempt\(s\), worker /);
    expect(existsSync(path.join(job.outDir, 'done'))).toBe(false);
    expect(Date.now() - t0).toBeLessThan(60_000);
  }, 90_000);

  it('workers reject payloads naming paths outside the run folder, and unknown job types, without running them', async () => {
    const run = path.join(dir, 'local');
    const outside = path.join(dir, 'outside');
    const good = goodParams();
    const q = new Queue(QUEUE_NAME, { connection: { host: '127.0.0.1', port: redis.port } });
    try {
      await q.add('specialist', { runDir: run, job: { id: 'specialist-00', outDir: path.join(outside, 'specialist-00'), params: good } }, { jobId: 'evil-1', attempts: 3 });
      await q.add('specialist', { runDir: run, job: { id: 'specialist-00', outDir: path.join(run, '.scratch-x', 'specialist-00'), params: { ...good, trainFile: '/etc/passwd' } } }, { jobId: 'evil-2', attempts: 3 });
      await q.add('shell', { runDir: run, job: { id: 'x', outDir: path.join(run, 'x'), params: { cmd: 'touch /tmp/pwned' } } }, { jobId: 'evil-3', attempts: 3 });
      // Wait for these three jobs by id: the queue's failed count can also hold an earlier test's job.
      const ids = ['evil-1', 'evil-2', 'evil-3'];
      const until = Date.now() + 45_000;
      const allFailed = async (): Promise<boolean> => (await Promise.all(ids.map(async (id) => (await q.getJob(id))?.isFailed() ?? false))).every(Boolean);
      while (!(await allFailed()) && Date.now() < until) await sleep(100);
      expect(await allFailed(), 'the three rejected jobs failed within 45 s').toBe(true);
      const reason = async (id: string): Promise<[string, number]> => {
        const j = (await q.getJob(id))!;
        return [j.failedReason, j.attemptsMade];
      };
      const [r1, n1] = await reason('evil-1');
      expect(r1).toMatch(/rejected by worker .*outDir .*outside.* is outside the run folder/);
      expect(n1).toBe(1); // no retry for a rejected payload
      expect((await reason('evil-2'))[0]).toMatch(/params.trainFile \/etc\/passwd is outside the run folder/);
      expect((await reason('evil-3'))[0]).toMatch(/unknown job type 'shell'; this worker runs only specialist/);
      expect(existsSync(outside)).toBe(false);
      expect(existsSync(path.join(run, 'x'))).toBe(false);
      await q.obliterate({ force: true });
    } finally {
      await q.close();
    }
  }, 60_000);

  it('no worker on the queue: a clear error after the printed timeout', async () => {
    const run = path.join(dir, 'local');
    mkdirSync(path.join(run, '.scratch-none'), { recursive: true });
    const job: Job = { id: 'specialist-00', outDir: path.join(run, '.scratch-none', 'specialist-00'), params: {} };
    const lines: string[] = [];
    const log = { info: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), progress: () => ({ tick: () => undefined, done: () => undefined }) };
    // Database 1: the workers listen on database 0.
    const p = new QueueJobRunner({ url: `${redis.url}/1`, pickupTimeoutMs: 1500, pollMs: 100 }).run({ type: 'specialist', jobs: [job], runDir: run, key: 'none', workers: 1, log });
    await expect(p).rejects.toThrow(/no worker took a job from queue distill-kit-jobs at redis:\/\/127.0.0.1:\d+\/1 within 1.5 s \(1 job\(s\) waiting, 0 worker\(s\) connected\); start workers .*npm run worker -- --queue redis:\/\/127.0.0.1:\d+\/1/);
    expect(lines.join('\n')).toMatch(/0 worker\(s\) connected now; fails if no worker takes a job within 1.5 s/);
    await expect(new QueueJobRunner({ url: 'redis://127.0.0.1:1', redisTimeoutMs: 1000 }).run({ type: 'specialist', jobs: [job], runDir: run, key: 'none', workers: 1 })).rejects.toThrow(/cannot reach Redis at redis:\/\/127.0.0.1:1\/0 within 1 s/);
  }, 60_000);

  it('Redis restarted without persistence mid-stage: a clear error, never a silently incomplete stage; a rerun then finishes', async () => {
    const run = path.join(dir, 'local');
    const good = goodParams();
    const jobs: Job[] = [0, 1].map((k) => ({ id: `specialist-0${k}`, outDir: path.join(run, '.scratch-restart', `specialist-0${k}`), params: good }));
    const url = `${redis.url}/2`; // no worker here until the rerun
    const p = new QueueJobRunner({ url, pollMs: 100, redisTimeoutMs: 20_000 }).run({ type: 'specialist', jobs, runDir: run, key: 'restart', workers: 1 });
    const q = new Queue(QUEUE_NAME, { connection: { host: '127.0.0.1', port: redis.port, db: 2 } });
    const until = Date.now() + 20_000;
    while ((await q.getJobCounts('waiting')).waiting < 2 && Date.now() < until) await sleep(100);
    await q.close();
    await redis.restart();
    // Whichever job the coordinator polls first after the restart is the one it names.
    await expect(p).rejects.toThrow(/specialist-0([01]) \(queue id specialist\.[0-9a-f]{20}\.\1\) is no longer on queue distill-kit-jobs at redis:\/\/127.0.0.1:\d+\/2 and did not finish: Redis was restarted without persistence/);
    const w = worker(url);
    workers.push(w);
    const r = await new QueueJobRunner({ url, pollMs: 100 }).run({ type: 'specialist', jobs, runDir: run, key: 'restart', workers: 1 });
    expect(r.failed).toEqual([]);
    expect(r.completed.sort()).toEqual(['specialist-00', 'specialist-01']);
  }, 120_000);
});
