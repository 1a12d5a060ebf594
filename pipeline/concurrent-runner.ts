/**
 * Runs independent stages of a config at the same time (`npm run pipeline -- --workers N
 * --concurrent-stages`): a stage starts, in a child process of its own (`stage-process.ts`), as
 * soon as every stage it reads that this run includes has finished, while a process slot is free.
 * Of N slots an ordinary stage takes one and gets cores / N BLAS threads; a stage that fans out
 * jobs (`StageDef.fansOut`: specialists, ensemble members, sweep students) takes every slot when
 * all are free and runs that many workers (its pool splits the cores), else one slot. Among ready stages, the one with the most stages
 * downstream of it starts first (the generalist before a control that nothing reads).
 *
 * Each child runs its stage with the sequential runner's own rules (`runPipeline` with `--only`),
 * so caching, locks, input checks and the folder swap are the same; the results of a stage may
 * differ from a sequential run's in the last digits only where its BLAS thread count differs.
 * A failing stage stops new stages from starting; the stages running beside it finish (their
 * work is kept), then its error is thrown. Ctrl-C or SIGTERM is passed to every running stage,
 * whose temporary folders are removed; finished stages are kept for the rerun.
 */
import os from 'node:os';
import path from 'node:path';
import { readManifest } from '../src/artifacts/manifest.ts';
import { ArtifactError, UserError } from '../src/util/errors.ts';
import { createLogger, type Logger } from '../src/util/log.ts';
import type { PipelineConfig, StageConfig } from './config.ts';
import { openRunFolder, recoverInterruptedSwaps, selectStages, type RunOptions, type StageOutcome } from './runner.ts';
import { configFingerprint, startStageProcess, type StageProcess, type StageReply } from './stage-process.ts';

/** Options of {@link runPipelineConcurrently}: those of `runPipeline`, with `workers` the process slots. */
export type ConcurrentRunOptions = Omit<RunOptions, 'onStageStart' | 'recovered'> & {
  /** Process slots shared by the stages (>= 2). */
  workers: number;
  /** Cores shared by the slots. Default `os.availableParallelism()`. */
  cores?: number;
};

/** What {@link runPipelineConcurrently} did: each stage's outcome, in the order they finished. */
export interface ConcurrentRunResult {
  runDir: string;
  stages: StageOutcome[];
}

/** A stage of this run with what it waits for and how many stages lie downstream of it. */
interface Planned {
  stage: StageConfig;
  index: number;
  waitsFor: string[];
  downstream: number;
}

/** Each selected stage, the selected stages it reads (deps and optional deps), and its downstream count. */
function plan(config: PipelineConfig, run: StageConfig[]): Planned[] {
  const names = config.stages.map((s) => s.name);
  const selected = new Set(run.map((s) => s.name));
  const reads = new Map<string, string[]>();
  for (const s of run) {
    const earlier = names.slice(0, names.indexOf(s.name));
    const all = [...s.def.deps(s.params, earlier), ...(s.def.optionalDeps?.(s.params, earlier) ?? [])];
    reads.set(s.name, [...new Set(all)].filter((d) => selected.has(d)));
  }
  const downstreamOf = (name: string): Set<string> => {
    const out = new Set<string>();
    const visit = (n: string): void => {
      for (const [s, r] of reads) {
        if (!r.includes(n) || out.has(s)) continue;
        out.add(s);
        visit(s);
      }
    };
    visit(name);
    return out;
  };
  return run.map((stage) => ({ stage, index: names.indexOf(stage.name), waitsFor: reads.get(stage.name)!, downstream: downstreamOf(stage.name).size }));
}

/**
 * Runs the selected stages of `config` (all of them, or `--only` / `--from` as in `runPipeline`),
 * independent ones side by side in up to `opts.workers` child processes (see the module comment).
 * The config must come from a file (`config.file`): each child reloads it.
 * @throws the error of the first stage that failed (a `UserError` of the same kind when it was one),
 *   after the stages running beside it have finished.
 */
