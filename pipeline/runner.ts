import { promises as fs, constants as fsConstants, existsSync } from 'node:fs';
import path from 'node:path';
import { initBackend, type BackendInfo } from '../src/backend/select.ts';
import { sha256, sha256File, stableStringify } from '../src/artifacts/hash.ts';
import { stageCodeHash } from './code-files.ts';
import { MANIFEST, readManifest, type Manifest } from '../src/artifacts/manifest.ts';
import { hashOutputs } from '../src/artifacts/output-hash.ts';
import { writeJsonAtomic } from '../src/artifacts/atomic.ts';
import { lockStage } from '../src/artifacts/lock.ts';
import { ArtifactError, ConfigError, UserError } from '../src/util/errors.ts';
import { createLogger, type Logger } from '../src/util/log.ts';
import { COMPILED, PACKAGE_ROOT, PACKAGE_VERSION, compiledPath } from '../src/util/package-root.ts';
import type { PipelineConfig, StageConfig } from './config.ts';

/** The package root (where package.json is): the repository root, or the installed package's folder. */
export const REPO_ROOT = PACKAGE_ROOT;

/** Options of {@link runPipeline}. */
export interface RunOptions {
  /** Run folder; default `artifacts/<config name>/`. */
  out?: string;
  /**
   * Run just these stages, in config order (`--only a,b,c`); each one's upstream stages must have
   * finished before it, in an earlier run or earlier in this list.
   */
  only?: string | readonly string[];
  /** Rerun this stage and every stage after it. */
  from?: string;
  /** Rerun the selected stages even when unchanged. */
  force?: boolean;
  /** Backend override (`--backend`). */
  backend?: string;
  /** Seed override (`--seed`). */
  seed?: number;
  /** Parallel worker processes for stages that can use them. Default 1. */
  workers?: number;
  /** Folder for dataset files shared across runs. Default `artifacts/datasets/`. */
  cacheDir?: string;
  /** Logger; default stderr. */
  log?: Logger;
  /** Called before each stage runs (tests use this to simulate crashes). */
  onStageStart?: (name: string) => void;
}

/** What happened to one stage. */
export interface StageOutcome {
  name: string;
  status: 'ran' | 'skipped';
  seconds: number;
  dir: string;
}

/** What {@link runPipeline} did. */
export interface RunResult {
  runDir: string;
  backend: BackendInfo;
  stages: StageOutcome[];
}

const packageVersion = PACKAGE_VERSION;

/**
 * sha256 over the source files that key a stage's cache: its `code:` entries and all they import
 * (see code-files.ts); when running compiled, over their compiled counterparts in dist/.
 */
async function codeHash(files: string[]): Promise<{ sha256: string; files: number }> {
  return stageCodeHash(COMPILED ? files.map(compiledPath) : files, REPO_ROOT);
}

/** Checks that a finished stage folder still holds exactly what its manifest says. */
async function verifyOutputs(dir: string, m: Manifest, volatile: string[]): Promise<string | undefined> {
  const actual = await hashOutputs(dir, (f) => f === MANIFEST || volatile.includes(f));
  for (const [f, h] of Object.entries(m.outputs)) {
    if (actual[f] === undefined) return `${f} is missing`;
    if (actual[f] !== h) return `${f} was modified after the stage wrote it`;
  }
  for (const f of Object.keys(actual)) if (m.outputs[f] === undefined) return `${f} was added after the stage ran`;
  return undefined;
}

/**
 * Finishes or undoes a folder swap that a crash interrupted: a complete `.tmp-<stage>` (it has
 * its manifest) replaces the stage folder; otherwise a left-over `.old-<stage>` is restored.
 */
async function recoverSwap(runDir: string, name: string): Promise<void> {
  const dir = path.join(runDir, name);
  const tmp = path.join(runDir, `.tmp-${name}`);
  const old = path.join(runDir, `.old-${name}`);
  if (existsSync(path.join(tmp, MANIFEST)) && !existsSync(dir)) await fs.rename(tmp, dir);
  else if (existsSync(old) && !existsSync(dir)) await fs.rename(old, dir);
  await fs.rm(old, { recursive: true, force: true });
  await fs.rm(tmp, { recursive: true, force: true });
}

