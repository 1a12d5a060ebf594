import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Field, FixedSizeList, Float32, Int32, RecordBatch, RecordBatchReader, Schema, Struct, Table, makeData, tableToIPC, type Data, type DataType } from 'apache-arrow';
import { afterAll, describe, expect, it } from 'vitest';
import { readLogits, writeLogits } from '../../src/distill/logit-cache.ts';
import { ArtifactError, DataError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'logit-cache-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('logit cache', () => {
  it('round trip: logits bit-exact, n, C, metadata; no temp file left', async () => {
    const rng = new Rng(1);
    const n = 37;
    const C = 10;
    const logits = Float32Array.from({ length: n * C }, () => 5 * rng.normal());
    logits[3] = -1e30;
    const file = path.join(dir, 'teacher-logits.arrow');
    const meta = { teacher: 'generalist@abc123', transferSet: 'sha256:ffee', mode: 'arithmetic' };
    await writeLogits(file, logits, n, C, meta);
    const got = await readLogits(file);
    expect(got.n).toBe(n);
    expect(got.C).toBe(C);
    expect(got.meta).toEqual(meta);
    expect(Buffer.from(got.logits.buffer, got.logits.byteOffset, got.logits.byteLength).equals(Buffer.from(logits.buffer))).toBe(true);
    expect(readdirSync(dir).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('a cache of several 4,096-row record batches, written and read a batch at a time, round-trips', async () => {
    const n = 9000; // 3 batches, the last partial
    const C = 7;
    const logits = Float32Array.from({ length: n * C }, (_, i) => Math.sin(i) * 10);
    const file = path.join(dir, 'batches.arrow');
    await writeLogits(file, logits, n, C, { k: 'v' });
    const batches = [...RecordBatchReader.from(readFileSync(file))].map((b) => b.numRows);
    expect(batches).toEqual([4096, 4096, 808]);
    const got = await readLogits(file);
    expect(got.n).toBe(n);
    expect(got.logits).toEqual(logits);
  });

  it('empty transfer set', async () => {
    const file = path.join(dir, 'empty.arrow');
    await writeLogits(file, new Float32Array(0), 0, 3, { k: 'v' });
    const got = await readLogits(file);
    expect(got).toMatchObject({ n: 0, C: 3, meta: { k: 'v' } });
    expect(got.logits.length).toBe(0);
  });

  it('reads several record batches with rows out of order', async () => {
    const C = 2;
    const listType = new FixedSizeList(C, new Field('item', new Float32(), false));
    const schema = new Schema([new Field('row', new Int32(), false), new Field('logits', listType, false)]);
    const batch = (rows: number[], vals: number[]): RecordBatch => {
      const r = makeData({ type: new Int32(), length: rows.length, nullCount: 0, data: Int32Array.from(rows) });
      const child = makeData({ type: new Float32(), length: vals.length, nullCount: 0, data: Float32Array.from(vals) });
      const l = makeData({ type: listType, length: rows.length, nullCount: 0, child });
      return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: rows.length, nullCount: 0, children: [r, l] as Data<DataType>[] }));
    };
    const table = new Table([batch([2, 0], [20, 21, 0, 1]), batch([1, 3], [10, 11, 30, 31])]);
    const file = path.join(dir, 'multi.arrow');
    writeFileSync(file, tableToIPC(table, 'file'));
    const got = await readLogits(file);
    expect(got.n).toBe(4);
    expect(Array.from(got.logits)).toEqual([0, 1, 10, 11, 20, 21, 30, 31]);
  });

  it('errors: wrong size on write; missing / corrupt / wrong-schema file on read', async () => {
    await expect(writeLogits(path.join(dir, 'bad.arrow'), new Float32Array(5), 2, 3, {})).rejects.toThrow(DataError);
    await expect(readLogits(path.join(dir, 'missing.arrow'))).rejects.toThrow(ArtifactError);
    const junk = path.join(dir, 'junk.arrow');
    writeFileSync(junk, 'not arrow at all');
    await expect(readLogits(junk)).rejects.toThrow(ArtifactError);
    const wrong = path.join(dir, 'wrong.arrow');
    const schema = new Schema([new Field('label', new Int32(), false)]);
    const d = makeData({ type: new Int32(), length: 1, nullCount: 0, data: Int32Array.from([1]) });
    writeFileSync(wrong, tableToIPC(new Table([new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: 1, nullCount: 0, children: [d] }))]), 'file'));
    await expect(readLogits(wrong)).rejects.toThrow(/column 'logits'/);
  });
});