export async function runPipelineConcurrently(config: PipelineConfig, opts: ConcurrentRunOptions): Promise<ConcurrentRunResult> {
  const log: Logger = opts.log ?? createLogger();
  const slots = opts.workers;
  if (!Number.isInteger(slots) || slots < 2) throw new UserError('usage', `--concurrent-stages runs stages side by side in the --workers processes: give --workers 2 or more (got ${slots})`);
  const { run, forced } = selectStages(config, opts);
  const { runDir, cacheDir } = await openRunFolder(config, opts, log);
  await recoverInterruptedSwaps(config, runDir, (m) => log.info(m));
  const cores = opts.cores ?? os.availableParallelism();
  const threadsPerSlot = Math.max(1, Math.floor(cores / slots));
  const fingerprint = configFingerprint(config);
  const configFile = path.resolve(config.file);
  log.info(`run: ${config.name} -> ${runDir}: up to ${slots} stages at once, ${threadsPerSlot} BLAS thread${threadsPerSlot === 1 ? '' : 's'} per slot`);

  const pending = plan(config, run);
  const finished = new Set<string>();
  const running = new Map<string, { proc: StageProcess; slots: number; started: number }>();
  const outcomes: StageOutcome[] = [];
  let failure: { stage: string; reply: Extract<StageReply, { ok: false }> } | undefined;
  let interrupted: NodeJS.Signals | undefined;
  let wake: () => void = () => {};

  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = signal;
    log.info(`\n${signal === 'SIGTERM' ? 'terminated' : 'interrupted'}: stopping ${[...running.keys()].map((n) => `'${n}'`).join(', ') || 'nothing'}; finished stages are kept; rerun the same command to resume`);
    for (const r of running.values()) r.proc.kill(signal);
    wake();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    for (;;) {
      // Start what can start, most downstream stages first.
      if (!failure && !interrupted) {
        const ready = pending.filter((p) => p.waitsFor.every((d) => finished.has(d))).sort((a, b) => b.downstream - a.downstream || a.index - b.index);
        for (const p of ready) {
          const free = slots - [...running.values()].reduce((n, r) => n + r.slots, 0);
          if (free === 0) break;
          // A stage that fans out takes every slot when all are free: its worker pool then splits
          // the whole machine between its workers; with others running it takes one slot.
          const take = p.stage.def.fansOut && !(opts.queue ?? config.queue) && free === slots ? slots : 1;
          const threads = String(take === slots ? cores : threadsPerSlot);
          const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: threads, OMP_NUM_THREADS: threads };
          const name = p.stage.name;
          log.info(`${name}: starting (${take} slot${take === 1 ? '' : 's'}, ${threads} BLAS thread${threads === '1' ? '' : 's'})`);
          const proc = startStageProcess(
            {
              configFile,
              fingerprint,
              stage: name,
              out: runDir,
              cacheDir,
              force: forced.has(name),
              workers: take,
              ...(opts.backend !== undefined ? { backend: opts.backend } : {}),
              ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
              ...(opts.queue !== undefined ? { queue: opts.queue } : {}),
            },
            env,
            log,
          );
          running.set(name, { proc, slots: take, started: Date.now() });
          pending.splice(pending.indexOf(p), 1);
          void proc.done.then((reply) => {
            const r = running.get(name)!;
            running.delete(name);
            if (reply.ok) {
              finished.add(name);
              outcomes.push(outcomeOf(runDir, name, r.started));
            } else if (!failure && !interrupted) {
              failure = { stage: name, reply };
              const beside = [...running.keys()].map((n) => `'${n}'`).join(', ');
              log.info(`${name}: failed${beside ? `; waiting for ${beside}, running beside it, to finish (Ctrl-C stops them)` : ''}`);
            }
            wake();
          });
        }
      }
      if (running.size === 0) break;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  if (interrupted) process.exit(130);
  if (failure) {
    const { reply } = failure;
    if (reply.kind !== undefined) throw new UserError(reply.kind, reply.error);
    const e = new Error(reply.error);
    if (reply.stack) e.stack = reply.stack;
    throw e;
  }
  return { runDir, stages: outcomes };
}

/** A finished stage's outcome: `ran` when its manifest was written after its process started, else `skipped`. */
function outcomeOf(runDir: string, name: string, startedMs: number): StageOutcome {
  const dir = path.join(runDir, name);
  const m = readManifest(dir);
  if (!m) throw new ArtifactError(`stage '${name}' reported success but ${dir} has no manifest.json; rerun the command`);
  const ran = Date.parse(m.ended_at) >= startedMs;
  return { name, status: ran ? 'ran' : 'skipped', seconds: ran ? m.seconds : 0, dir };
}
