import { describe, it, expect, beforeEach } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync, mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { defineStage, type StageDef } from '../../pipeline/stage.ts';
import { writeJsonAtomic } from '../../src/artifacts/atomic.ts';
import { ConfigError, ArtifactError, UserError } from '../../src/util/errors.ts';
import { silentLogger } from '../../src/util/log.ts';
import { lockStage } from '../../src/artifacts/lock.ts';
import { describePath } from '../../src/cli/describe.ts';
import { RUN_MARKER } from '../../src/artifacts/run-folder.ts';

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
  schema: z.strictObject({ from: z.string().default('a'), fail: z.boolean().default(false) }),
  deps: (p) => [p.from],
  code: ['pipeline/runner.ts'],
  async run(ctx) {
    calls.push(ctx.name);
    const v = JSON.parse(readFileSync(path.join(ctx.input(ctx.params.from), 'value.json'), 'utf8')) as { value: number };
    await writeJsonAtomic(path.join(ctx.outDir, 'value.json'), { value: v.value * 2 });
    if (ctx.params.fail) throw new Error('boom');
    return { doubled: v.value * 2 };
  },
});
/** Sums `need` and whichever of `extra` have run (optional deps). */
const sum = defineStage({
  type: 'sum',
  description: 'adds the upstream numbers that exist',
  schema: z.strictObject({ need: z.string(), extra: z.array(z.string()).default([]) }),
  deps: (p) => [p.need],
  optionalDeps: (p) => p.extra,
  code: ['pipeline/runner.ts'],
  async run(ctx) {
    calls.push(ctx.name);
    const read = (s: string): number => (JSON.parse(readFileSync(path.join(ctx.input(s), 'value.json'), 'utf8')) as { value: number }).value;
    const present = ctx.params.extra.filter((s) => ctx.has(s));
    await writeJsonAtomic(path.join(ctx.outDir, 'value.json'), { value: [ctx.params.need, ...present].reduce((t, s) => t + read(s), 0), missing: ctx.params.extra.filter((s) => !ctx.has(s)) });
  },
});
const registry = { source, double, sum } as unknown as Record<string, StageDef<unknown>>;
const yaml = (v: number, extra = ''): string => `name: t\nseed: 3\nbackend: cpu\nstages:\n  a: {type: source, value: ${v}}\n  b: {type: double, from: a${extra}}\n  c: {type: double, from: b}\n`;

let out: string;
beforeEach(() => {
  out = mkdtempSync(path.join(os.tmpdir(), 'runner-'));
  calls.length = 0;
});
const run = (text: string, opts: Parameters<typeof runPipeline>[1] = {}) => runPipeline(parseConfig(text, 't.yaml', registry), { out, log: silentLogger, ...opts });
const value = (stage: string): number => (JSON.parse(readFileSync(path.join(out, stage, 'value.json'), 'utf8')) as { value: number }).value;

