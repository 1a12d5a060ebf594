import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordBatchReader } from 'apache-arrow';
import { makeSynthetic, syntheticCentres, type SyntheticOptions } from '../../datasets/synthetic.ts';
import { makeRecipe, parseRecipeOptions, recipeFileName } from '../../datasets/recipes.ts';
import { parseDatasetArgs } from '../../datasets/cli.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { cleanup, tmpDir } from '../fixtures/data/build.ts';

let dir: string;
beforeAll(() => {
  dir = tmpDir('bridges-');
});
afterAll(() => cleanup(dir));

const sha = (f: string): string => createHash('sha256').update(readFileSync(f)).digest('hex');

interface Rows {
  x: Float32Array[];
  y: number[];
  split: string[];
  meta: Record<string, unknown>;
}

function readRows(f: string): Rows {
  const reader = RecordBatchReader.from(readFileSync(f));
  const out: Rows = { x: [], y: [], split: [], meta: {} };
  for (const b of reader) {
    out.meta = JSON.parse(b.schema.metadata.get('synthetic') as string) as Record<string, unknown>;
    const feat = b.getChild('features')!;
    const d = (feat.type as { listSize: number }).listSize;
    const x = feat.data[0].children[0].values as Float32Array;
    const y = b.getChild('label')!.data[0].values as Int32Array;
    const s = b.getChild('split')!;
    for (let i = 0; i < b.numRows; i++) {
      out.x.push(x.slice(i * d, (i + 1) * d));
      out.y.push(y[i]);
      out.split.push(String(s.get(i)));
    }
  }
  return out;
}

const dist = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let j = 0; j < a.length; j++) s += (a[j] - b[j]) ** 2;
  return Math.sqrt(s);
};

describe('synthetic recipe without bridges is unchanged', () => {
  // sha256 of these files made by datasets/synthetic.ts BEFORE the bridges option existed
  // (same code path, same options); the option must not change a single byte when absent.
  it('byte-identical files for two option sets', async () => {
    const cases: [SyntheticOptions, string][] = [
      [{ classes: 12, groups: 3, dim: 5, perClass: 4, seed: 7 }, '441cdc9f80f63a2c614f03683723035c5c7ffcb876448d19ba9fef205f5b6463'],
      [
        { classes: 30, groups: 6, dim: 9, perClass: 3, seed: 3, groupSpread: 2, classSpread: 0.5, noise: 0.7, testPerClass: 2, validPerClass: 1 },
        'b0fe3b777e46249715722549c67f2d474cdac66c35afb94c14734dbc8b41971e',
      ],
    ];
    for (const [i, [opts, hash]] of cases.entries()) {
      const f = path.join(dir, `before-${i}.arrow`);
      await makeSynthetic(f, opts);
      expect(sha(f)).toBe(hash);
    }
  });

  it('the cache file name of existing configs is unchanged (synthetic-1k)', () => {
    const parsed = parseRecipeOptions('synthetic', { classes: 1000, groups: 100, dim: 64, perClass: 50, validPerClass: 10, testPerClass: 20, seed: 11 });
    expect(parsed.bridges).toBeUndefined();
    expect(recipeFileName('synthetic', parsed)).toBe('synthetic-35a313f6c9ce.arrow');
  });
});

