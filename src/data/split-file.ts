import { promises as fs } from 'node:fs';
import { DataType, RecordBatchReader, type FixedSizeList, type RecordBatch, type Schema } from 'apache-arrow';
import { isFloat32Type, isInt32Type } from './arrow-read.ts';
import { ArtifactError, DataError } from '../util/errors.ts';
import { ArrowFileSink, labeledBatch, labeledSchema } from './arrow-write.ts';

/** A labelled set of examples in memory: `x` is row-major `n x dim`, `y` holds class indices. */
export interface LabeledSet {
  x: Float32Array;
  y: Int32Array;
  n: number;
  dim: number;
  /** Example shape (e.g. `[28, 28, 1]`), product `dim`, when known. */
  shape?: number[];
}

/** Rows per record batch in files this module writes. */
export const SPLIT_BATCH_ROWS = 8192;

/**
 * Reads a split file written by ingest (`label: Int32`, `features: FixedSizeList<Float32>[D]`,
 * schema metadata `shape`). The Float32 child buffer of every record batch is copied in one
 * `set` call, so 47M floats load in well under a second.
 *
 * @throws ArtifactError if the file is missing, not Arrow, truncated, or has another schema.
 */
export async function readSplit(file: string): Promise<LabeledSet> {
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(file);
  } catch (e) {
    throw new ArtifactError(`split file ${file} cannot be read (${(e as Error).message}); re-run the ingest stage to recreate it`, { cause: e });
  }
  let schema: Schema;
  const batches: RecordBatch[] = [];
  try {
    const reader = RecordBatchReader.from(bytes);
    reader.open();
    schema = reader.schema;
    for (const b of reader) batches.push(b);
    if (!schema) throw new Error('no schema');
  } catch (e) {
    throw new ArtifactError(`split file ${file} is not a readable Arrow IPC file (${(e as Error).message}); it is truncated or corrupt: re-run the ingest stage`, { cause: e });
  }
  const labelField = schema.fields.find((f) => f.name === 'label');
  const featField = schema.fields.find((f) => f.name === 'features');
  if (!labelField || !isInt32Type(labelField.type) || !featField || !DataType.isFixedSizeList(featField.type) || !isFloat32Type(featField.type.children[0].type)) {
    throw new ArtifactError(
      `split file ${file} has schema ${schema.fields.map((f) => `${f.name}: ${String(f.type)}`).join(', ')}; expected label: Int32 and features: FixedSizeList<Float32>. Re-run the ingest stage`,
    );
  }
  const dim = (featField.type as FixedSizeList).listSize;
  let shape: number[] | undefined;
  const shapeText = schema.metadata.get('shape');
  if (shapeText !== undefined) {
    try {
      const parsed: unknown = JSON.parse(shapeText);
      if (Array.isArray(parsed) && parsed.every((v) => Number.isInteger(v) && v > 0) && parsed.reduce((a: number, b: number) => a * b, 1) === dim) shape = parsed as number[];
      else throw new Error(`shape ${shapeText} does not multiply to ${dim}`);
    } catch (e) {
      throw new ArtifactError(`split file ${file}: bad schema metadata shape (${(e as Error).message}); re-run the ingest stage`, { cause: e });
    }
  }
  const n = batches.reduce((s, b) => s + b.numRows, 0);
  const x = new Float32Array(n * dim);
  const y = new Int32Array(n);
  let row = 0;
  for (const b of batches) {
    const m = b.numRows;
    if (m === 0) continue;
    const labels = b.getChild('label');
    const feats = b.getChild('features');
    if (!labels || !feats) throw new ArtifactError(`split file ${file}: a record batch lacks the label or features column`);
    if (labels.nullCount > 0 || feats.nullCount > 0) throw new ArtifactError(`split file ${file}: null values in record batch at row ${row}; re-run the ingest stage`);
    let lr = row;
    for (const d of labels.data) {
      y.set((d.values as Int32Array).subarray(0, d.length), lr);
      lr += d.length;
    }
    let fr = row;
    for (const d of feats.data) {
      const c = d.children[0];
      // Arrow JS slices value buffers and FixedSizeList children, so element 0 is this chunk's first value.
      const vals = (c.values as Float32Array).subarray(0, d.length * dim);
      if (vals.length !== d.length * dim) throw new ArtifactError(`split file ${file}: features buffer too short at row ${fr}; the file is corrupt, re-run the ingest stage`);
      x.set(vals, fr * dim);
      fr += d.length;
    }
    row += m;
  }
  const set: LabeledSet = { x, y, n, dim };
  if (shape) set.shape = shape;
  return set;
}

