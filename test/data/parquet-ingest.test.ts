import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bool, DateDay, Dictionary, Field, FixedSizeList, Float32, Float64, Int32, Int64, Int8, List, TimestampMillisecond, Uint8, Utf8, type RecordBatch } from 'apache-arrow';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { parquetMetadata } from 'hyparquet';
import { ingest, type ClassesFile } from '../../src/data/ingest.ts';
import { openParquet } from '../../src/data/parquet-read.ts';
import { describeDataFile, openTable } from '../../src/data/table-input.ts';
import { DataError } from '../../src/util/errors.ts';
import { batchOf, cleanRows, cleanup, col, filesIn, fslCol, tmpDir, writeArrow } from '../fixtures/data/build.ts';
import { writeParquet, type ParquetFixtureOptions } from './parquet-fixtures.ts';

let dir: string;
beforeAll(() => {
  dir = tmpDir('parquet-ingest-');
});
afterAll(() => cleanup(dir));

const f32 = new Float32();
const listF32 = new List(new Field('item', f32, true));
const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
let counter = 0;

/** Ingests `input` into a fresh folder; returns the folder and classes.json. */
async function run(input: string): Promise<{ out: string; cls: ClassesFile }> {
  const out = path.join(dir, `out-${counter++}`);
  const cls = await ingest({ input, outDir: out, seed: 3, validFraction: 0.2, testFraction: 0.2 });
  return { out, cls };
}

/** Ingests the same batches from an Arrow file and a Parquet file; the outputs must be identical. */
async function expectSameOutputs(name: string, batches: RecordBatch[], pq: ParquetFixtureOptions): Promise<{ arrowOut: string; parquetOut: string; parquet: string }> {
  const arrow = writeArrow(path.join(dir, `${name}.arrow`), batches);
  const parquet = writeParquet(path.join(dir, `${name}.parquet`), batches, pq);
  const a = await run(arrow);
  const p = await run(parquet);
  const files = filesIn(a.out);
  expect(files.length).toBeGreaterThanOrEqual(4);
  expect(filesIn(p.out)).toEqual(files);
  for (const f of files) {
    if (f === 'classes.json') continue;
    expect(sha(path.join(p.out, f)), f).toBe(sha(path.join(a.out, f)));
  }
  expect({ ...p.cls, source: '' }).toEqual({ ...a.cls, source: '' });
  return { arrowOut: a.out, parquetOut: p.out, parquet };
}

/** Rows of a 3-class dataset (dim 4): features identify the row. */
function rowsOf(classes: number, perClass: number, dim: number): { labels: number[]; rows: number[][] } {
  const { labels, x, n } = cleanRows(classes, perClass, dim);
  return { labels, rows: Array.from({ length: n }, (_, i) => Array.from(x.subarray(i * dim, (i + 1) * dim))) };
}

