/**
 * Cache of teacher logits for one transfer set, as an Arrow IPC file: columns `row: Int32`
 * (the transfer-set row) and `logits: FixedSizeList<Float32>[C]`, with schema metadata saying
 * where the logits came from (e.g. teacher id, transfer-set hash, ensemble mode). Written
 * atomically; read back through the Float32 child buffer (no per-row `get()`).
 */
import { promises as fs } from 'node:fs';
import {
  DataType,
  Field,
  FixedSizeList,
  Float32,
  Int32,
  RecordBatch,
  Schema,
  Struct,
  Table,
  makeData,
  tableFromIPC,
  tableToIPC,
  Precision,
  type Data,
} from 'apache-arrow';
import { writeFileAtomic } from '../artifacts/atomic.ts';
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

/**
 * Writes `n x C` logits (row-major) to `file` as an Arrow IPC file, atomically (temp file +
 * rename via `writeFileAtomic`). `meta` goes into the schema metadata; record there whatever
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
  const rows = new Int32Array(n);
  for (let i = 0; i < n; i++) rows[i] = i;
  const rowData = makeData({ type: new Int32(), length: n, nullCount: 0, data: rows });
  const child = makeData({ type: new Float32(), length: n * C, nullCount: 0, data: logits });
  const listData = makeData({ type: listType, length: n, nullCount: 0, child });
  const struct = makeData({ type: new Struct(schema.fields), length: n, nullCount: 0, children: [rowData, listData] as Data<DataType>[] });
  const table = new Table([new RecordBatch(schema, struct)]);
  await writeFileAtomic(file, tableToIPC(table, 'file'), { beforeRename: () => failpoint('teacher-logits-temp-written') });
}

/**
 * Reads a file written by {@link writeLogits}. The logits are copied out of each record
 * batch's Float32 child buffer in bulk; rows are placed by the `row` column (any order, each
 * row exactly once).
 * @throws ArtifactError when the file is missing, is not Arrow, lacks the columns, has nulls,
 *   or its `row` column is not a permutation of `0..n-1`.
 */
export async function readLogits(file: string): Promise<CachedLogits> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (e) {
    throw new ArtifactError(`teacher logit cache ${file} cannot be read: ${(e as Error).message}; recompute the teacher logits`, { cause: e });
  }
  let table: Table;
  try {
    table = tableFromIPC(bytes);
  } catch (e) {
    throw new ArtifactError(`teacher logit cache ${file} is not a valid Arrow IPC file (${(e as Error).message}); delete it to recompute`, { cause: e });
  }
  const bad = (what: string): ArtifactError => new ArtifactError(`teacher logit cache ${file}: ${what}; delete it to recompute the teacher logits`);
  const logitsField = table.schema.fields.find((f) => f.name === 'logits');
  const rowField = table.schema.fields.find((f) => f.name === 'row');
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
  const n = table.numRows;
  const logits = new Float32Array(n * C);
  const seen = new Uint8Array(n);
  let offset = 0; // position of the current batch's first row in file order
  for (const batch of table.batches) {
    const listData = batch.getChild('logits')!.data[0]! as Data<FixedSizeList<Float32>>;
    const rowData = batch.getChild('row')!.data[0]! as Data<Int32>;
    if (listData.nullCount > 0 || rowData.nullCount > 0) throw bad(`nulls in record batch at row ${offset}`);
    const childData = listData.children[0]! as Data<Float32>;
    if (childData.nullCount > 0) throw bad(`null logits in record batch at row ${offset}`);
    const len = listData.length;
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
  const meta: Record<string, string> = {};
  for (const [k, v] of table.schema.metadata) meta[k] = v;
  return { logits, n, C, meta };
}
