import { promises as fs } from 'node:fs';
import {
  DataType,
  type Field,
  Precision,
  RecordBatchReader,
  util as arrowUtil,
  type Data,
  type RecordBatch,
  type Schema,
  type Vector,
} from 'apache-arrow';
import { DataError } from '../util/errors.ts';

/** The two Arrow IPC layouts: `file` (random access, `ARROW1` magic) and `stream`. */
export type ArrowFormat = 'file' | 'stream';

/** Where in the input a problem is, for {@link dataError}. */
export interface Where {
  column?: string;
  /** 0-based row index in the whole file. */
  row?: number;
}

/**
 * A {@link DataError} whose message reads `<file>: column '<c>', row <r>: <what>. Fix: <fix>`,
 * so every ingestion error names the file, the column and row (when known), and what to do.
 */
export function dataError(file: string, where: Where, what: string, fix: string): DataError {
  const loc = [where.column !== undefined ? `column '${where.column}'` : '', where.row !== undefined ? `row ${where.row}` : ''].filter(Boolean).join(', ');
  return new DataError(`${file}: ${loc ? loc + ': ' : ''}${what}. Fix: ${fix}`);
}

const PARQUET_FIX = "this is a Parquet file: ingest and inspect read it directly (openTable); where an Arrow IPC file is required, convert it, e.g. in Python: pyarrow.ipc.new_file(out, table.schema) with table = pyarrow.parquet.read_table(path) (see datasets/README.md)";
const TEXT_FIX = 'convert the table to an Arrow IPC file (e.g. pandas -> pyarrow.Table.from_pandas -> pyarrow.ipc.new_file, see datasets/README.md)';

/**
 * Looks at the first and last bytes of `file` and says whether it is an Arrow IPC file or stream.
 *
 * @throws DataError for a missing or empty file, Parquet (`PAR1`), text (CSV/JSON), gzip, or an
 *   IPC file whose trailing `ARROW1` magic is missing (truncated).
 */
