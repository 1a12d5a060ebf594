/**
 * The runner removes or replaces only what it created, and every error that suggests a command is
 * followed here by running that command and checking that it succeeds.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { parseConfig, type PipelineConfig } from '../../pipeline/config.ts';
import { REPO_ROOT, runPipeline, type RunOptions } from '../../pipeline/runner.ts';
import { defineStage, type StageDef } from '../../pipeline/stage.ts';
import { writeJsonAtomic } from '../../src/artifacts/atomic.ts';
import { RUN_MARKER, STAGE_TMP_MARKER, runMarkerSchema } from '../../src/artifacts/run-folder.ts';
import { ArtifactError, ConfigError, UserError } from '../../src/util/errors.ts';
import { silentLogger } from '../../src/util/log.ts';

const calls: string[] = [];
const source = defineStage({
  type: 'source',
  description: 'writes a number',
  schema: z.strictObject({ value: z.number().default(1) }),
  deps: () => [],
  code: ['pipeline/runner.ts'],
  async run(ctx) {
    calls.push(ctx.name);
    await writeJsonAtomic(path.join(ctx.outDir, 'value.json'), { value: ctx.params.value });
  },
});
const double = defineStage({
  type: 'double',
  description: 'doubles the upstream number',
  schema: z.strictObject({ from: z.string() }),
  deps: (p) => [p.from],
  code: ['pipeline/runner.ts'],
  async run(ctx) {
    calls.push(ctx.name);
    const v = JSON.parse(readFileSync(path.join(ctx.input(ctx.params.from), 'value.json'), 'utf8')) as { value: number };
    await writeJsonAtomic(path.join(ctx.outDir, 'value.json'), { value: v.value * 2 });
  },
});
/** Keeps partial work in its scratch folder; `crashNext` makes it die after writing a damaged one. */
let crashNext = false;
const resumable = defineStage({
  type: 'resumable',
  description: 'resumes from its scratch folder',
  schema: z.strictObject({}),
  deps: () => [],
  code: ['pipeline/runner.ts'],
  async run(ctx) {
    calls.push(ctx.name);
    const partial = path.join(ctx.scratchDir, 'partial.json');
    if (existsSync(partial)) {
      try {
        JSON.parse(readFileSync(partial, 'utf8'));
      } catch {
        throw new ArtifactError(`${partial} is damaged; rerun with --only ${ctx.name} --force`);
      }
    }
    if (crashNext) {
      crashNext = false;
      writeFileSync(partial, '{"half');
      throw new Error('killed');
    }
    await writeJsonAtomic(path.join(ctx.outDir, 'value.json'), { value: 1 });
  },
});
const registry = { source, double, resumable } as unknown as Record<string, StageDef<unknown>>;
const YAML = 'name: safety\nseed: 3\nbackend: cpu\nstages:\n  a: {type: source, value: 2}\n  b: {type: double, from: a}\n  c: {type: double, from: b}\n';
const config = (text = YAML): PipelineConfig => parseConfig(text, 'safety.yaml', registry);

let root: string;
let out: string;
beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'run-safety-'));
  out = path.join(root, 'run');
  calls.length = 0;
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const run = (opts: RunOptions = {}, text = YAML) => runPipeline(config(text), { out, log: silentLogger, ...opts });
const value = (stage: string): number => (JSON.parse(readFileSync(path.join(out, stage, 'value.json'), 'utf8')) as { value: number }).value;

/** Every entry below `dir` (dot-files included): folders, file bytes' sha256 and mode, link targets. */
function snapshot(dir: string): Record<string, string> {
  const outMap: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = path.join(dir, r);
      const st = lstatSync(abs);
      if (st.isSymbolicLink()) outMap[r] = `link ${readlinkSync(abs)}`;
      else if (st.isDirectory()) {
        outMap[r] = `dir ${st.mode.toString(8)}`;
        walk(r);
      } else outMap[r] = `file ${st.mode.toString(8)} ${createHash('sha256').update(readFileSync(abs)).digest('hex')}`;
    }
  };
  walk('');
  return outMap;
}

/** A user's folder: files in sub-folders named like the stages, a dot-file, a link. */
function userFolder(dir: string): void {
  mkdirSync(path.join(dir, 'a'), { recursive: true });
  writeFileSync(path.join(dir, 'a', 'mydata.csv'), 'x,y\n1,2\n');
  mkdirSync(path.join(dir, 'report'), { recursive: true });
  writeFileSync(path.join(dir, 'report', 'thesis.tex'), '\\documentclass{article}\n');
  writeFileSync(path.join(dir, '.hidden'), 'secret');
  writeFileSync(path.join(dir, 'notes.txt'), 'keep me');
}

