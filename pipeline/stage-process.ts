/**
 * One pipeline stage in a child process of its own (the concurrent scheduler's unit of work,
 * `concurrent-runner.ts`): the child (`stage-entry.ts`) reloads the config file, checks that it is
 * still the config the scheduler planned with, and runs `runPipeline` with `--only` that stage, so
 * the child applies every rule of the sequential runner (cache keys, locks, verified inputs, folder
 * swaps, manifests). It is told its stage over IPC and answers once, then exits.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { sha256, stableStringify } from '../src/artifacts/hash.ts';
import type { Logger } from '../src/util/log.ts';
import { CODE_EXT, COMPILED } from '../src/util/package-root.ts';
import type { PipelineConfig } from './config.ts';

/** What the scheduler asks of a stage process (parsed by the child: a process boundary). */
export const stageRequestSchema = z.strictObject({
  /** The config file, reloaded by the child. */
  configFile: z.string().min(1),
  /** {@link configFingerprint} of the config the scheduler planned with. */
  fingerprint: z.string().regex(/^[0-9a-f]{64}$/),
  /** The stage to run. */
  stage: z.string().min(1),
  /** The run folder (absolute). */
  out: z.string().min(1),
  /** The dataset cache folder (absolute). */
  cacheDir: z.string().min(1),
  /** Rerun even when unchanged (`--force`, `--from`). */
  force: z.boolean(),
  backend: z.string().optional(),
  seed: z.number().int().min(0).optional(),
  /** Worker processes this stage may use for its own jobs. */
  workers: z.number().int().positive(),
  queue: z.string().optional(),
});

/** A request to a stage process. */
export type StageRequest = z.output<typeof stageRequestSchema>;

/** The child's one answer. */
export const stageReplySchema = z.discriminatedUnion('ok', [
  z.strictObject({ ok: z.literal(true) }),
  z.strictObject({
    ok: z.literal(false),
    error: z.string(),
    /** The `UserError` kind, when the stage failed on a user's error (config, data, artifact, lock...). */
    kind: z.string().optional(),
    stack: z.string().optional(),
  }),
]);

/** A stage process's answer. */
export type StageReply = z.output<typeof stageReplySchema>;

/**
 * A digest of what a config asks for (name, seed, backend, queue, every stage's name, type and
 * validated params): the child refuses to run when the file it reloads no longer matches.
 */
export function configFingerprint(config: PipelineConfig): string {
  return sha256(
    stableStringify({
      name: config.name,
      seed: config.seed,
      backend: config.backend,
      queue: config.queue ?? null,
      stages: config.stages.map((s) => ({ name: s.name, type: s.type, params: s.params })),
    }),
  );
}

const require = createRequire(import.meta.url);
// Started by path, so not an import:
// code-key: ./stage-entry.ts
const ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), `stage-entry${CODE_EXT}`);
/** From the sources, the child runs under tsx's loader; compiled (an installed package), plain node. */
const entryExecArgv = (): string[] => (COMPILED ? [] : ['--import', pathToFileURL(path.join(path.dirname(require.resolve('tsx/package.json')), 'dist', 'loader.mjs')).href]);

/** A stage process started by {@link startStageProcess}. */
export interface StageProcess {
  /** Resolves when the child has answered and exited (or died: then an error reply saying so). */
  done: Promise<StageReply>;
  /** Sends a signal to the child (Ctrl-C, termination): its runner removes its temporary folder. */
  kill(signal: NodeJS.Signals): void;
}

/**
 * Starts one stage in a child process with environment `env`; its output lines go to `log`,
 * prefixed `[stage]` when they are not already.
 */
export function startStageProcess(req: StageRequest, env: NodeJS.ProcessEnv, log: Logger): StageProcess {
  const child: ChildProcess = fork(ENTRY, [], { execArgv: entryExecArgv(), env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let tail = '';
  let partial = '';
  const forward = (chunk: Buffer): void => {
    const s = partial + chunk.toString('utf8');
    tail = (tail + chunk.toString('utf8')).slice(-4000);
    const lines = s.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) log.info(line.startsWith(`[${req.stage}]`) ? line : `[${req.stage}] ${line}`);
  };
  child.stdout?.on('data', forward);
  child.stderr?.on('data', forward);
  let reply: StageReply | undefined;
  const done = new Promise<StageReply>((resolve) => {
    child.on('message', (m: unknown) => {
      const r = stageReplySchema.safeParse(m);
      reply = r.success ? r.data : { ok: false, error: `stage process for '${req.stage}' sent a malformed reply: ${r.error.message}` };
    });
    const finish = (why: string): void => {
      if (partial.trim()) log.info(`[${req.stage}] ${partial}`);
      partial = '';
      resolve(reply ?? { ok: false, error: `the process running stage '${req.stage}' ${why} without reporting a result${tail.trim() ? `; last output:\n${tail.trim()}` : ''}` });
    };
    child.on('error', (e) => finish(`could not start (${e.message})`));
    child.on('exit', (code, signal) => finish(signal ? `died (signal ${signal})` : `exited (code ${code})`));
  });
  child.send(req);
  return {
    done,
    kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}