describe('pipeline runner', () => {
  it('runs every stage, writes manifests, and skips unchanged stages on a second run', async () => {
    const r1 = await run(yaml(2));
    expect(r1.stages.map((s) => s.status)).toEqual(['ran', 'ran', 'ran']);
    expect(value('c')).toBe(8);
    const m = JSON.parse(readFileSync(path.join(out, 'b', 'manifest.json'), 'utf8'));
    expect(m).toMatchObject({ stage: 'b', type: 'double', seed: 3, params: { from: 'a', fail: false }, summary: { doubled: 4 } });
    expect(Object.keys(m.outputs)).toEqual(['value.json']);
    expect(m.inputs.a).toMatch(/^[0-9a-f]{64}$/);
    expect(m.backend.name).toBe('cpu');
    calls.length = 0;
    const r2 = await run(yaml(2));
    expect(r2.stages.map((s) => s.status)).toEqual(['skipped', 'skipped', 'skipped']);
    expect(calls).toEqual([]);
  });

  it('reruns a stage whose param changed and the stages after it', async () => {
    await run(yaml(2));
    calls.length = 0;
    await run(yaml(5));
    expect(calls).toEqual(['a', 'b', 'c']);
    expect(value('c')).toBe(20);
  });

  it('a seed change reruns everything', async () => {
    await run(yaml(2));
    calls.length = 0;
    await run(yaml(2), { seed: 9 });
    expect(calls).toEqual(['a', 'b', 'c']);
  });

  it('--only runs one stage, --from reruns from a stage on', async () => {
    await run(yaml(2));
    calls.length = 0;
    await run(yaml(2), { only: 'b', force: true });
    expect(calls).toEqual(['b']);
    calls.length = 0;
    await run(yaml(2), { from: 'b' });
    expect(calls).toEqual(['b', 'c']);
    calls.length = 0;
    // several stages, in config order whatever the list's order; a later one reads an earlier one's new outputs
    await run(yaml(3), { only: ['c', 'a', 'b'] });
    expect(calls).toEqual(['a', 'b', 'c']);
    expect(value('c')).toBe(12);
    calls.length = 0;
    await run(yaml(3), { only: ['a', 'c'], force: true });
    expect(calls).toEqual(['a', 'c']);
    await expect(run(yaml(3), { only: ['a', 'nope'] })).rejects.toThrow(/--only nope: no such stage in t.yaml; stages are a, b, c/);
    await expect(run(yaml(3), { only: [] })).rejects.toThrow(/--only needs at least one stage name/);
  });

  it('--only on a stage whose upstream never ran is a clear error', async () => {
    await expect(run(yaml(2), { only: 'c' })).rejects.toThrow(/needs the outputs of 'b'/);
  });

  it('optional deps: --only runs without them, names them, and reruns once they have run', async () => {
    const text = 'name: t\nseed: 3\nbackend: cpu\nstages:\n  a: {type: source, value: 2}\n  x: {type: source, value: 10}\n  y: {type: source, value: 100}\n  s: {type: sum, need: a, extra: [x, y]}\n';
    await run(text, { only: 'a' });
    const lines: string[] = [];
    const log = { ...silentLogger, info: (m: string) => lines.push(m) };
    await run(text, { only: 's', log });
    expect(value('s')).toBe(2);
    expect(JSON.parse(readFileSync(path.join(out, 's', 'value.json'), 'utf8')).missing).toEqual(['x', 'y']);
    expect(lines.join('\n')).toMatch(/s: 'x', 'y' have not run in .*: left out; to add one, run it \(--only NAME\), then this stage again/);
    const m = JSON.parse(readFileSync(path.join(out, 's', 'manifest.json'), 'utf8'));
    expect(m.inputs).toMatchObject({ x: 'absent', y: 'absent' });
    expect(await describePath(path.join(out, 's'))).toMatch(/inputs: a, x \(had not run\), y \(had not run\);/);
    calls.length = 0;
    await run(text, { only: 's' });
    expect(calls).toEqual([]); // unchanged: still absent
    await run(text, { only: 'y' });
    await run(text, { only: 's' });
    expect(calls).toEqual(['y', 's']);
    expect(value('s')).toBe(102);
    calls.length = 0;
    await run(text);
    expect(calls).toEqual(['x', 's']);
    expect(value('s')).toBe(112);
  });

  it('an optional dep must still name a stage above', () => {
    const text = 'name: t\nstages:\n  a: {type: source}\n  s: {type: sum, need: a, extra: [nope]}\n';
    expect(() => parseConfig(text, 't.yaml', registry)).toThrow(/stage 's' reads stage 'nope', which is not in the config/);
  });

  it('a failing stage leaves no folder under its name and keeps finished stages', async () => {
    await expect(run(yaml(2, ', fail: true'))).rejects.toThrow('boom');
    expect(existsSync(path.join(out, 'a', 'manifest.json'))).toBe(true);
    expect(existsSync(path.join(out, 'b'))).toBe(false);
    expect(readdirSync(out).filter((f) => f.startsWith('.tmp'))).toEqual([]);
    calls.length = 0;
    await run(yaml(2));
    expect(calls).toEqual(['b', 'c']);
  });

  it('detects outputs modified after a stage ran', async () => {
    await run(yaml(2));
    writeFileSync(path.join(out, 'b', 'value.json'), '{"value": 999}');
    await expect(run(yaml(2))).rejects.toThrow(ArtifactError);
    await expect(run(yaml(2))).rejects.toThrow(/b\/value\.json was modified.*--only b --force/);
  });

  it('a tampered manifest is a clear error', async () => {
    await run(yaml(2));
    writeFileSync(path.join(out, 'a', 'manifest.json'), '{"stage": 1');
    await expect(run(yaml(2))).rejects.toThrow(/manifest\.json is corrupted/);
  });

  it('finishes a folder swap interrupted by a crash', async () => {
    await run(yaml(2));
    // Simulate a crash between "move old away" and "move new in": only .old-b exists.
    const fs = await import('node:fs');
    fs.renameSync(path.join(out, 'b'), path.join(out, '.old-b'));
    calls.length = 0;
    await run(yaml(2));
    expect(calls).toEqual([]);
    expect(value('b')).toBe(4);
  });

  // Another live process is simulated with lock files naming this process's parent (alive, not us).
  const other = (): string => JSON.stringify({ pid: process.ppid, host: os.hostname(), started: 'x' });
  const dead = (): string => JSON.stringify({ pid: 2 ** 22 + 12345, host: os.hostname(), started: 'x' });

  it('stage locks: another process running a stage blocks only the runs that run or read it', async () => {
    await run(yaml(2));
    writeFileSync(path.join(out, '.lock-b'), other());
    // b is being rerun elsewhere: running it, or c (which reads it), is refused with the holder named
    await expect(run(yaml(2), { only: 'b', force: true })).rejects.toThrow(new RegExp(`stage 'b' in .* is being run by another pipeline process \\(pid ${process.ppid}, started x\\); wait for it to finish`));
    await expect(run(yaml(2), { only: 'c', force: true })).rejects.toThrow(/stage 'b' in .* is being run by another pipeline process/);
    // a does not touch b: it runs side by side
    calls.length = 0;
    await run(yaml(5), { only: 'a' });
    expect(calls).toEqual(['a']);
    expect(readdirSync(out).filter((f) => f.startsWith('.') && f !== RUN_MARKER)).toEqual(['.lock-b']); // ours all released
  });

  it('stage locks: readers share a stage, a rerun waits for them; stale locks are cleared', async () => {
    await run(yaml(2));
    writeFileSync(path.join(out, `.read-a.${process.ppid}`), other());
    // another process reads a (e.g. trains b from it): c can still run here, reading a's finished chain
    calls.length = 0;
    await run(yaml(2), { only: ['b', 'c'], force: true });
    expect(calls).toEqual(['b', 'c']);
    // but a cannot be rerun under it, and a run that finds a up to date does not need to
    await expect(run(yaml(3), { only: 'a' })).rejects.toThrow(/stage 'a' in .* needs to run, but another pipeline process \(pid \d+, started x\) is reading it as an input; wait for that process to finish \(or run 'a' before starting it\)/);
    expect(existsSync(path.join(out, `.lock-a`))).toBe(false);
    calls.length = 0;
    await run(yaml(2));
    expect(calls).toEqual([]);
    // locks of processes that no longer run are cleared with a note
    writeFileSync(path.join(out, `.read-a.${2 ** 22 + 12345}`), dead());
    writeFileSync(path.join(out, '.lock-b'), dead());
    rmSync(path.join(out, `.read-a.${process.ppid}`));
    const notes: string[] = [];
    calls.length = 0;
    await run(yaml(3), { log: { ...silentLogger, info: (m: string) => notes.push(m) } });
    expect(calls).toEqual(['a', 'b', 'c']);
    expect(notes.filter((n) => /stale/.test(n)).map((n) => n.replace(out, 'OUT'))).toEqual([
      `clearing a stale read lock OUT/.read-a.${2 ** 22 + 12345} left by pid ${2 ** 22 + 12345} (no longer running)`,
      `clearing a stale lock OUT/.lock-b left by pid ${2 ** 22 + 12345} (no longer running)`,
    ]);
    expect(readdirSync(out).filter((f) => f.startsWith('.') && f !== RUN_MARKER)).toEqual([]);
  });

  it('lockStage: a write lock is exclusive, this process may upgrade its own read lock', () => {
    mkdirSync(out, { recursive: true });
    const r = lockStage(out, 's', 'read');
    const w = lockStage(out, 's', 'write');
    expect(() => lockStage(out, 's', 'write')).toThrow(/already held by this process/);
    expect(JSON.parse(readFileSync(path.join(out, '.lock-s'), 'utf8'))).toMatchObject({ pid: process.pid, host: os.hostname() });
    w();
    r();
    expect(readdirSync(out)).toEqual([]);
    // a lock written on another host (a run folder copied between machines) is stale, whatever its pid
    writeFileSync(path.join(out, '.lock-s'), JSON.stringify({ pid: process.ppid, host: 'elsewhere', started: 'x' }));
    const notes: string[] = [];
    lockStage(out, 's', 'write', (m) => notes.push(m))();
    expect(notes).toEqual([`clearing a stale lock ${path.join(out, '.lock-s')} left by pid ${process.ppid} (no longer running)`]);
  });
});

