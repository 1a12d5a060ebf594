/**
 * Cache of teacher logits for one transfer set, as an Arrow IPC file: columns `row: Int32`
 * (the transfer-set row) and `logits: FixedSizeList<Float32>[C]`, with schema metadata saying
 * where the logits came from (e.g. teacher id, transfer-set hash, ensemble mode). Written
 * atomically in record batches and read back a batch at a time through the Float32 child buffer
 * (no per-row `get()`), so a cache may be larger than a single file read allows.
 */
import { promises as fs } from 'node:fs';
import { DataType, Field, FixedSizeList, Float32, Int32, RecordBatch, RecordBatchReader, Schema, Struct, makeData, Precision, type Data } from 'apache-arrow';
import { ArrowFileSink } from '../data/arrow-write.ts';
import { readRecordBatches } from '../data/arrow-read.ts';
import { ArtifactError, DataError } from '../util/errors.ts';
import { failpoint } from '../util/failpoint.ts';

/** The contents of a logit cache file. */
export interface CachedLogits {
  /** `n x C` row-major logits, row `r` = transfer-set row `r`. */
  logits: Float32Array;
  /** Number of rows. */
  n: number;
  /** Number of classes. */
  C: number;
  /** The schema metadata given to {@link writeLogits}. */
  meta: Record<string, string>;
}

/** Rows per record batch of a logit cache file (a batch of 4,096 x 6,763 logits is 111 MB). */
const LOGIT_BATCH_ROWS = 4096;

/**
 * Writes `n x C` logits (row-major) to `file` as an Arrow IPC file, atomically (a temp file
 * renamed into place), in record batches of {@link LOGIT_BATCH_ROWS} rows written one at a time:
 * a cache of any size (a 375,000-row transfer set over 3,755 classes is 5.6 GB) is written
 * without a second copy in memory. `meta` goes into the schema metadata; record there whatever
 * identifies the cache (teacher id, transfer-set hash, mode), so a reader can check it is
 * current.
 * @throws DataError when `logits.length !== n * C`, or for n < 0 / C < 1.
 */
export async function writeLogits(file: string, logits: Float32Array, n: number, C: number, meta: Record<string, string>): Promise<void> {
  if (!Number.isInteger(n) || n < 0 || !Number.isInteger(C) || C < 1) {
    throw new DataError(`writeLogits(${file}): n must be an integer >= 0 and C an integer >= 1, got n=${n}, C=${C}`);
  }
  if (logits.length !== n * C) {
    throw new DataError(`writeLogits(${file}): got ${logits.length} logits, expected n * C = ${n} * ${C} = ${n * C}`);
  }
  const listType = new FixedSizeList(C, new Field('item', new Float32(), false));
  const rowField = new Field('row', new Int32(), false);
  const logitsField = new Field('logits', listType, false);
  const schema = new Schema([rowField, logitsField], new Map(Object.entries(meta)));
  const sink = new ArrowFileSink(file, schema);
  try {
    for (let start = 0; start < n; start += LOGIT_BATCH_ROWS) {
      const len = Math.min(LOGIT_BATCH_ROWS, n - start);
      const rows = new Int32Array(len);
      for (let i = 0; i < len; i++) rows[i] = start + i;
      const rowData = makeData({ type: new Int32(), length: len, nullCount: 0, data: rows });
      const child = makeData({ type: new Float32(), length: len * C, nullCount: 0, data: logits.subarray(start * C, (start + len) * C) });
      const listData = makeData({ type: listType, length: len, nullCount: 0, child });
      const struct = makeData({ type: new Struct(schema.fields), length: len, nullCount: 0, children: [rowData, listData] as Data<DataType>[] });
      sink.write(new RecordBatch(schema, struct));
    }
    sink.finish(() => failpoint('teacher-logits-temp-written'));
  } catch (e) {
    sink.abort();
    throw e;
  }
}

/** The record batches of a logit cache, read from disk one at a time (errors name the file). */
async function* cacheBatches(file: string, bad: (what: string) => ArtifactError): AsyncGenerator<{ batch: RecordBatch; schema: Schema }> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'r');
  } catch (e) {
    throw new ArtifactError(`teacher logit cache ${file} cannot be read: ${(e as Error).message}; recompute the teacher logits`, { cause: e });
  }
  try {
    let reader: Awaited<ReturnType<typeof RecordBatchReader.from>>;
    try {
      reader = await RecordBatchReader.from(fh);
      await reader.open();
      if (!reader.schema) throw new Error('no schema');
    } catch (e) {
      throw new ArtifactError(`teacher logit cache ${file} is not a valid Arrow IPC file (${(e as Error).message}); delete it to recompute`, { cause: e });
    }
    const schema = reader.schema;
    for await (const batch of readRecordBatches(reader, (_k, row, e) => bad(`the record batch at row ${row} cannot be read (${(e as Error).message}): the file is truncated or corrupt`))) {
      yield { batch, schema };
    }
  } finally {
    await fh.close();
  }
}

