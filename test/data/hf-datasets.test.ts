/**
 * Hugging Face `datasets` files: its cache files are Arrow IPC streams of several record batches
 * (schema metadata `huggingface` holds the features), `ClassLabel` is int64, `Value('string')`
 * is Utf8, `Sequence(Value('float32'))` is list<float> and `Sequence(..., length=D)` a
 * fixed-size list; the hub's Parquet conversion has the same columns (and the `ARROW:schema`).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Field, Float32, Int32, Int64, List, Utf8, type Data, type RecordBatch } from 'apache-arrow';
import { ingest } from '../../src/data/ingest.ts';
import { openArrow } from '../../src/data/arrow-read.ts';
import { DataError } from '../../src/util/errors.ts';
import { batchOf, cleanRows, cleanup, col, filesIn, fslCol, tmpDir, writeArrow } from '../fixtures/data/build.ts';
import { writeParquet } from './parquet-fixtures.ts';

let dir: string;
beforeAll(() => {
  dir = tmpDir('hf-datasets-');
});
afterAll(() => cleanup(dir));

const listF32 = new List(new Field('item', new Float32(), true));
const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const NAMES = ['airplane', 'bird', 'cat'];
const hfMeta = (label: object, features: object): Record<string, string> => ({
  huggingface: JSON.stringify({ info: { features: { label, features } } }),
});

const { labels, x, n } = cleanRows(3, 20, 5);
const rows = Array.from({ length: n }, (_, i) => Array.from(x.subarray(i * 5, (i + 1) * 5)));
const split = labels.map((_, i) => (i % 4 === 0 ? 'test' : 'train'));

/** The rows [a, b) as a record batch with the given label and feature columns. */
function part(a: number, b: number, label: (rows: number[]) => Data, features: (r: number[][]) => Data, meta: Record<string, string>): RecordBatch {
  return batchOf({ label: label(labels.slice(a, b)), features: features(rows.slice(a, b)), split: col(split.slice(a, b), new Utf8()) }, meta);
}

/** Batch boundaries as `datasets` writes them (its writer_batch_size), here uneven and small. */
const CUTS = [0, 17, 40, 60];
function batches(label: (rows: number[]) => Data, features: (r: number[][]) => Data, meta: Record<string, string>): RecordBatch[] {
  return CUTS.slice(1).map((b, k) => part(CUTS[k], b, label, features, meta));
}

let counter = 0;
async function splitHashes(input: string): Promise<Record<string, string>> {
  const out = path.join(dir, `out-${counter++}`);
  await ingest({ input, outDir: out, seed: 5, validFraction: 0.2, testFraction: 0.2 });
  return Object.fromEntries(filesIn(out).filter((f) => f.endsWith('.arrow')).map((f) => [f, sha(path.join(out, f))]));
}

describe('Hugging Face datasets files', () => {
  let reference: Record<string, string>;
  beforeAll(async () => {
    // The plain Arrow file of the same rows: one batch, int32 labels, fixed-size list features.
    reference = await splitHashes(writeArrow(path.join(dir, 'plain.arrow'), [part(0, n, (l) => col(l, new Int32()), (r) => fslCol(r, 5), {})]));
    expect(Object.keys(reference)).toEqual(['test.arrow', 'train.arrow', 'valid.arrow']);
  });

  it('an Arrow IPC stream of several record batches with ClassLabel (int64) labels and list<float> features', async () => {
    const meta = hfMeta({ names: NAMES, _type: 'ClassLabel' }, { feature: { dtype: 'float32', _type: 'Value' }, _type: 'Sequence' });
    const file = writeArrow(path.join(dir, 'data-00000-of-00001.arrow'), batches((l) => col(l.map(BigInt), new Int64()), (r) => col(r, listF32), meta), 'stream');
    const input = await openArrow(file);
    expect(input.format).toBe('stream');
    let k = 0;
    for await (const b of input.batches()) expect(b.numRows).toBe(CUTS[k + 1] - CUTS[k++]);
    await input.close();
    expect(k).toBe(3);
    expect(await splitHashes(file)).toEqual(reference);
  });

  it('fixed-size list features (Sequence with length) in a stream of several batches', async () => {
    const meta = hfMeta({ names: NAMES, _type: 'ClassLabel' }, { feature: { dtype: 'float32', _type: 'Value' }, length: 5, _type: 'Sequence' });
    const file = writeArrow(path.join(dir, 'fixed.arrow'), batches((l) => col(l.map(BigInt), new Int64()), (r) => fslCol(r, 5), meta), 'stream');
    expect(await splitHashes(file)).toEqual(reference);
  });

  it('string labels: classes are the names, in sorted order', async () => {
    const file = writeArrow(path.join(dir, 'strings.arrow'), batches((l) => col(l.map((c) => NAMES[c]), new Utf8()), (r) => col(r, listF32), {}), 'stream');
    const out = path.join(dir, 'strings-out');
    const cls = await ingest({ input: file, outDir: out, seed: 5, validFraction: 0.2, testFraction: 0.2 });
    expect(cls.classes.map((c) => c.name)).toEqual(NAMES); // already sorted, so indices equal the ClassLabel ids
    for (const f of Object.keys(reference)) expect(sha(path.join(out, f)), f).toBe(reference[f]);
  });

  it('the same table as Parquet (the hub conversion: int64 labels, list<float>, ARROW:schema) ingests to the same files', async () => {
    const meta = hfMeta({ names: NAMES, _type: 'ClassLabel' }, { feature: { dtype: 'float32', _type: 'Value' }, _type: 'Sequence' });
    const file = writeParquet(path.join(dir, 'train-00000-of-00001.parquet'), batches((l) => col(l.map(BigInt), new Int64()), (r) => col(r, listF32), meta), { rowGroupSize: 16 });
    expect(await splitHashes(file)).toEqual(reference);
  });

  it('a ragged list in the third record batch is an error naming the row in the whole stream', async () => {
    const ragged = rows.map((r, i) => (i === 45 ? r.slice(0, 4) : r));
    const bs = CUTS.slice(1).map((b, k) => batchOf({ label: col(labels.slice(CUTS[k], b).map(BigInt), new Int64()), features: col(ragged.slice(CUTS[k], b), listF32) }));
    const file = writeArrow(path.join(dir, 'ragged.arrow'), bs, 'stream');
    const err = await ingest({ input: file, outDir: path.join(dir, 'ragged-out'), seed: 5, validFraction: 0.2, testFraction: 0.2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataError);
    expect((err as Error).message).toContain(`${file}: column 'features', row 45: ragged feature lists: this row has 4 values but row 0 has 5`);
    expect(filesIn(path.join(dir, 'ragged-out'))).toEqual([]);
  });
});
