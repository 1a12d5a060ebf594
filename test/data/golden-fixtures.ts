/**
 * Deterministic Arrow inputs for the byte-identity test of ingest (`ingest-golden.test.ts`):
 * every reading path (FixedSizeList, List, numeric columns; int, string and dictionary labels;
 * with and without a split column; file and stream format; many record batches of uneven
 * sizes; `limit`) with features from a seeded {@link Rng}, so the expected sha256 of each output
 * file is a constant. The constants were computed with the in-memory ingest (before the
 * two-pass rewrite) and must not change.
 */
import path from 'node:path';
import { Dictionary, Field, Float32, Float64, Int16, Int32, Int8, List, Utf8, type RecordBatch } from 'apache-arrow';
import { Rng } from '../../src/util/rng.ts';
import type { IngestOptions } from '../../src/data/ingest.ts';
import { batchOf, col, fslFlat, writeArrow } from '../fixtures/data/build.ts';

/** One golden case: how to write its input, and the ingest options to run it with. */
export interface GoldenCase {
  name: string;
  /** Writes the input into `dir`; returns its path. */
  write(dir: string): string;
  options: Omit<IngestOptions, 'input' | 'outDir' | 'log'>;
}

/** Splits 0..n-1 into record batches of the given cyclic sizes. */
function ranges(n: number, sizes: number[]): [number, number][] {
  const out: [number, number][] = [];
  let s = 0;
  for (let k = 0; s < n; k++) {
    const e = Math.min(n, s + sizes[k % sizes.length]!);
    out.push([s, e]);
    s = e;
  }
  return out;
}

function features(rng: Rng, n: number, dim: number): Float32Array {
  const x = new Float32Array(n * dim);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  return x;
}

const NAMES = ['owl', 'ant', 'yak', 'emu', 'bee', 'cod', 'elk'];
const SPLITS = ['train', 'valid', 'test'];

/** The golden cases (each input is a few hundred KB at most). */
export const GOLDEN_CASES: GoldenCase[] = [
  {
    // FixedSizeList<Float32>[7], int labels, no split column, 12,345 rows in uneven batches:
    // the seeded stratified split; the train file spans two 8,192-row output batches.
    name: 'fixed-int-nosplit',
    write(dir) {
      const n = 12_345;
      const dim = 7;
      const rng = new Rng(101);
      const labels = Int32Array.from({ length: n }, () => rng.int(13));
      const x = features(rng, n, dim);
      const bs: RecordBatch[] = ranges(n, [3001, 17, 2500, 4096]).map(([s, e]) =>
        batchOf({ label: col(Array.from(labels.subarray(s, e)), new Int32()), features: fslFlat(x.slice(s * dim, e * dim), dim) }, { shape: '[7, 1]' }),
      );
      return writeArrow(path.join(dir, 'fixed-int-nosplit.arrow'), bs);
    },
    options: { seed: 3, validFraction: 0.1, testFraction: 0.15 },
  },
  {
    // List<Float64>[5], Utf8 labels, split column with train/test only (valid carved from
    // train), stream format.
    name: 'list-string-carve-stream',
    write(dir) {
      const n = 9_000;
      const dim = 5;
      const rng = new Rng(202);
      const labels = Array.from({ length: n }, () => NAMES[rng.int(NAMES.length)]!);
      const split = Array.from({ length: n }, () => (rng.next() < 0.8 ? 'train' : 'test'));
      const x = features(rng, n, dim);
      const rows = Array.from({ length: n }, (_, i) => Array.from(x.subarray(i * dim, (i + 1) * dim), (v) => v * 1.000001));
      const bs = ranges(n, [4000, 1234, 999]).map(([s, e]) =>
        batchOf({ label: col(labels.slice(s, e), new Utf8()), features: col(rows.slice(s, e), new List(new Field('item', new Float64(), true))), split: col(split.slice(s, e), new Utf8()) }),
      );
      return writeArrow(path.join(dir, 'list-string-carve.arrows'), bs, 'stream');
    },
    options: { seed: 11, validFraction: 0.2, testFraction: 0.1 },
  },
  {
    // Numeric columns (Int16, Float64, Float32) + an ignored string column, dictionary labels,
    // a dictionary split column with all three splits (dictionaries per batch: stream format),
    // and a limit on train and test.
    name: 'columns-dict-limit',
    write(dir) {
      const n = 6_000;
      const rng = new Rng(303);
      const labels = Array.from({ length: n }, () => NAMES[rng.int(5)]!);
      const split = Array.from({ length: n }, () => SPLITS[rng.next() < 0.7 ? 0 : rng.next() < 0.5 ? 1 : 2]!);
      const a = Array.from({ length: n }, () => rng.int(2000) - 1000);
      const b = Array.from({ length: n }, () => rng.normal() * 1e3);
      const c = Array.from({ length: n }, () => rng.normal());
      const bs = ranges(n, [2048, 3000]).map(([s, e]) =>
        batchOf({
          a: col(a.slice(s, e), new Int16()),
          label: col(labels.slice(s, e), new Dictionary(new Utf8(), new Int8())),
          note: col(labels.slice(s, e).map((l) => l + '!'), new Utf8()),
          b: col(b.slice(s, e), new Float64()),
          split: col(split.slice(s, e), new Dictionary(new Utf8(), new Int32())),
          c: col(c.slice(s, e), new Float32()),
        }),
      );
      return writeArrow(path.join(dir, 'columns-dict-limit.arrows'), bs, 'stream');
    },
    options: { seed: 5, validFraction: 0.1, testFraction: 0.1, limit: { train: 2500, test: 400 } },
  },
  {
    // A split column without valid rows and validFraction 0: the valid file is empty.
    name: 'fixed-empty-valid',
    write(dir) {
      const n = 3_000;
      const dim = 3;
      const rng = new Rng(404);
      const labels = Array.from({ length: n }, (_, i) => i % 4);
      const split = Array.from({ length: n }, () => (rng.next() < 0.9 ? 'train' : 'test'));
      const x = features(rng, n, dim);
      const bs = ranges(n, [1000]).map(([s, e]) => batchOf({ label: col(labels.slice(s, e), new Int32()), features: fslFlat(x.slice(s * dim, e * dim), dim), split: col(split.slice(s, e), new Utf8()) }));
      return writeArrow(path.join(dir, 'fixed-empty-valid.arrow'), bs);
    },
    options: { seed: 9, validFraction: 0, testFraction: 0.1 },
  },
];
