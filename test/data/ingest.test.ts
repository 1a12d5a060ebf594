import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dictionary, Field, Float16, Float32, Float64, Int16, Int32, Int64, Int8, LargeUtf8, List, Uint8, Utf8 } from 'apache-arrow';
import { describeArrowFile, ingest, type ClassesFile } from '../../src/data/ingest.ts';
import { readSplit, type LabeledSet } from '../../src/data/split-file.ts';
import { batchOf, cleanRows, cleanup, col, filesIn, fslCol, fslFlat, tmpDir, writeArrow } from '../fixtures/data/build.ts';

let dir: string;
beforeAll(() => {
  dir = tmpDir('ingest-');
});
afterAll(() => cleanup(dir));

let k = 0;
async function run(input: string, opts: Partial<Parameters<typeof ingest>[0]> = {}): Promise<{ cls: ClassesFile; out: string; train: LabeledSet; valid: LabeledSet; test: LabeledSet }> {
  const out = path.join(dir, `out-${k++}`);
  const cls = await ingest({ input, outDir: out, seed: 7, validFraction: 0.1, testFraction: 0.2, ...opts });
  expect(filesIn(out)).toEqual(['classes.json', 'test.arrow', 'train.arrow', 'valid.arrow']);
  expect(JSON.parse(readFileSync(path.join(out, 'classes.json'), 'utf8'))).toEqual(cls);
  return { cls, out, train: await readSplit(path.join(out, 'train.arrow')), valid: await readSplit(path.join(out, 'valid.arrow')), test: await readSplit(path.join(out, 'test.arrow')) };
}

/** Row index encoded in a cleanRows feature value (c + i/1000 + j/1e6, j = 0). */
function rowOf(set: LabeledSet, r: number, classes: number): number {
  const v = set.x[r * set.dim];
  const c = set.y[r];
  void classes;
  return Math.round((v - c) * 1000);
}

function cleanFile(name: string, classes: number, perClass: number, dim: number, format: 'file' | 'stream' = 'file', batches = 1): string {
  const { labels, x, n } = cleanRows(classes, perClass, dim);
  const per = Math.ceil(n / batches);
  const bs = [];
  for (let s = 0; s < n; s += per) {
    const e = Math.min(n, s + per);
    bs.push(batchOf({ label: col(labels.slice(s, e), new Int32()), features: fslFlat(x.slice(s * dim, e * dim), dim) }, { shape: JSON.stringify([dim, 1]) }));
  }
  return writeArrow(path.join(dir, name), bs, format);
}

