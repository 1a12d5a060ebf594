/**
 * Which folders the pipeline may write into, and which of their entries it may replace.
 *
 * A run folder carries a marker, {@link RUN_MARKER}, that the runner writes when it creates the
 * folder (or adopts an empty one). The runner writes only into a folder that has it, and inside
 * one it replaces only stage folders whose `manifest.json` it wrote for that stage, and its own
 * `.tmp-<stage>` / `.old-<stage>` swap folders. Everything else (a user's files, a folder that
 * merely has a stage's name) is left exactly as it is: the runner refuses instead.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { writeJsonAtomic } from './atomic.ts';
import { MANIFEST, manifestSchema } from './manifest.ts';
import { ArtifactError, UserError } from '../util/errors.ts';

/** The marker file of a run folder. */
export const RUN_MARKER = '.distill-kit-run.json';

/**
 * The marker file the runner puts in a stage's temporary folder `.tmp-<stage>` when it creates
 * it, so that a crash's leftover can be told from a folder someone else made. Dot-files are not
 * stage outputs (they are not hashed); it is removed once the stage's manifest is written.
 */
export const STAGE_TMP_MARKER = '.distill-kit-stage-tmp.json';

/** What {@link RUN_MARKER} holds. */
export const runMarkerSchema = z.strictObject({
  tool: z.literal('distill-kit'),
  /** Marker format version. */
  format: z.literal(1),
  /** The `name` of the config whose run created (or adopted) the folder. */
  name: z.string().min(1),
  created_at: z.string(),
  package_version: z.string(),
  /** How the folder became a run folder. */
  origin: z.enum(['created', 'adopted-empty', 'adopted-earlier-version']),
});
/** A parsed {@link RUN_MARKER}. */
export type RunMarker = z.infer<typeof runMarkerSchema>;

/** Config (run) names: a letter or digit first, then letters, digits, `.`, `-`, `_`; no separators. */
export const RUN_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Reads a folder's run marker. Returns undefined when the folder has none.
 * @throws ArtifactError when the marker exists but is damaged, saying how to recover.
 */
export function readRunMarker(runDir: string): RunMarker | undefined {
  const file = path.join(runDir, RUN_MARKER);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    raw = undefined;
  }
  const m = runMarkerSchema.safeParse(raw);
  if (!m.success) {
    throw new ArtifactError(
      `${file} is damaged (${raw === undefined ? 'not JSON' : `${m.error.issues[0]?.path.join('.') || '(top level)'}: ${m.error.issues[0]?.message}`}), so ${runDir} cannot be confirmed as a run folder; ` +
        `delete that one file and rerun: a folder holding only stage folders with their manifests is then adopted again`,
    );
  }
  return m.data;
}

/** The name to show for a run folder: its marker's config name, else the folder's name. */
export function runNameOf(runDir: string): string {
  try {
    const m = readRunMarker(runDir);
    if (m) return m.name;
  } catch {
    /* a damaged marker: fall back to the folder name */
  }
  return path.basename(path.resolve(runDir));
}

/** Whether `a` is `b` or a folder above it (absolute, normalised paths). */
function isSameOrAncestor(a: string, b: string): boolean {
  const rel = path.relative(a, b);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** `p` with symbolic links resolved as far as it exists (the rest appended). */
function realish(p: string): string {
  const abs = path.resolve(p);
  const rest: string[] = [];
  let cur = abs;
  for (;;) {
    try {
      return path.join(realpathSync(cur), ...rest.reverse());
    } catch {
      const parent = path.dirname(cur);
      if (parent === cur) return abs;
      rest.push(path.basename(cur));
      cur = parent;
    }
  }
}

/** Places a run folder must never be, for {@link checkOutFolderPlace}. */
export interface ForbiddenPlaces {
  /** The repository root. */
  repoRoot: string;
  /** The current directory (the folder and its ancestors are refused). Default `process.cwd()`. */
  cwd?: string;
  /** The home folder. Default `os.homedir()`. */
  home?: string;
  /** The shared dataset cache folder. */
  cacheDir?: string;
}

/**
 * Refuses an output folder that is a file-system root, the home folder, the repository root, the
 * dataset cache, or the current folder's parent or any folder above it: replacing stage folders
 * there could take a user's own folders with them. Checked before anything is written.
 * @throws UserError (kind `usage`) naming the folder, why, and what to do.
 */
export function checkOutFolderPlace(runDir: string, places: ForbiddenPlaces): void {
  const dir = realish(runDir);
  const refuse = (why: string): never => {
    throw new UserError('usage', `the output folder ${runDir} is ${why}; the pipeline will not use it as a run folder (it replaces folders inside it); pick a new or empty folder with --out`);
  };
  if (path.parse(dir).root === dir) refuse('a file-system root');
  if (dir === realish(places.home ?? os.homedir())) refuse('your home folder');
  if (dir === realish(places.repoRoot)) refuse('the repository root');
  if (places.cacheDir !== undefined && dir === realish(places.cacheDir)) refuse('the dataset cache folder (artifacts/datasets) that runs share');
  const cwd = realish(places.cwd ?? process.cwd());
  if (dir !== cwd && isSameOrAncestor(dir, cwd)) refuse(`a folder above the current folder ${cwd}`);
}

/** Entries of a run folder that only the runner makes: locks, swap, temp and scratch folders. */
const RUNNER_DOT_ENTRY = /^(\.lock|\.(lock|read|tmp|old|scratch)-.+|\.\.distill-kit-run\.json\.tmp-\d+-[0-9a-f]{8})$/;

/** What a stage-named folder holds, as far as ownership goes. */
export type StageFolderState =
  /** nothing under that name */
  | 'absent'
  /** a folder with a valid manifest the runner wrote for this stage */
  | 'owned'
  /** a folder with a `manifest.json` that does not parse or does not match the schema */
  | 'damaged'
  /** anything else: not the runner's */
  | 'foreign';

/**
 * Says whether `dir` is a stage folder the runner wrote for `stage` (its `manifest.json` is
 * valid and names that stage).
 */
export function stageFolderState(dir: string, stage: string): StageFolderState {
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    return 'absent';
  }
  if (!st.isDirectory()) return 'foreign';
  let text: string;
  try {
    text = readFileSync(path.join(dir, MANIFEST), 'utf8');
  } catch {
    return 'foreign';
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return 'damaged';
  }
  const m = manifestSchema.safeParse(raw);
  if (!m.success) return 'damaged';
  return m.data.stage === stage ? 'owned' : 'foreign';
}

