import { promises as fs, constants as fsConstants, existsSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { initBackend, type BackendInfo } from '../src/backend/select.ts';
import { sha256, sha256File, stableStringify } from '../src/artifacts/hash.ts';
import { stageCodeHash } from './code-files.ts';
import { MANIFEST, readManifest, type Manifest } from '../src/artifacts/manifest.ts';
import { hashOutputs } from '../src/artifacts/output-hash.ts';
import { writeJsonAtomic } from '../src/artifacts/atomic.ts';
import { checkOutFolderPlace, isRunnerTempFolder, prepareRunFolder, RUN_NAME_RE, STAGE_TMP_MARKER, stageFolderState } from '../src/artifacts/run-folder.ts';
import { diskFullError } from '../src/artifacts/disk-full.ts';
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
  /** Job queue (`redis://...`) for stages' independent jobs; default: the config's `queue:`, else local processes. */
  queue?: string;
  /** Folder for dataset files shared across runs. Default `artifacts/datasets/`. */
  cacheDir?: string;
  /** Logger; default stderr. */
  log?: Logger;
  /** Called before each stage runs (tests use this to simulate crashes). */
  onStageStart?: (name: string) => void;
  /**
   * The caller has opened the run folder and finished interrupted swaps already
   * ({@link recoverInterruptedSwaps}), as the concurrent scheduler does before it starts processes
   * that run stages side by side: this run skips that step, which would briefly lock their stages.
   */
  recovered?: boolean;
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

/**
 * Checks that a finished stage folder still holds exactly what its manifest says.
 * @returns what is wrong, naming the file as `<stage>/<file>`; undefined when all is in place.
 */
async function verifyOutputs(dir: string, m: Manifest, volatile: string[]): Promise<string | undefined> {
  const actual = await hashOutputs(dir, (f) => f === MANIFEST || volatile.includes(f));
  const at = (f: string): string => `${path.basename(dir)}/${f}`;
  for (const [f, h] of Object.entries(m.outputs)) {
    if (actual[f] === undefined) return `${at(f)} is missing`;
    if (actual[f] !== h) return `${at(f)} was modified after the stage wrote it`;
  }
  for (const f of Object.keys(actual)) if (m.outputs[f] === undefined) return `${at(f)} was added after the stage ran`;
  return undefined;
}

/** The error for a folder under a stage's name (or a swap folder) that the runner did not write. */
function foreignFolder(dir: string, stage: string, what: string): UserError {
  return new UserError(
    'usage',
    `${dir} ${what}, so the pipeline did not write it and will not replace it; move it out of the run folder (or give stage '${stage}' another name in the config), then rerun`,
  );
}

/**
 * Finishes or undoes a folder swap that a crash interrupted: a complete `.tmp-<stage>` (it has
 * its manifest) replaces a missing stage folder; otherwise a left-over `.old-<stage>` (a stage
 * folder the runner had moved aside) is restored. Leftovers the runner recognises as its own are
 * then removed; a `.tmp-`/`.old-` folder it cannot recognise is left alone and refused when the
 * stage would need that name.
 */
async function recoverSwap(runDir: string, name: string): Promise<void> {
  const dir = path.join(runDir, name);
  const tmp = path.join(runDir, `.tmp-${name}`);
  const old = path.join(runDir, `.old-${name}`);
  const tmpOurs = isRunnerTempFolder(tmp, name);
  const oldState = stageFolderState(old, name);
  const oldOurs = oldState === 'owned' || oldState === 'damaged';
  if (tmpOurs && !existsSync(dir) && stageFolderState(tmp, name) === 'owned') {
    await fs.rm(path.join(tmp, STAGE_TMP_MARKER), { force: true });
    await fs.rename(tmp, dir);
  } else if (oldOurs && oldState === 'owned' && !existsSync(dir)) await fs.rename(old, dir);
  if (oldOurs && existsSync(old)) await fs.rm(old, { recursive: true, force: true });
  if (tmpOurs && existsSync(tmp)) await fs.rm(tmp, { recursive: true, force: true });
}

/**
 * Checks the config's run and stage names, resolves the run folder (`--out`, default
 * `artifacts/<name>/`) and the dataset cache beside it, and makes the run folder ready: created,
 * adopted when empty, or recognised as an earlier run folder; anything else is refused untouched.
 */
export async function openRunFolder(config: PipelineConfig, opts: Pick<RunOptions, 'out' | 'cacheDir'>, log: Logger): Promise<{ runDir: string; cacheDir: string }> {
  if (!RUN_NAME_RE.test(config.name)) {
    throw new ConfigError(`${config.file}: the run name '${config.name}' is not a plain folder name (a letter or digit first, then letters, digits, '.', '-' or '_'); set 'name:' in the config`);
  }
  for (const s of config.stages) {
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(s.name)) throw new ConfigError(`${config.file}: stage name '${s.name}' must be lower-case letters, digits, '-' or '_'`);
  }
  const runDir = path.resolve(opts.out ?? path.join('artifacts', config.name));
  const cacheDir = path.resolve(opts.cacheDir ?? path.join(path.dirname(runDir), 'datasets'));
  checkOutFolderPlace(runDir, { repoRoot: REPO_ROOT, cacheDir });
  try {
    await prepareRunFolder(runDir, { name: config.name, packageVersion, note: (m) => log.info(m) });
    await fs.access(runDir, fsConstants.W_OK);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError('io', `cannot write to the output folder ${runDir}: ${(e as Error).message}; choose another with --out or fix its permissions`);
  }
  return { runDir, cacheDir };
}

