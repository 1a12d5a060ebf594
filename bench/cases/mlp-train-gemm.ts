import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadNative } from '../../src/backend/native.ts';
import type { BenchCase, BenchContext, BenchMeasurement } from '../types.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHILD = path.join(ROOT, 'bench', 'gemm-child.ts');
const NETS: readonly (readonly number[])[] = [
  [784, 1200, 1200, 10],
  [784, 800, 800, 10],
];

/**
 * Builds (once per source version, cached under the temp folder) the addon with its own GEMM,
 * beside the default build, and returns its file, or a reason it could not.
 */
function ownGemmAddon(): { file: string } | { reason: string } {
  const h = createHash('sha256');
  for (const f of ['binding.gyp', 'src/addon.c', 'src/gemm.c', 'src/gemm.h']) h.update(readFileSync(path.join(ROOT, 'native', f)));
  const dir = path.join(tmpdir(), `distill-kit-own-gemm-${h.digest('hex').slice(0, 12)}`);
  const file = path.join(dir, 'build', 'Release', 'distill_blas.node');
  if (existsSync(file)) return { file };
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build-native.mjs')], { encoding: 'utf8', env: { ...process.env, DISTILL_GEMM: 'own', DISTILL_NATIVE_OUT: dir } });
  if (!existsSync(file)) return { reason: (r.stdout || r.stderr).trim() };
  return { file };
}

/** A running {@link CHILD}: `window(seconds)` resolves to examples/s. */
interface Child {
  detail: string;
  window(seconds: number): Promise<number>;
  close(): void;
}

async function startChild(sizes: readonly number[], addon: string | undefined): Promise<Child> {
  const tsx = pathToFileURL(path.join(path.dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'loader.mjs')).href;
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (addon) env.DISTILL_NATIVE_ADDON = addon;
  else delete env.DISTILL_NATIVE_ADDON;
  const p: ChildProcessWithoutNullStreams = spawn(process.execPath, ['--import', tsx, CHILD, sizes.join(',')], { env, stdio: 'pipe' });
  let stderr = '';
  p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: p.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, unknown>> => {
    const r = await lines.next();
    if (r.done) throw new Error(`gemm-child ended early: ${stderr.trim()}`);
    return JSON.parse(r.value) as Record<string, unknown>;
  };
  const ready = await next();
  return {
    detail: String(ready.detail),
    async window(seconds) {
      p.stdin.write(`${seconds}\n`);
      return Number((await next()).rate);
    },
    close() {
      p.stdin.end('q\n');
    },
  };
}

/**
 * MLP training throughput (examples/s, batch 128, as `mlp-train`) with the addon's own GEMM
 * (native/src/gemm.c, what a machine without OpenBLAS builds) against the OpenBLAS build, same
 * thread count: two child processes, one per addon, whose timed windows alternate so both see the
 * same machine load; each reports its best window. The peer column is OpenBLAS, the ratio own /
 * OpenBLAS. Needs the default build to be OpenBLAS (else only the own GEMM is measured).
 */
export const benchCase: BenchCase = {
  name: 'mlp-train-gemm',
  description: 'MLP training with the own GEMM vs OpenBLAS (examples/s, alternating child processes)',
  backends: ['wasm-blas'],
  async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
    const native = loadNative();
    if (!native.ok) {
      ctx.log.warn(`mlp-train-gemm: skipped (${native.reason})`);
      return [];
    }
    const own = ownGemmAddon();
    if ('reason' in own) {
      ctx.log.warn(`mlp-train-gemm: skipped, the own GEMM did not build (${own.reason})`);
      return [];
    }
    const defaultIsOwn = /^own GEMM/.test(native.addon.config());
    const out: BenchMeasurement[] = [];
    const rounds = ctx.quick ? 1 : 4;
    const seconds = ctx.quick ? 0.5 : Math.max(1, ctx.seconds / 2);
    for (const sizes of NETS) {
      const a = await startChild(sizes, own.file);
      const b = defaultIsOwn ? undefined : await startChild(sizes, undefined);
      try {
        let bestOwn = 0;
        let bestRef = 0;
        for (let r = 0; r < rounds; r++) {
          // alternate which goes first, so neither always gets the fresher machine
          if (r % 2 === 0 || !b) {
            bestOwn = Math.max(bestOwn, await a.window(seconds));
            if (b) bestRef = Math.max(bestRef, await b.window(seconds));
          } else {
            bestRef = Math.max(bestRef, await b.window(seconds));
            bestOwn = Math.max(bestOwn, await a.window(seconds));
          }
        }
        const gemm = /own GEMM \([^)]*\)/.exec(a.detail)?.[0] ?? 'own GEMM';
        out.push({
          bench: `mlp-train-gemm-${sizes.join('-')}`,
          value: bestOwn,
          unit: 'ex/s',
          detail: `${gemm}; best of ${rounds} windows of ${seconds} s, alternating`,
          ...(b ? { peer: { name: /OpenBLAS sgemm \([^)]*\)/.exec(b.detail)?.[0] ?? 'OpenBLAS', value: bestRef } } : {}),
        });
      } finally {
        a.close();
        b?.close();
      }
    }
    return out;
  },
};