/** The message of the error `p` rejects with (a UserError). */
async function errorOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return (e as Error).message;
  }
  throw new Error('expected the run to fail');
}

/** The options a message's "rerun with --only X[,Y] [--force]" suggests. */
function suggested(message: string): RunOptions {
  const m = /rerun with --only (\S+?)( --force)?(?=[\s);]|$)/.exec(message);
  if (!m) throw new Error(`no --only suggestion in: ${message}`);
  return { only: m[1]!.split(','), ...(m[2] ? { force: true } : {}) };
}

describe('run folder marker', () => {
  it('a new folder gets a marker with the config name, the time and the package version', async () => {
    await run();
    const marker = runMarkerSchema.parse(JSON.parse(readFileSync(path.join(out, RUN_MARKER), 'utf8')));
    expect(marker).toMatchObject({ tool: 'distill-kit', format: 1, name: 'safety', origin: 'created' });
    expect(marker.package_version).toBe((JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version);
    expect(Date.parse(marker.created_at)).toBeGreaterThan(Date.now() - 60_000);
    // a second run keeps it as it was
    const before = readFileSync(path.join(out, RUN_MARKER), 'utf8');
    await run();
    expect(readFileSync(path.join(out, RUN_MARKER), 'utf8')).toBe(before);
  });

  it('an empty existing folder is adopted', async () => {
    mkdirSync(out);
    await run();
    expect(JSON.parse(readFileSync(path.join(out, RUN_MARKER), 'utf8'))).toMatchObject({ origin: 'adopted-empty', name: 'safety' });
    expect(value('c')).toBe(8);
  });

  it('a non-empty folder without a marker is refused, every file left byte-identical', async () => {
    userFolder(out);
    const before = snapshot(out);
    const msg = await errorOf(run());
    expect(msg).toContain(out);
    expect(msg).toMatch(/is not empty and is not a run folder \(it has no \.distill-kit-run\.json, and it holds .*'a'.*which the pipeline did not write\).*pick a new or empty folder with --out/);
    expect(snapshot(out)).toEqual(before);
    expect(calls).toEqual([]);
    // --force changes nothing about it
    await errorOf(run({ force: true }));
    expect(snapshot(out)).toEqual(before);
    // the suggestion works: a new folder
    out = path.join(root, 'new');
    await run();
    expect(value('c')).toBe(8);
  });

  it('a link to a run folder is that run folder', async () => {
    await run();
    const link = path.join(root, 'link');
    const fs = await import('node:fs');
    fs.symlinkSync(out, link);
    calls.length = 0;
    await run({ out: link });
    expect(calls).toEqual([]);
  });

  it('a damaged marker is refused; deleting it (as the message says) re-adopts the run folder', async () => {
    await run();
    writeFileSync(path.join(out, RUN_MARKER), '{"tool": "distill');
    const msg = await errorOf(run());
    expect(msg).toMatch(/\.distill-kit-run\.json is damaged \(not JSON\).*delete that one file and rerun/);
    rmSync(path.join(out, RUN_MARKER));
    calls.length = 0;
    await run();
    expect(calls).toEqual([]);
    expect(JSON.parse(readFileSync(path.join(out, RUN_MARKER), 'utf8'))).toMatchObject({ origin: 'adopted-earlier-version' });
  });
});

describe('run folders of earlier versions (stage folders with manifests, no marker)', () => {
  it('are adopted when every entry is a stage folder with its manifest or a runner dot-entry', async () => {
    await run();
    rmSync(path.join(out, RUN_MARKER));
    mkdirSync(path.join(out, '.scratch-b-0123456789ab'));
    mkdirSync(path.join(out, '.tmp-c'));
    writeFileSync(path.join(out, '.tmp-c', 'partial.bin'), 'half');
    const notes: string[] = [];
    calls.length = 0;
    await run({ log: { ...silentLogger, info: (m: string) => notes.push(m) } });
    expect(calls).toEqual([]);
    expect(notes.join('\n')).toMatch(/a run folder written by an earlier version \(3 stage folders with their manifests, no \.distill-kit-run\.json\): adopted/);
    expect(existsSync(path.join(out, '.tmp-c'))).toBe(false); // its crash leftover was claimed and cleared
  });

  it('are refused when they also hold anything else, untouched', async () => {
    await run();
    rmSync(path.join(out, RUN_MARKER));
    writeFileSync(path.join(out, 'thesis.tex'), 'mine');
    mkdirSync(path.join(out, 'data'));
    writeFileSync(path.join(out, 'data', 'x.csv'), '1');
    const before = snapshot(out);
    const msg = await errorOf(run({ force: true }));
    expect(msg).toMatch(/holds 'data', 'thesis\.tex', which the pipeline did not write/);
    expect(snapshot(out)).toEqual(before);
  });

  it('a stage folder whose manifest names another stage does not count as the runner\'s', async () => {
    await run();
    rmSync(path.join(out, RUN_MARKER));
    renameSync(path.join(out, 'c'), path.join(out, 'copy-of-c'));
    const before = snapshot(out);
    await errorOf(run());
    expect(snapshot(out)).toEqual(before);
  });
});

describe('inside a marked run folder', () => {
  it('a folder under a stage\'s name without the runner\'s manifest is refused, never renamed or deleted', async () => {
    await run({ only: 'a' });
    mkdirSync(path.join(out, 'b'));
    writeFileSync(path.join(out, 'b', 'thesis.tex'), 'chapter 1');
    const mine = snapshot(path.join(out, 'b'));
    for (const opts of [{}, { force: true }, { from: 'a' }, { only: 'b', force: true }] as RunOptions[]) {
      calls.length = 0;
      const msg = await errorOf(run(opts));
      expect(msg).toMatch(/run\/b has no manifest\.json the pipeline wrote for stage 'b', so the pipeline did not write it and will not replace it; move it out of the run folder/);
      expect(calls).not.toContain('b'); // refused before it ran
      expect(snapshot(path.join(out, 'b'))).toEqual(mine);
      expect(existsSync(path.join(out, '.old-b'))).toBe(false);
    }
    // the suggestion works: move it out, rerun
    renameSync(path.join(out, 'b'), path.join(root, 'b-moved'));
    await run();
    expect(value('c')).toBe(8);
    expect(snapshot(path.join(root, 'b-moved'))).toEqual(mine);
  });

  it('a stage folder holding another stage\'s manifest is not replaced', async () => {
    await run();
    rmSync(path.join(out, 'b'), { recursive: true });
    const fs = await import('node:fs');
    fs.cpSync(path.join(out, 'c'), path.join(out, 'b'), { recursive: true });
    const before = snapshot(path.join(out, 'b'));
    await errorOf(run({ force: true }));
    expect(snapshot(path.join(out, 'b'))).toEqual(before);
  });

  it('the user\'s own files beside the stage folders are kept through runs, reruns and --force', async () => {
    await run();
    writeFileSync(path.join(out, 'notes.txt'), 'my notes');
    mkdirSync(path.join(out, 'plots'));
    writeFileSync(path.join(out, 'plots', 'fig.svg'), '<svg/>');
    writeFileSync(path.join(out, 'a', 'my-extra.txt'), 'x'); // inside a stage folder: tampering, refused
    const plots = snapshot(path.join(out, 'plots'));
    const msg = await errorOf(run());
    expect(msg).toMatch(/a\/my-extra\.txt was added after the stage ran/);
    rmSync(path.join(out, 'a', 'my-extra.txt'));
    await run({ force: true });
    expect(readFileSync(path.join(out, 'notes.txt'), 'utf8')).toBe('my notes');
    expect(snapshot(path.join(out, 'plots'))).toEqual(plots);
  });

  it('crash leftovers the runner recognises are cleared; .tmp-/.old- folders it did not make are left alone and refused', async () => {
    await run();
    // a stage killed while running leaves its marked temp folder; a swap killed midway an .old- folder
    mkdirSync(path.join(out, '.tmp-b'));
    writeFileSync(path.join(out, '.tmp-b', STAGE_TMP_MARKER), '{}');
    writeFileSync(path.join(out, '.tmp-b', 'half.bin'), 'x');
    const fs = await import('node:fs');
    fs.cpSync(path.join(out, 'c'), path.join(out, '.old-c'), { recursive: true });
    calls.length = 0;
    await run();
    expect(calls).toEqual([]);
    expect(readdirSync(out).filter((f) => /^\.(tmp|old)-/.test(f))).toEqual([]);
    // not the runner's: a .tmp- folder with someone's files, an .old- folder without a manifest
    mkdirSync(path.join(out, '.tmp-b'));
    writeFileSync(path.join(out, '.tmp-b', 'mine.txt'), 'mine');
    mkdirSync(path.join(out, '.old-c'));
    writeFileSync(path.join(out, '.old-c', 'mine.txt'), 'mine too');
    const tmpB = snapshot(path.join(out, '.tmp-b'));
    const oldC = snapshot(path.join(out, '.old-c'));
    await run(); // unchanged stages: nothing needs those names
    expect(snapshot(path.join(out, '.tmp-b'))).toEqual(tmpB);
    expect(snapshot(path.join(out, '.old-c'))).toEqual(oldC);
    expect(await errorOf(run({ only: 'b', force: true }))).toMatch(/run\/\.tmp-b is not a temporary folder the pipeline made.*move it out of the run folder/);
    expect(await errorOf(run({ only: 'c', force: true }))).toMatch(/run\/\.old-c has no manifest\.json the pipeline wrote/);
    expect(snapshot(path.join(out, '.tmp-b'))).toEqual(tmpB);
    expect(snapshot(path.join(out, '.old-c'))).toEqual(oldC);
    expect(value('b')).toBe(4);
  });
});

describe('names and places that are refused', () => {
  it('config names ".", "..", empty, with a separator or a leading dot', () => {
    for (const name of ['"."', '".."', '""', 'a/b', '../x', '.hidden', '"a\\\\b"']) {
      expect(() => config(`name: ${name}\nstages:\n  a: {type: source}\n`), name).toThrow(ConfigError);
    }
    expect(() => parseConfig('stages:\n  a: {type: source}\n', 'dir/.yaml', registry)).toThrow(/the run name '' \(taken from the file name\) is not a plain folder name; set 'name:'/);
    expect(() => parseConfig('stages:\n  a: {type: source}\n', 'dir/my run.yaml', registry)).toThrow(/set 'name:'/);
    expect(config('name: my-run.v2\nstages:\n  a: {type: source}\n').name).toBe('my-run.v2');
  });

  it('a stage reading its own outputs is named as such, not "move \'b\' above \'b\'"', () => {
    expect(() => config('stages:\n  a: {type: source}\n  b: {type: double, from: b}\n')).toThrow(/stage 'b' reads its own outputs \('b'\); a stage can only read stages above it: point it at an earlier stage/);
    expect(() => config('stages:\n  a: {type: source}\n  b: {type: double, from: b}\n')).not.toThrow(/move 'b' above 'b'/);
  });

  it('a config built in code with name ".." is refused by the runner before anything is written', async () => {
    const c = { ...config(), name: '..' };
    const cwd = process.cwd();
    process.chdir(root);
    try {
      await expect(runPipeline(c, { log: silentLogger })).rejects.toThrow(/the run name '\.\.' is not a plain folder name/);
      await expect(runPipeline({ ...c, name: 'a/b' }, { log: silentLogger })).rejects.toThrow(ConfigError);
    } finally {
      process.chdir(cwd);
    }
    expect(readdirSync(root)).toEqual([]);
  });

  it('a file-system root, the home folder, the repository root, the dataset cache and folders above the current one', async () => {
    expect(await errorOf(run({ out: '/' }))).toMatch(/the output folder \/ is a file-system root; .*pick a new or empty folder with --out/);
    expect(existsSync(path.join('/', RUN_MARKER))).toBe(false);

    const home = path.join(root, 'home');
    userFolder(home);
    const homeBefore = snapshot(home);
    const savedHome = process.env.HOME;
    process.env.HOME = home;
    try {
      expect(await errorOf(run({ out: home }))).toMatch(/is your home folder/);
      expect(await errorOf(run({ out: path.join(home, '.') }))).toMatch(/is your home folder/);
    } finally {
      process.env.HOME = savedHome;
    }
    expect(snapshot(home)).toEqual(homeBefore);

    const repoTop = readdirSync(REPO_ROOT).sort();
    expect(await errorOf(run({ out: REPO_ROOT }))).toMatch(/is the repository root/);
    expect(readdirSync(REPO_ROOT).sort()).toEqual(repoTop);
    expect(existsSync(path.join(REPO_ROOT, RUN_MARKER))).toBe(false);

    expect(await errorOf(run({ out: path.join(root, 'datasets') }))).toMatch(/is the dataset cache folder/);
    expect(existsSync(path.join(root, 'datasets'))).toBe(false);

    const deep = path.join(root, 'above', 'here', 'work');
    mkdirSync(deep, { recursive: true });
    const cwd = process.cwd();
    process.chdir(deep);
    try {
      for (const o of ['..', '../..', path.join(root, 'above')]) {
        expect(await errorOf(run({ out: o }))).toMatch(/is a folder above the current folder/);
      }
      // the current folder itself, when empty, is fine
      await run({ out: '.' });
    } finally {
      process.chdir(cwd);
    }
    expect(readdirSync(path.join(root, 'above'))).toEqual(['here']);
    expect(existsSync(path.join(deep, 'c', 'value.json'))).toBe(true);
  });

  it('a symbolic link to the home folder is the home folder', async () => {
    const home = path.join(root, 'home');
    userFolder(home);
    const link = path.join(root, 'link');
    const fs = await import('node:fs');
    fs.symlinkSync(home, link);
    const before = snapshot(home);
    const savedHome = process.env.HOME;
    process.env.HOME = home;
    try {
      expect(await errorOf(run({ out: link }))).toMatch(/is your home folder/);
    } finally {
      process.env.HOME = savedHome;
    }
    expect(snapshot(home)).toEqual(before);
  });
});

describe('advice that works: each suggested command is run and succeeds', () => {
  it('a corrupted manifest: the suggested --only X --force rebuilds it, then the plain run succeeds', async () => {
    await run();
    for (const [stage, text] of [['a', '{"stage": 1'], ['b', '{"stage": "b"}']] as const) {
      writeFileSync(path.join(out, stage, 'manifest.json'), text);
      const msg = await errorOf(run());
      expect(msg).toMatch(new RegExp(`${stage}/manifest\\.json is (corrupted|not a valid manifest).*stage '${stage}'.*rerun with --only ${stage} --force`));
      await run(suggested(msg));
      await run();
      expect(value('c')).toBe(8);
    }
    // read as an input under --only, it is named the same way
    writeFileSync(path.join(out, 'a', 'manifest.json'), 'not json');
    const msg = await errorOf(run({ only: 'b', force: true }));
    expect(msg).toMatch(/a\/manifest\.json is corrupted.*rerun with --only a --force/);
    await run(suggested(msg));
    await run({ only: 'b', force: true });
    expect(value('b')).toBe(4);
  });

  it('tampered outputs: the suggested --only X --force rebuilds the stage; deleting the folder also works', async () => {
    await run();
    writeFileSync(path.join(out, 'b', 'value.json'), '{"value": 999}');
    const msg = await errorOf(run());
    expect(msg).toMatch(/b\/value\.json was modified after the stage wrote it; rerun with --only b --force to rebuild it \(or delete the folder .*run\/b\)/);
    await run(suggested(msg));
    await run();
    expect(value('c')).toBe(8);
    rmSync(path.join(out, 'b', 'value.json'));
    expect(await errorOf(run())).toMatch(/b\/value\.json is missing/);
    rmSync(path.join(out, 'b'), { recursive: true });
    await run();
    expect(value('c')).toBe(8);
  });

  it('--only checks what it reads: a tampered upstream output is named with the fix, before the stage runs', async () => {
    await run();
    writeFileSync(path.join(out, 'a', 'value.json'), '{"value": 50}');
    calls.length = 0;
    const msg = await errorOf(run({ only: 'b', force: true }));
    expect(msg).toMatch(/stage 'b' reads 'a', but in .*: a\/value\.json was modified after the stage wrote it; rerun with --only a --force to rebuild it/);
    expect(calls).toEqual([]);
    expect(value('b')).toBe(4); // the finished b is kept
    // --from checks its upstream stages too
    expect(await errorOf(run({ from: 'b' }))).toMatch(/a\/value\.json was modified/);
    await run(suggested(msg));
    await run({ only: 'b', force: true });
    expect(value('b')).toBe(4);
    writeFileSync(path.join(out, 'a', 'extra.json'), '{}');
    expect(await errorOf(run({ only: ['b', 'c'], force: true }))).toMatch(/a\/extra\.json was added after the stage ran/);
  });

  it('a missing upstream stage: the suggested --only list runs, and so does the plain run', async () => {
    const msg = await errorOf(run({ only: 'c' }));
    expect(msg).toMatch(/stage 'c' needs the outputs of 'b', which has not run in .*; run them first: rerun with --only a,b,c \(or the whole config without --only\)/);
    await run(suggested(msg));
    expect(value('c')).toBe(8);
    rmSync(path.join(out, 'b'), { recursive: true });
    rmSync(path.join(out, 'c'), { recursive: true });
    const msg2 = await errorOf(run({ only: 'c' }));
    expect(msg2).toMatch(/rerun with --only b,c /);
    await run();
    expect(value('c')).toBe(8);
  });

  it('damaged partial work of a stage: the suggested --force starts it from nothing', async () => {
    const text = 'name: safety\nbackend: cpu\nstages:\n  r: {type: resumable}\n';
    crashNext = true;
    await expect(run({}, text)).rejects.toThrow('killed');
    expect(readdirSync(out).filter((f) => f.startsWith('.scratch-r-'))).toHaveLength(1); // kept for a resume
    const msg = await errorOf(run({}, text));
    expect(msg).toMatch(/partial\.json is damaged; rerun with --only r --force/);
    await run(suggested(msg), text);
    expect(value('r')).toBe(1);
    expect(readdirSync(out).filter((f) => f.startsWith('.scratch-'))).toEqual([]);
  });

  it('a lock held by another live process: deleting the lock as suggested lets the run proceed', async () => {
    await run();
    writeFileSync(path.join(out, '.lock-b'), JSON.stringify({ pid: process.ppid, host: os.hostname(), started: new Date().toISOString() }));
    const msg = await errorOf(run({ only: 'b', force: true }));
    expect(msg).toMatch(/is being run by another pipeline process.*wait for it to finish, then rerun \(if pid \d+ is not a pipeline, delete (\S+\.lock-b) and rerun\)/);
    const file = /delete (\S+\.lock-b) and rerun/.exec(msg)![1]!;
    rmSync(file);
    await run({ only: 'b', force: true });
    expect(value('b')).toBe(4);
  });

  it('a read lock of another live process on a stage that must rerun: deleting it as suggested lets the run proceed', async () => {
    await run();
    writeFileSync(path.join(out, `.read-a.${process.ppid}`), JSON.stringify({ pid: process.ppid, host: os.hostname(), started: new Date().toISOString() }));
    const msg = await errorOf(run({ only: 'a', force: true }));
    expect(msg).toMatch(/stage 'a' in .* needs to run, but another pipeline process .* is reading it as an input; .*\(if pid \d+ is not a pipeline, delete (\S+\.read-a\.\d+) and rerun\)/);
    rmSync(/delete (\S+\.read-a\.\d+) and rerun/.exec(msg)![1]!);
    calls.length = 0;
    await run({ only: 'a', force: true });
    expect(calls).toEqual(['a']);
  });

  it('a lock whose pid now belongs to a process started after it is stale and cleared', async () => {
    if (!existsSync('/proc/self/stat')) return;
    await run();
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 100));
      writeFileSync(path.join(out, '.lock-b'), JSON.stringify({ pid: child.pid, host: os.hostname(), started: '2001-01-01T00:00:00.000Z' }));
      const notes: string[] = [];
      calls.length = 0;
      await run({ only: 'b', force: true, log: { ...silentLogger, info: (m: string) => notes.push(m) } });
      expect(calls).toEqual(['b']);
      expect(notes.join('\n')).toMatch(new RegExp(`clearing a stale lock .*\\.lock-b left by pid ${child.pid}`));
    } finally {
      child.kill();
    }
  });
});

describe('the CLI', () => {
  it('refuses a non-empty folder with one error line, exit 1, no stack trace, files untouched', () => {
    const cfg = path.join(root, 'tiny.yaml');
    writeFileSync(cfg, 'name: tiny\nbackend: cpu\nstages:\n  ingest: {dataset: {recipe: synthetic, options: {classes: 3, groups: 1, dim: 2, perClass: 10, seed: 1}}}\n');
    const thesis = path.join(root, 'thesis');
    userFolder(thesis);
    mkdirSync(path.join(thesis, 'ingest'));
    writeFileSync(path.join(thesis, 'ingest', 'mydata.csv'), 'label,x\n');
    const before = snapshot(thesis);
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'pipeline', 'cli.ts'), '--config', cfg, '--out', thesis], { cwd: REPO_ROOT, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^error: the output folder ${thesis} is not empty and is not a run folder .*pick a new or empty folder with --out\\n$`, 'm'));
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(snapshot(thesis)).toEqual(before);
  }, 60_000);
});
