import { describe, it, expect } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CovarianceAccumulator, readCovariance, writeCovariance } from '../../src/specialists/covariance.ts';
import { Rng } from '../../src/util/rng.ts';
import { ArtifactError, DataError } from '../../src/util/errors.ts';

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
function twoPass(x: Float32Array, rows: number, C: number, softmax: boolean): { cov: Float64Array; mean: Float64Array } {
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
  for (let r = 0; r < rows; r++)
    for (let a = 0; a < C; a++)
      for (let b = 0; b < C; b++) cov[a * C + b] += ((y[r * C + a] - mean[a]) * (y[r * C + b] - mean[b])) / (rows - 1);
  return { cov, mean };
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number): void {
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) maxAbs = Math.max(maxAbs, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    const tol = rel * Math.max(Math.abs(expected[i]), maxAbs * 1e-3) + 1e-30;
    if (Math.abs(actual[i] - expected[i]) > tol) throw new Error(`index ${i}: ${actual[i]} vs ${expected[i]} (tol ${tol})`);
  }
}

function accumulate(x: Float32Array, rows: number, C: number, source: 'probabilities' | 'logits', batchSizes: number[]) {
  const acc = new CovarianceAccumulator(C, source);
  let r = 0;
  for (const b of batchSizes) {
    acc.addBatch(x.subarray(r * C, (r + b) * C), b);
    r += b;
  }
  expect(r).toBe(rows);
  return acc.result();
}

describe('CovarianceAccumulator', () => {
  const rows = 57;
  const C = 11;

  it('streamed in several batches = one batch = direct two-pass (logits)', () => {
    const x = randomLogits(rows, C, 1);
    const ref = twoPass(x, rows, C, false);
    const one = accumulate(x, rows, C, 'logits', [rows]);
    const many = accumulate(x, rows, C, 'logits', [1, 5, 13, 2, 20, 16]);
    expect(one.examples).toBe(rows);
    expect(many.examples).toBe(rows);
    expectClose(one.cov, ref.cov, 1e-6);
    expectClose(many.cov, ref.cov, 1e-6);
    expectClose(many.mean, ref.mean, 1e-9);
    expectClose(many.cov, one.cov, 1e-6);
    // symmetric
    for (let a = 0; a < C; a++) for (let b = 0; b < C; b++) expect(many.cov[a * C + b]).toBe(many.cov[b * C + a]);
  });

  it('probabilities variant applies a per-row softmax first', () => {
    const x = randomLogits(rows, C, 2);
    const ref = twoPass(x, rows, C, true);
    const many = accumulate(x, rows, C, 'probabilities', [10, 10, 10, 27]);
    expectClose(many.cov, ref.cov, 1e-6);
    expectClose(many.mean, ref.mean, 1e-9);
    // rows of a probability covariance sum to 0 (the probabilities sum to 1)
    for (let a = 0; a < C; a++) {
      let s = 0;
      for (let b = 0; b < C; b++) s += many.cov[a * C + b];
      expect(Math.abs(s)).toBeLessThan(1e-7);
    }
  });

  it('stays accurate when the mean is large relative to the spread (no cancellation)', () => {
    const x = randomLogits(rows, C, 3, 1000, 0.01);
    const ref = twoPass(x, rows, C, false);
    const many = accumulate(x, rows, C, 'logits', [7, 7, 7, 7, 7, 7, 7, 8]);
    expectClose(many.cov, ref.cov, 1e-5);
  });

  it('hand-computed 2-class case', () => {
    // rows (1,2), (3,6), (5,10): var(x)=4, var(y)=16, cov=8
    const acc = new CovarianceAccumulator(2, 'logits');
    acc.addBatch(new Float32Array([1, 2]), 1);
    acc.addBatch(new Float32Array([3, 6, 5, 10]), 2);
    const r = acc.result();
    expect(Array.from(r.cov)).toEqual([4, 8, 8, 16]);
    expect(Array.from(r.mean)).toEqual([3, 6]);
  });

  it('rejects bad input', () => {
    const acc = new CovarianceAccumulator(3, 'logits');
    expect(() => acc.addBatch(new Float32Array(5), 2)).toThrow(DataError);
    expect(() => acc.addBatch(new Float32Array([0, NaN, 0]), 1)).toThrow(/non-finite/);
    expect(() => acc.result()).toThrow(DataError);
  });
});

describe('writeCovariance / readCovariance', () => {
  it('round-trips the matrix and metadata', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cov-'));
    try {
      const x = randomLogits(20, 5, 4);
      const res = accumulate(x, 20, 5, 'probabilities', [20]);
      await writeCovariance(dir, res, { split: 'valid', source: 'probabilities' });
      const back = await readCovariance(dir);
      expect(back.classes).toBe(5);
      expect(back.source).toBe('probabilities');
      expect(back.split).toBe('valid');
      expect(back.examples).toBe(20);
      expect(Array.from(back.cov)).toEqual(Array.from(res.cov));
      expect(Array.from(back.mean)).toEqual(Array.from(res.mean));
      // truncated matrix is an ArtifactError
      await writeFile(path.join(dir, 'covariance.bin'), new Uint8Array(12));
      await expect(readCovariance(dir)).rejects.toThrow(ArtifactError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
