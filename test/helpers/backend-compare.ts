/**
 * Shared set-up of the native-kernel tests (test/backend/blas-kernels.test.ts,
 * test/backend/fused-kernels.test.ts): seeded random inputs, running one computation on a given
 * backend, relative-error comparison, and the wasm-blas set-up with a tensor-leak check per test.
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, beforeEach, expect } from 'vitest';
import { blasKernelsEnabled } from '../../src/backend/blas-kernels.ts';
import { initBackend } from '../../src/backend/select.ts';
import { Rng } from '../../src/util/rng.ts';

/** Seeded random inputs: `randArray` draws from `rng`, so further `rng` draws continue the same sequence. */
export interface SeededArrays {
  rng: Rng;
  /** `n` standard normal values times `scale`, as float32. */
  randArray(n: number, scale?: number): Float32Array;
}

/** A seeded generator of random input arrays (see {@link SeededArrays}). */
export function seededArrays(seed: number): SeededArrays {
  const rng = new Rng(seed);
  return {
    rng,
    randArray(n: number, scale = 1): Float32Array {
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
      return a;
    },
  };
}

/** Number of elements of a tensor of shape `s` (1 for a scalar's `[]`). */
export function size(s: readonly number[]): number {
  return s.reduce((p, d) => p * d, 1);
}

/**
 * Runs `fn` on a backend (wasm: with the native kernels as currently enabled) inside `tf.tidy`,
 * returns copies of its outputs' values, disposes the outputs and switches back to wasm. Inputs
 * should be plain arrays made into tensors inside `fn`.
 */
export async function valuesOn(backend: 'cpu' | 'wasm', fn: () => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(fn);
  const vals = outs.map((t) => Float32Array.from(t.dataSync()));
  tf.dispose(outs);
  await tf.setBackend('wasm');
  return vals;
}

/**
 * max |got - want| / max(max |want|, 1e-6): the relative error of `got` against `want`. Places
 * where both are NaN are skipped; NaN on one side only gives Infinity. Lengths must match.
 */
export function relErr(got: Float32Array, want: Float32Array): number {
  expect(got.length).toBe(want.length);
  let maxDiff = 0;
  let maxRef = 1e-6;
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(got[i]!) || Number.isNaN(want[i]!)) {
      if (!(Number.isNaN(got[i]!) && Number.isNaN(want[i]!))) return Infinity;
      continue;
    }
    maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
    maxRef = Math.max(maxRef, Math.abs(want[i]!));
  }
  return maxDiff / maxRef;
}

/** Expects as many outputs as wanted, each with {@link relErr} at most `tol`. */
export function expectClose(got: Float32Array[], want: Float32Array[], tol = 1e-4): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(relErr(got[i]!, want[i]!)).toBeLessThanOrEqual(tol);
}

/**
 * Registers, in the calling `describe` block, the wasm-blas set-up: `beforeAll` initialises the
 * wasm-blas backend and expects the enabled native kernels' description to match `kernels`; each
 * test must leave as many tensors as it found.
 */
export function useWasmBlas(kernels: RegExp): void {
  let tensorsBefore = 0;
  beforeAll(async () => {
    const info = await initBackend('wasm-blas');
    expect(info.name).toBe('wasm-blas');
    expect(blasKernelsEnabled()).toMatch(kernels);
  }, 60_000);
  beforeEach(() => {
    tensorsBefore = tf.memory().numTensors;
  });
  afterEach(() => {
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });
}
