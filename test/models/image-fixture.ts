/**
 * Tiny image data for CNN tests: 8x8x1 pictures of up to six shapes (horizontal bar, vertical bar,
 * diagonal, anti-diagonal, square outline, plus sign), the bars at a random offset, plus Gaussian
 * noise. Small enough for the stock cpu convolution.
 */
import { Field, FixedSizeList, Float32, Int32, RecordBatch, Schema, Struct, Table, makeData, tableToIPC, vectorFromArray } from 'apache-arrow';
import { writeFileSync } from 'node:fs';
import type { TrainSet } from '../../src/models/types.ts';
import { Rng } from '../../src/util/rng.ts';

/** Side of the square images. */
export const SIDE = 8;

function draw(img: Float32Array, off: number, c: number, o: number): void {
  const set = (r: number, q: number): void => void (img[off + r * SIDE + q] = 1);
  for (let k = 1; k < SIDE - 1; k++) {
    if (c === 0) set(o, k);
    else if (c === 1) set(k, o);
    else if (c === 2) set(k, k);
    else if (c === 3) set(k, SIDE - 1 - k);
  }
  if (c === 4) for (let k = 2; k < 6; k++) [set(2, k), set(5, k), set(k, 2), set(k, 5)];
  if (c === 5) for (let k = 2; k < 7; k++) [set(4, k), set(k, 4)];
}

/** `n` images of `classes` (<= 6) shapes, class `i % classes` for row i, shape `[8, 8, 1]`. */
export function images(n: number, seed: number, classes = 3, noise = 0.2): TrainSet {
  if (classes > 6) throw new Error('images: at most 6 classes');
  const r = new Rng(seed);
  const dim = SIDE * SIDE;
  const x = new Float32Array(n * dim);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    y[i] = c;
    draw(x, i * dim, c, 2 + r.int(4));
    for (let d = 0; d < dim; d++) x[i * dim + d] += noise * r.normal();
  }
  return { x, y, n, dim, shape: [SIDE, SIDE, 1] };
}

/** Writes {@link images} as an Arrow IPC file (`label: Int32`, `features: FixedSizeList<Float32>[64]`, metadata `shape` [8,8,1]). */
export function writeImagesArrow(file: string, n: number, seed: number, classes: number): string {
  const s = images(n, seed, classes);
  const child = makeData({ type: new Float32(), length: s.x.length, nullCount: 0, data: s.x });
  const features = makeData({ type: new FixedSizeList(s.dim, new Field('item', new Float32(), false)), length: n, nullCount: 0, child });
  const label = vectorFromArray(Array.from(s.y), new Int32()).data[0]!;
  const fields = [new Field('label', label.type, false), new Field('features', features.type, false)];
  const schema = new Schema(fields, new Map([['shape', JSON.stringify(s.shape)]]));
  const batch = new RecordBatch(schema, makeData({ type: new Struct(fields), length: n, nullCount: 0, children: [label, features] }));
  writeFileSync(file, tableToIPC(new Table(schema, [batch]), 'file'));
  return file;
}
