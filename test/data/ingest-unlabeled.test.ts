import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Int32, Utf8 } from 'apache-arrow';
import { ingest, UNLABELED_FILE } from '../../src/data/ingest.ts';
import { readSplit } from '../../src/data/split-file.ts';
import { makeSynthetic } from '../../datasets/synthetic.ts';
import { batchOf, cleanup, col, filesIn, fslCol, tmpDir, writeArrow } from '../fixtures/data/build.ts';

let dir: string;
beforeAll(() => {
  dir = tmpDir('ingest-unlabeled-');
});
afterAll(() => cleanup(dir));

const SPLITS = ['train.arrow', 'valid.arrow', 'test.arrow'];

describe("ingest: rows with split = 'unlabeled'", () => {
  it('go to unlabeled.arrow with label -1 (null labels allowed); the other splits are what they are without them', async () => {
    // 30 labelled rows (3 classes; 20 train, 5 valid, 5 test) and 7 unlabeled rows interleaved, some with null labels
    const labelled = Array.from({ length: 30 }, (_, i) => ({ label: i % 3, x: i, split: i < 20 ? 'train' : i < 25 ? 'valid' : 'test' }));
    const extra = Array.from({ length: 7 }, (_, i) => ({ label: i % 2 === 0 ? null : 99, x: 100 + i, split: 'unlabeled' }));
    const mixed = [...labelled.slice(0, 10), ...extra.slice(0, 4), ...labelled.slice(10), ...extra.slice(4)];
    const file = (rows: typeof mixed, name: string): string =>
      writeArrow(path.join(dir, name), [batchOf({ label: col(rows.map((r) => r.label), new Int32()), features: fslCol(rows.map((r) => [r.x, -r.x]), 2), split: col(rows.map((r) => r.split), new Utf8()) })]);
    const withOut = path.join(dir, 'with');
    const withoutOut = path.join(dir, 'without');
    const cls = await ingest({ input: file(mixed, 'mixed.arrow'), outDir: withOut, seed: 1, validFraction: 0.1, testFraction: 0.1 });
    await ingest({ input: file(labelled, 'plain.arrow'), outDir: withoutOut, seed: 1, validFraction: 0.1, testFraction: 0.1 });
    expect(filesIn(withOut)).toEqual(['classes.json', 'test.arrow', 'train.arrow', UNLABELED_FILE, 'valid.arrow']);
    // class 99 appears only on an unlabeled row: not a class
    expect(cls.classes.map((c) => c.name)).toEqual(['0', '1', '2']);
    expect(cls.rows).toEqual({ train: 20, valid: 5, test: 5, unlabeled: 7 });
    const u = await readSplit(path.join(withOut, UNLABELED_FILE));
    expect(u.n).toBe(7);
    expect(Array.from(u.y)).toEqual(new Array(7).fill(-1));
    expect(Array.from(u.x)).toEqual(extra.flatMap((r) => [r.x, -r.x])); // input order
    for (const f of SPLITS) expect(readFileSync(path.join(withOut, f))).toEqual(readFileSync(path.join(withoutOut, f)));
    const plain = JSON.parse(readFileSync(path.join(withoutOut, 'classes.json'), 'utf8'));
    expect(plain.rows).toEqual({ train: 20, valid: 5, test: 5 }); // no `unlabeled` key without such rows
  });

  it('string labels: a name seen only on unlabeled rows is not a class; a null label on a labelled row is still an error', async () => {
    const rows = [
      { label: 'cat', split: 'train' },
      { label: 'dog', split: 'train' },
      { label: 'cat', split: 'test' },
      { label: 'dog', split: 'test' },
      { label: 'emu', split: 'unlabeled' },
      { label: null, split: 'unlabeled' },
    ];
    const f = writeArrow(path.join(dir, 'str.arrow'), [batchOf({ label: col(rows.map((r) => r.label), new Utf8()), features: fslCol(rows.map((_, i) => [i]), 1), split: col(rows.map((r) => r.split), new Utf8()) })]);
    const cls = await ingest({ input: f, outDir: path.join(dir, 'str'), seed: 1, validFraction: 0.1, testFraction: 0.1 });
    expect(cls.classes.map((c) => c.name)).toEqual(['cat', 'dog']);
    expect(cls.rows.unlabeled).toBe(2);
    const bad = [...rows.slice(0, 4), { label: null, split: 'train' }];
    const g = writeArrow(path.join(dir, 'strbad.arrow'), [batchOf({ label: col(bad.map((r) => r.label), new Utf8()), features: fslCol(bad.map((_, i) => [i]), 1), split: col(bad.map((r) => r.split), new Utf8()) })]);
    await expect(ingest({ input: g, outDir: path.join(dir, 'strbad'), seed: 1, validFraction: 0.1, testFraction: 0.1 })).rejects.toThrow(/row 4.*the label is null.*split = 'unlabeled'/s);
  });

  it('an unknown split value names the accepted ones, unlabeled included', async () => {
    const f = writeArrow(path.join(dir, 'badsplit.arrow'), [batchOf({ label: col([0, 1], new Int32()), features: fslCol([[0], [1]], 1), split: col(['train', 'unlabelled'], new Utf8()) })]);
    await expect(ingest({ input: f, outDir: path.join(dir, 'badsplit'), seed: 1, validFraction: 0.1, testFraction: 0.1 })).rejects.toThrow(/row 1.*"unlabelled".*train, valid, test or unlabeled/s);
  });
});

describe('synthetic recipe: unlabeledPerClass', () => {
  it('adds C x k unlabeled rows after the others, leaving train/valid/test byte-identical', async () => {
    const opts = { classes: 6, groups: 2, dim: 4, perClass: 10, seed: 5 };
    const a = path.join(dir, 'syn-a.arrow');
    const b = path.join(dir, 'syn-b.arrow');
    await makeSynthetic(a, opts);
    await makeSynthetic(b, { ...opts, unlabeledPerClass: 3 });
    const ia = path.join(dir, 'syn-a');
    const ib = path.join(dir, 'syn-b');
    await ingest({ input: a, outDir: ia, seed: 1, validFraction: 0.1, testFraction: 0.1 });
    const cls = await ingest({ input: b, outDir: ib, seed: 1, validFraction: 0.1, testFraction: 0.1 });
    expect(cls.rows.unlabeled).toBe(18);
    for (const f of SPLITS) expect(readFileSync(path.join(ib, f))).toEqual(readFileSync(path.join(ia, f)));
    const u = await readSplit(path.join(ib, UNLABELED_FILE));
    expect(u.n).toBe(18);
    expect(u.y.every((y) => y === -1)).toBe(true);
    // drawn like the training rows: features are finite and not copies of train rows
    const train = await readSplit(path.join(ib, 'train.arrow'));
    expect(u.x.every(Number.isFinite)).toBe(true);
    expect(Array.from(u.x.subarray(0, 4))).not.toEqual(Array.from(train.x.subarray(0, 4)));
  });
});
