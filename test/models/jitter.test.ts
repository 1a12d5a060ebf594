import { describe, expect, it } from 'vitest';
import { imageShape, jitterBatch, shiftImage } from '../../src/models/jitter.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';

/** Index of the single non-zero value, or -1 when all are zero. */
function hot(a: Float32Array): number {
  let at = -1;
  a.forEach((v, i) => {
    if (v !== 0) at = i;
  });
  return at;
}

describe('shiftImage', () => {
  const img = { h: 5, w: 4, c: 2 };
  const oneHot = (y: number, x: number, ch: number): Float32Array => {
    const a = new Float32Array(5 * 4 * 2);
    a[(y * 4 + x) * 2 + ch] = 1;
    return a;
  };

  it('moves a one-hot pixel by (dy, dx), keeping its channel', () => {
    for (const [dy, dx] of [[0, 0], [1, 0], [0, 1], [-2, 1], [2, -3], [-1, -1]] as const) {
      const dst = new Float32Array(40);
      shiftImage(oneHot(2, 3, 1), dst, img, dy, dx);
      const [y, x] = [2 + dy, 3 + dx];
      const inside = y >= 0 && y < 5 && x >= 0 && x < 4;
      expect(hot(dst)).toBe(inside ? (y * 4 + x) * 2 + 1 : -1);
    }
  });

  it('fills the uncovered border with zeros and keeps the rest', () => {
    const src = Float32Array.from({ length: 40 }, (_, i) => i + 1);
    const dst = new Float32Array(40);
    shiftImage(src, dst, img, 1, -1);
    for (let y = 0; y < 5; y++)
      for (let x = 0; x < 4; x++)
        for (let ch = 0; ch < 2; ch++) {
          const sy = y - 1;
          const sx = x + 1;
          const want = sy >= 0 && sx < 4 ? src[(sy * 4 + sx) * 2 + ch] : 0;
          expect(dst[(y * 4 + x) * 2 + ch]).toBe(want);
        }
  });
});

describe('jitterBatch', () => {
  it('shifts each row by seeded shifts in [-j, j] (dy then dx from the rng)', () => {
    const img = { h: 9, w: 9, c: 1 };
    const rows = 200;
    const x = new Float32Array(rows * 81);
    for (let r = 0; r < rows; r++) x[r * 81 + 4 * 9 + 4] = 1; // centre pixel
    const out = jitterBatch(x, rows, img, 2, new Rng(5));
    const ref = new Rng(5);
    const seen = new Set<string>();
    for (let r = 0; r < rows; r++) {
      const dy = ref.int(5) - 2;
      const dx = ref.int(5) - 2;
      seen.add(`${dy},${dx}`);
      expect(hot(out.subarray(r * 81, (r + 1) * 81))).toBe((4 + dy) * 9 + (4 + dx));
    }
    expect(seen.size).toBe(25); // every shift in [-2, 2]^2 occurs
    expect(x[4 * 9 + 4]).toBe(1); // input untouched
    // the same seed gives the same batch
    expect(Array.from(jitterBatch(x, rows, img, 2, new Rng(5)))).toEqual(Array.from(out));
  });

  it('is the identity for maxShift 0', () => {
    const x = new Float32Array([1, 2, 3, 4]);
    expect(jitterBatch(x, 1, { h: 2, w: 2, c: 1 }, 0, new Rng(1))).toBe(x);
  });

  it('needs image-shaped data', () => {
    expect(imageShape([28, 28, 1], 784)).toEqual({ h: 28, w: 28, c: 1 });
    expect(imageShape([3, 2], 6)).toEqual({ h: 3, w: 2, c: 1 });
    expect(() => imageShape(undefined, 784)).toThrow(ConfigError);
    expect(() => imageShape([784], 784)).toThrow(/image-shaped/);
    expect(() => imageShape([28, 28, 1], 780)).toThrow(/780/);
  });
});