/**
 * Finishes or undoes the folder swaps a crash interrupted (see `recoverSwap`), for each stage of
 * the config that no other live pipeline process is running.
 */
export async function recoverInterruptedSwaps(config: PipelineConfig, runDir: string, note: (m: string) => void): Promise<void> {
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
}

/** Picks which stages must be considered, and which are forced to rerun. */
export function selectStages(config: PipelineConfig, opts: RunOptions): { run: StageConfig[]; forced: Set<string> } {
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
  const { run, forced } = selectStages(config, opts);
  const { runDir, cacheDir } = await openRunFolder(config, opts, log);
  const seed = opts.seed ?? config.seed;
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
    // Synchronous: the stage's own code must not go on writing into the folder while it is removed.
    if (current) {
      try {
        rmSync(current.tmp, { recursive: true, force: true });
      } catch {
        /* the next run clears it: it is marked as the runner's */
      }
    }
    release();
    process.exit(130);
  };
  process.once('SIGINT', onSigint);
  process.once('SIGTERM', onSigint);
  try {
    const backend = await initBackend(opts.backend ?? config.backend, (m) => log.info(m));
    log.info(`backend: ${backend.name} (${backend.detail})`);
    log.info(`run: ${config.name} -> ${runDir} (seed ${seed})`);
    const outcomes: StageOutcome[] = [];
    const stageDir = (name: string): string => path.join(runDir, name);
    /** Every stage `stage` reads, directly or through others, in config order (optional ones left out). */
    const upstreamOf = (stage: StageConfig): string[] => {
      const names = config.stages.map((x) => x.name);
      const need = new Set<string>();
      const visit = (st: StageConfig): void => {
        for (const d of st.def.deps(st.params, names.slice(0, names.indexOf(st.name)))) {
          if (need.has(d)) continue;
          need.add(d);
          const up = config.stages.find((x) => x.name === d);
          if (up) visit(up);
        }
      };
      visit(stage);
      return names.filter((n) => need.has(n));
    };
    /** How to rebuild one stage, as the runner's messages suggest it. */
    const rebuild = (name: string): string => `rerun with --only ${name} --force to rebuild it`;
    /**
     * A stage's manifest; undefined when it has not run. A damaged one is an error saying how to
     * rebuild the stage, except for a stage forced to rerun (`allowDamaged`), which replaces it.
     */
    const manifestOf = (name: string, allowDamaged = false): Manifest | undefined => {
      try {
        return readManifest(stageDir(name));
      } catch (e) {
        if (!(e instanceof ArtifactError)) throw e;
        if (allowDamaged) {
          log.info(`${name}: its manifest.json is damaged; the stage is rebuilt (forced)`);
          return undefined;
        }
        throw new ArtifactError(`${e.message.replace(/;[^;]*$/, '')}: the record of what stage '${name}' wrote is lost; ${rebuild(name)}`);
      }
    };
    /** The hash of a finished stage's outputs, from its manifest; undefined when it has not run. */
    const outputsHashOf = (name: string): string | undefined => {
      const m = manifestOf(name);
      return m ? sha256(stableStringify(m.outputs)) : undefined;
    };
    /**
     * Stages whose folders this process has checked against their manifests (found unchanged and
     * verified, or just written), so an input read by several stages is hashed once per run.
     */
    const verified = new Set<string>();
    /** Checks that an upstream stage's folder still holds what its manifest says, before a stage reads it. */
    const verifyInput = async (stageName: string, dep: string): Promise<void> => {
      if (verified.has(dep)) return;
      const m = manifestOf(dep);
      if (!m) return;
      const def = config.stages.find((s) => s.name === dep)?.def;
      const problem = await verifyOutputs(stageDir(dep), m, def?.volatile ?? []);
      if (problem) {
        throw new ArtifactError(`stage '${stageName}' reads '${dep}', but in ${runDir}: ${problem}; ${rebuild(dep)} (or delete the folder ${stageDir(dep)}), then rerun this command`);
      }
      verified.add(dep);
    };

    if (!opts.recovered) await recoverInterruptedSwaps(config, runDir, note);
    // Code hashes are taken now, when the code was loaded: a source file edited while a long run
    // is under way must not be recorded as the code that produced a later stage.
    const codeHashes = new Map<string, { sha256: string; files: number }>();
    for (const stage of run) codeHashes.set(stage.name, await codeHash(stage.def.code));
    for (const stage of config.stages) {
      if (!run.includes(stage)) continue; // not selected (--only another stage); its outputs may still be read below
      const dir = stageDir(stage.name);
      const earlier = config.stages.slice(0, config.stages.indexOf(stage)).map((s) => s.name);
      const deps = stage.def.deps(stage.params, earlier);
      const optional = (stage.def.optionalDeps?.(stage.params, earlier) ?? []).filter((d) => !deps.includes(d));
      // Its inputs and itself are held for reading while it is keyed and checked, and its inputs
      // until it has run; it is upgraded to a write lock only if it has to run.
      for (const d of new Set([...deps, ...optional, stage.name])) hold(d, 'read');
      try {
        const inputs: Record<string, string> = {};
        for (const d of deps) {
          const h = outputsHashOf(d);
          if (h === undefined) {
            const missing = upstreamOf(stage).filter((u) => !existsSync(path.join(stageDir(u), MANIFEST)));
            throw new ArtifactError(`stage '${stage.name}' needs the outputs of '${d}', which has not run in ${runDir}; run ${missing.length > 1 ? 'them' : 'it'} first: rerun with --only ${[...missing, stage.name].join(',')} (or the whole config without --only)`);
          }
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
          if (!statSync(abs).isFile()) throw new UserError('data', `stage '${stage.name}': input file ${f} is a folder, not a file; give the path of the Arrow file in ${config.file}`);
          inputs[`file:${f}`] = await sha256File(abs);
        }
        const code = codeHashes.get(stage.name)!;
        const key = sha256(stableStringify({ params: stage.params, inputs, code: code.sha256, seed }));

        const state = stageFolderState(dir, stage.name);
        if (state === 'foreign') throw foreignFolder(dir, stage.name, `has no manifest.json the pipeline wrote for stage '${stage.name}'`);
        const prev = manifestOf(stage.name, forced.has(stage.name));
        if (prev && prev.key === key && !forced.has(stage.name)) {
          const problem = await verifyOutputs(dir, prev, stage.def.volatile ?? []);
          if (problem) {
            throw new ArtifactError(`stage '${stage.name}' in ${runDir}: ${problem}; ${rebuild(stage.name)} (or delete the folder ${dir})`);
          }
          verified.add(stage.name);
          log.info(`${stage.name}: unchanged, skipped (ran ${prev.ended_at})`);
          outcomes.push({ name: stage.name, status: 'skipped', seconds: 0, dir });
          continue;
        }
        // It runs: what it reads must still be what its upstream stages wrote.
        for (const d of [...deps, ...optional]) if (!absent.has(d)) await verifyInput(stage.name, d);
        const why = !prev ? (state === 'damaged' ? 'forced; its manifest was damaged' : 'no previous run') : forced.has(stage.name) ? 'forced' : 'params, inputs or code changed';
        hold(stage.name, 'write');
        const tmp = path.join(runDir, `.tmp-${stage.name}`);
        const old = path.join(runDir, `.old-${stage.name}`);
        if (existsSync(tmp) && !isRunnerTempFolder(tmp, stage.name)) throw foreignFolder(tmp, stage.name, 'is not a temporary folder the pipeline made');
        if (existsSync(old) && !['owned', 'damaged'].includes(stageFolderState(old, stage.name))) throw foreignFolder(old, stage.name, `has no manifest.json the pipeline wrote for stage '${stage.name}'`);
        current = { name: stage.name, tmp };
        log.info(`${stage.name}: running (${stage.type}; ${why})`);
        opts.onStageStart?.(stage.name);
        const scratchDir = path.join(runDir, `.scratch-${stage.name}-${key.slice(0, 12)}`);
        // A forced rerun starts from nothing: partial work kept for a resume (checkpoints, finished
        // jobs) could be what made the stage fail, and --force is the advice for a damaged stage.
        if (forced.has(stage.name) && existsSync(scratchDir)) {
          log.info(`${stage.name}: forced, so the partial work of an unfinished run in ${scratchDir} is discarded`);
          await fs.rm(scratchDir, { recursive: true, force: true });
        }
        await fs.rm(tmp, { recursive: true, force: true });
        await fs.mkdir(tmp, { recursive: true });
        await writeJsonAtomic(path.join(tmp, STAGE_TMP_MARKER), { stage: stage.name, pid: process.pid, started_at: new Date().toISOString() });
        await fs.mkdir(scratchDir, { recursive: true });
        const started = new Date();
        // A logger given by the caller is a plain line sink: stage lines go to it, without bars.
        const stageLog = createLogger({ prefix: stage.name, silent: false, ...(opts.log ? { tty: false, write: (l: string) => opts.log!.info(l) } : {}) });
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
            configName: config.name,
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
            queue: opts.queue ?? config.queue,
            key,
            log: stageLog,
          });
        } catch (e0) {
          clearInterval(sampler);
          const e = diskFullError(e0, { partialDir: tmp });
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
        await fs.rm(path.join(tmp, STAGE_TMP_MARKER), { force: true });
        // Checked again just before the swap: only the runner's own folders are moved or removed.
        const before = stageFolderState(dir, stage.name);
        if (before === 'foreign') throw foreignFolder(dir, stage.name, `has no manifest.json the pipeline wrote for stage '${stage.name}'`);
        if (existsSync(old)) {
          if (!['owned', 'damaged'].includes(stageFolderState(old, stage.name))) throw foreignFolder(old, stage.name, `has no manifest.json the pipeline wrote for stage '${stage.name}'`);
          await fs.rm(old, { recursive: true, force: true });
        }
        if (before !== 'absent') await fs.rename(dir, old);
        await fs.rename(tmp, dir);
        await fs.rm(old, { recursive: true, force: true });
        verified.add(stage.name);
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
