import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableFromIPC, type Table } from 'apache-arrow';
import { gb2312Characters, GB2312_ALL, GB2312_LEVEL1 } from '../../datasets/gb2312.ts';
import { findFonts, makeGlyphs, type GlyphsOptions } from '../../datasets/glyphs.ts';
import { parseRecipeOptions } from '../../datasets/recipes.ts';
import { parseDatasetArgs } from '../../datasets/cli.ts';
import { ingest } from '../../src/data/ingest.ts';
import { readSplit } from '../../src/data/split-file.ts';
import { sha256File } from '../../src/artifacts/hash.ts';
import { ConfigError, DataError } from '../../src/util/errors.ts';
import { Int32, Uint8 } from 'apache-arrow';
import { batchOf, cleanup, col, filesIn, fslCol, tmpDir, writeArrow } from '../fixtures/data/build.ts';

let dir: string;
beforeAll(() => {
  dir = tmpDir('glyphs-');
});
afterAll(() => cleanup(dir));

/** Options for a tiny render: 12 classes, 16 x 16. */
function tiny(over: Partial<GlyphsOptions> = {}): GlyphsOptions {
  return parseRecipeOptions('glyphs', { classes: 12, perClass: 3, validPerClass: 1, testPerClass: 2, size: 16, ...over }) as unknown as GlyphsOptions;
}

function read(f: string): Table {
  return tableFromIPC(readFileSync(f));
}

describe('GB2312 table', () => {
  it('has the standard order: level 1 from 啊 to 座, level 2 from 亍 to 齄', () => {
    const c = gb2312Characters();
    expect(c.length).toBe(GB2312_ALL);
    expect(GB2312_LEVEL1).toBe(3755);
    expect(c[0]).toBe('啊');
    expect(c[1]).toBe('阿');
    expect(c[GB2312_LEVEL1 - 1]).toBe('座');
    expect(c[GB2312_LEVEL1]).toBe('亍');
    expect(c[GB2312_ALL - 1]).toBe('齄');
    expect(new Set(c).size).toBe(GB2312_ALL);
    for (const ch of c) expect(ch.codePointAt(0)! >= 0x4e00 && ch.codePointAt(0)! <= 0x9fff).toBe(true);
  });
});

