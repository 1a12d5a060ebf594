import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Int32, type RecordBatch } from 'apache-arrow';
import { openArrow, readRecordBatches } from '../../src/data/arrow-read.ts';
import { openSplitStream } from '../../src/data/split-stream.ts';
import { ArtifactError, DataError } from '../../src/util/errors.ts';
import { batchOf, cleanup, col, fslCol, tmpDir, writeArrow } from '../fixtures/data/build.ts';

let dir: string;
beforeAll(() => {
  dir = tmpDir('record-batches-');
});
afterAll(() => cleanup(dir));

/** A split-file-shaped batch of 4 rows: labels s..s+3, features [s + i, i]. */
function batch4(s: number): RecordBatch {
  return batchOf({ label: col([s, s + 1, s + 2, s + 3], new Int32()), features: fslCol([0, 1, 2, 3].map((i) => [s + i, i]), 2) });
}

/**
 * An Arrow IPC stream of three 4-row batches with the last 16 bytes cut off: the 8-byte
 * end-of-stream marker and 8 bytes of the third batch's body, so batches 0 and 1 (rows 0-7) read
 * and batch 2 (starting at row 8) does not.
 */
function truncatedStream(name: string): string {
  const full = readFileSync(writeArrow(path.join(dir, `${name}-full.arrows`), [batch4(0), batch4(4), batch4(8)], 'stream'));
  const file = path.join(dir, `${name}.arrows`);
  writeFileSync(file, full.subarray(0, full.length - 16));
  return file;
}

describe('readRecordBatches', () => {
  it('yields the batches in order and turns a failing read into the caller\'s error with batch index and first row', async () => {
    const cause = new Error('boom');
    const fake: AsyncIterable<RecordBatch> = {
      async *[Symbol.asyncIterator]() {
        yield { numRows: 3 } as RecordBatch;
        yield { numRows: 0 } as RecordBatch;
        yield { numRows: 5 } as RecordBatch;
        throw cause;
      },
    };
    const calls: [number, number, unknown][] = [];
    const mine = new Error('mine');
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const b of readRecordBatches(fake, (k, row, e) => (calls.push([k, row, e]), mine))) seen.push(b.numRows);
      })(),
    ).rejects.toBe(mine);
    expect(seen).toEqual([3, 0, 5]);
    // The fourth batch (index 3) would start at row 3 + 0 + 5 = 8.
    expect(calls).toEqual([[3, 8, cause]]);
  });

  it('ends without calling onError when the reader ends', async () => {
    const fake: AsyncIterable<RecordBatch> = {
      async *[Symbol.asyncIterator]() {
        yield { numRows: 2 } as RecordBatch;
      },
    };
    const rows: number[] = [];
    for await (const b of readRecordBatches(fake, () => new Error('not expected'))) rows.push(b.numRows);
    expect(rows).toEqual([2]);
  });
});

describe('a record batch that cannot be read', () => {
  it('openArrow().batches(): DataError naming the batch and its first row, after the readable batches', async () => {
    const file = truncatedStream('arrow');
    const input = await openArrow(file);
    expect(input.format).toBe('stream');
    const labels: number[] = [];
    let err: unknown;
    try {
      for await (const b of input.batches()) labels.push(...(b.getChild('label')!.toArray() as Int32Array));
    } catch (e) {
      err = e;
    } finally {
      await input.close();
    }
    expect(labels).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(err).toBeInstanceOf(DataError);
    expect((err as Error).message).toMatch(
      new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: row 8: record batch 2 \\(starting at row 8\\) cannot be read \\(.+\\); the file is truncated or corrupt\\. Fix: write the file again and make sure the writer was closed$`),
    );
  });

  it('openSplitStream().chunks(): ArtifactError naming the row, with the reader error as cause, after the full chunks before it', async () => {
    const file = truncatedStream('split');
    const s = await openSplitStream(file);
    const starts: number[] = [];
    let err: unknown;
    try {
      for await (const c of s.chunks(3)) {
        starts.push(c.start);
        // Labels equal row indices in this file.
        expect(Array.from(c.y.subarray(0, c.n))).toEqual([c.start, c.start + 1, c.start + 2]);
      }
    } catch (e) {
      err = e;
    } finally {
      await s.close();
    }
    // Rows 0-7 were read: chunks [0,3) and [3,6) are complete; rows 6-7 wait for a third chunk.
    expect(starts).toEqual([0, 3]);
    expect(err).toBeInstanceOf(ArtifactError);
    expect((err as Error).message).toMatch(/^split file .*split\.arrows: the record batch at row 8 cannot be read \(.+\); the file is truncated or corrupt: re-run the ingest stage$/);
    expect((err as Error).cause).toBeInstanceOf(Error);
  });
});
