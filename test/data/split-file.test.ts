import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordBatchReader } from 'apache-arrow';
import { readSplit, subset, writeSplit, SPLIT_BATCH_ROWS, type LabeledSet } from '../../src/data/split-file.ts';
import { ArtifactError } from '../../src/util/errors.ts';
import { cleanup, filesIn, tmpDir } from '../fixtures/data/build.ts';

let dir: string;
beforeAll(() => {
  dir = tmpDir('split-file-');
});
afterAll(() => cleanup(dir));

function makeSet(n: number, dim: number, shape?: number[]): LabeledSet {
  const x = new Float32Array(n * dim);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i) * 1000;
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) y[i] = (i * 7) % 13;
  const s: LabeledSet = { x, y, n, dim };
  if (shape) s.shape = shape;
  return s;
}

describe('split files', () => {
  it('round-trips exactly over several record batches, with shape metadata', async () => {
    const n = SPLIT_BATCH_ROWS * 2 + 5;
    const set = makeSet(n, 6, [2, 3]);
    const f = path.join(dir, 'a', 'train.arrow');
    await writeSplit(f, set);
    expect(filesIn(path.dirname(f))).toEqual(['train.arrow']); // no temp file left behind
    const back = await readSplit(f);
    expect(back.n).toBe(n);
    expect(back.dim).toBe(6);
    expect(back.shape).toEqual([2, 3]);
    expect(Buffer.from(back.x.buffer).equals(Buffer.from(set.x.buffer))).toBe(true);
    expect(Array.from(back.y)).toEqual(Array.from(set.y));
    // It is an Arrow IPC *file* with 3 record batches and the documented schema.
    const bytes = readFileSync(f);
    expect(bytes.subarray(0, 6).toString('latin1')).toBe('ARROW1');
    const reader = RecordBatchReader.from(bytes);
    reader.open();
    expect(reader.isFile()).toBe(true);
    const schema = reader.schema;
    expect([...reader].map((b) => b.numRows)).toEqual([SPLIT_BATCH_ROWS, SPLIT_BATCH_ROWS, 5]);
    expect(schema.fields.map((fl) => `${fl.name}: ${String(fl.type)}`)).toEqual(['label: Int32', 'features: FixedSizeList[6]<Float32>']);
    expect(schema.metadata.get('shape')).toBe('[2,3]');
  });

  it('writes and reads an empty split, and a set without shape', async () => {
    const f = path.join(dir, 'empty.arrow');
    await writeSplit(f, { x: new Float32Array(0), y: new Int32Array(0), n: 0, dim: 4 });
    const back = await readSplit(f);
    expect(back).toMatchObject({ n: 0, dim: 4 });
    expect(back.shape).toBeUndefined();
  });

  it('overwrites atomically (the old file stays until the new one is complete)', async () => {
    const f = path.join(dir, 'over.arrow');
    await writeSplit(f, makeSet(10, 2));
    await writeSplit(f, makeSet(3, 2));
    expect((await readSplit(f)).n).toBe(3);
    expect(filesIn(dir).filter((x) => x.includes('over'))).toEqual(['over.arrow']);
  });

  it('missing or corrupt split files are ArtifactErrors', async () => {
    await expect(readSplit(path.join(dir, 'missing.arrow'))).rejects.toBeInstanceOf(ArtifactError);
    const good = path.join(dir, 'good.arrow');
    await writeSplit(good, makeSet(50, 3));
    const bad = path.join(dir, 'bad.arrow');
    writeFileSync(bad, readFileSync(good).subarray(0, 300));
    await expect(readSplit(bad)).rejects.toBeInstanceOf(ArtifactError);
    writeFileSync(bad, 'hello');
    await expect(readSplit(bad)).rejects.toThrow(/not a readable Arrow IPC file/);
  });

  it('subset picks rows in the given order', () => {
    const set = makeSet(5, 2, [2]);
    const s = subset(set, Int32Array.from([4, 0, 4]));
    expect(s.n).toBe(3);
    expect(Array.from(s.y)).toEqual([set.y[4], set.y[0], set.y[4]]);
    expect(Array.from(s.x)).toEqual([set.x[8], set.x[9], set.x[0], set.x[1], set.x[8], set.x[9]]);
    expect(s.shape).toEqual([2]);
    expect(() => subset(set, Int32Array.from([5]))).toThrow(RangeError);
  });

  it('reads 1M floats fast (copies per batch, no per-element get)', async () => {
    const set = makeSet(20_000, 50);
    const f = path.join(dir, 'big.arrow');
    await writeSplit(f, set);
    const t = performance.now();
    const back = await readSplit(f);
    const ms = performance.now() - t;
    expect(back.x[back.x.length - 1]).toBe(set.x[set.x.length - 1]);
    expect(ms).toBeLessThan(2000);
  });
});
