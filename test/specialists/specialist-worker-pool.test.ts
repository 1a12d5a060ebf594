import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DONE_MARKER, runJobPool, threadsPerWorker, type Job } from '../../src/specialists/worker-pool.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'pool-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A trivial job module in TypeScript (so the children must run it through tsx).
const jobModule = path.join(dir, 'job.ts');
writeFileSync(
  jobModule,
  `import { writeFileSync } from 'node:fs';
interface P { sleepMs: number; fail?: boolean; crash?: boolean }
export async function runJob(job: { id: string; outDir: string; params?: unknown }): Promise<void> {
  const p = job.params as P;
  const start = Date.now();
  await new Promise((r) => setTimeout(r, p.sleepMs));
  if (p.fail) throw new Error('boom in ' + job.id);
  if (p.crash) process.exit(3);
  writeFileSync(job.outDir + '/result.json', JSON.stringify({ start, end: Date.now(), pid: process.pid, threads: process.env.OPENBLAS_NUM_THREADS ?? null }));
}
`,
);

const job = (id: string, params: Record<string, unknown>): Job => ({ id, outDir: path.join(dir, id), params });
const result = (id: string): { start: number; end: number; pid: number; threads: string | null } => JSON.parse(readFileSync(path.join(dir, id, 'result.json'), 'utf8'));

describe('runJobPool', () => {
  it('threads per worker = max(1, floor(cores / N))', () => {
    expect(threadsPerWorker(8, 2)).toBe(4);
    expect(threadsPerWorker(2, 2)).toBe(1);
    expect(threadsPerWorker(2, 3)).toBe(1);
    expect(threadsPerWorker(7, 2)).toBe(3);
  });

  it('runs jobs in parallel child processes, skips done ones, reports failures by id', async () => {
    const jobs = [job('a', { sleepMs: 2500 }), job('b', { sleepMs: 2500 }), job('skipme', { sleepMs: 10 }), job('bad', { sleepMs: 10, fail: true }), job('crash', { sleepMs: 10, crash: true })];
    // 'skipme' finished in an earlier run.
    await import('node:fs/promises').then((fs) => fs.mkdir(jobs[2].outDir, { recursive: true }));
    writeFileSync(path.join(jobs[2].outDir, DONE_MARKER), '{}');
    const r = await runJobPool({ module: jobModule, jobs, workers: 2, cores: 4 });
    expect(r.skipped).toEqual(['skipme']);
    expect(existsSync(path.join(jobs[2].outDir, 'result.json'))).toBe(false);
    expect([...r.completed].sort()).toEqual(['a', 'b']);
    expect(r.failed.map((f) => f.id).sort()).toEqual(['bad', 'crash']);
    expect(r.failed.find((f) => f.id === 'bad')!.error).toContain('boom in bad');
    expect(r.failed.find((f) => f.id === 'crash')!.error).toContain('exit code 3');
    const a = result('a');
    const b = result('b');
    // Different child processes, running at the same time (their intervals overlap).
    expect(a.pid).not.toBe(b.pid);
    expect(a.pid).not.toBe(process.pid);
    expect(Math.max(a.start, b.start)).toBeLessThan(Math.min(a.end, b.end));
    expect(a.threads).toBe('2');
    // Done markers only for completed jobs.
    expect(existsSync(path.join(jobs[0].outDir, DONE_MARKER))).toBe(true);
    expect(existsSync(path.join(jobs[3].outDir, DONE_MARKER))).toBe(false);
    // A second run skips every finished job and retries only the failed ones.
    const again = await runJobPool({ module: jobModule, jobs: jobs.slice(0, 4), workers: 2, cores: 4 });
    expect([...again.skipped].sort()).toEqual(['a', 'b', 'skipme']);
    expect(again.failed.map((f) => f.id)).toEqual(['bad']);
    expect(again.completed).toEqual([]);
  });

  it('with one worker runs jobs in this process, in order', async () => {
    const jobs = [job('s1', { sleepMs: 5 }), job('s2', { sleepMs: 5 }), job('s3', { sleepMs: 5, fail: true })];
    const r = await runJobPool({ module: jobModule, jobs, workers: 1 });
    expect(r.completed).toEqual(['s1', 's2']);
    expect(r.failed).toEqual([{ id: 's3', error: 'boom in s3' }]);
    expect(result('s1').pid).toBe(process.pid);
    expect(result('s1').end).toBeLessThanOrEqual(result('s2').start);
  });

  it('rejects duplicate ids and bad worker counts', async () => {
    await expect(runJobPool({ module: jobModule, jobs: [job('x', {}), job('x', {})], workers: 2 })).rejects.toThrow(/used twice/);
    await expect(runJobPool({ module: jobModule, jobs: [], workers: 0 })).rejects.toThrow(/workers/);
  });
});