describe('ingest', () => {
  it('splits each class exactly by the fractions (stratified) and keeps rows intact', async () => {
    // 10 classes x 100 rows: 100 * 0.1 = 10 valid and 100 * 0.2 = 20 test per class exactly.
    const f = cleanFile('clean.arrow', 10, 100, 3);
    const { cls, train, valid, test } = await run(f);
    expect(cls.rows).toEqual({ train: 700, valid: 100, test: 200 });
    expect(cls.dim).toBe(3);
    expect(cls.shape).toEqual([3, 1]);
    expect(cls.source).toBe(f);
    expect(cls.classes.map((c) => c.name)).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    for (const c of cls.classes) expect(c.counts).toEqual({ train: 70, valid: 10, test: 20 });
    expect(train.shape).toEqual([3, 1]);
    // every input row appears exactly once across splits, with its own label and features
    const seen = new Set<number>();
    for (const s of [train, valid, test]) {
      let prev = -1;
      for (let r = 0; r < s.n; r++) {
        const i = rowOf(s, r, 10);
        expect(i % 10).toBe(s.y[r]);
        expect(s.x[r * 3 + 2]).toBeCloseTo(s.y[r] + i / 1000 + 2e-6, 5);
        expect(i).toBeGreaterThan(prev); // input order kept within a split
        prev = i;
        seen.add(i);
      }
    }
    expect(seen.size).toBe(1000);
  });

  it('file and stream formats, one or many batches, give identical outputs', async () => {
    const a = await run(cleanFile('fmt-file.arrow', 5, 40, 4, 'file', 1));
    const b = await run(cleanFile('fmt-stream.arrows', 5, 40, 4, 'stream', 7));
    for (const s of ['train.arrow', 'valid.arrow', 'test.arrow', 'classes.json'] as const) {
      const x = readFileSync(path.join(a.out, s));
      const y = readFileSync(path.join(b.out, s));
      if (s === 'classes.json') expect(JSON.parse(x.toString()).rows).toEqual(JSON.parse(y.toString()).rows);
      else expect(x.equals(y)).toBe(true);
    }
  });

  it('the seeded split is repeatable, and another seed gives another split', async () => {
    const f = cleanFile('seed.arrow', 4, 50, 2);
    const a = await run(f, { seed: 3 });
    const b = await run(f, { seed: 3 });
    const c = await run(f, { seed: 4 });
    expect(readFileSync(path.join(a.out, 'test.arrow')).equals(readFileSync(path.join(b.out, 'test.arrow')))).toBe(true);
    expect(readFileSync(path.join(a.out, 'train.arrow')).equals(readFileSync(path.join(b.out, 'train.arrow')))).toBe(true);
    expect(readFileSync(path.join(a.out, 'test.arrow')).equals(readFileSync(path.join(c.out, 'test.arrow')))).toBe(false);
    expect(c.cls.rows).toEqual(a.cls.rows);
  });

  it('string labels: classes named by the strings, indexed in sorted order', async () => {
    const names = ['zebra', 'ant', 'moose'];
    const n = 30;
    const labels = Array.from({ length: n }, (_, i) => names[i % 3]);
    const rows = labels.map((_, i) => [i, -i]);
    const f = writeArrow(path.join(dir, 'strings.arrow'), [batchOf({ label: col(labels, new Utf8()), features: fslCol(rows, 2) })]);
    const { cls, train, valid, test } = await run(f, { validFraction: 0, testFraction: 0 });
    expect(cls.classes.map((c) => [c.index, c.name])).toEqual([
      [0, 'ant'],
      [1, 'moose'],
      [2, 'zebra'],
    ]);
    expect(cls.rows).toEqual({ train: 30, valid: 0, test: 0 });
    expect(valid.n + test.n).toBe(0);
    // row i has features [i, -i] and label names[i % 3] -> sorted index
    const sortedIndex = { zebra: 2, ant: 0, moose: 1 } as Record<string, number>;
    for (let r = 0; r < train.n; r++) expect(train.y[r]).toBe(sortedIndex[names[train.x[r * 2] % 3]]);
  });

  it('dictionary-encoded labels and split column; valid is carved from train when absent', async () => {
    const n = 60;
    const names = ['b', 'a'];
    const labels = Array.from({ length: n }, (_, i) => names[i % 2]);
    // rows 0..39 train, 40..59 test; no valid rows
    const split = Array.from({ length: n }, (_, i) => (i < 40 ? 'train' : 'test'));
    const rows = labels.map((_, i) => [i]);
    const dict = new Dictionary(new Utf8(), new Int8());
    const f = writeArrow(path.join(dir, 'dict.arrow'), [batchOf({ label: col(labels, dict), features: fslCol(rows, 1), split: col(split, new Dictionary(new Utf8(), new Int32())) })]);
    const { cls, train, valid, test } = await run(f, { validFraction: 0.25 });
    // each class has 20 train rows -> 20 * 0.25 = 5 carved into valid exactly
    expect(cls.classes).toEqual([
      { index: 0, name: 'a', counts: { train: 15, valid: 5, test: 10 } },
      { index: 1, name: 'b', counts: { train: 15, valid: 5, test: 10 } },
    ]);
    for (let r = 0; r < test.n; r++) expect(test.x[r]).toBeGreaterThanOrEqual(40);
    for (let r = 0; r < valid.n; r++) expect(valid.x[r]).toBeLessThan(40);
    for (let r = 0; r < train.n; r++) expect(train.y[r]).toBe(train.x[r] % 2 === 0 ? 1 : 0);
  });

  it('several numeric columns (mixed int/float types) are concatenated in schema order; other columns ignored', async () => {
    const n = 20;
    const labels = Array.from({ length: n }, (_, i) => i % 2);
    const f = writeArrow(path.join(dir, 'cols.arrow'), [
      batchOf({
        a: col(labels.map((_, i) => i), new Int16()),
        label: col(labels.map(BigInt), new Int64()),
        name: col(labels.map((_, i) => `row${i}`), new Utf8()),
        b: col(labels.map((_, i) => i / 2), new Float64()),
        c: col(labels.map((_, i) => 255 - i), new Uint8()),
      }),
    ]);
    const warnings: string[] = [];
    const log = { info() {}, warn: (m: string) => warnings.push(m), progress: () => ({ tick() {}, done() {} }) };
    const { cls, train } = await run(f, { validFraction: 0, testFraction: 0, log });
    expect(cls.dim).toBe(3);
    expect(cls.shape).toBeNull();
    expect(warnings.join()).toContain('name');
    for (let r = 0; r < train.n; r++) {
      const i = train.x[r * 3];
      expect([train.x[r * 3 + 1], train.x[r * 3 + 2], train.y[r]]).toEqual([i / 2, 255 - i, i % 2]);
    }
  });

  it('List<Float64> features with equal lengths are accepted', async () => {
    const labels = [0, 1, 0, 1, 0, 1];
    const rows = labels.map((c, i) => [c, i, 0.5]);
    const f = writeArrow(path.join(dir, 'list.arrow'), [batchOf({ label: col(labels, new Int32()), features: col(rows, new List(new Field('item', new Float64(), true))) }, { shape: '[3]' })]);
    const { cls, train } = await run(f, { validFraction: 0, testFraction: 0 });
    expect(cls.dim).toBe(3);
    expect(Array.from(train.x)).toEqual(rows.flat());
  });

  it('Uint8 FixedSizeList features are converted to float values', async () => {
    const labels = [0, 1, 2, 0, 1, 2];
    const rows = labels.map((c) => [c * 100, 255]);
    const f = writeArrow(path.join(dir, 'u8.arrow'), [batchOf({ label: col(labels, new Int32()), features: fslCol(rows, 2, new Uint8()) })]);
    const { train } = await run(f, { validFraction: 0, testFraction: 0 });
    expect(Array.from(train.x)).toEqual(rows.flat());
  });

  it('Float16 features and LargeUtf8 labels are read', async () => {
    const labels = ['x', 'y', 'x', 'y'];
    const rows = [[0.5, -2], [1.5, 3], [0.25, 1024], [-0.125, 8]]; // exactly representable in float16
    const f = writeArrow(path.join(dir, 'f16.arrow'), [batchOf({ label: col(labels, new LargeUtf8()), features: fslCol(rows, 2, new Float16()) })]);
    const { cls, train } = await run(f, { validFraction: 0, testFraction: 0 });
    expect(cls.classes.map((c) => c.name)).toEqual(['x', 'y']);
    expect(Array.from(train.x)).toEqual(rows.flat());
    expect(Array.from(train.y)).toEqual([0, 1, 0, 1]);
  });

  it('dictionary labels whose dictionary changes between record batches (stream format)', async () => {
    const dict = new Dictionary(new Utf8(), new Int32());
    // batch 1 sees only 'cat','dog'; batch 2 only 'emu','cat' (a different dictionary)
    const b1 = batchOf({ label: col(['dog', 'cat', 'dog', 'cat'], dict), features: fslCol([[0], [1], [2], [3]], 1) });
    const b2 = batchOf({ label: col(['emu', 'cat', 'emu', 'emu'], dict), features: fslCol([[4], [5], [6], [7]], 1) });
    const f = writeArrow(path.join(dir, 'dict2.arrows'), [b1, b2], 'stream');
    const { cls, train } = await run(f, { validFraction: 0, testFraction: 0 });
    expect(cls.classes.map((c) => [c.name, c.counts.train])).toEqual([
      ['cat', 3],
      ['dog', 2],
      ['emu', 3],
    ]);
    expect(Array.from(train.y)).toEqual([1, 0, 1, 0, 2, 0, 2, 2]);
    expect(Array.from(train.x)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('limit keeps a seeded random subset of each split (a subset of the unlimited split)', async () => {
    const f = cleanFile('limit.arrow', 5, 100, 2);
    const full = await run(f, { seed: 11 });
    const lim = await run(f, { seed: 11, limit: { train: 37, test: 9 } });
    const again = await run(f, { seed: 11, limit: { train: 37, test: 9 } });
    expect(lim.cls.rows).toEqual({ train: 37, valid: full.cls.rows.valid, test: 9 });
    const rowsOf = (s: LabeledSet): number[] => Array.from({ length: s.n }, (_, r) => rowOf(s, r, 5));
    const fullTrain = new Set(rowsOf(full.train));
    for (const i of rowsOf(lim.train)) expect(fullTrain.has(i)).toBe(true);
    expect(rowsOf(again.train)).toEqual(rowsOf(lim.train));
    expect(lim.cls.classes.reduce((s, c) => s + c.counts.train, 0)).toBe(37);
  });

  it('limit that removes a class from train is reported with the limit', async () => {
    const f = cleanFile('limit2.arrow', 50, 4, 2);
    await expect(ingest({ input: f, outDir: path.join(dir, 'lim2'), seed: 1, validFraction: 0, testFraction: 0.25, limit: { train: 3 } })).rejects.toThrow(/limit\.train=3/);
    expect(filesIn(path.join(dir, 'lim2'))).toEqual([]);
  });

  it('streams 200,000 rows x 32 features in many batches', async () => {
    const n = 200_000;
    const dim = 32;
    const batches = [];
    const per = 25_000;
    for (let s = 0; s < n; s += per) {
      const x = new Float32Array(per * dim);
      const y: number[] = [];
      for (let i = 0; i < per; i++) {
        y.push((s + i) % 10);
        x.fill((s + i) % 10, i * dim, (i + 1) * dim);
      }
      batches.push(batchOf({ label: col(y, new Int32()), features: fslFlat(x, dim) }));
    }
    const f = writeArrow(path.join(dir, 'big.arrows'), batches, 'stream');
    const t = performance.now();
    const { cls, train } = await run(f);
    const ms = performance.now() - t;
    expect(cls.rows.train + cls.rows.valid + cls.rows.test).toBe(n);
    expect(cls.rows.test).toBe(40_000);
    for (let r = 0; r < train.n; r += 997) expect(train.x[r * dim + 31]).toBe(train.y[r]);
    expect(ms).toBeLessThan(20_000);
  });

  it('describeArrowFile summarises schema, metadata, rows, batches and label counts', async () => {
    const labels = Array.from({ length: 250 }, (_, i) => `c${i % 25}`);
    labels[0] = 'c0';
    const rows = labels.map((_, i) => [i]);
    const split = labels.map((_, i) => (i % 5 === 0 ? 'test' : 'train'));
    const b1 = batchOf({ label: col(labels.slice(0, 100), new Utf8()), features: fslCol(rows.slice(0, 100), 1, new Float32()), split: col(split.slice(0, 100), new Utf8()) }, { shape: '[1]' });
    const b2 = batchOf({ label: col(labels.slice(100), new Utf8()), features: fslCol(rows.slice(100), 1, new Float32()), split: col(split.slice(100), new Utf8()) }, { shape: '[1]' });
    const f = writeArrow(path.join(dir, 'describe.arrow'), [b1, b2]);
    const text = await describeArrowFile(f);
    expect(text).toContain('format: Arrow IPC file');
    expect(text).toContain('label: Utf8');
    expect(text).toContain('features: FixedSizeList[1]<Float32>');
    expect(text).toContain('shape: [1]');
    expect(text).toContain('rows: 250');
    expect(text).toContain('record batches: 2');
    expect(text).toMatch(/train\s+200/);
    expect(text).toMatch(/test\s+50/);
    expect(text).toContain('labels: 25 distinct classes');
    expect(text).toMatch(/c0\s+10\s+4\.00%/);
    expect(text).toContain('... 5 more classes');
  });
});
