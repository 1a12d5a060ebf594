import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RecordBatchReader } from 'apache-arrow';
import { makeMnist, mnistDataDir, parseIdx } from '../../datasets/mnist.ts';
import { makeSynthetic, normalCdf, syntheticSeparation } from '../../datasets/synthetic.ts';
import { ensureRecipe, parseRecipeOptions, recipeFileName } from '../../datasets/recipes.ts';
import { main, parseDatasetArgs } from '../../datasets/cli.ts';
import { ingest } from '../../src/data/ingest.ts';
import { readSplit } from '../../src/data/split-file.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { cleanup, filesIn, tmpDir } from '../fixtures/data/build.ts';

let dir: string;
beforeAll(() => {
  dir = tmpDir('recipes-');
});
afterAll(() => cleanup(dir));

describe('mnist recipe', () => {
  it('makes train/test from the IDX files (limit 500/100): shapes, labels, value range', async () => {
    const f = path.join(dir, 'mnist.arrow');
    await makeMnist(f, { limitTrain: 500, limitTest: 100 });
    const out = path.join(dir, 'mnist-out');
    const cls = await ingest({ input: f, outDir: out, seed: 1, validFraction: 0.1, testFraction: 0.1 });
    expect(cls.dim).toBe(784);
    expect(cls.shape).toEqual([28, 28, 1]);
    expect(cls.classes.map((c) => c.name)).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(cls.rows.test).toBe(100); // the file's own test split
    expect(cls.rows.train + cls.rows.valid).toBe(500);
    const test = await readSplit(path.join(out, 'test.arrow'));
    expect(test.shape).toEqual([28, 28, 1]);
    // test rows are the first 100 t10k images in order: compare with the IDX bytes directly
    const data = mnistDataDir();
    const images = parseIdx(readFileSync(path.join(data, 't10k-images-idx3-ubyte')), 'images');
    const labels = parseIdx(readFileSync(path.join(data, 't10k-labels-idx1-ubyte')), 'labels');
    expect(images.dims).toEqual([10000, 28, 28]);
    expect(test.y[0]).toBe(7); // the first MNIST test digit is a 7
    for (let i = 0; i < 100; i++) expect(test.y[i]).toBe(labels.data[i]);
    for (let j = 0; j < 784 * 100; j += 37) expect(test.x[j]).toBeCloseTo(images.data[j] / 255, 6);
    let min = Infinity;
    let max = -Infinity;
    for (const v of test.x) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    expect(min).toBe(0);
    expect(max).toBe(1);
    const train = await readSplit(path.join(out, 'train.arrow'));
    expect(train.x.length).toBe(train.n * 784);
  });
});

