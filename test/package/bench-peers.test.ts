/**
 * The benchmark's PyTorch peers live in the repository (bench/peers/), and `npm run bench` says in
 * one line when PyTorch is missing and how to install it.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { torchAvailable, torchTrain } from '../../bench/peers/torch.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TSX_LOADER = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

function bench(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX_LOADER, 'bench/run.ts', ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stderr }));
  });
}

describe('bench peers', () => {
  it('every peer script bench/peers/torch.ts runs is inside bench/peers/', () => {
    const src = readFileSync(path.join(ROOT, 'bench', 'peers', 'torch.ts'), 'utf8');
    const scripts = [...src.matchAll(/path\.(?:join|resolve)\(here, ([^)]*)\)/g)].map((m) => m[1]!);
    expect(scripts.length).toBeGreaterThanOrEqual(5);
    for (const args of scripts) {
      const parts = args.split(',').map((a) => a.trim().replace(/^'|'$/g, ''));
      expect(parts, args).not.toContain('..');
      expect(parts.length, args).toBe(1);
      expect(existsSync(path.join(ROOT, 'bench', 'peers', parts[0]!)), parts[0]).toBe(true);
    }
  });

  it('says in one line that PyTorch is missing and how to install it', async () => {
    const r = await bench(['--filter', 'no-such-case'], { BENCH_PYTHON: path.join(ROOT, 'no-such-python3') });
    const lines = r.stderr.split('\n').filter((l) => l.includes('PyTorch'));
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/PyTorch peers skipped: .*no-such-python3 cannot import torch; install it with apt-get install python3-torch .*pip install torch/);
    expect(r.status).toBe(2); // then the unknown filter ends the run
    const quiet = await bench(['--filter', 'no-such-case', '--no-peer'], { BENCH_PYTHON: path.join(ROOT, 'no-such-python3') });
    expect(quiet.stderr).not.toMatch(/PyTorch/);
  });

  it.skipIf(!torchAvailable())('the training peer runs from the repository copy', () => {
    const r = torchTrain([8, 16, 4], 32, 5);
    expect(r, 'bench/peers/torch_train.py did not produce a result').toBeDefined();
    expect(r!.examples_per_s).toBeGreaterThan(0);
  });
});
