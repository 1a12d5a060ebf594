import type { z } from 'zod';
import type { BackendInfo } from '../src/backend/select.ts';
import type { Logger } from '../src/util/log.ts';

/** What the runner hands a stage when it runs it. */
export interface StageContext<P> {
  /** This stage's name in the config (its folder name). */
  name: string;
  /** Validated params, defaults filled in. */
  params: P;
  /** The run's seed (config `seed`, or `--seed`). */
  seed: number;
  /** Folder to write outputs into. The runner moves it to `<run>/<name>/` when `run` succeeds. */
  outDir: string;
  /**
   * Folder for resumable partial work (checkpoints, finished specialists). It survives a crash
   * and is deleted after the stage succeeds.
   */
  scratchDir: string;
  /** The run folder (`artifacts/<config name>/`). */
  runDir: string;
  /** The config's `name` (the run's name; the folder may be named otherwise with `--out`). */
  configName?: string;
  /** Folder holding cached dataset files shared across runs (`artifacts/datasets/`). */
  cacheDir: string;
  /** The finished folder of an upstream stage named in `deps` (or in `optionalDeps`, when `has` it). */
  input(stage: string): string;
  /**
   * Whether an upstream stage named in `deps` or `optionalDeps` has finished outputs in the run
   * folder: always true for `deps`; false for an optional one that has not run (e.g. with `--only`).
   */
  has(stage: string): boolean;
  /** The tensor backend in use. */
  backend: BackendInfo;
  /** Parallel worker processes allowed (`--workers`). */
  workers: number;
  /**
   * The job queue (`--queue redis://...` or `queue:` in the config): when set, a stage's independent
   * jobs go to it (`createJobRunner` in src/jobs/job-runner.ts) instead of local processes.
   */
  queue?: string | undefined;
  /** The stage's cache key (queued jobs' ids derive from it, so a rerun finds them). */
  key?: string;
  log: Logger;
}

/** A stage type: what it needs, what it takes, how it runs. Stage files export one of these. */
export interface StageDef<P> {
  /** The `type` name used in configs. */
  type: string;
  /** One line for `--help` and the README. */
  description: string;
  /** Strict schema of the stage's params (unknown keys rejected, defaults filled). */
  schema: z.ZodType<P>;
  /**
   * Names of upstream stages this stage reads (their outputs' hashes key its cache).
   * @param earlier the names of the stages before this one in the config, in order.
   */
  deps(params: P, earlier: string[]): string[];
  /**
   * Upstream stages this stage reads when they have run and does without when they have not (e.g.
   * extra rows of a results table), so `--only` need not wait for them. One that has run keys the
   * cache like a dep; one that has not keys it as absent, so the stage reruns once it has run.
   * Names must still be stages above this one in the config.
   * @param earlier the names of the stages before this one in the config, in order.
   */
  optionalDeps?(params: P, earlier: string[]): string[];
  /** Files outside the run folder whose content keys the cache (e.g. a user's `.arrow`). */
  externalInputs?(params: P): string[];
  /**
   * Output files that differ from run to run by nature (e.g. a report showing run times): not
   * hashed into `outputs`, so they neither break determinism nor count as tampering.
   */
  volatile?: string[];
  /**
   * Entry points of the code that keys the cache (repo-relative files or folders; usually the
   * stage's own file): they and every file they import, transitively, are hashed (`pipeline/code-files.ts`).
   */
  code: string[];
  /**
   * The stage runs independent jobs in `ctx.workers` processes (specialists, ensemble members,
   * sweep students). With `--concurrent-stages` such a stage is given every process slot when all
   * are free, and one slot otherwise, as any other stage.
   */
  fansOut?: boolean;
  /** Does the work, writing into `ctx.outDir`. May return a small summary kept in the manifest. */
  run(ctx: StageContext<P>): Promise<Record<string, unknown> | void>;
}

/** Helper that keeps `P` inferred from the schema. */
export function defineStage<S extends z.ZodType>(def: StageDef<z.output<S>> & { schema: S }): StageDef<z.output<S>> {
  return def;
}
