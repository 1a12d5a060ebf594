/**
 * Child-process entry of the worker pool (`worker-pool.ts`): started with `node --import tsx`,
 * it receives one `{ module, job }` message over IPC, imports the job module, awaits its
 * `runJob(job)`, reports `{ ok: true }` or `{ ok: false, error }` and exits.
 */
import { pathToFileURL } from 'node:url';
import type { Job, JobModule, WorkerReply, WorkerRequest } from './worker-pool.ts';

function reply(msg: WorkerReply, code: number): void {
  if (process.send) process.send(msg, () => process.exit(code));
  else process.exit(code);
}

// The parent went away (killed, interrupted): stop too, rather than train on as an orphan.
process.on('disconnect', () => process.exit(130));

process.once('message', (raw: unknown) => {
  const req = raw as WorkerRequest;
  void (async () => {
    try {
      const mod = (await import(pathToFileURL(req.module).href)) as Partial<JobModule>;
      if (typeof mod.runJob !== 'function') throw new Error(`job module ${req.module} does not export a function runJob(job)`);
      await mod.runJob(req.job as Job);
      reply({ ok: true }, 0);
    } catch (e) {
      const err = e as Error;
      reply({ ok: false, error: err?.message ?? String(e), stack: err?.stack }, 1);
    }
  })();
});
