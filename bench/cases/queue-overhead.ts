import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { RUN_MARKER } from '../../src/artifacts/run-folder.ts';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../../pipeline/runner.ts';
import { QueueJobRunner } from '../../src/jobs/queue-runner.ts';
import { haveRedisServer, startRedis } from '../../src/jobs/local-redis.ts';
import { SPECIALIST_JOB_MODULE } from '../../src/specialists/worker-specialist-job.ts';
import { DONE_MARKER, runJobPool, type Job } from '../../src/specialists/worker-pool.ts';
import type { BenchCase, BenchContext, BenchMeasurement } from '../types.ts';
import { makeSpecialistsProblem, specialistJobs } from './specialists-workers.ts';

/** Tiny specialists: the jobs' own work is small, so the wall time shows what runs around them. */
const SIZE = { dim: 16, hidden: [16], perClass: 20, epochs: 1 };

/** Sum of the jobs' own durations from their `done` markers. */
async function jobSeconds(jobs: Job[]): Promise<number> {
  let sum = 0;
  for (const j of jobs) sum += (JSON.parse(await readFile(path.join(j.outDir, DONE_MARKER), 'utf8')) as { seconds: number }).seconds;
  return sum;
}

/**
 * The job queue's overhead per job: the same tiny specialist jobs (4 per round, 3 rounds, 40
 * classes, a 16-16-40 generalist, 1 epoch) run by the local pool with 2 child processes and by the
 * BullMQ queue (`QueueJobRunner`, polling every 100 ms) with one `npm run worker` process of
 * concurrency 2 on a throwaway local Redis (`redis-server`; the case is skipped without it). The
 * local pool starts its 2 child processes for every batch (every stage run); the worker keeps its
 * children across batches (started and warmed before timing), so the wall times per job differ by
 * process start-up as well. The overhead *around* a job, wall time per job minus the jobs' own time
 * (from their done markers) over the 2 lanes, separates what the queue adds: enqueueing, Redis
 * round trips, the poll interval (100 ms here, 500 ms in the pipeline) and the worker's checks.
 */
export const benchCase: BenchCase = {
  name: 'queue-overhead',
  description: 'job queue (BullMQ on a local Redis, 1 worker x 2) vs the local pool (2 processes): wall time per tiny specialist job',
  backends: ['cpu'],
  async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
    if (!haveRedisServer()) {
      ctx.log.warn('queue-overhead: redis-server is not installed (apt-get install redis-server); skipped');
      return [];
    }
    const rounds = ctx.quick ? 1 : 3;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-queue-'));
    const redis = await startRedis();
    const worker = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'src/cli/worker.ts'), '--queue', redis.url, '--concurrency', '2'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let wout = '';
    worker.stdout.on('data', (b: Buffer) => (wout += b.toString()));
    worker.stderr.on('data', (b: Buffer) => (wout += b.toString()));
    try {
      const problem = await makeSpecialistsProblem(dir, SIZE);
      await writeFile(path.join(dir, RUN_MARKER), '{}'); // workers run jobs only inside a run folder
      const until = Date.now() + 120_000;
      while (!/ready/.test(wout)) {
        if (Date.now() > until || worker.exitCode !== null) throw new Error(`queue-overhead: the worker did not start:\n${wout}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const runner = new QueueJobRunner({ url: redis.url, pollMs: 100 });
      let local = 0;
      let queued = 0;
      let localJobs = 0;
      let queuedJobs = 0;
      let n = 0;
      // Round 0 of each warms the child processes (their start-up is not the queue's cost): not timed.
      for (let r = 0; r <= rounds; r++) {
        const lj = specialistJobs(problem, path.join(dir, `local-${r}`), SIZE.epochs, 'cpu');
        const t0 = performance.now();
        const a = await runJobPool({ module: SPECIALIST_JOB_MODULE, jobs: lj, workers: 2 });
        const t1 = performance.now();
        const qj = specialistJobs(problem, path.join(dir, `queue-${r}`), SIZE.epochs, 'cpu');
        const b = await runner.run({ type: 'specialist', jobs: qj, runDir: dir, key: `bench-${r}`, workers: 2 });
        const t2 = performance.now();
        if (a.failed.length || b.failed.length) throw new Error(`queue-overhead: jobs failed: ${[...a.failed, ...b.failed].map((f) => `${f.id}: ${f.error}`).join('; ')}`);
        if (r === 0) continue;
        local += (t1 - t0) / 1000;
        queued += (t2 - t1) / 1000;
        localJobs += await jobSeconds(lj);
        queuedJobs += await jobSeconds(qj);
        n += lj.length;
      }
      const what = `${n} tiny specialist jobs (${SIZE.dim}-${SIZE.hidden.join('-')}-40, ${SIZE.epochs} epoch) in ${rounds} rounds of 4; load average ${os.loadavg()[0]!.toFixed(1)} on ${os.availableParallelism()} cores`;
      return [
        { bench: 'queue-overhead-local-per-job', value: (local / n) * 1000, unit: 'ms', detail: `local pool, 2 processes; ${what}; jobs themselves ${((localJobs / n) * 1000).toFixed(0)} ms each` },
        { bench: 'queue-overhead-queue-per-job', value: (queued / n) * 1000, unit: 'ms', detail: `BullMQ, 1 worker x 2, poll 100 ms; jobs themselves ${((queuedJobs / n) * 1000).toFixed(0)} ms each` },
        { bench: 'queue-overhead-local-around-job', value: ((local - localJobs / 2) / n) * 1000, unit: 'ms', detail: 'local: wall time per job minus its own time / 2 lanes' },
        { bench: 'queue-overhead-queue-around-job', value: ((queued - queuedJobs / 2) / n) * 1000, unit: 'ms', detail: 'queue: wall time per job minus its own time / 2 lanes' },
        { bench: 'queue-overhead-per-job', value: ((queued - queuedJobs / 2 - (local - localJobs / 2)) / n) * 1000, unit: 'ms', detail: 'what the queue adds around a job, over the local pool' },
      ];
    } finally {
      worker.kill('SIGTERM');
      await new Promise((r) => (worker.exitCode !== null ? r(undefined) : worker.once('exit', r)));
      await redis.stop();
      await rm(dir, { recursive: true, force: true });
    }
  },
};