/** Picks which stages must be considered, and which are forced to rerun. */
function selectStages(config: PipelineConfig, opts: RunOptions): { run: StageConfig[]; forced: Set<string> } {
  const names = config.stages.map((s) => s.name);
  const only = opts.only === undefined ? undefined : typeof opts.only === 'string' ? [opts.only] : [...opts.only];
  if (only !== undefined && only.length === 0) throw new ConfigError('--only needs at least one stage name (comma-separated: --only a,b)');
  for (const [flag, v] of [...(only ?? []).map((n) => ['--only', n] as const), ['--from', opts.from] as const]) {
    if (v !== undefined && !names.includes(v)) throw new ConfigError(`${flag} ${v}: no such stage in ${config.file}; stages are ${names.join(', ')}`);
  }
  if (only && opts.from) throw new ConfigError('--only and --from cannot be used together');
  const forced = new Set<string>();
  if (only) {
    const run = config.stages.filter((x) => only.includes(x.name));
    if (opts.force) for (const s of run) forced.add(s.name);
    return { run, forced };
  }
  if (opts.from) {
    const i = names.indexOf(opts.from);
    for (const s of config.stages.slice(i)) forced.add(s.name);
    return { run: config.stages, forced };
  }
  if (opts.force) for (const s of config.stages) forced.add(s.name);
  return { run: config.stages, forced };
}

/**
 * Runs a pipeline: each stage in order, skipping a stage whose params, seed, inputs and code are
 * unchanged since its last successful run (recorded in its `manifest.json`). A stage writes into
 * a temporary folder that replaces `<run>/<stage>/` only when it succeeds, so a crash never
 * leaves a half-written stage folder. Stages are locked one by one (`lockStage`): a stage that runs
 * is held for writing, the stages it reads (and itself, while it is checked) for reading, so
 * several processes can work in one run folder on different stages, and one that would rerun a
 * stage another is running or reading stops with an error naming that process.
 */