describe('glyphs recipe', () => {
  it('renders labelled 8-bit images with the schema, split sizes and metadata ingest needs', async () => {
    const f = path.join(dir, 'g.arrow');
    const r = await makeGlyphs(f, tiny());
    expect(r.characters).toEqual(gb2312Characters().slice(0, 12));
    const t = read(f);
    expect(t.numRows).toBe(12 * (3 + 1 + 2));
    expect(String(t.schema.fields.map((x) => x.name))).toBe('label,features,split,font');
    expect(String(t.getChild('features')!.type)).toBe('FixedSizeList[256]<Uint8>');
    expect(JSON.parse(t.schema.metadata.get('shape')!)).toEqual([16, 16, 1]);
    expect(t.schema.metadata.get('feature_scale')).toBe('1/255');
    const counts = new Map<string, number>();
    for (let i = 0; i < t.numRows; i++) {
      const k = `${String(t.getChild('label')!.get(i))}/${String(t.getChild('split')!.get(i))}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    for (const ch of r.characters) {
      expect(counts.get(`${ch}/train`)).toBe(3);
      expect(counts.get(`${ch}/valid`)).toBe(1);
      expect(counts.get(`${ch}/test`)).toBe(2);
    }
    // Every image has ink, but is not all ink, and a character's images differ (augmentation).
    const feats = t.getChild('features')!;
    for (let i = 0; i < t.numRows; i++) {
      const v = feats.get(i)!.toArray() as Uint8Array;
      let bright = 0;
      for (const p of v) if (p > 128) bright++;
      expect(bright).toBeGreaterThan(8);
      expect(bright).toBeLessThan(200);
    }
    const a = feats.get(0)!.toArray() as Uint8Array;
    const b = feats.get(12)!.toArray() as Uint8Array; // the same character, the next example
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);

    // Ingest: characters as class names, pixels scaled into [0, 1] by feature_scale, shape kept.
    const out = path.join(dir, 'g-out');
    const cls = await ingest({ input: f, outDir: out, seed: 1, validFraction: 0.1, testFraction: 0.1 });
    expect(cls.classes.map((c) => c.name).sort()).toEqual([...r.characters].sort());
    expect(cls.rows).toMatchObject({ train: 36, valid: 12, test: 24 });
    const test = await readSplit(path.join(out, 'test.arrow'));
    expect(test.shape).toEqual([16, 16, 1]);
    let max = 0;
    for (const v of test.x) max = Math.max(max, v);
    expect(max).toBeLessThanOrEqual(1);
    expect(max).toBeGreaterThan(0.5);
    // The first test row's pixels are the raw bytes / 255.
    const firstTest = (() => {
      for (let i = 0; i < t.numRows; i++) if (t.getChild('split')!.get(i) === 'test') return feats.get(i)!.toArray() as Uint8Array;
      throw new Error('no test row');
    })();
    for (let j = 0; j < 256; j++) expect(test.x[j]).toBeCloseTo(firstTest[j] / 255, 6);
    expect(filesIn(out).sort()).toEqual(['classes.json', 'test.arrow', 'train.arrow', 'valid.arrow']);
  });

  it('is deterministic for a seed and changes with it; --offset starts elsewhere in the table', async () => {
    const f1 = path.join(dir, 'd1.arrow');
    const f2 = path.join(dir, 'd2.arrow');
    const f3 = path.join(dir, 'd3.arrow');
    await makeGlyphs(f1, tiny({ classes: 4 }));
    await makeGlyphs(f2, tiny({ classes: 4 }));
    await makeGlyphs(f3, tiny({ classes: 4, seed: 2 }));
    expect(await sha256File(f1)).toBe(await sha256File(f2));
    expect(await sha256File(f1)).not.toBe(await sha256File(f3));
    const f4 = path.join(dir, 'd4.arrow');
    const r = await makeGlyphs(f4, tiny({ classes: 3, offset: GB2312_LEVEL1 }));
    expect(r.characters).toEqual(['亍', '丌', '兀']);
  });

  it("split 'font' keeps one font for test only", async () => {
    const fonts = findFonts();
    if (fonts.length < 2) throw new Error(`this test needs 2 CJK fonts (.ci/run installs fonts-wqy-microhei and fonts-droid-fallback); found ${fonts.map((x) => x.name).join(', ')}`);
    const use = [fonts[0].name, fonts[1].name];
    const f = path.join(dir, 'font.arrow');
    const r = await makeGlyphs(f, tiny({ split: 'font', fonts: use, testFont: use[0] }));
    expect(r.testFont).toBe(use[0]);
    const t = read(f);
    const seen = { test: new Set<string>(), other: new Set<string>() };
    for (let i = 0; i < t.numRows; i++) {
      const font = String(t.getChild('font')!.get(i));
      (t.getChild('split')!.get(i) === 'test' ? seen.test : seen.other).add(font);
    }
    expect([...seen.test]).toEqual([use[0]]);
    expect([...seen.other]).toEqual([use[1]]);
  });

  it('unlabeledPerClass adds unlabelled rows in the training fonts after the labelled ones, which stay the same; ingest writes them apart', async () => {
    const fonts = findFonts();
    if (fonts.length < 2) throw new Error(`this test needs 2 CJK fonts (.ci/run installs fonts-wqy-microhei and fonts-droid-fallback); found ${fonts.map((x) => x.name).join(', ')}`);
    const use = [fonts[0].name, fonts[1].name];
    const base = path.join(dir, 'u0.arrow');
    const more = path.join(dir, 'u1.arrow');
    await makeGlyphs(base, tiny({ classes: 5, split: 'font', fonts: use, testFont: use[0] }));
    await makeGlyphs(more, tiny({ classes: 5, split: 'font', fonts: use, testFont: use[0], unlabeledPerClass: 4 }));
    const a = read(base);
    const b = read(more);
    expect(b.numRows).toBe(a.numRows + 5 * 4);
    const fa = a.getChild('features')!;
    const fb = b.getChild('features')!;
    for (let i = 0; i < a.numRows; i++) {
      expect(Buffer.from(fb.get(i)!.toArray() as Uint8Array).equals(Buffer.from(fa.get(i)!.toArray() as Uint8Array))).toBe(true);
      expect(b.getChild('split')!.get(i)).toBe(a.getChild('split')!.get(i));
    }
    for (let i = a.numRows; i < b.numRows; i++) {
      expect(b.getChild('split')!.get(i)).toBe('unlabeled');
      expect(b.getChild('font')!.get(i)).toBe(use[1]); // never the held-out test font
    }
    const out = path.join(dir, 'u-out');
    const cls = await ingest({ input: more, outDir: out, seed: 1, validFraction: 0.1, testFraction: 0.1 });
    expect(cls.rows).toMatchObject({ train: 15, valid: 5, test: 10, unlabeled: 20 });
    expect(filesIn(out).sort()).toEqual(['classes.json', 'test.arrow', 'train.arrow', 'unlabeled.arrow', 'valid.arrow']);
  });

  it('bad options: one clear error each', async () => {
    expect(() => parseRecipeOptions('glyphs', { classes: 7000 })).toThrow(/classes.*6763/);
    expect(() => parseRecipeOptions('glyphs', { classes: 10, offset: 6760 })).toThrow(/offset \+ classes must be <= 6763/);
    expect(() => parseRecipeOptions('glyphs', { fonts: ['comic-sans'] })).toThrow(ConfigError);
    expect(() => parseRecipeOptions('glyphs', { perclass: 3 })).toThrow(/perclass: unknown key/);
    await expect(makeGlyphs(path.join(dir, 'x.arrow'), tiny({ testFont: findFonts()[0].name }))).rejects.toThrow(/testFont is only used with split 'font'/);
    await expect(makeGlyphs(path.join(dir, 'y.arrow'), tiny({ split: 'font', fonts: [findFonts()[0].name] }))).rejects.toThrow(DataError);
    expect(filesIn(dir).filter((x) => x.startsWith('x.') || x.startsWith('y.'))).toEqual([]);
  });

  it('the CLI takes kebab-case and comma lists: --per-class 5 --scale 0.6,0.9', () => {
    const a = parseDatasetArgs(['glyphs', '--classes', '20', '--per-class', '5', '--scale', '0.6,0.9', '--fonts', 'wqy-microhei,droid-fallback']);
    expect(a.options).toEqual({ classes: 20, perClass: 5, scale: [0.6, 0.9], fonts: ['wqy-microhei', 'droid-fallback'] });
    // One font has no comma: the CLI gives a string, the recipe takes it as a list of one.
    const one = parseDatasetArgs(['glyphs', '--fonts', 'wqy-microhei']);
    expect(parseRecipeOptions('glyphs', one.options).fonts).toEqual(['wqy-microhei']);
  });
});

describe("ingest's feature_scale metadata", () => {
  const rows = [[0, 255], [255, 0], [51, 102], [0, 0]];
  const file = (name: string, scale: string | null): string =>
    writeArrow(path.join(dir, name), [batchOf({ label: col([0, 1, 0, 1], new Int32()), features: fslCol(rows, 2, new Uint8()) }, scale === null ? {} : { feature_scale: scale })]);

  it('multiplies every feature on its way into the split files; absent means 1', async () => {
    for (const [scale, k] of [['1/255', 1 / 255], ['0.5', 0.5], [null, 1]] as const) {
      const out = path.join(dir, `fs-${String(k)}`);
      await ingest({ input: file(`fs-${String(k)}.arrow`, scale), outDir: out, seed: 1, validFraction: 0, testFraction: 0 });
      const train = await readSplit(path.join(out, 'train.arrow'));
      expect(Array.from(train.x)).toEqual(rows.flat().map((v) => Math.fround(v * k)));
    }
  });

  it('a value that is not a positive number is a DataError naming the key, and nothing is written', async () => {
    for (const bad of ['abc', '-1', '0', '1/0']) {
      const out = path.join(dir, `fs-bad-${bad.replace('/', '_')}`);
      await expect(ingest({ input: file('fs-bad.arrow', bad), outDir: out, seed: 1, validFraction: 0, testFraction: 0 })).rejects.toThrow(/feature_scale' must be a positive number/);
      expect(filesIn(out)).toEqual([]);
    }
  });
});
