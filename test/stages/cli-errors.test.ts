import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readdirSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../../pipeline/runner.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'cli-errors-'));

/** Runs `npm run pipeline`'s entry point with args; returns exit code and stderr. */
function pipeline(...args: string[]): { code: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'pipeline', 'cli.ts'), ...args], { cwd: REPO_ROOT, encoding: 'utf8' });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

function config(name: string, text: string): string {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
}

/** One clear `error:` line (what, where, how to fix), no stack trace, non-zero exit. */
function expectCleanError(r: { code: number | null; stderr: string }, pattern: RegExp): void {
  expect(r.code).toBe(1);
  const lines = r.stderr.trim().split('\n');
  const err = lines.findIndex((l) => l.startsWith('error: '));
  expect(err, r.stderr).toBeGreaterThanOrEqual(0);
  expect(r.stderr.slice(r.stderr.indexOf('error: '))).toMatch(pattern);
  expect(r.stderr).not.toMatch(/^\s+at .*\(.*:\d+:\d+\)$/m);
}

describe('pipeline CLI errors (one message, no stack trace, nothing half-written)', () => {
  it('a config that is not YAML', () => {
    expectCleanError(pipeline('--config', config('bad.yaml', 'stages: [a, : b\n'), '--out', path.join(dir, 'o1')), /bad\.yaml is not valid YAML/);
  });
  it('an unknown key, naming its path', () => {
    const f = config('unknown.yaml', 'stages:\n  ingest: {dataset: {recipe: mnist}}\n  generalist: {hiden: [10]}\n');
    expectCleanError(pipeline('--config', f, '--out', path.join(dir, 'o2')), /stages\.generalist: unknown key\(s\) 'hiden'/);
  });
  it('a wrong type, naming its path and the expected type', () => {
    const f = config('type.yaml', 'stages:\n  ingest: {dataset: {recipe: mnist}}\n  generalist: {epochs: ten}\n');
    expectCleanError(pipeline('--config', f, '--out', path.join(dir, 'o3')), /stages\.generalist\.epochs: .*expected number/i);
  });
  it('a missing config file', () => {
    expectCleanError(pipeline('--config', path.join(dir, 'nope.yaml')), /config file .*nope\.yaml does not exist/);
  });
  it('a data file that does not exist, and one that is CSV, leave no stage folder', () => {
    const missing = config('missing.yaml', `backend: cpu\nstages:\n  ingest: {dataset: {path: ${path.join(dir, 'absent.arrow')}}}\n`);
    expectCleanError(pipeline('--config', missing, '--out', path.join(dir, 'o4')), /absent\.arrow does not exist/);
    const csv = path.join(dir, 'data.arrow');
    writeFileSync(csv, 'label,x\n1,2\n');
    const out = path.join(dir, 'o5');
    expectCleanError(pipeline('--config', config('csv.yaml', `backend: cpu\nstages:\n  ingest: {dataset: {path: ${csv}}}\n`), '--out', out), /data\.arrow.*(CSV|text|not an Arrow)/i);
    expect(readdirSync(out).filter((f) => !f.startsWith('.lock') && f !== '.distill-kit-run.json')).toEqual([]);
  });
  it('an output folder that cannot be created', () => {
    const file = path.join(dir, 'a-file');
    writeFileSync(file, 'x');
    const f = config('ok.yaml', 'backend: cpu\nstages:\n  ingest: {dataset: {recipe: mnist}}\n');
    expectCleanError(pipeline('--config', f, '--out', path.join(file, 'run')), /cannot write to the output folder .*a-file\/run/);
  });
  it('an unknown backend', () => {
    const f = config('ok2.yaml', 'stages:\n  ingest: {dataset: {recipe: mnist}}\n');
    expectCleanError(pipeline('--config', f, '--out', path.join(dir, 'o6'), '--backend', 'tpu'), /unknown backend 'tpu': expected one of auto, tensorflow, wasm-blas, wasm, cpu/);
  });
  it('a bad --workers or --seed value', () => {
    const r = pipeline('--workers', '0');
    expectCleanError(r, /--workers expects an integer >= 1, got '0'/);
    expect(r.stderr).not.toMatch(/unexpected error/);
    expectCleanError(pipeline('--seed', 'x'), /--seed expects an integer/);
  });
  it('a bad flag prints the usage and exits 2', () => {
    const r = pipeline('--colour');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error: .*colour/);
    expect(r.stderr).toMatch(/usage: npm run pipeline/);
  });
  it('--verbose adds the stack trace', () => {
    const r = pipeline('--config', path.join(dir, 'nope.yaml'), '--verbose');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^\s+at /m);
    expect(existsSync(path.join(dir, 'nope.yaml'))).toBe(false);
  });
});