describe('config validation', () => {
  const bad = (text: string): string => {
    try {
      parseConfig(text, 'x.yaml', registry);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect(e).toBeInstanceOf(UserError);
      return (e as Error).message;
    }
    throw new Error('expected a ConfigError');
  };
  it('names the key path of unknown keys, wrong types and out-of-range values', () => {
    expect(bad('stages:\n  a: {type: source, valu: 1}\n')).toMatch(/stages\.a: unknown key\(s\) 'valu'/);
    expect(bad('stages:\n  a: {type: source, value: "x"}\n')).toMatch(/stages\.a\.value: .*number/);
    expect(bad('seed: -1\nstages:\n  a: {type: source}\n')).toMatch(/seed: .*>=0|seed: .*0/);
    expect(bad('colour: red\nstages:\n  a: {type: source}\n')).toMatch(/unknown key\(s\) 'colour'/);
    expect(bad('backend: tpu\nstages:\n  a: {type: source}\n')).toMatch(/backend: /);
  });
  it('rejects non-YAML, unknown stage types, missing and misordered deps', () => {
    expect(bad('stages: [a, : b\n')).toMatch(/not valid YAML/);
    expect(bad('just text')).toMatch(/expected a YAML mapping/);
    expect(bad('stages:\n  a: {type: sauce}\n')).toMatch(/unknown stage type 'sauce'/);
    expect(bad('stages:\n  b: {type: double, from: zz}\n')).toMatch(/reads stage 'zz', which is not in the config/);
    expect(bad('stages:\n  b: {type: double, from: a}\n  a: {type: source}\n')).toMatch(/move 'a' above 'b'/);
  });
  it('fills defaults and takes the name from the file', () => {
    const c = parseConfig('stages:\n  a: {type: source}\n', 'dir/my-run.yaml', registry);
    expect(c).toMatchObject({ name: 'my-run', seed: 1, backend: 'auto' });
    expect(c.stages[0]!.params).toEqual({ value: 1 });
  });
});