/**
 * Writes `set` as a split file (Arrow IPC file format, record batches of
 * {@link SPLIT_BATCH_ROWS} rows) atomically: temp file, fsync, rename.
 */
export async function writeSplit(file: string, set: LabeledSet): Promise<void> {
  if (set.x.length < set.n * set.dim || set.y.length < set.n) throw new Error(`writeSplit(${file}): x/y shorter than n=${set.n} x dim=${set.dim}`);
  await writeSplitBatches(file, set.dim, set.shape ?? null, batchesOf(set));
}

function* batchesOf(set: LabeledSet): Generator<{ x: Float32Array; y: Int32Array; n: number }> {
  for (let s = 0; s < set.n; s += SPLIT_BATCH_ROWS) {
    const e = Math.min(set.n, s + SPLIT_BATCH_ROWS);
    yield { x: set.x.subarray(s * set.dim, e * set.dim), y: set.y.subarray(s, e), n: e - s };
  }
}

/**
 * Streams batches (each `x` row-major `n x dim`) into a split file atomically. Used by ingest
 * to write a split without materialising it. A batch may be reused by the producer after it is
 * yielded (it is written before the next one is requested).
 */
export async function writeSplitBatches(
  file: string,
  dim: number,
  shape: number[] | null,
  batches: Iterable<{ x: Float32Array; y: Int32Array; n: number }>,
): Promise<void> {
  const sink = new ArrowFileSink(file, labeledSchema(dim, shape));
  try {
    for (const b of batches) if (b.n > 0) sink.write(labeledBatch(sink.schema, b.x, b.y, b.n));
    sink.finish();
  } catch (e) {
    sink.abort();
    throw e;
  }
}

/**
 * The rows of `a` followed by the rows of `b`, copied (train + valid for a final model, train +
 * unlabeled rows for a transfer set); `b` itself when `a` is null or empty.
 * @throws DataError when the two sets have different feature widths.
 */
export function concatSets(a: LabeledSet | null, b: LabeledSet): LabeledSet {
  if (!a || a.n === 0) return b;
  if (a.dim !== b.dim) throw new DataError(`cannot join sets of ${a.dim} and ${b.dim} features`);
  const x = new Float32Array((a.n + b.n) * a.dim);
  x.set(a.x.subarray(0, a.n * a.dim));
  x.set(b.x.subarray(0, b.n * b.dim), a.n * a.dim);
  const y = new Int32Array(a.n + b.n);
  y.set(a.y.subarray(0, a.n));
  y.set(b.y.subarray(0, b.n), a.n);
  const out: LabeledSet = { x, y, n: a.n + b.n, dim: a.dim };
  if (a.shape) out.shape = [...a.shape];
  return out;
}

/** The rows `indices` of `set` (in that order), copied. */
export function subset(set: LabeledSet, indices: Int32Array): LabeledSet {
  const { dim } = set;
  const n = indices.length;
  const x = new Float32Array(n * dim);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const r = indices[i];
    if (r < 0 || r >= set.n) throw new RangeError(`subset: index ${r} at position ${i} is outside 0..${set.n - 1}`);
    y[i] = set.y[r];
    x.set(set.x.subarray(r * dim, (r + 1) * dim), i * dim);
  }
  const out: LabeledSet = { x, y, n, dim };
  if (set.shape) out.shape = [...set.shape];
  return out;
}
