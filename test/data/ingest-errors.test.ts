import { writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dictionary, Float32, Float64, Int32, Int8, List, Field, Utf8 } from 'apache-arrow';
import { ingest } from '../../src/data/ingest.ts';
import { ConfigError, DataError } from '../../src/util/errors.ts';
import { batchOf, cleanup, col, filesIn, fslCol, tmpDir, writeArrow } from '../fixtures/data/build.ts';

let dir: string;
beforeAll(() => {
  dir = tmpDir('ingest-errors-');
});
afterAll(() => cleanup(dir));

const f32 = new Float32();

/** A small valid base: 3 classes x 4 rows, dim 2. Columns may be overridden. */
function base(n = 12): { label: number[]; features: number[][] } {
  const label = Array.from({ length: n }, (_, i) => i % 3);
  const features = label.map((c, i) => [c, i]);
  return { label, features };
}

let counter = 0;
/**
 * Runs ingest on `file`, expects a DataError whose message contains every `mustContain`
 * fragment, and checks that the output folder got no file at all.
 */
async function expectDataError(file: string, mustContain: string[]): Promise<string> {
  const outDir = path.join(dir, `out-${counter++}`);
  let err: unknown;
  try {
    await ingest({ input: file, outDir, seed: 1, validFraction: 0.25, testFraction: 0.25 });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(DataError);
  const msg = (err as Error).message;
  expect(msg).toContain(file);
  for (const m of mustContain) expect(msg).toContain(m);
  expect(msg).toContain('Fix:');
  expect(filesIn(outDir)).toEqual([]);
  return msg;
}

function write(name: string, cols: Parameters<typeof batchOf>[0], metadata?: Record<string, string>, format: 'file' | 'stream' = 'file'): string {
  return writeArrow(path.join(dir, name), [batchOf(cols, metadata)], format);
}

function good(name: string): string {
  const b = base();
  return write(name, { label: col(b.label, new Int32()), features: fslCol(b.features, 2) });
}

describe('ingest rejects bad input with a DataError naming where and how to fix, writing nothing', () => {
  it('1. missing file', async () => {
    await expectDataError(path.join(dir, 'nope.arrow'), ['cannot open', 'ENOENT']);
  });

  it('2. empty (0-byte) file', async () => {
    const f = path.join(dir, 'empty.arrow');
    writeFileSync(f, '');
    await expectDataError(f, ['empty (0 bytes)']);
  });

  it('3. corrupt Parquet file (PAR1 magic, no footer; Parquet files are read, see parquet-ingest.test.ts)', async () => {
    const f = path.join(dir, 'x.parquet');
    writeFileSync(f, Buffer.concat([Buffer.from('PAR1'), Buffer.alloc(100), Buffer.from('PAR1')]));
    await expectDataError(f, ['cannot read the Parquet footer', 'corrupt', 'pyarrow']);
  });

  it('4. CSV text', async () => {
    const f = path.join(dir, 'x.csv');
    writeFileSync(f, 'label,f0,f1\n0,0.5,0.25\n1,0.1,0.2\n');
    await expectDataError(f, ['found text', 'label,f0,f1']);
  });

  it('5. random bytes (not Arrow)', async () => {
    const f = path.join(dir, 'random.bin');
    writeFileSync(f, Buffer.from([0x00, 0x01, 0x02, 0xff, 0x80, 0x00, 0x00, 0x00, 0x13, 0x37]));
    await expectDataError(f, ['not an Arrow IPC file']);
  });

  it('6. truncated IPC file', async () => {
    const full = readFileSync(good('good6.arrow'));
    const f = path.join(dir, 'trunc.arrow');
    writeFileSync(f, full.subarray(0, Math.floor(full.length * 0.6)));
    await expectDataError(f, ['truncated']);
  });

  it('7. truncated IPC stream', async () => {
    const b = base(400);
    const full = readFileSync(write('good7.arrows', { label: col(b.label, new Int32()), features: fslCol(b.features, 2) }, {}, 'stream'));
    const f = path.join(dir, 'trunc.arrows');
    writeFileSync(f, full.subarray(0, full.length - 1500));
    await expectDataError(f, ['truncated or corrupt']);
  });

  it('8. missing label column', async () => {
    const b = base();
    await expectDataError(write('nolabel.arrow', { target: col(b.label, new Int32()), features: fslCol(b.features, 2) }), ["column 'label'", 'missing the label column', 'target: Int32']);
  });

  it('9. missing features (no features column, no numeric columns)', async () => {
    const b = base();
    await expectDataError(write('nofeat.arrow', { label: col(b.label, new Int32()), name: col(b.label.map(String), new Utf8()) }), ["column 'features'", 'missing features']);
  });

  it('10. float labels', async () => {
    const b = base();
    await expectDataError(write('floatlabel.arrow', { label: col(b.label, new Float64()), features: fslCol(b.features, 2) }), ["column 'label'", 'Float64', 'integers']);
  });

  it('11. string features', async () => {
    const b = base();
    await expectDataError(write('strfeat.arrow', { label: col(b.label, new Int32()), features: col(b.features.map((r) => r.join(',')), new Utf8()) }), ["column 'features'", 'Utf8', 'FixedSizeList']);
  });

  it('12. FixedSizeList of strings', async () => {
    const b = base();
    const feats = col(
      b.features.map((r) => r.map(String)),
      new (await import('apache-arrow')).FixedSizeList(2, new Field('item', new Utf8(), true)),
    );
    await expectDataError(write('fslstr.arrow', { label: col(b.label, new Int32()), features: feats }), ["column 'features'", 'FixedSizeList of numbers']);
  });

  it('13. null label', async () => {
    const b = base();
    const labels: (number | null)[] = [...b.label];
    labels[5] = null;
    await expectDataError(write('nulllabel.arrow', { label: col(labels, new Int32()), features: fslCol(b.features, 2) }), ["column 'label', row 5", 'null']);
  });

  it('14. null feature vector', async () => {
    const b = base();
    const rows: (number[] | null)[] = [...b.features];
    rows[7] = null;
    await expectDataError(write('nullfeat.arrow', { label: col(b.label, new Int32()), features: fslCol(rows, 2) }), ["column 'features', row 7", 'null']);
  });

  it('15. null element inside a feature column (several numeric columns)', async () => {
    const b = base();
    const f1: (number | null)[] = b.features.map((r) => r[1]);
    f1[9] = null;
    await expectDataError(
      write('nullcol.arrow', { label: col(b.label, new Int32()), f0: col(b.features.map((r) => r[0]), f32), f1: col(f1, f32) }),
      ["column 'f1', row 9", 'null'],
    );
  });

  it('16. ragged List features', async () => {
    const b = base();
    const rows = b.features.map((r) => [...r]);
    rows[4] = [1, 2, 3];
    const feats = col(rows, new List(new Field('item', f32, true)));
    await expectDataError(write('ragged.arrow', { label: col(b.label, new Int32()), features: feats }), ["column 'features', row 4", 'ragged', 'has 3 values but row 0 has 2']);
  });

  it('17. NaN feature (names row and element)', async () => {
    const b = base();
    const rows = b.features.map((r) => [...r]);
    rows[10][1] = NaN;
    await expectDataError(write('nan.arrow', { label: col(b.label, new Int32()), features: fslCol(rows, 2) }), ["column 'features', row 10", 'NaN', 'element 1']);
  });

  it('18. Infinity in a numeric feature column (names the column)', async () => {
    const b = base();
    const f1 = b.features.map((r) => r[1]);
    f1[3] = -Infinity;
    await expectDataError(
      write('inf.arrow', { label: col(b.label, new Int32()), f0: col(b.features.map((r) => r[0]), new Float64()), f1: col(f1, new Float64()) }),
      ["column 'f1', row 3", '-Infinity'],
    );
  });

  it('19. Float64 feature overflowing float32', async () => {
    const b = base();
    const rows = b.features.map((r) => [...r]);
    rows[2][0] = 1e300;
    await expectDataError(write('overflow.arrow', { label: col(b.label, new Int32()), features: fslCol(rows, 2, new Float64()) }), ["column 'features', row 2", 'Infinity', 'overflow float32']);
  });

  it('20. negative label', async () => {
    const b = base();
    const labels = [...b.label];
    labels[6] = -1;
    await expectDataError(write('neg.arrow', { label: col(labels, new Int8()), features: fslCol(b.features, 2) }), ["column 'label', row 6", 'found -1']);
  });

  it('21. empty table (schema, no rows)', async () => {
    await expectDataError(write('zero.arrow', { label: col([], new Int32()), features: fslCol([], 2) }), ['empty (0 rows)']);
  });

  it('22. only one class', async () => {
    const b = base();
    await expectDataError(write('oneclass.arrow', { label: col(b.label.map(() => 4), new Int32()), features: fslCol(b.features, 2) }), ["column 'label'", 'only one class']);
  });

  it('22b. only one class (string labels)', async () => {
    const b = base();
    await expectDataError(write('oneclass-s.arrow', { label: col(b.label.map(() => 'cat'), new Utf8()), features: fslCol(b.features, 2) }), ["column 'label'", 'only one class ("cat")']);
  });

  it('23. a class present in test but absent from train', async () => {
    const b = base();
    const split = b.label.map((c) => (c === 2 ? 'test' : 'train'));
    await expectDataError(
      write('testonly.arrow', { label: col(b.label.map((c) => ['ant', 'bee', 'cow'][c]), new Utf8()), features: fslCol(b.features, 2), split: col(split, new Utf8()) }),
      ["column 'label', row 2", 'class "cow" appears in the test split', 'no training examples'],
    );
  });

  it('24. unknown split value', async () => {
    const b = base();
    const split = b.label.map(() => 'train');
    split[8] = 'validation';
    await expectDataError(write('badsplit.arrow', { label: col(b.label, new Int32()), features: fslCol(b.features, 2), split: col(split, new Utf8()) }), ["column 'split', row 8", '"validation"', 'train, valid, test or unlabeled']);
  });

  it('25. null split value', async () => {
    const b = base();
    const split: (string | null)[] = b.label.map(() => 'train');
    split[1] = null;
    await expectDataError(write('nullsplit.arrow', { label: col(b.label, new Int32()), features: fslCol(b.features, 2), split: col(split, new Utf8()) }), ["column 'split', row 1", 'null']);
  });

  it('26. numeric split column', async () => {
    const b = base();
    await expectDataError(write('numsplit.arrow', { label: col(b.label, new Int32()), features: fslCol(b.features, 2), split: col(b.label, new Int32()) }), ["column 'split'", 'Int32']);
  });

  it('27. integer labels with a gap: class 7 has no training examples', async () => {
    const labels = Array.from({ length: 40 }, (_, i) => [0, 1, 2, 3, 4, 5, 6, 8][i % 8]);
    const rows = labels.map((c, i) => [c, i]);
    await expectDataError(write('gap.arrow', { label: col(labels, new Int32()), features: fslCol(rows, 2) }), ["column 'label'", 'class 7 has no training examples']);
  });

  it('28. shape metadata whose product is not D', async () => {
    const b = base();
    await expectDataError(write('badshape.arrow', { label: col(b.label, new Int32()), features: fslCol(b.features, 2) }, { shape: '[3, 1]' }), ["column 'features'", '[3,1]', 'has 3 elements', '2 features']);
  });

  it('29. shape metadata that is not JSON', async () => {
    const b = base();
    await expectDataError(write('shapejson.arrow', { label: col(b.label, new Int32()), features: fslCol(b.features, 2) }, { shape: '28x28' }), ["'shape' is not JSON"]);
  });

  it('30. label index absurdly large', async () => {
    const b = base();
    const labels = [...b.label];
    labels[11] = 2_000_000_000;
    await expectDataError(write('huge.arrow', { label: col(labels, new Int32()), features: fslCol(b.features, 2) }), ["column 'label', row 11", 'larger than']);
  });

  it('31. split column without train rows', async () => {
    const b = base();
    await expectDataError(write('notrain.arrow', { label: col(b.label, new Int32()), features: fslCol(b.features, 2), split: col(b.label.map(() => 'test'), new Utf8()) }), ["column 'split'", 'no rows are in the train split']);
  });

  it('32. dictionary-encoded label with a null entry', async () => {
    const b = base();
    const labels: (string | null)[] = b.label.map((c) => ['a', 'b', 'c'][c]);
    labels[4] = null;
    await expectDataError(write('dictnull.arrow', { label: col(labels, new Dictionary(new Utf8(), new Int32())), features: fslCol(b.features, 2) }), ["column 'label', row 4", 'null']);
  });

  it('33. error in a later record batch names the global row', async () => {
    const b = base();
    const rows = b.features.map((r) => [...r]);
    rows[1][0] = NaN;
    const first = batchOf({ label: col(b.label, new Int32()), features: fslCol(b.features, 2) });
    const second = batchOf({ label: col(b.label, new Int32()), features: fslCol(rows, 2) });
    const f = writeArrow(path.join(dir, 'twobatch.arrows'), [first, second], 'stream');
    await expectDataError(f, ["column 'features', row 13", 'NaN']);
  });

  it('bad options are a ConfigError', async () => {
    const f = good('good-opts.arrow');
    await expect(ingest({ input: f, outDir: path.join(dir, 'o1'), seed: 1, validFraction: 0.6, testFraction: 0.5 })).rejects.toBeInstanceOf(ConfigError);
    await expect(ingest({ input: f, outDir: path.join(dir, 'o2'), seed: 1, validFraction: 0.1, testFraction: 0.1, limit: { train: 0 } })).rejects.toThrow(/limit\.train/);
    expect(filesIn(path.join(dir, 'o1'))).toEqual([]);
  });
});

describe('empty valid or test split (requireSplits, as the pipeline runs ingest)', () => {
  it('a test_fraction that rounds to no rows is refused before anything is written, naming the key', async () => {
    const b = base(6);
    const file = write('tiny-split.arrow', { label: col(b.label, new Int32()), features: fslCol(b.features, 2) });
    const outDir = path.join(dir, 'out-tiny-split');
    await expect(ingest({ input: file, outDir, seed: 1, validFraction: 0.3, testFraction: 0.001, requireSplits: true })).rejects.toThrow(
      /tiny-split\.arrow: the test split would be empty \(0 rows\): test_fraction 0\.001 of 6 rows rounds to none in every class; raise test_fraction; checkpoints are selected on valid/,
    );
    expect(filesIn(outDir)).toEqual([]);
    // Without requireSplits (the library default) it is a warning and an empty file.
    await ingest({ input: file, outDir, seed: 1, validFraction: 0.3, testFraction: 0.001 });
    expect(filesIn(outDir)).toContain('test.arrow');
  });
  it("a split column without 'valid' rows and valid_fraction 0 is refused", async () => {
    const b = base(6);
    const file = write('no-valid.arrow', { label: col(b.label, new Int32()), split: col(b.label.map((_, i) => (i < 3 ? 'train' : 'test')), new Utf8()), features: fslCol(b.features, 2) });
    await expect(ingest({ input: file, outDir: path.join(dir, 'out-no-valid'), seed: 1, validFraction: 0, testFraction: 0.2, requireSplits: true })).rejects.toThrow(
      /no-valid\.arrow: the valid split would be empty \(0 rows\): the split column has no 'valid' rows; add some/,
    );
  });
});