describe('synthetic recipe', () => {
  it('small: rows per split, groups structure (noise 0 gives exact centres), determinism', async () => {
    const opts = { classes: 6, groups: 2, dim: 8, perClass: 5, seed: 4, groupSpread: 5, classSpread: 0.1, noise: 0 };
    const f = path.join(dir, 'syn.arrow');
    await makeSynthetic(f, opts);
    const out = path.join(dir, 'syn-out');
    const cls = await ingest({ input: f, outDir: out, seed: 1, validFraction: 0.1, testFraction: 0.1 });
    // validPerClass = max(1, round(5/10)) = 1, testPerClass = max(1, round(5/5)) = 1
    expect(cls.rows).toEqual({ train: 30, valid: 6, test: 6 });
    for (const c of cls.classes) expect(c.counts).toEqual({ train: 5, valid: 1, test: 1 });
    const train = await readSplit(path.join(out, 'train.arrow'));
    expect(train.shape).toEqual([8]);
    const centre: Float32Array[] = [];
    for (let r = 0; r < train.n; r++) {
      const row = train.x.subarray(r * 8, r * 8 + 8);
      const c = train.y[r];
      if (!centre[c]) centre[c] = row;
      else expect(Array.from(row)).toEqual(Array.from(centre[c])); // noise 0: every example is the centre
    }
    const dist = (a: number, b: number): number => Math.hypot(...Array.from(centre[a]).map((v, j) => v - centre[b][j]));
    // group of class c is c mod 2: same-group distances ~ 0.1*sqrt(16) = 0.4, across ~ 5*sqrt(16) = 20
    for (let a = 0; a < 6; a++) {
      for (let b = a + 1; b < 6; b++) {
        if (a % 2 === b % 2) expect(dist(a, b)).toBeLessThan(2);
        else expect(dist(a, b)).toBeGreaterThan(4);
      }
    }
    const f2 = path.join(dir, 'syn2.arrow');
    await makeSynthetic(f2, opts);
    expect(readFileSync(f2).equals(readFileSync(f))).toBe(true);
    const f3 = path.join(dir, 'syn3.arrow');
    await makeSynthetic(f3, { ...opts, seed: 5 });
    expect(readFileSync(f3).equals(readFileSync(f))).toBe(false);
  });

  it('noise has the requested standard deviation', async () => {
    const f = path.join(dir, 'noise.arrow');
    await makeSynthetic(f, { classes: 2, groups: 1, dim: 50, perClass: 200, seed: 9, noise: 2, testPerClass: 0, validPerClass: 0 });
    const reader = RecordBatchReader.from(readFileSync(f));
    let sq = 0;
    let count = 0;
    const xs: Float32Array[] = [];
    const ys: number[] = [];
    for (const b of reader) {
      const x = b.getChild('features')!.data[0].children[0].values as Float32Array;
      const y = b.getChild('label')!.data[0].values as Int32Array;
      for (let i = 0; i < b.numRows; i++) {
        xs.push(x.subarray(i * 50, (i + 1) * 50));
        ys.push(y[i]);
      }
    }
    // class means, then pooled variance of deviations: should be noise^2 = 4
    const mean = [new Float64Array(50), new Float64Array(50)];
    const n = [0, 0];
    xs.forEach((r, i) => {
      n[ys[i]]++;
      r.forEach((v, j) => (mean[ys[i]][j] += v));
    });
    mean.forEach((m, c) => m.forEach((_, j) => (m[j] /= n[c])));
    xs.forEach((r, i) =>
      r.forEach((v, j) => {
        const d = v - mean[ys[i]][j];
        sq += d * d;
        count++;
      }),
    );
    expect(count).toBe(400 * 50);
    expect(Math.sqrt(sq / count)).toBeGreaterThan(1.9);
    expect(Math.sqrt(sq / count)).toBeLessThan(2.1);
  });

  it('10,000 classes x 2 per class (dim 64) generates quickly', async () => {
    const f = path.join(dir, 'syn10k.arrow');
    const t = performance.now();
    await makeSynthetic(f, { classes: 10_000, groups: 1000, dim: 64, perClass: 2, seed: 1 });
    const ms = performance.now() - t;
    const reader = RecordBatchReader.from(readFileSync(f));
    let rows = 0;
    let maxLabel = 0;
    for (const b of reader) {
      rows += b.numRows;
      const y = b.getChild('label')!.data[0].values as Int32Array;
      for (const v of y) maxLabel = Math.max(maxLabel, v);
    }
    expect(rows).toBe(10_000 * (2 + 1 + 1));
    expect(maxLabel).toBe(9999);
    expect(ms).toBeLessThan(15_000);
  });

  it('separation formulas match closed forms', () => {
    expect(normalCdf(0)).toBeCloseTo(0.5, 7);
    expect(normalCdf(1.959964)).toBeCloseTo(0.975, 6);
    expect(normalCdf(-1)).toBeCloseTo(0.158655, 6);
    const s = syntheticSeparation({ dim: 64 });
    expect(s.withinDistance).toBeCloseTo(0.3 * Math.sqrt(128), 10);
    expect(s.acrossDistance).toBeCloseTo(Math.sqrt(128 * 1.09), 10);
    expect(s.withinPairError).toBeCloseTo(normalCdf(-(0.3 * Math.sqrt(128)) / 2), 10);
    expect(s.withinPairError).toBeGreaterThan(0.04);
    expect(s.withinPairError).toBeLessThan(0.05);
    expect(s.acrossPairError).toBeLessThan(1e-8);
  });
});

