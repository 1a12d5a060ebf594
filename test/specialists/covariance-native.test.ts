import { describe, it, expect } from 'vitest';
import { loadNative } from '../../src/backend/native.ts';
import { CovarianceAccumulator, NATIVE_BLOCK, NATIVE_MIN_CLASSES, type CovarianceResult } from '../../src/specialists/covariance.ts';
import { Rng } from '../../src/util/rng.ts';

const hasNative = loadNative().ok;

/** Logits with a shared factor (classes correlated in 3 groups) around `offset`. */
function randomLogits(rows: number, C: number, seed: number, offset = 0, scale = 3): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(rows * C);
  for (let r = 0; r < rows; r++) {
    const shared = rng.normal();
    for (let i = 0; i < C; i++) x[r * C + i] = offset + scale * rng.normal() + (i % 3 === 0 ? shared : -0.5 * shared);
  }
  return x;
}

/** Direct two-pass covariance in Float64 (divisor n - 1), optionally of softmaxed rows. */
function twoPass(x: Float32Array, rows: number, C: number, softmax: boolean): Float64Array {
  const y = new Float64Array(rows * C);
  for (let r = 0; r < rows; r++) {
    let mx = -Infinity;
    for (let i = 0; i < C; i++) mx = Math.max(mx, x[r * C + i]);
    let s = 0;
    for (let i = 0; i < C; i++) {
      y[r * C + i] = softmax ? Math.exp(x[r * C + i] - mx) : x[r * C + i];
      s += y[r * C + i];
    }
    if (softmax) for (let i = 0; i < C; i++) y[r * C + i] /= s;
  }
  const mean = new Float64Array(C);
  for (let r = 0; r < rows; r++) for (let i = 0; i < C; i++) mean[i] += y[r * C + i] / rows;
  const cov = new Float64Array(C * C);
  for (let r = 0; r < rows; r++) {
    for (let a = 0; a < C; a++) {
      const da = y[r * C + a] - mean[a];
      for (let b = 0; b < C; b++) cov[a * C + b] += (da * (y[r * C + b] - mean[b])) / (rows - 1);
    }
  }
  return cov;
}

function accumulate(x: Float32Array, C: number, source: 'probabilities' | 'logits', batches: number[], native: boolean): CovarianceResult & { path: string } {
  const acc = new CovarianceAccumulator(C, source, { native });
  let r = 0;
  for (const b of batches) {
    acc.addBatch(x.subarray(r * C, (r + b) * C), b);
    r += b;
  }
  return { ...acc.result(), path: acc.path };
}

/**
 * Largest error of `actual` against `expected`, relative to the correlation scale
 * sqrt(cov_aa cov_bb) of each entry (the float32 products of centred values err by at most about
 * eps * rows * sqrt(cov_aa cov_bb), by Cauchy-Schwarz).
 */
function maxRelError(actual: ArrayLike<number>, expected: ArrayLike<number>, C: number): number {
  let worst = 0;
  for (let a = 0; a < C; a++) {
    for (let b = 0; b < C; b++) {
      const scale = Math.sqrt(expected[a * C + a] * expected[b * C + b]);
      const e = Math.abs(actual[a * C + b] - expected[a * C + b]) / scale;
      if (!(e <= worst)) worst = e;
    }
  }
  return worst;
}

describe('CovarianceAccumulator path selection', () => {
  it('uses the JS loop below NATIVE_MIN_CLASSES and whenever native: false', () => {
    expect(new CovarianceAccumulator(NATIVE_MIN_CLASSES - 1, 'logits').path).toBe('js');
    expect(new CovarianceAccumulator(NATIVE_MIN_CLASSES, 'logits', { native: false }).path).toBe('js');
    expect(new CovarianceAccumulator(NATIVE_MIN_CLASSES, 'logits').path).toBe(hasNative ? 'native' : 'js');
    expect(new CovarianceAccumulator(3, 'logits', { native: true }).path).toBe(hasNative ? 'native' : 'js');
  });
});