describe('bridges option', () => {
  it('count, groups per bridge, home group first, distinct groups; other classes untouched', () => {
    const base: SyntheticOptions = { classes: 200, groups: 20, dim: 8, perClass: 2, seed: 5 };
    const plain = syntheticCentres(base);
    const withB = syntheticCentres({ ...base, bridges: { fraction: 0.25, groups: 4 } });
    expect(plain.bridges).toEqual([]);
    expect(withB.bridges).toHaveLength(50); // round(0.25 * 200)
    expect(Array.from(withB.groupCentres)).toEqual(Array.from(plain.groupCentres));
    const ks = new Set<number>();
    let prev = -1;
    for (const b of withB.bridges) {
      expect(b.cls).toBeGreaterThan(prev); // increasing class order, no repeats
      prev = b.cls;
      expect(b.groups[0]).toBe(b.cls % 20);
      expect(new Set(b.groups).size).toBe(b.groups.length);
      expect(b.groups.length).toBeGreaterThanOrEqual(2);
      expect(b.groups.length).toBeLessThanOrEqual(4);
      for (const g of b.groups) expect(g >= 0 && g < 20).toBe(true);
      expect(b.modes).toBeNull();
      ks.add(b.groups.length);
    }
    expect([...ks].sort()).toEqual([2, 3, 4]); // k is drawn from 2..4 (50 draws: all values occur)
    const isBridge = new Set(withB.bridges.map((b) => b.cls));
    for (let c = 0; c < 200; c++) {
      const a = Array.from(withB.classCentres.subarray(c * 8, c * 8 + 8));
      const p = Array.from(plain.classCentres.subarray(c * 8, c * 8 + 8));
      if (isBridge.has(c)) expect(a).not.toEqual(p);
      else expect(a).toEqual(p);
    }
    // groups capped at the number of groups; fraction 0 and 1
    expect(syntheticCentres({ ...base, classes: 6, groups: 2, bridges: { fraction: 1, groups: 5 } }).bridges.map((b) => b.groups.length)).toEqual([2, 2, 2, 2, 2, 2]);
    expect(syntheticCentres({ ...base, bridges: { fraction: 0, groups: 3 } }).bridges).toEqual([]);
    expect(() => syntheticCentres({ ...base, groups: 1, bridges: { fraction: 0.5, groups: 2 } })).toThrow(RangeError);
  });

  it("'between': the centre is the mean of its groups' centres (+ offset), equidistant from them", () => {
    // classSpread 0: a bridge centre is exactly the mean of its k group centres. Closed forms
    // for random group centres ~ N(0, s^2 I) in D dims: |mean - m_i|^2 ~ D s^2 (k-1)/k for its
    // own groups, |mean - m_other|^2 ~ D s^2 (1 + 1/k) for any other group.
    const D = 4000;
    const o: SyntheticOptions = { classes: 40, groups: 10, dim: D, perClass: 1, seed: 3, classSpread: 0, bridges: { fraction: 0.5, groups: 3 } };
    const { groupCentres, classCentres, bridges } = syntheticCentres(o);
    expect(bridges).toHaveLength(20);
    const g = (i: number): Float64Array => groupCentres.subarray(i * D, (i + 1) * D);
    for (const b of bridges) {
      const k = b.groups.length;
      const c = classCentres.subarray(b.cls * D, (b.cls + 1) * D);
      for (let j = 0; j < D; j += 97) {
        const mean = b.groups.reduce((s, gi) => s + groupCentres[gi * D + j], 0) / k;
        expect(c[j]).toBeCloseTo(mean, 5);
      }
      const own = b.groups.map((gi) => dist(c, g(gi)));
      const expectOwn = Math.sqrt((D * (k - 1)) / k);
      for (const d of own) expect(Math.abs(d / expectOwn - 1)).toBeLessThan(0.06);
      if (k === 2) expect(own[0]).toBeCloseTo(own[1], 2); // the midpoint: exactly equidistant
      const expectOther = Math.sqrt(D * (1 + 1 / k));
      for (let gi = 0; gi < 10; gi++) {
        if (b.groups.includes(gi)) continue;
        expect(Math.abs(dist(c, g(gi)) / expectOther - 1)).toBeLessThan(0.06);
      }
    }
    // with the class offset: bridge centre - mean of group centres has norm ~ classSpread sqrt(D)
    const o2 = { ...o, classSpread: 0.5 };
    const c2 = syntheticCentres(o2);
    for (const b of c2.bridges.slice(0, 5)) {
      const off = new Float64Array(D);
      for (let j = 0; j < D; j++) off[j] = c2.classCentres[b.cls * D + j] - b.groups.reduce((s, gi) => s + c2.groupCentres[gi * D + j], 0) / b.groups.length;
      expect(Math.abs(dist(off, new Float64Array(D)) / (0.5 * Math.sqrt(D)) - 1)).toBeLessThan(0.05);
    }
  });

  it("'between' file: non-bridge rows identical to the plain file, bridge rows around the new centre; metadata lists bridges", async () => {
    const base: SyntheticOptions = { classes: 20, groups: 4, dim: 6, perClass: 3, seed: 2 };
    const fa = path.join(dir, 'plain.arrow');
    const fb = path.join(dir, 'between.arrow');
    await makeSynthetic(fa, base);
    await makeSynthetic(fb, { ...base, bridges: { fraction: 0.3, groups: 3 } });
    const a = readRows(fa);
    const b = readRows(fb);
    const { bridges } = syntheticCentres({ ...base, bridges: { fraction: 0.3, groups: 3 } });
    const plain = syntheticCentres(base);
    const bridgeSet = new Set(bridges.map((x) => x.cls));
    expect(bridgeSet.size).toBe(6);
    expect(b.y).toEqual(a.y);
    expect(b.split).toEqual(a.split);
    const centres = syntheticCentres({ ...base, bridges: { fraction: 0.3, groups: 3 } }).classCentres;
    for (let r = 0; r < a.y.length; r++) {
      const c = a.y[r];
      if (!bridgeSet.has(c)) expect(Array.from(b.x[r])).toEqual(Array.from(a.x[r]));
      else {
        // same noise vector, moved by (new centre - old centre)
        for (let j = 0; j < 6; j++) {
          const noiseA = a.x[r][j] - plain.classCentres[c * 6 + j];
          const noiseB = b.x[r][j] - centres[c * 6 + j];
          expect(noiseB).toBeCloseTo(noiseA, 4);
        }
      }
    }
    expect(b.meta.bridges).toEqual({ fraction: 0.3, groups: 3, mode: 'between' });
    expect(b.meta.bridge_groups).toEqual(Object.fromEntries(bridges.map((x) => [String(x.cls), x.groups])));
    expect(a.meta.bridges).toBeUndefined();
    expect(a.meta.bridge_groups).toBeUndefined();
  });

  it("'mixture': modes sit in each group, examples (noise 0) are exactly one of their class's modes, about uniformly", async () => {
    const opts: SyntheticOptions = { classes: 30, groups: 5, dim: 10, perClass: 300, validPerClass: 0, testPerClass: 0, seed: 8, groupSpread: 3, classSpread: 0.1, noise: 0, bridges: { fraction: 0.2, groups: 3, mode: 'mixture' } };
    const { groupCentres, classCentres, bridges } = syntheticCentres(opts);
    expect(bridges).toHaveLength(6);
    const D = 10;
    for (const b of bridges) {
      const k = b.groups.length;
      expect(b.modes).not.toBeNull();
      const modes = b.modes as Float32Array;
      expect(modes.length).toBe(k * D);
      // mode 0 is the usual class centre; mode i is within classSpread-scale of group i's centre
      expect(Array.from(modes.subarray(0, D))).toEqual(Array.from(classCentres.subarray(b.cls * D, (b.cls + 1) * D)));
      for (let i = 0; i < k; i++) {
        const dOwn = dist(modes.subarray(i * D, (i + 1) * D), groupCentres.subarray(b.groups[i] * D, (b.groups[i] + 1) * D));
        expect(dOwn).toBeLessThan(1); // ~ 0.1 sqrt(10) = 0.32; other groups are ~ 3 sqrt(20) = 13 away
        for (let g = 0; g < 5; g++) {
          if (g !== b.groups[i]) expect(dist(modes.subarray(i * D, (i + 1) * D), groupCentres.subarray(g * D, (g + 1) * D))).toBeGreaterThan(4);
        }
      }
    }
    const f = path.join(dir, 'mixture.arrow');
    await makeSynthetic(f, opts);
    const rows = readRows(f);
    expect(rows.meta.bridges).toEqual({ fraction: 0.2, groups: 3, mode: 'mixture' });
    const byCls = new Map(bridges.map((b) => [b.cls, b]));
    const hits = new Map(bridges.map((b) => [b.cls, new Array<number>(b.groups.length).fill(0)]));
    for (let r = 0; r < rows.y.length; r++) {
      const c = rows.y[r];
      const b = byCls.get(c);
      if (!b) {
        expect(Array.from(rows.x[r])).toEqual(Array.from(classCentres.subarray(c * D, (c + 1) * D)));
        continue;
      }
      const modes = b.modes as Float32Array;
      const m = b.groups.findIndex((_, i) => dist(rows.x[r], modes.subarray(i * D, (i + 1) * D)) === 0);
      expect(m).toBeGreaterThanOrEqual(0);
      hits.get(c)![m]++;
    }
    // 300 examples per bridge class, k modes chosen uniformly: each count ~ Binomial(300, 1/k)
    for (const [c, h] of hits) {
      const k = h.length;
      expect(h.reduce((s, v) => s + v, 0)).toBe(300);
      const sd = Math.sqrt((300 * (k - 1)) / (k * k));
      for (const v of h) expect(Math.abs(v - 300 / k)).toBeLessThan(4 * sd + 1);
      void c;
    }
    // deterministic
    const f2 = path.join(dir, 'mixture2.arrow');
    await makeSynthetic(f2, opts);
    expect(sha(f2)).toBe(sha(f));
  });

  it('recipe options: validated, defaulted, and the CLI takes dotted keys', async () => {
    const p = parseRecipeOptions('synthetic', { classes: 10, groups: 5, bridges: { fraction: 0.2, groups: 2 } });
    expect(p.bridges).toEqual({ fraction: 0.2, groups: 2, mode: 'between' });
    expect(() => parseRecipeOptions('synthetic', { bridges: { fraction: 1.5, groups: 2 } })).toThrow(/dataset\.options\.bridges\.fraction/);
    expect(() => parseRecipeOptions('synthetic', { bridges: { fraction: 0.1, groups: 1 } })).toThrow(/dataset\.options\.bridges\.groups/);
    expect(() => parseRecipeOptions('synthetic', { bridges: { fraction: 0.1, groups: 2, mode: 'blend' } })).toThrow(/dataset\.options\.bridges\.mode/);
    expect(() => parseRecipeOptions('synthetic', { bridges: { fraction: 0.1, groups: 2, extra: 1 } })).toThrow(/dataset\.options\.bridges\.extra: unknown key/);
    expect(() => parseRecipeOptions('synthetic', { classes: 10, groups: 1, bridges: { fraction: 0.1, groups: 2 } })).toThrow(ConfigError);
    expect(() => parseRecipeOptions('synthetic', { classes: 10, groups: 1, bridges: { fraction: 0.1, groups: 2 } })).toThrow(/dataset\.options\.bridges: bridges need at least 2 groups/);
    const plain = parseRecipeOptions('synthetic', { classes: 10, groups: 5 });
    expect(recipeFileName('synthetic', p)).not.toBe(recipeFileName('synthetic', plain));
    const args = parseDatasetArgs(['synthetic', '--classes', '10', '--bridges.fraction', '0.2', '--bridges.groups=3', '--bridges.mode', 'mixture']);
    expect(args.options).toEqual({ classes: 10, bridges: { fraction: 0.2, groups: 3, mode: 'mixture' } });
    expect(() => parseDatasetArgs(['synthetic', '--bridges', '1', '--bridges.groups', '2'])).toThrow(/--bridges was already given a plain value/);
    // through makeRecipe with parsed options
    const f = path.join(dir, 'recipe-bridges.arrow');
    await makeRecipe('synthetic', parseRecipeOptions('synthetic', { classes: 10, groups: 5, dim: 3, perClass: 2, bridges: { fraction: 0.2, groups: 2 } }), f);
    const rows = readRows(f);
    expect(Object.keys(rows.meta.bridge_groups as Record<string, unknown>)).toHaveLength(2);
  });
});
