/**
 * Child-process entry of a stage process (`stage-process.ts`): receives one {@link StageRequest}
 * over IPC, reloads the config, checks it against the scheduler's fingerprint, runs that one stage
 * with `runPipeline` (`--only`), answers `{ ok }` or the error, and exits. If the parent goes away
 * while the stage runs, the stage stops rather than train on as an orphan.
 */
import { loadConfig } from './config.ts';
import { runPipeline } from './runner.ts';
import { STAGES } from './stages/index.ts';
import { configFingerprint, stageRequestSchema, type StageReply } from './stage-process.ts';
import { UserError } from '../src/util/errors.ts';

let busy = false;
process.on('disconnect', () => process.exit(busy ? 130 : 0));

function answer(reply: StageReply): void {
  busy = false;
  if (process.send) process.send(reply, () => process.exit(0));
  else process.exit(reply.ok ? 0 : 1);
}

process.once('message', (raw: unknown) => {
  busy = true;
  void (async () => {
    try {
      const parsed = stageRequestSchema.safeParse(raw);
      if (!parsed.success) throw new Error(`stage process: malformed request: ${parsed.error.message}`);
      const req = parsed.data;
      const config = loadConfig(req.configFile, STAGES);
      if (configFingerprint(config) !== req.fingerprint) {
        throw new UserError('config', `${req.configFile} changed after this run started, so stage '${req.stage}' was not run from it; rerun the command to run the config as it is now`);
      }
      await runPipeline(config, {
        out: req.out,
        cacheDir: req.cacheDir,
        only: [req.stage],
        force: req.force,
        workers: req.workers,
        recovered: true,
        ...(req.backend !== undefined ? { backend: req.backend } : {}),
        ...(req.seed !== undefined ? { seed: req.seed } : {}),
        ...(req.queue !== undefined ? { queue: req.queue } : {}),
      });
      answer({ ok: true });
    } catch (e) {
      const err = e as Error;
      answer({ ok: false, error: err?.message ?? String(e), ...(e instanceof UserError ? { kind: e.kind } : {}), ...(err?.stack ? { stack: err.stack } : {}) });
    }
  })();
});