describe.skipIf(!hasNative)('CovarianceAccumulator native (OpenBLAS sgemm) path', () => {
  it('hand-computed 2-class case, forced native: var 4, 16, cov 8, mean (3, 6)', () => {
    // rows (1,2), (3,6), (5,10): all centred values and products are exact in float32.
    const acc = new CovarianceAccumulator(2, 'logits', { native: true });
    expect(acc.path).toBe('native');
    acc.addBatch(new Float32Array([1, 2]), 1);
    acc.addBatch(new Float32Array([3, 6, 5, 10]), 2);
    const r = acc.result();
    expect(Array.from(r.cov)).toEqual([4, 8, 8, 16]);
    expect(Array.from(r.mean)).toEqual([3, 6]);
    expect(r.examples).toBe(3);
  });

  it('equals the JS path and the direct two-pass covariance (logits, batches of varying size)', () => {
    const C = 150;
    const rows = 420;
    const x = randomLogits(rows, C, 11);
    const ref = twoPass(x, rows, C, false);
    const batches = [200, 7, 150, 1, 62];
    const nat = accumulate(x, C, 'logits', batches, true);
    const js = accumulate(x, C, 'logits', batches, false);
    expect(nat.path).toBe('native');
    expect(js.path).toBe('js');
    expect(maxRelError(nat.cov, js.cov, C)).toBeLessThan(1e-5);
    expect(maxRelError(nat.cov, ref, C)).toBeLessThan(1e-5);
    expect(maxRelError(js.cov, ref, C)).toBeLessThan(1e-6);
    // The means are computed identically (Float64) on both paths.
    expect(Array.from(nat.mean)).toEqual(Array.from(js.mean));
    expect(nat.examples).toBe(rows);
    for (let a = 0; a < C; a++) for (let b = 0; b < a; b++) expect(nat.cov[a * C + b]).toBe(nat.cov[b * C + a]);
  });

  it('equals the JS path for probabilities; rows of the covariance still sum to 0', () => {
    // Peaked softmax rows, one batch of 1,000 (the covariance stage's default): the float32 sums
    // over the batch are the least accurate here.
    const C = 128;
    const rows = 1200;
    const x = randomLogits(rows, C, 12, 0, 5);
    const nat = accumulate(x, C, 'probabilities', [1000, 200], true);
    const js = accumulate(x, C, 'probabilities', [1000, 200], false);
    expect(maxRelError(nat.cov, js.cov, C)).toBeLessThan(1e-5);
    let diagMax = 0;
    for (let a = 0; a < C; a++) diagMax = Math.max(diagMax, nat.cov[a * C + a]);
    for (let a = 0; a < C; a++) {
      let s = 0;
      for (let b = 0; b < C; b++) s += nat.cov[a * C + b];
      expect(Math.abs(s)).toBeLessThan(1e-5 * diagMax);
    }
  });

  it('stays accurate when the mean is large relative to the spread (centred before float32)', () => {
    const C = 70;
    const rows = 160;
    const x = randomLogits(rows, C, 13, 1000, 0.01);
    const ref = twoPass(x, rows, C, false);
    const nat = accumulate(x, C, 'logits', [40, 40, 80], true);
    expect(maxRelError(nat.cov, ref, C)).toBeLessThan(1e-5);
  });

  it('is exact across column blocks (C > NATIVE_BLOCK: several sgemm calls on the upper block triangle)', () => {
    const C = NATIVE_BLOCK + 77;
    const rows = 24;
    const x = randomLogits(rows, C, 14);
    const nat = accumulate(x, C, 'logits', [10, 14], true);
    const js = accumulate(x, C, 'logits', [10, 14], false);
    expect(maxRelError(nat.cov, js.cov, C)).toBeLessThan(1e-5);
    // Entries on both sides of the block boundary, and the last corner, are filled.
    const j = NATIVE_BLOCK;
    for (const [a, b] of [[0, j - 1], [0, j], [j - 1, j], [j, C - 1], [C - 1, C - 1]] as const) {
      expect(Math.abs(nat.cov[a * C + b] - js.cov[a * C + b])).toBeLessThan(1e-5 * Math.sqrt(js.cov[a * C + a] * js.cov[b * C + b]));
      expect(nat.cov[a * C + b]).toBe(nat.cov[b * C + a]);
    }
  });
});