/**
 * Reads a file written by {@link writeLogits}, streamed: a first pass counts the rows, a second
 * copies each record batch's Float32 child buffer in bulk into the result, so the peak memory is
 * the logits plus one batch (a cache may be larger than a single 2 GiB file read). Rows are placed
 * by the `row` column (any order, each row exactly once). Files of one record batch (written
 * before the batches) read the same.
 * @throws ArtifactError when the file is missing, is not Arrow, lacks the columns, has nulls,
 *   or its `row` column is not a permutation of `0..n-1`.
 */
export async function readLogits(file: string): Promise<CachedLogits> {
  const bad = (what: string): ArtifactError => new ArtifactError(`teacher logit cache ${file}: ${what}; delete it to recompute the teacher logits`);
  let n = 0;
  let schema: Schema | undefined;
  for await (const b of cacheBatches(file, bad)) {
    schema = b.schema;
    n += b.batch.numRows;
  }
  if (!schema) throw bad('no schema');
  const logitsField = schema.fields.find((f) => f.name === 'logits');
  const rowField = schema.fields.find((f) => f.name === 'row');
  // Types read from IPC are generic (e.g. Float with precision SINGLE), not the Float32 class.
  const listType = logitsField?.type as DataType | undefined;
  const itemType = listType && DataType.isFixedSizeList(listType) ? (listType.children[0]?.type as DataType | undefined) : undefined;
  if (!listType || !DataType.isFixedSizeList(listType) || !itemType || !DataType.isFloat(itemType) || itemType.precision !== Precision.SINGLE) {
    throw bad(`column 'logits' must be FixedSizeList<Float32>, found ${listType ? String(listType) : 'no such column'}`);
  }
  const rowType = rowField?.type as DataType | undefined;
  if (!rowType || !DataType.isInt(rowType) || rowType.bitWidth !== 32 || !rowType.isSigned) {
    throw bad(`column 'row' must be Int32, found ${rowType ? String(rowType) : 'no such column'}`);
  }
  const C = (listType as FixedSizeList).listSize;
  const logits = new Float32Array(n * C);
  const seen = new Uint8Array(n);
  let offset = 0; // position of the current batch's first row in file order
  for await (const { batch } of cacheBatches(file, bad)) {
    const listData = batch.getChild('logits')!.data[0]! as Data<FixedSizeList<Float32>>;
    const rowData = batch.getChild('row')!.data[0]! as Data<Int32>;
    if (listData.nullCount > 0 || rowData.nullCount > 0) throw bad(`nulls in record batch at row ${offset}`);
    const childData = listData.children[0]! as Data<Float32>;
    if (childData.nullCount > 0) throw bad(`null logits in record batch at row ${offset}`);
    const len = listData.length;
    if (offset + len > n) throw bad('the file changed while it was read');
    // Arrow JS slices `values` (and a fixed-size list's child) together with `offset`, so
    // list element i starts at i * C of the child's values, whatever the offsets say.
    const values = (childData.values as Float32Array).subarray(0, len * C);
    const rowValues = (rowData.values as Int32Array).subarray(0, len);
    if (values.length !== len * C || rowValues.length !== len) throw bad(`truncated record batch at row ${offset}`);
    let inOrder = true;
    for (let i = 0; i < len; i++) {
      const r = rowValues[i]!;
      if (r < 0 || r >= n || seen[r]) throw bad(`row ${r} is out of range 0..${n - 1} or repeated`);
      seen[r] = 1;
      if (r !== offset + i) inOrder = false;
    }
    if (inOrder) logits.set(values, offset * C);
    else for (let i = 0; i < len; i++) logits.set(values.subarray(i * C, (i + 1) * C), rowValues[i]! * C);
    offset += len;
  }
  if (offset !== n) throw bad('the file changed while it was read');
  const meta: Record<string, string> = {};
  for (const [k, v] of schema.metadata) meta[k] = v;
  return { logits, n, C, meta };
}