/** Encodings of each column chunk of row group `g`, by column path. */
function encodings(file: string, g = 0): Record<string, string[]> {
  const buf = readFileSync(file);
  const md = parquetMetadata(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  return Object.fromEntries(md.row_groups[g].columns.map((c) => [c.meta_data!.path_in_schema.join('.'), c.meta_data!.encodings]));
}

describe('Parquet ingest gives the split files of the equivalent Arrow file', () => {
  it('dictionary-encoded string labels, a split column, fixed_size_list features, several row groups (pyarrow-style ARROW:schema)', async () => {
    const { labels, rows } = rowsOf(3, 20, 4);
    const names = labels.map((c) => ['ant', 'bee', 'cow'][c]);
    const split = labels.map((_, i) => (i % 5 === 0 ? 'test' : 'train'));
    const b = batchOf(
      { label: col(names, new Dictionary(new Utf8(), new Int32())), features: fslCol(rows, 4), split: col(split, new Dictionary(new Utf8(), new Int32())), note: col(names, new Utf8()) },
      { shape: '[2,2]' },
    );
    const { parquet } = await expectSameOutputs('dict', [b], { rowGroupSize: 7 });
    // The file really has several row groups and dictionary-encoded string columns.
    const input = await openTable(parquet);
    expect(input.format).toBe('parquet');
    expect(input.numBatches).toBe(9);
    expect(String(input.schema.fields[1].type)).toBe('FixedSizeList[4]<Float32>');
    await input.close();
    expect(encodings(parquet).label).toContain('RLE_DICTIONARY');
    expect(encodings(parquet, 3).split).toContain('RLE_DICTIONARY');
  });

  it('list<float> features without a stored Arrow schema (any Parquet writer), Utf8 labels, uneven row groups', async () => {
    const { labels, rows } = rowsOf(4, 9, 3);
    const b = batchOf({ label: col(labels.map((c) => `class-${c}`), new Utf8()), features: col(rows, listF32) });
    const { parquet } = await expectSameOutputs('list', [b], { rowGroupSize: [5, 11], arrowSchema: false });
    const input = await openTable(parquet);
    expect(String(input.schema.fields[1].type)).toBe('List<Float32>');
    expect(input.numBatches).toBe(4); // 5 + 11 + 11 + 9 rows
    await input.close();
  });

  it('int64 class labels (Hugging Face ClassLabel), one numeric column per feature, several input batches, uncompressed pages', async () => {
    const { labels, rows } = rowsOf(3, 8, 2);
    const half = (k: number): RecordBatch =>
      batchOf({
        label: col(labels.slice(k * 12, k * 12 + 12).map(BigInt), new Int64()),
        f0: col(rows.slice(k * 12, k * 12 + 12).map((r) => r[0]), new Float64()),
        f1: col(rows.slice(k * 12, k * 12 + 12).map((r) => r[1]), f32),
      });
    await expectSameOutputs('int64', [half(0), half(1)], { rowGroupSize: 10, codec: 'UNCOMPRESSED' });
  });

  it('uint8 pixels with feature_scale metadata (8-bit images), a list without stored schema', async () => {
    const labels = Array.from({ length: 30 }, (_, i) => i % 3);
    const pixels = labels.map((c, i) => [c * 50, (i * 7) % 256, 255, 0]);
    const b = batchOf({ label: col(labels, new Int32()), features: fslCol(pixels, 4, new Uint8()) }, { feature_scale: '1/255', shape: '[2,2,1]' });
    await expectSameOutputs('uint8', [b], { rowGroupSize: 8 });
    const lb = batchOf({ label: col(labels, new Int32()), features: col(pixels, new List(new Field('item', new Uint8(), true))) }, { feature_scale: '1/255' });
    await expectSameOutputs('uint8-list', [lb], { rowGroupSize: 8, arrowSchema: false });
  });

  it('dates, timestamps and booleans are not feature columns (ignored, as in an Arrow file)', async () => {
    const n = 24;
    const label = Array.from({ length: n }, (_, i) => i % 3);
    const f0 = label.map((c, i) => c + i / 100);
    const when = label.map((_, i) => new Date(1e12 + i * 1000));
    const flag = label.map((_, i) => i % 2 === 0);
    const arrow = writeArrow(path.join(dir, 'temporal.arrow'), [
      batchOf({ label: col(label, new Int32()), f0: col(f0, new Float64()), when: col(when, new TimestampMillisecond()), day: col(when, new DateDay()), flag: col(flag, new Bool()) }),
    ]);
    const buf = parquetWriteBuffer({
      columnData: [
        { name: 'label', data: label },
        { name: 'f0', data: f0 },
        { name: 'when', data: when },
        { name: 'day', data: when },
        { name: 'flag', data: flag },
      ],
      schema: [
        { name: 'schema', num_children: 5 },
        { name: 'label', type: 'INT32', repetition_type: 'OPTIONAL' },
        { name: 'f0', type: 'DOUBLE', repetition_type: 'OPTIONAL' },
        { name: 'when', type: 'INT64', converted_type: 'TIMESTAMP_MILLIS', repetition_type: 'OPTIONAL' },
        { name: 'day', type: 'INT32', converted_type: 'DATE', repetition_type: 'OPTIONAL' },
        { name: 'flag', type: 'BOOLEAN', repetition_type: 'OPTIONAL' },
      ],
      rowGroupSize: 10,
    });
    const parquet = path.join(dir, 'temporal.parquet');
    writeFileSync(parquet, new Uint8Array(buf));
    const input = await openTable(parquet);
    expect(input.schema.fields.map((f) => String(f.type))).toEqual(['Int32', 'Float64', 'Timestamp<MILLISECOND>', 'Date32<DAY>', 'Bool']);
    await input.close();
    const a = await run(arrow);
    const p = await run(parquet);
    expect(p.cls.dim).toBe(1);
    for (const f of ['train.arrow', 'valid.arrow', 'test.arrow']) expect(sha(path.join(p.out, f)), f).toBe(sha(path.join(a.out, f)));
  });

  it("rows with split 'unlabeled' (null labels allowed) go to unlabeled.arrow as from Arrow", async () => {
    const { labels, rows } = rowsOf(2, 10, 2);
    const lab: (number | null)[] = [...labels];
    const split = labels.map((_, i) => (i >= 16 ? 'unlabeled' : 'train'));
    lab[17] = null;
    const b = batchOf({ label: col(lab, new Int32()), features: fslCol(rows, 2), split: col(split, new Utf8()) });
    const { parquetOut } = await expectSameOutputs('unlabeled', [b], { rowGroupSize: 6 });
    expect(filesIn(parquetOut)).toContain('unlabeled.arrow');
  });
});

// ------------------------------------------------------------------ errors

/** A small valid base: 3 classes x 4 rows, dim 2 (as in ingest-errors.test.ts). */
function base(n = 12): { label: number[]; features: number[][] } {
  const label = Array.from({ length: n }, (_, i) => i % 3);
  return { label, features: label.map((c, i) => [c, i]) };
}

interface BadCase {
  name: string;
  batches: () => RecordBatch[];
  /** Fragments the message must contain (as in the Arrow tests). */
  expect: string[];
  /** Only List / plain types: also compared without the stored Arrow schema. */
  plain?: boolean;
}

const b0 = base();
const bad: BadCase[] = [
  { name: 'missing label', batches: () => [batchOf({ target: col(b0.label, new Int32()), features: fslCol(b0.features, 2) })], expect: ["column 'label'", 'missing the label column', 'target: Int32'] },
  { name: 'missing features', batches: () => [batchOf({ label: col(b0.label, new Int32()), name: col(b0.label.map(String), new Utf8()) })], expect: ["column 'features'", 'missing features'], plain: true },
  { name: 'float labels', batches: () => [batchOf({ label: col(b0.label, new Float64()), features: fslCol(b0.features, 2) })], expect: ["column 'label'", 'Float64', 'integers'] },
  { name: 'string features', batches: () => [batchOf({ label: col(b0.label, new Int32()), features: col(b0.features.map((r) => r.join(',')), new Utf8()) })], expect: ["column 'features'", 'Utf8', 'FixedSizeList'], plain: true },
  {
    name: 'fixed-size list of strings',
    batches: () => [batchOf({ label: col(b0.label, new Int32()), features: col(b0.features.map((r) => r.map(String)), new FixedSizeList(2, new Field('item', new Utf8(), true))) })],
    expect: ["column 'features'", 'FixedSizeList of numbers'],
  },
  {
    name: 'list of strings',
    batches: () => [batchOf({ label: col(b0.label, new Int32()), features: col(b0.features.map((r) => r.map(String)), new List(new Field('item', new Utf8(), true))) })],
    expect: ["column 'features'", 'list of numbers'],
    plain: true,
  },
  { name: 'null label', batches: () => [batchOf({ label: col(b0.label.map((c, i) => (i === 5 ? null : c)), new Int32()), features: fslCol(b0.features, 2) })], expect: ["column 'label', row 5", 'null'] },
  { name: 'null feature vector', batches: () => [batchOf({ label: col(b0.label, new Int32()), features: fslCol(b0.features.map((r, i) => (i === 7 ? null : r)), 2) })], expect: ["column 'features', row 7", 'null'] },
  { name: 'null feature list', batches: () => [batchOf({ label: col(b0.label, new Int32()), features: col(b0.features.map((r, i) => (i === 7 ? null : r)), listF32) })], expect: ["column 'features', row 7", 'null'], plain: true },
  { name: 'null element in a feature list', batches: () => [batchOf({ label: col(b0.label, new Int32()), features: col(b0.features.map((r, i) => (i === 8 ? [r[0], null] : r)), listF32) })], expect: ["column 'features', row 8", 'element 1', 'null'], plain: true },
  {
    name: 'null in a numeric feature column',
    batches: () => [batchOf({ label: col(b0.label, new Int32()), f0: col(b0.features.map((r) => r[0]), f32), f1: col(b0.features.map((r, i) => (i === 9 ? null : r[1])), f32) })],
    expect: ["column 'f1', row 9", 'null'],
    plain: true,
  },
  { name: 'ragged list', batches: () => [batchOf({ label: col(b0.label, new Int32()), features: col(b0.features.map((r, i) => (i === 4 ? [1, 2, 3] : r)), listF32) })], expect: ["column 'features', row 4", 'ragged', 'has 3 values but row 0 has 2'], plain: true },
  { name: 'empty first list', batches: () => [batchOf({ label: col(b0.label, new Int32()), features: col(b0.features.map((r, i) => (i === 0 ? [] : r)), listF32) })], expect: ["column 'features', row 0", 'empty'], plain: true },
  { name: 'NaN feature', batches: () => [batchOf({ label: col(b0.label, new Int32()), features: fslCol(b0.features.map((r, i) => (i === 10 ? [r[0], NaN] : r)), 2) })], expect: ["column 'features', row 10", 'NaN', 'element 1'] },
  { name: 'NaN in a list', batches: () => [batchOf({ label: col(b0.label, new Int32()), features: col(b0.features.map((r, i) => (i === 10 ? [r[0], NaN] : r)), listF32) })], expect: ["column 'features', row 10", 'NaN', 'element 1'], plain: true },
  {
    name: '-Infinity in a numeric column',
    batches: () => [batchOf({ label: col(b0.label, new Int32()), f0: col(b0.features.map((r) => r[0]), new Float64()), f1: col(b0.features.map((r, i) => (i === 3 ? -Infinity : r[1])), new Float64()) })],
    expect: ["column 'f1', row 3", '-Infinity'],
    plain: true,
  },
  { name: 'float64 overflowing float32', batches: () => [batchOf({ label: col(b0.label, new Int32()), features: fslCol(b0.features.map((r, i) => (i === 2 ? [1e300, r[1]] : r)), 2, new Float64()) })], expect: ["column 'features', row 2", 'Infinity', 'overflow float32'] },
  { name: 'negative int8 label', batches: () => [batchOf({ label: col(b0.label.map((c, i) => (i === 6 ? -1 : c)), new Int8()), features: fslCol(b0.features, 2) })], expect: ["column 'label', row 6", 'found -1'] },
  { name: 'empty table', batches: () => [batchOf({ label: col([], new Int32()), features: col([], listF32) })], expect: ['empty (0 rows)'], plain: true },
  { name: 'only one class', batches: () => [batchOf({ label: col(b0.label.map(() => 4), new Int32()), features: fslCol(b0.features, 2) })], expect: ["column 'label'", 'only one class'] },
  { name: 'only one class (strings)', batches: () => [batchOf({ label: col(b0.label.map(() => 'cat'), new Utf8()), features: col(b0.features, listF32) })], expect: ["column 'label'", 'only one class ("cat")'], plain: true },
  {
    name: 'class only in test',
    batches: () => [batchOf({ label: col(b0.label.map((c) => ['ant', 'bee', 'cow'][c]), new Utf8()), features: col(b0.features, listF32), split: col(b0.label.map((c) => (c === 2 ? 'test' : 'train')), new Utf8()) })],
    expect: ["column 'label', row 2", 'class "cow" appears in the test split', 'no training examples'],
    plain: true,
  },
  { name: 'unknown split value', batches: () => [batchOf({ label: col(b0.label, new Int32()), features: col(b0.features, listF32), split: col(b0.label.map((_, i) => (i === 8 ? 'validation' : 'train')), new Utf8()) })], expect: ["column 'split', row 8", '"validation"'], plain: true },
  { name: 'null split value', batches: () => [batchOf({ label: col(b0.label, new Int32()), features: col(b0.features, listF32), split: col(b0.label.map((_, i) => (i === 1 ? null : 'train')), new Utf8()) })], expect: ["column 'split', row 1", 'null'], plain: true },
  { name: 'numeric split column', batches: () => [batchOf({ label: col(b0.label, new Int32()), features: col(b0.features, listF32), split: col(b0.label, new Int32()) })], expect: ["column 'split'", 'Int32'], plain: true },
  {
    name: 'gap in integer labels',
    batches: () => {
      const labels = Array.from({ length: 40 }, (_, i) => [0, 1, 2, 3, 4, 5, 6, 8][i % 8]);
      return [batchOf({ label: col(labels, new Int32()), features: col(labels.map((c, i) => [c, i]), listF32) })];
    },
    expect: ["column 'label'", 'class 7 has no training examples'],
    plain: true,
  },
  { name: 'shape product is not D', batches: () => [batchOf({ label: col(b0.label, new Int32()), features: fslCol(b0.features, 2) }, { shape: '[3, 1]' })], expect: ["column 'features'", '[3,1]', 'has 3 elements'] },
  { name: 'shape product is not D (list)', batches: () => [batchOf({ label: col(b0.label, new Int32()), features: col(b0.features, listF32) }, { shape: '[3, 1]' })], expect: ["column 'features'", '[3,1]', 'has 3 elements'], plain: true },
  { name: 'shape not JSON', batches: () => [batchOf({ label: col(b0.label, new Int32()), features: fslCol(b0.features, 2) }, { shape: '28x28' })], expect: ["'shape' is not JSON"] },
  { name: 'label absurdly large', batches: () => [batchOf({ label: col(b0.label.map((c, i) => (i === 11 ? 2_000_000_000 : c)), new Int32()), features: col(b0.features, listF32) })], expect: ["column 'label', row 11", 'larger than'], plain: true },
  { name: 'no train rows', batches: () => [batchOf({ label: col(b0.label, new Int32()), features: col(b0.features, listF32), split: col(b0.label.map(() => 'test'), new Utf8()) })], expect: ["column 'split'", 'no rows are in the train split'], plain: true },
  {
    name: 'dictionary label with a null entry',
    batches: () => [batchOf({ label: col(b0.label.map((c, i) => (i === 4 ? null : ['a', 'b', 'c'][c])), new Dictionary(new Utf8(), new Int32())), features: fslCol(b0.features, 2) })],
    expect: ["column 'label', row 4", 'null'],
  },
  {
    name: 'error in a later input batch',
    batches: () => [
      batchOf({ label: col(b0.label, new Int32()), features: col(b0.features, listF32) }),
      batchOf({ label: col(b0.label, new Int32()), features: col(b0.features.map((r, i) => (i === 1 ? [NaN, r[1]] : r)), listF32) }),
    ],
    expect: ["column 'features', row 13", 'NaN'],
    plain: true,
  },
];

/** Runs ingest, expects a DataError, checks nothing was written; returns the message with the file name replaced. */
async function dataErrorOf(file: string): Promise<string> {
  const out = path.join(dir, `bad-${counter++}`);
  let err: unknown;
  try {
    await ingest({ input: file, outDir: out, seed: 1, validFraction: 0.25, testFraction: 0.25 });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(DataError);
  expect(filesIn(out)).toEqual([]);
  const msg = (err as Error).message;
  expect(msg.startsWith(`${file}: `)).toBe(true);
  expect(msg).toContain('Fix:');
  return msg.split(file).join('FILE');
}

describe('a bad Parquet file gets exactly the message of the equivalent Arrow file (rows counted over the whole file)', () => {
  for (const [k, c] of bad.entries()) {
    it(c.name, async () => {
      const batches = c.batches();
      const arrowMsg = await dataErrorOf(writeArrow(path.join(dir, `bad${k}.arrow`), batches));
      for (const m of c.expect) expect(arrowMsg).toContain(m);
      // Row groups of 5 rows: the bad rows are in later groups, so row numbers must be global.
      expect(await dataErrorOf(writeParquet(path.join(dir, `bad${k}.parquet`), batches, { rowGroupSize: 5 }))).toBe(arrowMsg);
      if (c.plain) expect(await dataErrorOf(writeParquet(path.join(dir, `bad${k}-plain.parquet`), batches, { rowGroupSize: [3, 4], arrowSchema: false }))).toBe(arrowMsg);
    });
  }
});

describe('Parquet file problems', () => {
  const good = (): string => {
    const { labels, rows } = rowsOf(3, 30, 8);
    return writeParquet(path.join(dir, `good-${counter++}.parquet`), [batchOf({ label: col(labels, new Int32()), features: col(rows, listF32) })], { rowGroupSize: 20, codec: 'UNCOMPRESSED' });
  };

  it('missing, empty, truncated, encrypted, and not Parquet despite the name', async () => {
    expect(await dataErrorOf(path.join(dir, 'nope.parquet'))).toContain('cannot open the file (ENOENT)');
    const empty = path.join(dir, 'empty.parquet');
    writeFileSync(empty, '');
    expect(await dataErrorOf(empty)).toContain('the file is empty (0 bytes)');
    const full = readFileSync(good());
    const cut = path.join(dir, 'cut.parquet');
    writeFileSync(cut, full.subarray(0, Math.floor(full.length * 0.7)));
    expect(await dataErrorOf(cut)).toContain('the Parquet file is truncated or incomplete (no closing PAR1 magic');
    const enc = path.join(dir, 'encrypted.parquet');
    writeFileSync(enc, Buffer.concat([full.subarray(0, full.length - 4), Buffer.from('PARE')]));
    expect(await dataErrorOf(enc)).toContain('the Parquet file is encrypted (PARE footer)');
    const csv = path.join(dir, 'text.parquet');
    writeFileSync(csv, 'label,f0\n0,1.5\n');
    expect(await dataErrorOf(csv)).toContain('not a Parquet file (it does not start with the PAR1 magic');
  });

  it('a corrupt row group is named with its first row, after the groups before it were read', async () => {
    const file = good();
    const buf = readFileSync(file);
    const md = parquetMetadata(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
    const g = md.row_groups[2].columns[1].meta_data!;
    // Overwrite the third row group's feature pages (header included) with 0xff bytes.
    buf.fill(0xff, Number(g.data_page_offset), Number(g.data_page_offset) + Number(g.total_compressed_size));
    const bad = path.join(dir, 'corrupt.parquet');
    writeFileSync(bad, buf);
    const input = await openParquet(bad);
    const seen: number[] = [];
    let err: unknown;
    try {
      for await (const b of input.batches()) seen.push(b.numRows);
    } catch (e) {
      err = e;
    }
    await input.close();
    expect(seen).toEqual([20, 20]);
    expect(err).toBeInstanceOf(DataError);
    expect((err as Error).message).toContain(`${bad}: row 40: row group 2 (starting at row 40) cannot be read`);
    expect(await dataErrorOf(bad)).toContain('row 40: row group 2 (starting at row 40) cannot be read');
  });
});

describe('Parquet reads one row group at a time', () => {
  it('bytes are read per row group, lazily, and only for the columns asked for', async () => {
    const groups = 40;
    const { labels, rows } = rowsOf(4, 250, 16); // 1000 rows
    const names = labels.map((c) => `c${c}`);
    const file = writeParquet(path.join(dir, 'many.parquet'), [batchOf({ label: col(names, new Utf8()), features: col(rows, listF32), extra: col(rows.map((r) => r[0] * 2), new Float64()) })], {
      rowGroupSize: 1000 / groups,
      codec: 'UNCOMPRESSED',
    });
    const buf = readFileSync(file);
    const md = parquetMetadata(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
    expect(md.row_groups.length).toBe(groups);
    /** Byte range [start, end) of each row group's column chunks, per column. */
    const chunkRange = (g: number, c: number): [number, number] => {
      const m = md.row_groups[g].columns[c].meta_data!;
      const start = Number(m.dictionary_page_offset ?? m.data_page_offset);
      return [start, start + Number(m.total_compressed_size)];
    };
    const footerStart = buf.length - 8 - md.metadata_length;

    const reads: [number, number][] = [];
    const input = await openParquet(file, { onRead: (s, e) => reads.push([s, e]) });
    // Opening reads the footer only.
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.every(([s]) => s >= footerStart)).toBe(true);
    let g = 0;
    for await (const b of input.batches(['label', 'features'])) {
      expect(b.numRows).toBe(1000 / groups);
      // Everything read so far lies in the footer or in row groups 0..g, and never in 'extra'.
      const dataReads = reads.filter(([s]) => s < footerStart);
      for (const [s, e] of dataReads) {
        // (hyparquet reads a group's wanted chunks, label then features, in one coalesced read)
        const inGroup = Array.from({ length: g + 1 }, (_, k) => k).some((k) => s >= chunkRange(k, 0)[0] && e <= chunkRange(k, 1)[1]);
        expect(inGroup, `read [${s}, ${e}) while at row group ${g}`).toBe(true);
      }
      // Row group g itself was read (its label and features chunks).
      expect(dataReads.some(([s]) => s >= chunkRange(g, 0)[0] && s < chunkRange(g, 1)[1])).toBe(true);
      expect(b.getChild('extra')!.nullCount).toBe(b.numRows); // a Null placeholder, not decoded
      g++;
    }
    await input.close();
    expect(g).toBe(groups);
    // The largest single read is one row group's columns, not the file.
    const biggest = Math.max(...reads.filter(([s]) => s < footerStart).map(([s, e]) => e - s));
    expect(biggest).toBeLessThanOrEqual(Math.max(...md.row_groups.map((_, k) => chunkRange(k, 1)[1] - chunkRange(k, 0)[0])));
    expect(biggest * 10).toBeLessThan(buf.length);
  });
});

describe('inspect summarises a Parquet file', () => {
  it('format, schema, metadata, rows, row groups, label counts', async () => {
    const { labels, rows } = rowsOf(3, 10, 2);
    const file = writeParquet(
      path.join(dir, 'inspect.parquet'),
      [batchOf({ label: col(labels.map((c) => ['ant', 'bee', 'cow'][c]), new Dictionary(new Utf8(), new Int32())), features: fslCol(rows, 2), split: col(labels.map(() => 'train'), new Utf8()) }, { shape: '[2]' })],
      { rowGroupSize: 8 },
    );
    const text = await describeDataFile(file);
    expect(text).toContain('format: Parquet');
    expect(text).toContain('features: FixedSizeList[2]<Float32>');
    expect(text).toContain('shape: [2]');
    expect(text).toContain('rows: 30');
    expect(text).toContain('row groups: 4');
    expect(text).toMatch(/train\s+30/);
    expect(text).toMatch(/ant\s+10\s+33\.33%/);
    // `npm run inspect -- FILE.parquet` prints this summary.
    const { describePath } = await import('../../src/cli/describe.ts');
    expect(await describePath(file)).toBe(text);
  });
});
