import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writePredictions } from '../../src/artifacts/predictions.ts';
import { readSoftTargets, SOFT_TARGETS_FILE } from '../../pipeline/stages/teachers.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A stage folder holding soft-targets-train.arrow with n rows of C = 3 probabilities: row r is [a, b, 1 - a - b] from r. */
async function stage(n: number, edit?: (labels: Int32Array, values: Float32Array) => void): Promise<{ dir: string; labels: Int32Array; values: Float32Array }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'soft-'));
  dirs.push(dir);
  const labels = Int32Array.from({ length: n }, (_, r) => r % 3);
  const values = new Float32Array(n * 3);
  for (let r = 0; r < n; r++) {
    const a = (r % 97) / 200;
    const b = (r % 89) / 200;
    values.set([a, b, 1 - a - b], r * 3);
  }
  const written = { labels: labels.slice(), values: values.slice() };
  edit?.(written.labels, written.values);
  await writePredictions(path.join(dir, SOFT_TARGETS_FILE), { labels: written.labels, values: written.values, n, C: 3 }, 'probabilities');
  return { dir, labels, values };
}

describe('readSoftTargets (streamed)', () => {
  // 10,000 rows: several 4,096-row blocks, so rows are picked across block boundaries.
  it('returns the wanted rows in the order asked, repeats included, across blocks', async () => {
    const { dir, labels, values } = await stage(10_000);
    const rows = Int32Array.from([9999, 0, 4095, 4096, 4095, 8191, 8192, 17]);
    const got = await readSoftTargets(dir, 'ensemble', labels, rows);
    expect(got.C).toBe(3);
    expect(got.probabilities.length).toBe(rows.length * 3);
    rows.forEach((r, j) => expect(Array.from(got.probabilities.subarray(j * 3, j * 3 + 3))).toEqual(Array.from(values.subarray(r * 3, r * 3 + 3))));
    const all = await readSoftTargets(dir, 'ensemble', labels, null);
    expect(all.probabilities).toEqual(values);
  });

  it('rejects a file that does not line up with the split', async () => {
    const { dir, labels } = await stage(5000, (l) => (l[4500] = (l[4500]! + 1) % 3));
    await expect(readSoftTargets(dir, 'ensemble', labels, Int32Array.from([1]))).rejects.toThrow(/row 4500 has label .* not aligned with the train split.*Rerun 'ensemble'/);
    const short = await stage(5000);
    const longer = Int32Array.from({ length: 5001 }, (_, r) => r % 3);
    await expect(readSoftTargets(short.dir, 'ensemble', longer, Int32Array.from([1]))).rejects.toThrow(/has 5000 rows but the train split has 5001/);
    await expect(readSoftTargets(short.dir, 'ensemble', longer.subarray(0, 4999), Int32Array.from([1]))).rejects.toThrow(/more than the train split's 4999 rows/);
  });

  it('checks the wanted rows are probability distributions', async () => {
    const { dir, labels } = await stage(300, (_l, v) => (v[3 * 200] = 0.9));
    await expect(readSoftTargets(dir, 'ensemble', labels, Int32Array.from([200]))).rejects.toThrow(/row 200's probabilities sum to/);
    expect((await readSoftTargets(dir, 'ensemble', labels, Int32Array.from([199, 201]))).probabilities.length).toBe(6);
    await expect(readSoftTargets(dir, 'nope', labels, null, 'unlabeled')).rejects.toThrow(/stage 'nope' wrote no soft-targets-unlabeled.arrow/);
  });
});