/**
 * Whether a `.tmp-<stage>` folder is one the runner made: empty (made, crashed before anything was
 * written), holding {@link STAGE_TMP_MARKER}, or a complete stage folder with its manifest.
 */
export function isRunnerTempFolder(dir: string, stage: string): boolean {
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    return false;
  }
  if (!st.isDirectory()) return false;
  if (readdirSync(dir).length === 0) return true;
  if (existsSync(path.join(dir, STAGE_TMP_MARKER))) return true;
  return stageFolderState(dir, stage) === 'owned';
}

/** Options of {@link prepareRunFolder}. */
export interface PrepareOptions {
  /** The config's name, recorded in a new marker. */
  name: string;
  packageVersion: string;
  /** Notes (an adoption) go here. */
  note?: (msg: string) => void;
}

/** Whether a folder written by an earlier version (no marker) holds only what a runner writes. */
function earlierRunFolder(runDir: string, entries: string[]): { ok: true; stages: number } | { ok: false; foreign: string[] } {
  const foreign: string[] = [];
  let stages = 0;
  for (const e of entries) {
    if (RUNNER_DOT_ENTRY.test(e)) continue;
    if (stageFolderState(path.join(runDir, e), e) === 'owned') stages++;
    else foreign.push(e);
  }
  return foreign.length === 0 ? { ok: true, stages } : { ok: false, foreign };
}

/**
 * Makes sure `runDir` is a run folder the pipeline may write into, creating it when it does not
 * exist. A new or empty folder gets the marker. An existing folder without one is adopted only
 * when it is a run folder written before markers existed: every entry a stage folder whose
 * manifest the runner wrote for it (the manifest's `stage` is the folder's name) or one of the
 * runner's own lock, temp, swap or scratch entries. Anything else is refused, untouched.
 * Legacy `.tmp-<stage>` folders of an adopted folder are claimed (given {@link STAGE_TMP_MARKER})
 * so that the crash recovery may clear them.
 * @returns how the folder became (or already was) a run folder.
 * @throws UserError naming the folder, why it is refused and what to do.
 */
export async function prepareRunFolder(runDir: string, opts: PrepareOptions): Promise<RunMarker['origin'] | 'marked'> {
  const marker = (origin: RunMarker['origin']): RunMarker => ({
    tool: 'distill-kit',
    format: 1,
    name: opts.name,
    created_at: new Date().toISOString(),
    package_version: opts.packageVersion,
    origin,
  });
  let st;
  try {
    st = statSync(runDir); // a link to a folder is that folder
  } catch {
    st = undefined;
  }
  if (st === undefined) {
    mkdirSync(runDir, { recursive: true });
    await writeJsonAtomic(path.join(runDir, RUN_MARKER), marker('created'));
    return 'created';
  }
  if (!st.isDirectory()) {
    throw new UserError('usage', `the output folder ${runDir} exists and is not a folder; pick a new or empty folder with --out`);
  }
  if (readRunMarker(runDir)) return 'marked';
  const entries = readdirSync(runDir);
  if (entries.length === 0) {
    await writeJsonAtomic(path.join(runDir, RUN_MARKER), marker('adopted-empty'));
    return 'adopted-empty';
  }
  const earlier = earlierRunFolder(runDir, entries);
  if (!earlier.ok) {
    const shown = earlier.foreign.slice(0, 3).map((f) => `'${f}'`).join(', ') + (earlier.foreign.length > 3 ? ` and ${earlier.foreign.length - 3} more` : '');
    throw new UserError(
      'usage',
      `the output folder ${runDir} is not empty and is not a run folder (it has no ${RUN_MARKER}, and it holds ${shown}, which the pipeline did not write); ` +
        `the pipeline only writes into folders it created, so it has left it untouched: pick a new or empty folder with --out`,
    );
  }
  for (const e of entries) {
    const m = /^\.tmp-(.+)$/.exec(e);
    const dir = path.join(runDir, e);
    if (m && lstatSync(dir).isDirectory() && !existsSync(path.join(dir, MANIFEST))) {
      await writeJsonAtomic(path.join(dir, STAGE_TMP_MARKER), { stage: m[1], claimed_at: new Date().toISOString() });
    }
  }
  // A marker temp file left by a crash while the marker was written: ours, drop it.
  for (const e of entries) if (/^\.\.distill-kit-run\.json\.tmp-\d+-[0-9a-f]{8}$/.test(e)) rmSync(path.join(runDir, e), { force: true });
  if (earlier.stages === 0) {
    await writeJsonAtomic(path.join(runDir, RUN_MARKER), marker('adopted-empty'));
    return 'adopted-empty';
  }
  await writeJsonAtomic(path.join(runDir, RUN_MARKER), marker('adopted-earlier-version'));
  opts.note?.(`${runDir}: a run folder written by an earlier version (${earlier.stages} stage folder${earlier.stages === 1 ? '' : 's'} with their manifests, no ${RUN_MARKER}): adopted and marked as a run folder`);
  return 'adopted-earlier-version';
}
