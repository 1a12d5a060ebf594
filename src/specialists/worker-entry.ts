/**
 * Child-process entry of the worker pool (`worker-pool.ts`): started with `node --import tsx`,
 * it receives `{ module, job }` messages over IPC, one at a time, imports the job module, awaits
 * its `runJob(job)` and reports `{ ok: true, id }` or `{ ok: false, error, id }`; it exits when
 * the parent closes the channel.
 */
import { pathToFileURL } from 'node:url';
import type { Job, JobModule, WorkerReply, WorkerRequest } from './worker-pool.ts';

let busy = false;

function reply(msg: WorkerReply & { id: string }): void {
  busy = false;
  process.send?.(msg);
}

// The parent closed the channel: when idle that is the normal end; during a job the parent went
// away (killed, interrupted), so stop rather than train on as an orphan.
process.on('disconnect', () => process.exit(busy ? 130 : 0));

process.on('message', (raw: unknown) => {
  const req = raw as WorkerRequest;
  busy = true;
  void (async () => {
    try {
      const mod = (await import(pathToFileURL(req.module).href)) as Partial<JobModule>;
      if (typeof mod.runJob !== 'function') throw new Error(`job module ${req.module} does not export a function runJob(job)`);
      await mod.runJob(req.job as Job);
      reply({ ok: true, id: req.job.id });
    } catch (e) {
      const err = e as Error;
      reply({ ok: false, error: err?.message ?? String(e), stack: err?.stack, id: req.job.id });
    }
  })();
});
