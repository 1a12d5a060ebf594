import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NativeBlas } from '../../src/backend/native.ts';
import { Rng } from '../../src/util/rng.ts';

// The addon built with its own GEMM (native/src/gemm.c), into a temporary folder beside the
// default build, and checked against a plain triple loop. Skipped without a C compiler.
const root = path.resolve(import.meta.dirname, '..', '..');
const hasCc = spawnSync('cc', ['--version']).status === 0;
if (!hasCc) console.log('skipping own GEMM tests: no C compiler (cc)');

/** C = alpha op(A) op(B) + beta C, row-major with leading dimensions, summed in double. */
function naive(ta: boolean, tb: boolean, M: number, N: number, K: number, alpha: number, A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number): Float32Array {
  const out = C.slice();
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let p = 0; p < K; p++) s += A[ta ? p * lda + i : i * lda + p]! * B[tb ? j * ldb + p : p * ldb + j]!;
      out[i * ldc + j] = alpha * s + (beta === 0 ? 0 : beta * C[i * ldc + j]!);
    }
  }
  return out;
}

describe.skipIf(!hasCc)('own GEMM (native/src/gemm.c)', () => {
  let dir = '';
  let addon: NativeBlas;
  const rng = new Rng(20261202);
  const rand = (n: number) => Float32Array.from({ length: n }, () => rng.next() * 2 - 1);

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'distill-own-gemm-'));
    const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'build-native.mjs')], {
      encoding: 'utf8',
      env: { ...process.env, DISTILL_GEMM: 'own', DISTILL_NATIVE_OUT: dir },
    });
    expect(r.stdout).toMatch(/^fast CPU path built: .*distill_blas\.node \(own GEMM, DISTILL_GEMM=own\)\n$/);
    const file = path.join(dir, 'build', 'Release', 'distill_blas.node');
    expect(existsSync(file)).toBe(true);
    addon = createRequire(import.meta.url)(file) as NativeBlas;
  }, 120_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('names itself and its kernel in config()', () => {
    expect(addon.config()).toMatch(/^own GEMM (AVX-512|AVX2|generic)$/);
  });

  it('equals a triple loop on odd shapes, every transpose, alpha/beta, padded leading dimensions and offsets', () => {
    const shapes: [number, number, number][] = [[1, 1, 1], [7, 13, 5], [5, 3, 300], [37, 65, 257], [130, 10, 60], [13, 70, 520]];
    const prev = addon.getThreads();
    addon.setThreads(2);
    try {
      for (const [M, N, K] of shapes) {
        for (const ta of [false, true]) {
          for (const tb of [false, true]) {
            for (const [alpha, beta] of [[1, 0], [0.7, 0.3], [-2, 1]] as const) {
              const lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
              const aOff = 5, bOff = 2, cOff = 7;
              const A = rand(aOff + (ta ? K : M) * lda), B = rand(bOff + (tb ? N : K) * ldb), C = rand(cOff + M * ldc);
              if (beta === 0) C.fill(Number.NaN, cOff); // beta = 0 must not read C
              const want = naive(ta, tb, M, N, K, alpha, A.subarray(aOff), lda, B.subarray(bOff), ldb, beta, C.subarray(cOff), ldc);
              const got = C.slice();
              addon.sgemm(ta, tb, M, N, K, alpha, A, aOff, lda, B, bOff, ldb, beta, got, cOff, ldc);
              const g = got.subarray(cOff);
              for (let i = 0; i < M; i++) {
                for (let j = 0; j < ldc; j++) {
                  const k = i * ldc + j;
                  if (j >= N) {
                    // padding between rows is never written
                    expect(Object.is(g[k], C[cOff + k]), `pad ${i},${j}`).toBe(true);
                  } else if (Math.abs(g[k]! - want[k]!) > 1e-5 * K + 1e-6) {
                    throw new Error(`M=${M} N=${N} K=${K} ta=${ta} tb=${tb} alpha=${alpha} beta=${beta}: C[${i},${j}] = ${g[k]}, want ${want[k]}`);
                  }
                }
              }
              expect(Array.from(got.subarray(0, cOff))).toEqual(Array.from(C.subarray(0, cOff)));
            }
          }
        }
      }
    } finally {
      addon.setThreads(prev);
    }
  });

  it('gives bit-identical results for 1, 2 and 3 threads (and on repeats)', () => {
    const [M, N, K] = [200, 300, 700];
    const A = rand(M * K), B = rand(K * N);
    const prev = addon.getThreads();
    const runs: Float32Array[] = [];
    try {
      for (const t of [1, 2, 3, 2]) {
        addon.setThreads(t);
        expect(addon.getThreads()).toBe(t);
        const C = new Float32Array(M * N);
        addon.sgemm(false, true, M, N, K, 1, A, 0, K, B, 0, K, 0, C, 0, N);
        runs.push(C);
      }
    } finally {
      addon.setThreads(prev);
    }
    for (const r of runs.slice(1)) expect(Buffer.from(r.buffer).equals(Buffer.from(runs[0]!.buffer))).toBe(true);
  });

  it('takes its thread count from DISTILL_GEMM_THREADS, else OPENBLAS_NUM_THREADS', () => {
    const file = path.join(dir, 'build', 'Release', 'distill_blas.node');
    const probe = `console.log(require(${JSON.stringify(file)}).getThreads())`;
    const run = (env: Record<string, string>) => {
      const clean = { ...process.env };
      delete clean.DISTILL_GEMM_THREADS;
      delete clean.OPENBLAS_NUM_THREADS;
      return spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8', env: { ...clean, ...env } }).stdout.trim();
    };
    expect(run({ OPENBLAS_NUM_THREADS: '3' })).toBe('3');
    expect(run({ OPENBLAS_NUM_THREADS: '3', DISTILL_GEMM_THREADS: '5' })).toBe('5');
  });

  it('validates arguments like the OpenBLAS build (same addon front end)', () => {
    const A = new Float32Array(3);
    expect(() => addon.sgemm(false, false, 2, 2, 2, 1, A, 1, 2, A, 0, 2, 0, A, 0, 2)).toThrow(/too short/);
  });
});