export async function sniffArrowFormat(file: string): Promise<ArrowFormat> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'r');
  } catch (e) {
    throw dataError(file, {}, `cannot open the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'check the path (relative paths are resolved from the current directory)');
  }
  try {
    const { size } = await fh.stat();
    if (size === 0) throw dataError(file, {}, 'the file is empty (0 bytes)', 'write the table to it with pyarrow.ipc.new_file (see datasets/README.md)');
    const head = Buffer.alloc(Math.min(size, 1024));
    await fh.read(head, 0, head.length, 0);
    if (head.subarray(0, 4).toString('latin1') === 'PAR1') throw dataError(file, {}, 'expected an Arrow IPC file, found Parquet (magic PAR1)', PARQUET_FIX);
    if (head[0] === 0x1f && head[1] === 0x8b) throw dataError(file, {}, 'expected an Arrow IPC file, found a gzip-compressed file', 'decompress it first (gunzip)');
    if (head.subarray(0, 4).toString('latin1') === 'FEA1') throw dataError(file, {}, 'this is a Feather v1 file, which is not Arrow IPC', 'rewrite it with pyarrow.feather.write_feather(table, path, compression="uncompressed") (Feather v2 is Arrow IPC)');
    if (head.subarray(0, 6).toString('latin1') === 'ARROW1') {
      if (size < 12) throw dataError(file, {}, `the Arrow IPC file is truncated (${size} bytes)`, 'write the file again; make sure the writer was closed (writer.close() in pyarrow)');
      const tail = Buffer.alloc(6);
      await fh.read(tail, 0, 6, size - 6);
      if (tail.toString('latin1') !== 'ARROW1') {
        throw dataError(file, {}, `the Arrow IPC file is truncated or incomplete (no closing ARROW1 magic at the end of its ${size} bytes)`, 'write the file again; make sure the writer was closed (writer.close() / "with pa.ipc.new_file(...)" in pyarrow)');
      }
      return 'file';
    }
    if (head.length >= 4 && head.readUInt32LE(0) === 0xffffffff) return 'stream';
    if (looksLikeText(head)) {
      const firstLine = head.toString('utf8').split(/\r?\n/)[0].slice(0, 60);
      throw dataError(file, {}, `expected an Arrow IPC file, found text (CSV or JSON?) starting with "${firstLine}"`, TEXT_FIX);
    }
    // Legacy (pre-0.15) stream: a positive int32 metadata length.
    if (head.length >= 8) {
      const len = head.readInt32LE(0);
      if (len > 0 && len < size) return 'stream';
    }
    throw dataError(file, {}, `not an Arrow IPC file (starts with bytes ${head.subarray(0, 8).toString('hex')})`, TEXT_FIX);
  } finally {
    await fh.close();
  }
}

function looksLikeText(b: Buffer): boolean {
  if (b.length === 0) return false;
  for (const c of b) {
    if (c === 0x09 || c === 0x0a || c === 0x0d) continue;
    if (c < 0x20 || c === 0x7f) return false;
  }
  return true;
}

/** The input layouts ingest reads: Arrow IPC file or stream, or Parquet. */
export type InputFormat = ArrowFormat | 'parquet';

/**
 * An opened input table, Arrow IPC or Parquet (`openTable` in `table-input.ts`): its format, an
 * Arrow schema, a streaming iterator over Arrow record batches (one per Arrow record batch or
 * per Parquet row group), and `close`. Ingest and `inspect` read every format through this.
 */
export interface TableInput {
  format: InputFormat;
  schema: Schema;
  /** Number of record batches (Parquet: row groups) when known up front, else null. */
  numBatches: number | null;
  /**
   * The record batches in order; corrupt data -> DataError naming the batch and first row.
   * `columns`: the names the caller reads. A format that can skip columns (Parquet) decodes
   * only those and gives the others as `Null` columns of the right length, so positions still
   * match `schema`; Arrow IPC decodes every column regardless.
   */
  batches(columns?: readonly string[]): AsyncGenerator<RecordBatch>;
  close(): Promise<void>;
}

/** An opened Arrow IPC input. */
export interface ArrowInput extends TableInput {
  format: ArrowFormat;
}

/**
 * Opens an Arrow IPC file or stream (auto-detected) for streaming reads: record batches are read
 * from disk one at a time, so files larger than memory can be scanned.
 *
 * @throws DataError for anything that is not a readable Arrow IPC input.
 */
export async function openArrow(file: string): Promise<ArrowInput> {
  const format = await sniffArrowFormat(file);
  const fh = await fs.open(file, 'r');
  let reader: Awaited<ReturnType<typeof RecordBatchReader.from>>;
  try {
    reader = await RecordBatchReader.from(fh);
    await reader.open();
  } catch (e) {
    await fh.close();
    throw dataError(file, {}, `cannot read the Arrow ${format} header (${(e as Error).message}); the file is truncated or corrupt`, 'write the file again with pyarrow.ipc.new_file (see datasets/README.md)');
  }
  const schema = reader.schema;
  if (!schema) {
    await fh.close();
    throw dataError(file, {}, `the Arrow ${format} has no schema (empty stream)`, 'write at least the schema and one record batch');
  }
  const numBatches = 'numRecordBatches' in reader && typeof reader.numRecordBatches === 'number' ? reader.numRecordBatches : null;
  const r = reader;
  let closed = false;
  return {
    format,
    schema,
    numBatches,
    batches() {
      return readRecordBatches(r, (k, row, e) =>
        dataError(file, { row }, `record batch ${k} (starting at row ${row}) cannot be read (${(e as Error).message}); the file is truncated or corrupt`, 'write the file again and make sure the writer was closed'),
      );
    },
    async close() {
      if (closed) return;
      closed = true;
      await fh.close();
    },
  };
}

/**
 * The record batches of an opened Arrow reader, in order, read one at a time. A batch that cannot
 * be read (truncated or corrupt data) ends the iteration with the error `onError` makes from the
 * batch's 0-based index, the 0-based row (in the whole input) it starts at, and the reader's error;
 * so each caller keeps its own error class and message (DataError for user input in
 * {@link openArrow}, ArtifactError for split files in `openSplitStream`).
 *
 * @param reader An opened `RecordBatchReader` (anything iterable over record batches).
 * @param onError Makes the error to throw for the batch that cannot be read.
 */
export async function* readRecordBatches(
  reader: AsyncIterable<RecordBatch>,
  onError: (batch: number, row: number, cause: unknown) => Error,
): AsyncGenerator<RecordBatch, void, undefined> {
  let k = 0;
  let row = 0;
  const it = reader[Symbol.asyncIterator]();
  for (;;) {
    let res: IteratorResult<RecordBatch>;
    try {
      res = await it.next();
    } catch (e) {
      throw onError(k, row, e);
    }
    if (res.done) return;
    yield res.value;
    row += res.value.numRows;
    k++;
  }
}

// ---------------------------------------------------------------- type predicates

/** Signed 32-bit integer type. */
export function isInt32Type(t: DataType): boolean {
  return DataType.isInt(t) && t.bitWidth === 32 && t.isSigned;
}

/** Single-precision float type. */
export function isFloat32Type(t: DataType): boolean {
  return DataType.isFloat(t) && t.precision === Precision.SINGLE;
}

/** Integer or floating-point type (not Bool, Decimal, dates or times). */
export function isNumericType(t: DataType): boolean {
  return DataType.isInt(t) || DataType.isFloat(t);
}

/** Utf8 / LargeUtf8, or a dictionary whose values are one of them. */
export function isStringType(t: DataType): boolean {
  if (DataType.isUtf8(t) || DataType.isLargeUtf8(t)) return true;
  return DataType.isDictionary(t) && (DataType.isUtf8(t.dictionary) || DataType.isLargeUtf8(t.dictionary));
}

/** A readable name for a type, e.g. `FixedSizeList[784]<Float32>`. */
export function typeName(t: DataType): string {
  return String(t);
}

// ---------------------------------------------------------------- decoding

/** Row index (within `d`) of the first null (among the rows `only` accepts, if given), or -1. */
export function firstNullRow(d: Data, only?: (row: number) => boolean): number {
  if (d.nullCount <= 0) return -1;
  for (let i = 0; i < d.length; i++) if (!d.getValid(i) && (!only || only(i))) return i;
  return -1;
}

/** Rows of a vector's chunks, as [chunk, starting row within the vector]. */
export function chunksOf(v: Vector): [Data, number][] {
  const out: [Data, number][] = [];
  let r = 0;
  for (const d of v.data) {
    out.push([d, r]);
    r += d.length;
  }
  return out;
}

type NumArray = Int8Array | Int16Array | Int32Array | Uint8Array | Uint16Array | Uint32Array | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

/**
 * The `length` values starting at element `start` of a numeric (Int or Float) data chunk's value
 * buffer (Arrow JS slices value buffers, so element 0 is the chunk's first row), converted to numbers in `out[outStart + i * stride]`. Float16 and 64-bit integers
 * are converted element-wise; others with a typed-array copy when `stride` is 1.
 */
export function copyNumeric(d: Data, start: number, length: number, out: Float32Array | Float64Array, outStart: number, stride = 1): void {
  const vals = d.values as NumArray;
  const isHalf = DataType.isFloat(d.type) && d.type.precision === Precision.HALF;
  if (isHalf) {
    const h = vals as Uint16Array;
    for (let i = 0; i < length; i++) out[outStart + i * stride] = arrowUtil.uint16ToFloat64(h[start + i]);
    return;
  }
  if (vals instanceof BigInt64Array || vals instanceof BigUint64Array) {
    for (let i = 0; i < length; i++) out[outStart + i * stride] = Number(vals[start + i]);
    return;
  }
  if (stride === 1) {
    out.set(vals.subarray(start, start + length), outStart);
    return;
  }
  for (let i = 0; i < length; i++) out[outStart + i * stride] = vals[start + i];
}

/**
 * Integer values of an Int data chunk as numbers (64-bit values converted; values beyond
 * `Number.MAX_SAFE_INTEGER` lose precision, which callers reject as too large anyway).
 */
export function intValues(d: Data): Float64Array {
  const out = new Float64Array(d.length);
  copyNumeric(d, 0, d.length, out, 0);
  return out;
}

/**
 * Maps the strings of a Utf8 / LargeUtf8 / dictionary-of-strings data chunk to integer ids
 * through `idOf` (called once per distinct dictionary entry for dictionary data, once per row
 * otherwise). Nulls must have been rejected before.
 */
export function stringIds(d: Data, idOf: (s: string) => number): Int32Array {
  const out = new Int32Array(d.length);
  if (DataType.isDictionary(d.type)) {
    const dict = d.dictionary;
    if (!dict) throw new Error('dictionary data without dictionary');
    const map = new Int32Array(dict.length);
    for (let k = 0; k < dict.length; k++) {
      const s = dict.get(k) as string | null;
      map[k] = s === null ? -1 : idOf(s);
    }
    const idx = d.values as NumArray;
    for (let i = 0; i < d.length; i++) {
      const k = Number(idx[i]);
      out[i] = map[k];
    }
    return out;
  }
  // Plain Utf8: decode through the vector accessor (one string per row).
  for (let i = 0; i < d.length; i++) {
    const s = getString(d, i);
    out[i] = idOf(s);
  }
  return out;
}

const decoder = new TextDecoder();

function getString(d: Data, i: number): string {
  const offsets = d.valueOffsets as Int32Array | BigInt64Array;
  const bytes = d.values as Uint8Array;
  const a = Number(offsets[i]);
  const b = Number(offsets[i + 1]);
  return decoder.decode(bytes.subarray(a, b));
}

// ---------------------------------------------------------------- summary

/** How many of the most frequent labels {@link describeArrowFile} lists. */
export const DESCRIBE_TOP_LABELS = 20;

function fieldLine(f: Field): string {
  return `  ${f.name}: ${typeName(f.type)}${f.nullable ? '' : ' (not null)'}`;
}

/**
 * A readable multi-line summary of an Arrow IPC file or stream, for `npm run inspect`: format,
 * size, schema with types, schema metadata, rows and record batches, split counts (if there is a
 * `split` column) and a label count table (top {@link DESCRIBE_TOP_LABELS} and the number of
 * distinct labels). Streams through the file; it does not validate features.
 *
 * @param open How to open the file: {@link openArrow} (default), or `openTable` for any input
 *   format (`describeDataFile` in `table-input.ts`, which also summarises Parquet files).
 * @throws DataError if the file is not a readable input.
 */
export async function describeArrowFile(file: string, open: (file: string) => Promise<TableInput> = openArrow): Promise<string> {
  const { size } = await fs.stat(file).catch(() => ({ size: -1 }));
  const input = await open(file);
  const lines: string[] = [];
  try {
    const { schema } = input;
    lines.push(`${file}`);
    const formatName = input.format === 'parquet' ? 'Parquet' : `Arrow IPC ${input.format}`;
    lines.push(`format: ${formatName}${size >= 0 ? `, ${(size / 1e6).toFixed(2)} MB` : ''}`);
    lines.push('schema:');
    for (const f of schema.fields) lines.push(fieldLine(f));
    if (schema.metadata.size > 0) {
      lines.push('metadata:');
      for (const [k, v] of schema.metadata) lines.push(`  ${k}: ${v.length > 200 ? v.slice(0, 200) + '...' : v}`);
    }
    const labelIdx = schema.fields.findIndex((f) => f.name === 'label');
    const splitIdx = schema.fields.findIndex((f) => f.name === 'split');
    const labelType = labelIdx >= 0 ? schema.fields[labelIdx].type : null;
    const labelOk = labelType !== null && (DataType.isInt(labelType) || DataType.isUtf8(labelType) || DataType.isLargeUtf8(labelType) || DataType.isDictionary(labelType));
    const splitOk = splitIdx >= 0 && (DataType.isUtf8(schema.fields[splitIdx].type) || DataType.isDictionary(schema.fields[splitIdx].type));

    const labelCounts = new Map<string, number>();
    const splitCounts = new Map<string, number>();
    let labelNulls = 0;
    let rows = 0;
    let batches = 0;
    const names: string[] = [];
    const idOf = (s: string): number => {
      names.push(s);
      return names.length - 1;
    };
    const read = [labelOk ? 'label' : '', splitOk ? 'split' : ''].filter(Boolean);
    for await (const b of input.batches(read)) {
      batches++;
      rows += b.numRows;
      if (labelOk) {
        const d = b.data.children[labelIdx];
        const hasNull = firstNullRow(d) >= 0;
        if (DataType.isInt(d.type)) {
          const v = intValues(d);
          for (let i = 0; i < d.length; i++) {
            if (hasNull && !d.getValid(i)) {
              labelNulls++;
              continue;
            }
            const k = String(v[i]);
            labelCounts.set(k, (labelCounts.get(k) ?? 0) + 1);
          }
        } else {
          names.length = 0;
          const ids = stringIds(d, idOf);
          for (let i = 0; i < d.length; i++) {
            if ((hasNull && !d.getValid(i)) || ids[i] < 0) {
              labelNulls++;
              continue;
            }
            const k = names[ids[i]];
            labelCounts.set(k, (labelCounts.get(k) ?? 0) + 1);
          }
        }
      }
      if (splitOk) {
        const d = b.data.children[splitIdx];
        names.length = 0;
        const ids = stringIds(d, idOf);
        for (let i = 0; i < d.length; i++) {
          const k = !d.getValid(i) || ids[i] < 0 ? '(null)' : names[ids[i]];
          splitCounts.set(k, (splitCounts.get(k) ?? 0) + 1);
        }
      }
    }
    lines.push(`rows: ${rows}`);
    lines.push(`${input.format === 'parquet' ? 'row groups' : 'record batches'}: ${batches}`);
    if (splitCounts.size > 0) {
      lines.push('split:');
      for (const [k, v] of [...splitCounts].sort((a, b) => b[1] - a[1])) lines.push(`  ${k.padEnd(8)} ${String(v).padStart(10)}`);
    }
    if (!labelOk) {
      lines.push(labelIdx < 0 ? 'labels: no label column' : `labels: column type ${typeName(labelType as DataType)} is not a class label type`);
    } else {
      const sorted = [...labelCounts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0], 'en', { numeric: true }));
      lines.push(`labels: ${sorted.length} distinct classes${labelNulls > 0 ? `, ${labelNulls} null` : ''}`);
      const shown = sorted.slice(0, DESCRIBE_TOP_LABELS);
      const w = Math.max(5, ...shown.map(([k]) => k.length));
      lines.push(`  ${'label'.padEnd(w)} ${'count'.padStart(10)} ${'share'.padStart(7)}`);
      for (const [k, v] of shown) lines.push(`  ${k.padEnd(w)} ${String(v).padStart(10)} ${((100 * v) / Math.max(1, rows)).toFixed(2).padStart(6)}%`);
      if (sorted.length > shown.length) lines.push(`  ... ${sorted.length - shown.length} more classes`);
    }
  } finally {
    await input.close();
  }
  return lines.join('\n');
}
