import { ConfigError } from '../util/errors.ts';
import type { Rng } from '../util/rng.ts';

/** Height, width and channels of an image-shaped example. */
export interface ImageShape {
  h: number;
  w: number;
  c: number;
}

/**
 * Reads `[H, W]` or `[H, W, C]` (row-major, channels last) from a data set's `shape`.
 * @throws ConfigError when jitter is requested but the data is not image-shaped or the shape
 * does not multiply to `dim`.
 */
export function imageShape(shape: number[] | undefined, dim: number): ImageShape {
  if (!shape || (shape.length !== 2 && shape.length !== 3)) {
    throw new ConfigError(
      `jitter needs image-shaped data ([H, W] or [H, W, C]), but the data's shape is ${shape ? JSON.stringify(shape) : 'not recorded'}: set jitter to 0 for this data`,
    );
  }
  const [h, w, c = 1] = shape as [number, number, number?];
  if (h * w * c !== dim) throw new ConfigError(`data shape ${JSON.stringify(shape)} has ${h * w * c} values per example, but the rows have ${dim}`);
  return { h, w, c };
}

/**
 * Writes `src` shifted by `dy` rows down and `dx` columns right into `dst` (both one `h x w x c`
 * image, channels last): `dst[y][x] = src[y - dy][x - dx]`, zero where that falls outside. `dst`
 * must be zero-filled beforehand (only the covered region is written).
 */
export function shiftImage(src: Float32Array, dst: Float32Array, img: ImageShape, dy: number, dx: number): void {
  const { h, w, c } = img;
  const x0 = Math.max(0, dx);
  const x1 = Math.min(w, w + dx);
  if (x1 <= x0) return;
  const y0 = Math.max(0, dy);
  const y1 = Math.min(h, h + dy);
  const len = (x1 - x0) * c;
  for (let y = y0; y < y1; y++) {
    const s = ((y - dy) * w + (x0 - dx)) * c;
    dst.set(src.subarray(s, s + len), (y * w + x0) * c);
  }
}

/**
 * Random translation of every row of a batch (`rows x h*w*c`, row-major): independent integer
 * shifts `dy, dx` uniform in `[-maxShift, maxShift]` per row (drawn from `rng`, dy first), zero
 * fill. Returns a new array; `maxShift = 0` returns `x` itself.
 */
export function jitterBatch(x: Float32Array, rows: number, img: ImageShape, maxShift: number, rng: Rng): Float32Array {
  if (maxShift <= 0) return x;
  const dim = img.h * img.w * img.c;
  const out = new Float32Array(rows * dim);
  const span = 2 * maxShift + 1;
  for (let r = 0; r < rows; r++) {
    const dy = rng.int(span) - maxShift;
    const dx = rng.int(span) - maxShift;
    shiftImage(x.subarray(r * dim, (r + 1) * dim), out.subarray(r * dim, (r + 1) * dim), img, dy, dx);
  }
  return out;
}
