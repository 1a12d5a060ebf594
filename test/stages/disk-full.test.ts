/**
 * A full disk: the run folder is a small tmpfs (mounted here; needs root, skipped with the reason
 * printed when mounting is not permitted). The pipeline CLI runs until the disk fills and must
 * say so clearly (the path, the space needed, what to do), keep every finished stage intact and
 * verified, and after the tmpfs is grown (remount) finish with the outputs of an uninterrupted run.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, existsSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../../pipeline/runner.ts';
import { FAILPOINT_ENV } from '../../src/util/failpoint.ts';
import { hashOutputs } from '../../src/artifacts/output-hash.ts';

const CONFIG = `
name: disk-full
seed: 3
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 8, groups: 2, dim: 32, perClass: 30, seed: 5}}
  generalist: {hidden: [512], epochs: 3, batch_size: 32, optimizer: {name: adam, lr: 0.01}}
  covariance: {}
`;

const dir = mkdtempSync(path.join(os.tmpdir(), 'disk-full-'));
const configFile = path.join(dir, 'disk-full.yaml');
writeFileSync(configFile, CONFIG);
const mnt = path.join(dir, 'run');
mkdirSync(mnt);
let mounted = false;
let whyNot = '';

const sh = (cmd: string, args: string[]): { ok: boolean; err: string } => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { ok: r.status === 0, err: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim() };
};

beforeAll(() => {
  const r = sh('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
  mounted = r.ok;
  if (!mounted) {
    whyNot = `mount -t tmpfs is not permitted here (${r.err || 'non-zero exit'}); the full-disk test needs root (or CAP_SYS_ADMIN)`;
    console.warn(`SKIPPED disk-full test: ${whyNot}`);
  }
});
afterAll(() => {
  if (mounted) sh('umount', [mnt]);
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  output: string;
  stderr: string;
}

function runCli(out: string): Promise<Run> {
  const env = { ...process.env };
  delete env[FAILPOINT_ENV];
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'pipeline', 'cli.ts'), '--config', configFile, '--out', out], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
  let output = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr.on('data', (b: Buffer) => {
    output += b.toString();
    stderr += b.toString();
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, output, stderr })));
}

/** Output hashes of every finished stage, from the manifests. */
function outputs(run: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const s of readdirSync(run)) {
    const m = path.join(run, s, 'manifest.json');
    if (existsSync(m)) out[s] = (JSON.parse(readFileSync(m, 'utf8')) as { outputs: Record<string, string> }).outputs;
  }
  return out;
}

/** Bytes a folder takes on tmpfs: every file rounded up to whole 4 KiB pages. */
function pages(p: string): number {
  let total = 0;
  for (const e of readdirSync(p, { withFileTypes: true })) {
    const f = path.join(p, e.name);
    total += e.isDirectory() ? pages(f) : Math.ceil(statSync(f).size / 4096) * 4096;
  }
  return total;
}

describe('a full disk under the run folder (tmpfs)', () => {
  it('fails with the path and the space needed, keeps finished stages verified, and a rerun with space finishes like an uninterrupted run', async (t) => {
    if (!mounted) return t.skip(whyNot);
    const ref = path.join(dir, 'reference');
    const a = await runCli(ref);
    expect(a.code, a.output).toBe(0);
    const reference = outputs(ref);
    expect(Object.keys(reference).sort()).toEqual(['covariance', 'generalist', 'ingest']);

    // Room for ingest and a little more: the generalist (its checkpoint, model and curves) cannot fit.
    const size = pages(path.join(ref, 'ingest')) + 48 * 1024;
    expect(pages(path.join(ref, 'generalist'))).toBeGreaterThan(64 * 1024);
    expect(sh('mount', ['-o', `remount,size=${Math.ceil(size / 1024)}k`, mnt]).ok).toBe(true);

    const full = await runCli(mnt);
    expect(full.code, full.output).toBe(1);
    const errors = full.stderr.split('\n').filter((l) => l.startsWith('error:'));
    expect(errors, full.output).toHaveLength(1);
    console.log(`the full-disk error: ${errors[0]}`);
    expect(errors[0]).toMatch(new RegExp(`^error: stage 'generalist': disk full: no space left to write ${mnt.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/\\S+ \\((\\S+ (B|KiB|MiB) needed for this file|more than the \\S+ (B|KiB|MiB) written into \\S+ before the disk filled is needed); \\S+ (B|KiB|MiB) free of \\S+ (B|KiB|MiB) on its file system\\): free some space there or choose an output folder on another disk \\(--out\\); finished stages are kept, and rerunning the same command resumes$`));
    expect(full.output).not.toMatch(/unexpected error|^\s+at .*:\d+:\d+\)?$/m);

    // Finished stages intact and still verified; the failed stage left no folder, no temp folder.
    const kept = outputs(mnt);
    expect(Object.keys(kept)).toEqual(['ingest']);
    expect(kept.ingest).toEqual(reference.ingest);
    expect(await hashOutputs(path.join(mnt, 'ingest'), (f) => f === 'manifest.json')).toEqual(reference.ingest);
    expect(readdirSync(mnt).filter((f) => f.startsWith('.tmp-') || f === 'generalist')).toEqual([]);

    // Free space (grow the tmpfs) and rerun the same command.
    expect(sh('mount', ['-o', 'remount,size=64m', mnt]).ok).toBe(true);
    const done = await runCli(mnt);
    expect(done.code, done.output).toBe(0);
    expect(done.output).toMatch(/ingest: unchanged, skipped/);
    expect(outputs(mnt)).toEqual(reference);
    expect(readdirSync(mnt).filter((f) => /^\.(tmp-|scratch-|old-)/.test(f))).toEqual([]);
  }, 480_000);
});