describe('ensureRecipe', () => {
  it('validates options: unknown keys and bad values are ConfigErrors with the path', () => {
    expect(() => parseRecipeOptions('synthetic', { clases: 3 })).toThrow(ConfigError);
    expect(() => parseRecipeOptions('synthetic', { clases: 3 })).toThrow(/dataset\.options\.clases: unknown key/);
    expect(() => parseRecipeOptions('synthetic', { classes: 10, groups: 20 })).toThrow(/dataset\.options\.groups/);
    expect(() => parseRecipeOptions('mnist', { limitTrain: -5 })).toThrow(/dataset\.options\.limitTrain/);
    expect(() => parseRecipeOptions('mnist', { limitTrain: 70000 })).toThrow(ConfigError);
  });

  it('caches by a hash of the defaulted options', async () => {
    const cache = path.join(dir, 'cache');
    const opts = { classes: 4, groups: 2, dim: 3, perClass: 3 };
    const a = await ensureRecipe('synthetic', opts, cache);
    expect(path.basename(a)).toMatch(/^synthetic-[0-9a-f]{12}\.arrow$/);
    expect(filesIn(cache)).toEqual([path.basename(a)]);
    const mtime = statSync(a).mtimeMs;
    // same options in another order, plus an explicit default: same file, not rewritten
    const b = await ensureRecipe('synthetic', { perClass: 3, dim: 3, groups: 2, classes: 4, noise: 1 }, cache);
    expect(b).toBe(a);
    expect(statSync(b).mtimeMs).toBe(mtime);
    const c = await ensureRecipe('synthetic', { ...opts, seed: 2 }, cache);
    expect(c).not.toBe(a);
    expect(recipeFileName('mnist', parseRecipeOptions('mnist', {}))).toMatch(/^mnist-[0-9a-f]{12}\.arrow$/);
    await expect(ensureRecipe('synthetic', { bogus: true }, cache)).rejects.toBeInstanceOf(ConfigError);
  });
});

describe('dataset CLI', () => {
  it('parses NAME --key value / --key=value with numbers converted', () => {
    expect(parseDatasetArgs(['synthetic', '--classes', '1000', '--groups=100', '--noise', '0.5', '--out', 'data/s.arrow'])).toEqual({
      name: 'synthetic',
      out: 'data/s.arrow',
      cache: path.join('artifacts', 'datasets'),
      options: { classes: 1000, groups: 100, noise: 0.5 },
      force: false,
      help: false,
    });
    expect(parseDatasetArgs(['mnist', '--force', '--out', 'm.arrow']).force).toBe(true);
    expect(() => parseDatasetArgs([])).toThrow(ConfigError);
    expect(() => parseDatasetArgs(['cifar'])).toThrow(/unknown dataset "cifar"/);
    expect(() => parseDatasetArgs(['mnist', '--limitTrain'])).toThrow(/needs a value/);
    expect(() => parseDatasetArgs(['mnist', 'stray'])).toThrow(/unexpected argument/);
  });

  it('bad arguments: one line on stderr, exit status 2; good ones write the file and a summary', async () => {
    const err: string[] = [];
    const out: string[] = [];
    const se = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true));
    const so = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
    try {
      expect(await main(['synthetic', '--clases', '3'])).toBe(2);
      expect(err.join('')).toMatch(/^error: .*clases: unknown key.*\n$/);
      expect(err.join('').trim().split('\n')).toHaveLength(1);
      err.length = 0;
      const f = path.join(dir, 'cli', 's.arrow');
      expect(await main(['synthetic', '--classes', '5', '--groups', '1', '--dim', '2', '--perClass', '4', '--out', f])).toBe(0);
      expect(out.join('')).toContain(`wrote ${f}`);
      expect(out.join('')).toContain('labels: 5 distinct classes');
      expect(out.join('')).toContain('rows: 30');
      // An existing file is the user's: refused (one error line, the file as it was) unless --force.
      const args = ['synthetic', '--classes', '6', '--groups', '1', '--dim', '2', '--perClass', '4', '--out', f];
      const before = readFileSync(f);
      err.length = 0;
      expect(await main(args)).toBe(2);
      expect(err.join('')).toMatch(/^error: --out .*s\.arrow already exists and was not written by distill-kit; choose another --out path, or add --force to replace it\n$/);
      expect(readFileSync(f).equals(before)).toBe(true);
      out.length = 0;
      expect(await main([...args, '--force'])).toBe(0);
      expect(out.join('')).toContain('labels: 6 distinct classes');
    } finally {
      se.mockRestore();
      so.mockRestore();
    }
  });
});