export async function runPipeline(config: PipelineConfig, opts: RunOptions = {}): Promise<RunResult> {
  const log = opts.log ?? createLogger();
  const runDir = path.resolve(opts.out ?? path.join('artifacts', config.name));
  const cacheDir = path.resolve(opts.cacheDir ?? path.join(path.dirname(runDir), 'datasets'));
  const seed = opts.seed ?? config.seed;
  const { run, forced } = selectStages(config, opts);
  try {
    await fs.mkdir(runDir, { recursive: true });
    await fs.access(runDir, fsConstants.W_OK);
  } catch (e) {
    throw new UserError('io', `cannot write to the output folder ${runDir}: ${(e as Error).message}; choose another with --out or fix its permissions`);
  }
  const note = (m: string): void => log.info(m);
  /** Locks this process holds now; released when each stage is done, on Ctrl-C and at the end. */
  const held = new Set<() => void>();
  const hold = (stage: string, mode: 'read' | 'write'): void => {
    const r = lockStage(runDir, stage, mode, note);
    held.add(r);
  };
  const release = (): void => {
    for (const r of held) r();
    held.clear();
  };
  let current: { name: string; tmp: string } | undefined;
  const onSigint = (signal: NodeJS.Signals): void => {
    log.info(`\n${signal === 'SIGTERM' ? 'terminated' : 'interrupted'}${current ? ` during stage '${current.name}'` : ''}: finished stages are kept; rerun the same command to resume`);
    if (current) void fs.rm(current.tmp, { recursive: true, force: true }).finally(() => { release(); process.exit(130); });
    else {
      release();
      process.exit(130);
    }
  };
  process.once('SIGINT', onSigint);
  process.once('SIGTERM', onSigint);
  try {
    const backend = await initBackend(opts.backend ?? config.backend, (m) => log.info(m));
    log.info(`backend: ${backend.name} (${backend.detail})`);
    log.info(`run: ${config.name} -> ${runDir} (seed ${seed})`);
    const outcomes: StageOutcome[] = [];
    const stageDir = (name: string): string => path.join(runDir, name);
    /** The hash of a finished stage's outputs, from its manifest; undefined when it has not run. */
    const outputsHashOf = (name: string): string | undefined => {
      const m = readManifest(stageDir(name));
      return m ? sha256(stableStringify(m.outputs)) : undefined;
    };

    // Finish folder swaps a crash interrupted, for each stage no other live process is running.
    for (const stage of config.stages) {
      let r: (() => void) | undefined;
      try {
        r = lockStage(runDir, stage.name, 'write', note);
      } catch (e) {
        if (e instanceof UserError && e.kind === 'lock') continue;
        throw e;
      }
      try {
        await recoverSwap(runDir, stage.name);
      } finally {
        r();
      }
    }
    // Code hashes are taken now, when the code was loaded: a source file edited while a long run
    // is under way must not be recorded as the code that produced a later stage.
    const codeHashes = new Map<string, { sha256: string; files: number }>();
    for (const stage of run) codeHashes.set(stage.name, await codeHash(stage.def.code));
    for (const stage of config.stages) {
      if (!run.includes(stage)) continue; // not selected (--only another stage); its outputs may still be read below
      const dir = stageDir(stage.name);
      const deps = stage.def.deps(stage.params, config.stages.slice(0, config.stages.indexOf(stage)).map((s) => s.name));
      const optional = (stage.def.optionalDeps?.(stage.params) ?? []).filter((d) => !deps.includes(d));
      // Its inputs and itself are held for reading while it is keyed and checked, and its inputs
      // until it has run; it is upgraded to a write lock only if it has to run.
      for (const d of new Set([...deps, ...optional, stage.name])) hold(d, 'read');
      try {
        const inputs: Record<string, string> = {};
        for (const d of deps) {
          const h = outputsHashOf(d);
          if (h === undefined) throw new ArtifactError(`stage '${stage.name}' needs the outputs of '${d}', which has not run in ${runDir}; run without --only first`);
          inputs[d] = h;
        }
        // Optional inputs (e.g. a results table's extra rows): read when they have run, else keyed
        // as absent so this stage reruns once they have.
        const absent = new Set<string>();
        for (const d of optional) {
          const h = outputsHashOf(d);
          if (h === undefined) absent.add(d);
          inputs[d] = h ?? 'absent';
        }
        if (absent.size > 0) {
          log.info(`${stage.name}: ${[...absent].map((d) => `'${d}'`).join(', ')} ${absent.size === 1 ? 'has' : 'have'} not run in ${runDir}: left out; to add one, run it (--only NAME), then this stage again`);
        }
        for (const f of stage.def.externalInputs?.(stage.params) ?? []) {
          const abs = path.resolve(f);
          if (!existsSync(abs)) throw new UserError('data', `stage '${stage.name}': input file ${f} does not exist; check the path in ${config.file}`);
          inputs[`file:${f}`] = await sha256File(abs);
        }
        const code = codeHashes.get(stage.name)!;
        const key = sha256(stableStringify({ params: stage.params, inputs, code: code.sha256, seed }));

        const prev = readManifest(dir);
        if (prev && prev.key === key && !forced.has(stage.name)) {
          const problem = await verifyOutputs(dir, prev, stage.def.volatile ?? []);
          if (problem) {
            throw new ArtifactError(`stage '${stage.name}' in ${dir}: ${problem}; rerun it with --from ${stage.name} --force (or delete the folder)`);
          }
          log.info(`${stage.name}: unchanged, skipped (ran ${prev.ended_at})`);
          outcomes.push({ name: stage.name, status: 'skipped', seconds: 0, dir });
          continue;
        }
        const why = !prev ? 'no previous run' : forced.has(stage.name) ? 'forced' : 'params, inputs or code changed';
        hold(stage.name, 'write');
        const tmp = path.join(runDir, `.tmp-${stage.name}`);
        current = { name: stage.name, tmp };
        log.info(`${stage.name}: running (${stage.type}; ${why})`);
        opts.onStageStart?.(stage.name);
        const scratchDir = path.join(runDir, `.scratch-${stage.name}-${key.slice(0, 12)}`);
        await fs.rm(tmp, { recursive: true, force: true });
        await fs.mkdir(tmp, { recursive: true });
        await fs.mkdir(scratchDir, { recursive: true });
        const started = new Date();
        const stageLog = createLogger({ prefix: stage.name, silent: false, ...(opts.log ? { write: (l: string) => opts.log!.info(l) } : {}) });
        let summary: Record<string, unknown> | void;
        // The process's peak RSS only grows; sample the resident size during this stage for its own peak.
        // Sampling misses short spikes, so the process high-water mark is also read at the end: if
        // it rose during the stage, that new maximum was reached during the stage.
        const maxRssBefore = process.resourceUsage().maxRSS;
        let stagePeak = process.memoryUsage.rss();
        const sampler = setInterval(() => {
          stagePeak = Math.max(stagePeak, process.memoryUsage.rss());
        }, 250);
        sampler.unref();
        try {
          summary = await stage.def.run({
            name: stage.name,
            params: stage.params,
            seed,
            outDir: tmp,
            scratchDir,
            runDir,
            cacheDir,
            input: (name) => {
              if (!deps.includes(name) && !optional.includes(name)) throw new Error(`stage '${stage.name}' read '${name}' without declaring it in deps`);
              if (absent.has(name)) throw new Error(`stage '${stage.name}' read the optional input '${name}', which has not run; check has('${name}') first`);
              return stageDir(name);
            },
            has: (name) => {
              if (!deps.includes(name) && !optional.includes(name)) throw new Error(`stage '${stage.name}' asked for '${name}' without declaring it in deps or optionalDeps`);
              return !absent.has(name);
            },
            backend,
            workers: opts.workers ?? 1,
            log: stageLog,
          });
        } catch (e) {
          clearInterval(sampler);
          await fs.rm(tmp, { recursive: true, force: true });
          // Keep partial work (checkpoints, finished specialists) for the rerun; drop an empty folder.
          if ((await fs.readdir(scratchDir).catch(() => [])).length === 0) await fs.rm(scratchDir, { recursive: true, force: true });
          if (e instanceof UserError) {
            e.message = `stage '${stage.name}': ${e.message}`;
          }
          throw e;
        }
        clearInterval(sampler);
        stagePeak = Math.max(stagePeak, process.memoryUsage.rss());
        const maxRssAfter = process.resourceUsage().maxRSS;
        if (maxRssAfter > maxRssBefore) stagePeak = Math.max(stagePeak, maxRssAfter * 1024);
        const ended = new Date();
        const volatile = stage.def.volatile ?? [];
        const outputs = await hashOutputs(tmp, (f) => f === MANIFEST || volatile.includes(f));
        const manifest: Manifest = {
          stage: stage.name,
          type: stage.type,
          params: stage.params,
          seed,
          key,
          inputs,
          code,
          outputs,
          backend,
          started_at: started.toISOString(),
          ended_at: ended.toISOString(),
          seconds: (ended.getTime() - started.getTime()) / 1000,
          peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
          stage_peak_rss_mb: Math.round(stagePeak / 2 ** 20),
          package_version: packageVersion,
          node_version: process.version,
          ...(summary ? { summary } : {}),
        };
        await writeJsonAtomic(path.join(tmp, MANIFEST), manifest);
        const old = path.join(runDir, `.old-${stage.name}`);
        await fs.rm(old, { recursive: true, force: true });
        if (existsSync(dir)) await fs.rename(dir, old);
        await fs.rename(tmp, dir);
        await fs.rm(old, { recursive: true, force: true });
        // This stage's partial work, and any left by earlier runs with other params or code.
        for (const f of await fs.readdir(runDir)) {
          if (f.startsWith(`.scratch-${stage.name}-`) && /^[0-9a-f]{12}$/.test(f.slice(`.scratch-${stage.name}-`.length))) await fs.rm(path.join(runDir, f), { recursive: true, force: true });
        }
        current = undefined;
        log.info(`${stage.name}: done in ${manifest.seconds.toFixed(1)}s`);
        outcomes.push({ name: stage.name, status: 'ran', seconds: manifest.seconds, dir });
      } finally {
        release();
      }
    }
    return { runDir, backend, stages: outcomes };
  } finally {
    process.removeListener('SIGINT', onSigint);
    process.removeListener('SIGTERM', onSigint);
    release();
  }
}
