import { promises as fs } from 'node:fs';
import {
  Binary,
  Bool,
  DataType,
  DateDay,
  Decimal,
  Field,
  FixedSizeList,
  Float32,
  Float64,
  Int16,
  Int32,
  Int64,
  Int8,
  List,
  Null,
  RecordBatch,
  RecordBatchReader,
  Schema,
  Struct,
  TimeMicrosecond,
  TimeMillisecond,
  TimeNanosecond,
  TimestampMicrosecond,
  TimestampMillisecond,
  TimestampNanosecond,
  Uint16,
  Uint32,
  Uint64,
  Uint8,
  Utf8,
  makeData,
  vectorFromArray,
  type Data,
} from 'apache-arrow';
import { parquetMetadataAsync, parquetRead, parquetSchema, type AsyncBuffer, type DecodedArray, type FileMetaData, type SchemaElement, type SchemaTree } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { dataError, isNumericType, type TableInput } from './arrow-read.ts';

/** Options of {@link openParquet}. */
export interface ParquetOpenOptions {
  /**
   * Called for every byte range read from the file (`[start, end)`), after the read. For
   * diagnostics and for the tests that check that row groups are read one at a time.
   */
  onRead?: (start: number, end: number) => void;
}

/** The key under which pyarrow (and so Hugging Face `datasets`) stores the Arrow schema. */
export const ARROW_SCHEMA_KEY = 'ARROW:schema';

const WRITE_FIX = 'write the file again and make sure the writer was closed (pyarrow.parquet.write_table, or ParquetWriter.close())';

/**
 * Opens a Parquet file for streaming reads with the same shape as an Arrow input: an Arrow
 * {@link Schema} and one Arrow record batch per Parquet row group, decoded only when the batch is
 * asked for (so memory holds about one row group, not the file). The Arrow schema is derived from
 * the Parquet schema (INT32/INT64 with their integer annotations, FLOAT, DOUBLE, strings, LIST of
 * those); when the file carries the Arrow schema pyarrow stores (`ARROW:schema`, as in files
 * written by pyarrow, pandas and Hugging Face `datasets`), its types are used where they agree
 * with the Parquet columns, so `fixed_size_list<float>[D]` and dictionary-encoded strings come
 * back as they were written. Schema metadata is the file's key-value metadata (without
 * `ARROW:schema`), so a `shape` entry works as in an Arrow file. Compressed pages (snappy, gzip,
 * zstd, brotli, lz4) are decoded in JavaScript.
 *
 * `batches(columns)` decodes only the named columns; the others are `Null` placeholders of the
 * right length, so column positions match {@link TableInput.schema}.
 *
 * @throws DataError for a missing, empty or truncated file, a file without the `PAR1` magic, or a
 *   footer that cannot be read.
 */
export async function openParquet(file: string, opts: ParquetOpenOptions = {}): Promise<TableInput> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'r');
  } catch (e) {
    throw dataError(file, {}, `cannot open the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'check the path (relative paths are resolved from the current directory)');
  }
  try {
    const { size } = await fh.stat();
    if (size === 0) throw dataError(file, {}, 'the file is empty (0 bytes)', 'write the table to it with pyarrow.parquet.write_table (see datasets/README.md)');
    const head = Buffer.alloc(Math.min(size, 4));
    await fh.read(head, 0, head.length, 0);
    if (head.toString('latin1') !== 'PAR1') {
      throw dataError(file, {}, `not a Parquet file (it does not start with the PAR1 magic but with bytes ${head.toString('hex')})`, 'check the file; an Arrow IPC file should not be named .parquet (ingest detects the format from the bytes)');
    }
    const tail = Buffer.alloc(8);
    if (size >= 12) await fh.read(tail, 0, 8, size - 8);
    if (size >= 12 && tail.subarray(4).toString('latin1') === 'PARE') {
      throw dataError(file, {}, 'the Parquet file is encrypted (PARE footer), which is not supported', 'write an unencrypted copy (pyarrow.parquet.write_table without encryption_properties)');
    }
    if (size < 12 || tail.subarray(4).toString('latin1') !== 'PAR1') {
      throw dataError(file, {}, `the Parquet file is truncated or incomplete (no closing PAR1 magic at the end of its ${size} bytes)`, WRITE_FIX);
    }
    const footerLength = tail.readUInt32LE(0);
    if (footerLength === 0 || footerLength + 12 > size) {
      throw dataError(file, {}, `cannot read the Parquet footer (its length field says ${footerLength} bytes, in a file of ${size}); the file is truncated or corrupt`, WRITE_FIX);
    }
    const buffer = fileBuffer(fh, size, opts.onRead);
    let metadata: FileMetaData;
    try {
      // Read exactly the footer (hyparquet's default reads the last 512 KB).
      metadata = await parquetMetadataAsync(buffer, { initialFetchSize: footerLength + 8 });
    } catch (e) {
      throw dataError(file, {}, `cannot read the Parquet footer (${(e as Error).message}); the file is truncated or corrupt`, WRITE_FIX);
    }
    let schema: Schema;
    try {
      schema = arrowSchemaOf(metadata);
    } catch (e) {
      throw dataError(file, {}, `cannot map the Parquet schema to Arrow types (${(e as Error).message}); the footer is corrupt or uses an unsupported layout`, WRITE_FIX);
    }
    const h = fh;
    let closed = false;
    return {
      format: 'parquet',
      schema,
      numBatches: metadata.row_groups.length,
      batches: (columns) => readRowGroups(file, buffer, metadata, schema, columns),
      async close() {
        if (closed) return;
        closed = true;
        await h.close();
      },
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** A hyparquet {@link AsyncBuffer} over an open file: each slice is one positioned read. */
function fileBuffer(fh: fs.FileHandle, size: number, onRead?: (start: number, end: number) => void): AsyncBuffer {
  return {
    byteLength: size,
    async slice(start: number, end: number = size): Promise<ArrayBuffer> {
      const b = new Uint8Array(Math.max(0, end - start));
      let done = 0;
      while (done < b.length) {
        const { bytesRead } = await fh.read(b, done, b.length - done, start + done);
        if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${start + done} (the file shrank while it was read)`);
        done += bytesRead;
      }
      onRead?.(start, end);
      return b.buffer;
    },
  };
}

// ---------------------------------------------------------------- schema

/**
 * The Arrow schema of a Parquet file: one field per top-level column, types from the Parquet
 * schema, refined by the stored Arrow schema (`ARROW:schema`) when present and compatible.
 */
function arrowSchemaOf(metadata: FileMetaData): Schema {
  const tree = parquetSchema(metadata);
  const kv = new Map<string, string>();
  for (const e of metadata.key_value_metadata ?? []) if (e.key !== ARROW_SCHEMA_KEY && e.value !== undefined) kv.set(e.key, e.value);
  const stored = storedArrowSchema(metadata);
  const fields = tree.children.map((node) => {
    const derived = new Field(node.element.name, typeOfNode(node), node.element.repetition_type !== 'REQUIRED');
    const s = stored?.fields.find((f) => f.name === derived.name);
    return s && compatible(derived.type, s.type) ? new Field(derived.name, s.type, derived.nullable) : derived;
  });
  return new Schema(fields, kv);
}

/** The Arrow schema pyarrow stores in `ARROW:schema` (base64 of an IPC schema message), or null. */
function storedArrowSchema(metadata: FileMetaData): Schema | null {
  const text = metadata.key_value_metadata?.find((e) => e.key === ARROW_SCHEMA_KEY)?.value;
  if (!text) return null;
  try {
    const msg = Buffer.from(text, 'base64');
    // An IPC stream of just this schema message: the message, then the end-of-stream marker.
    const stream = Buffer.concat([msg, Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])]);
    const reader = RecordBatchReader.from(new Uint8Array(stream));
    reader.open();
    return reader.schema ?? null;
  } catch {
    return null; // not decodable: the Parquet schema alone decides
  }
}

/**
 * Whether the stored Arrow type `s` may replace the type derived from the Parquet schema `d`:
 * integers and floats (not half floats), strings (plain or dictionary), and lists (fixed-size or
 * not) of those.
 */
function compatible(d: DataType, s: DataType): boolean {
  if (DataType.isInt(d)) return DataType.isInt(s);
  if (DataType.isFloat(d)) return DataType.isFloat(s) && (s.precision === 1 || s.precision === 2);
  if (DataType.isUtf8(d)) return DataType.isUtf8(s) || (DataType.isDictionary(s) && DataType.isUtf8(s.dictionary) && s.indices.bitWidth <= 32);
  if (DataType.isList(d)) {
    const de = d.children[0].type;
    if (!(DataType.isList(s) || DataType.isFixedSizeList(s))) return false;
    return compatible(de, s.children[0].type);
  }
  return false;
}

/** The node holding a LIST column's element, or null if `node` is not a LIST group. */
function listElement(node: SchemaTree): SchemaTree | null {
  const el = node.element;
  const isList = el.converted_type === 'LIST' || el.logical_type?.type === 'LIST';
  if (!isList || node.children.length !== 1) return null;
  const rep = node.children[0];
  if (rep.element.repetition_type !== 'REPEATED') return null;
  // Backward-compatibility rules of the Parquet LIST spec: a repeated primitive, a repeated group
  // with several fields, or one named `array` / `<name>_tuple` is itself the element.
  if (rep.children.length !== 1 || rep.element.name === 'array' || rep.element.name === `${el.name}_tuple`) return rep;
  return rep.children[0];
}

/** The Arrow type of a Parquet schema node (a repeated field without LIST annotation is a list). */
function typeOfNode(node: SchemaTree): DataType {
  const inner = elementType(node);
  if (node.element.repetition_type === 'REPEATED') return new List(new Field('element', inner, false));
  return inner;
}

/** The type of a node ignoring its own repetition. */
function elementType(node: SchemaTree): DataType {
  const elem = listElement(node);
  if (elem) {
    const t = elem === node.children[0] ? elementType(elem) : typeOfNode(elem);
    return new List(new Field('element', t, elem.element.repetition_type === 'OPTIONAL'));
  }
  if (node.children.length > 0) return new Struct(node.children.map((c) => new Field(c.element.name, typeOfNode(c), c.element.repetition_type !== 'REQUIRED')));
  return primitiveType(node.element);
}

function primitiveType(el: SchemaElement): DataType {
  const lt = el.logical_type;
  const ct = el.converted_type;
  switch (el.type) {
    case 'BOOLEAN':
      return new Bool();
    case 'INT32':
    case 'INT64': {
      const bits = el.type === 'INT32' ? 32 : 64;
      if (lt?.type === 'INTEGER') return intType(lt.bitWidth, lt.isSigned);
      const m = /^(U?)INT_(8|16|32|64)$/.exec(ct ?? '');
      if (m) return intType(Number(m[2]), m[1] !== 'U');
      // Dates, times, timestamps and decimals are not numbers to ingest (as in an Arrow file:
      // ignored as feature columns, refused as labels).
      const temporal = temporalType(el);
      if (temporal) return temporal;
      return bits === 32 ? new Int32() : new Int64();
    }
    case 'INT96':
      return new TimestampNanosecond();
    case 'FLOAT':
      return new Float32();
    case 'DOUBLE':
      return new Float64();
    case 'FIXED_LEN_BYTE_ARRAY':
      // Half floats are decoded to numbers by the reader; stored as float32 here.
      if (lt?.type === 'FLOAT16') return new Float32();
      return temporalType(el) ?? new Binary();
    case 'BYTE_ARRAY':
    default:
      if (lt?.type === 'DECIMAL' || ct === 'DECIMAL') return temporalType(el) as DataType;
      if (ct === 'UTF8' || ct === 'ENUM' || ct === 'JSON' || lt?.type === 'STRING' || lt?.type === 'ENUM' || lt?.type === 'JSON') return new Utf8();
      return new Binary();
  }
}

/** The Arrow type of a DATE / TIME / TIMESTAMP / DECIMAL annotated column, or null. */
function temporalType(el: SchemaElement): DataType | null {
  const lt = el.logical_type;
  const ct = el.converted_type;
  if (lt?.type === 'DECIMAL' || ct === 'DECIMAL') {
    const precision = lt?.type === 'DECIMAL' ? lt.precision : (el.precision ?? 38);
    return new Decimal(lt?.type === 'DECIMAL' ? lt.scale : (el.scale ?? 0), precision, precision > 18 ? 128 : 64);
  }
  if (lt?.type === 'DATE' || ct === 'DATE') return new DateDay();
  const unit: string = lt?.type === 'TIME' || lt?.type === 'TIMESTAMP' ? lt.unit : '';
  if (lt?.type === 'TIMESTAMP' || ct === 'TIMESTAMP_MILLIS' || ct === 'TIMESTAMP_MICROS') {
    if (ct === 'TIMESTAMP_MICROS' || unit === 'MICROS') return new TimestampMicrosecond();
    if (unit === 'NANOS') return new TimestampNanosecond();
    return new TimestampMillisecond();
  }
  if (lt?.type === 'TIME' || ct === 'TIME_MILLIS' || ct === 'TIME_MICROS') {
    if (ct === 'TIME_MICROS' || unit === 'MICROS') return new TimeMicrosecond();
    if (unit === 'NANOS') return new TimeNanosecond();
    return new TimeMillisecond();
  }
  return null;
}

function intType(bits: number, signed: boolean): DataType {
  if (signed) return bits === 8 ? new Int8() : bits === 16 ? new Int16() : bits === 32 ? new Int32() : new Int64();
  return bits === 8 ? new Uint8() : bits === 16 ? new Uint16() : bits === 32 ? new Uint32() : new Uint64();
}

// ---------------------------------------------------------------- row groups

/**
 * One Arrow record batch per row group, in order, each decoded when asked for. A row group that
 * cannot be read ends the iteration with a DataError naming the group and its first row.
 */
async function* readRowGroups(file: string, buffer: AsyncBuffer, metadata: FileMetaData, schema: Schema, columns: readonly string[] | undefined): AsyncGenerator<RecordBatch, void, undefined> {
  const wanted = schema.fields.filter((f) => !columns || columns.includes(f.name));
  const batchFields = schema.fields.map((f) => (wanted.includes(f) ? f : new Field(f.name, new Null(), true)));
  const batchSchema = new Schema(batchFields, schema.metadata);
  let start = 0;
  for (let g = 0; g < metadata.row_groups.length; g++) {
    const rows = Number(metadata.row_groups[g].num_rows);
    if (rows === 0) continue;
    const chunks = new Map<string, { rowStart: number; data: DecodedArray }[]>(wanted.map((f) => [f.name, []]));
    const fail = (e: unknown): never => {
      throw dataError(file, { row: start }, `row group ${g} (starting at row ${start}) cannot be read (${(e as Error).message}); the file is truncated or corrupt, or uses an unsupported encoding`, WRITE_FIX);
    };
    if (wanted.length > 0) {
      try {
        await parquetRead({
          file: buffer,
          metadata,
          columns: wanted.map((f) => f.name),
          rowStart: start,
          rowEnd: start + rows,
          compressors,
          onChunk: (c) => chunks.get(c.columnName)?.push({ rowStart: c.rowStart, data: c.columnData }),
        });
      } catch (e) {
        fail(e);
      }
    }
    const children = batchFields.map((f): Data => {
      if (DataType.isNull(f.type)) return makeData({ type: f.type, length: rows, nullCount: rows });
      let values: DecodedArray;
      try {
        values = joinChunks(chunks.get(f.name) ?? [], start, rows);
      } catch (e) {
        return fail(e);
      }
      return toArrowData(f.type, values, file, f.name, start);
    });
    yield new RecordBatch(batchSchema, makeData({ type: new Struct(batchFields), length: rows, nullCount: 0, children }));
    start += rows;
  }
}

/** The decoded pages of one column chunk, in row order, as one array of exactly `rows` values. */
function joinChunks(parts: { rowStart: number; data: DecodedArray }[], start: number, rows: number): DecodedArray {
  parts.sort((a, b) => a.rowStart - b.rowStart);
  let n = 0;
  for (const p of parts) {
    if (p.rowStart !== start + n) throw new Error(`column data for rows from ${p.rowStart} where row ${start + n} was expected`);
    n += p.data.length;
  }
  if (n !== rows) throw new Error(`the column chunk has ${n} values for the row group's ${rows} rows`);
  if (parts.length === 1) return parts[0].data;
  const first = parts[0].data;
  if (ArrayBuffer.isView(first) && parts.every((p) => p.data.constructor === first.constructor)) {
    const Ctor = first.constructor as TypedCtor;
    const out = new Ctor(n);
    let k = 0;
    for (const p of parts) {
      (out as Float64Array).set(p.data as Float64Array, k);
      k += p.data.length;
    }
    return out as DecodedArray;
  }
  const out: unknown[] = [];
  for (const p of parts) for (let i = 0; i < p.data.length; i++) out.push(p.data[i]);
  return out as DecodedArray;
}

// ---------------------------------------------------------------- conversion to Arrow

type TypedCtor = new (n: number) => Int8Array | Int16Array | Int32Array | Uint8Array | Uint16Array | Uint32Array | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

/** Validity bitmap of `values` (null or undefined = null) and the null count; no bitmap when none. */
function validity(n: number, isNull: (i: number) => boolean): { nullBitmap?: Uint8Array; nullCount: number } {
  let bitmap: Uint8Array | undefined;
  let nulls = 0;
  for (let i = 0; i < n; i++) {
    if (!isNull(i)) continue;
    if (!bitmap) {
      bitmap = new Uint8Array((n + 7) >> 3).fill(0xff);
    }
    bitmap[i >> 3] &= ~(1 << (i & 7));
    nulls++;
  }
  return bitmap ? { nullBitmap: bitmap, nullCount: nulls } : { nullCount: 0 };
}

/** Copies numbers (or bigints) into a typed array of the Arrow type's storage; nulls become 0. */
function numericValues(type: DataType, values: ArrayLike<unknown>, n: number, out?: InstanceType<TypedCtor>, outStart = 0): InstanceType<TypedCtor> {
  const Ctor = (type as unknown as { ArrayType: TypedCtor }).ArrayType;
  const a = out ?? new Ctor(n);
  const big = a instanceof BigInt64Array || a instanceof BigUint64Array;
  if (!big && (values instanceof Float32Array || values instanceof Float64Array || values instanceof Int32Array || values instanceof Uint32Array) && values.length === n) {
    (a as Float64Array).set(values as Float64Array, outStart);
    return a;
  }
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === null || v === undefined) continue;
    if (big) (a as BigInt64Array)[outStart + i] = typeof v === 'bigint' ? v : BigInt(Math.trunc(Number(v)));
    else (a as Float64Array)[outStart + i] = typeof v === 'bigint' ? Number(v) : (v as number);
  }
  return a;
}

const isNullish = (v: unknown): boolean => v === null || v === undefined;

/**
 * Arrow data of type `type` from one decoded Parquet column chunk (numbers / bigints / strings,
 * or one array per row for a list; null or undefined for nulls).
 */
function toArrowData(type: DataType, values: DecodedArray, file: string, column: string, start: number): Data {
  const n = values.length;
  if (DataType.isInt(type) || DataType.isFloat(type)) {
    const v = validity(n, (i) => isNullish(values[i]));
    return makeData({ type, length: n, ...v, data: numericValues(type, values, n) } as Parameters<typeof makeData>[0]);
  }
  if (DataType.isDictionary(type)) {
    const ids = new Map<string, number>();
    const idx = numericValues(type.indices, [], n) as Int32Array;
    const dict: string[] = [];
    for (let i = 0; i < n; i++) {
      const s = values[i] as string | null | undefined;
      if (isNullish(s)) continue;
      let k = ids.get(s as string);
      if (k === undefined) {
        k = dict.push(s as string) - 1;
        ids.set(s as string, k);
      }
      idx[i] = k;
    }
    const v = validity(n, (i) => isNullish(values[i]));
    return makeData({ type, length: n, ...v, data: idx, dictionary: vectorFromArray(dict, new Utf8()) });
  }
  if ((DataType.isList(type) || DataType.isFixedSizeList(type)) && isNumericType(type.children[0].type)) {
    const elem = type.children[0].type;
    const fixed = DataType.isFixedSizeList(type) ? type.listSize : -1;
    const rows = values as unknown as (ArrayLike<unknown> | null | undefined)[];
    const offsets = new Int32Array(n + 1);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const r = rows[i];
      const len = isNullish(r) ? 0 : (r as ArrayLike<unknown>).length;
      if (fixed >= 0 && !isNullish(r) && len !== fixed) {
        throw dataError(file, { column, row: start + i }, `this row has ${len} values but the file's Arrow schema says fixed_size_list of ${fixed}`, 'write the file again; every row of a fixed-size list has the same length');
      }
      total += fixed >= 0 ? fixed : len;
      offsets[i + 1] = total;
    }
    const child = numericValues(elem, [], total);
    const big = child instanceof BigInt64Array || child instanceof BigUint64Array;
    let childNulls: number[] | null = null;
    for (let i = 0; i < n; i++) {
      const r = rows[i];
      if (isNullish(r)) continue;
      const row = r as ArrayLike<unknown>;
      const o = offsets[i];
      if (big || !Array.isArray(row)) {
        numericValues(elem, row, row.length, child, o);
        if (Array.isArray(row)) for (let j = 0; j < row.length; j++) if (isNullish(row[j])) (childNulls ??= []).push(o + j);
        continue;
      }
      // The common case (a JS array of numbers): copy and look for nulls in one loop.
      const out = child as Float64Array;
      for (let j = 0; j < row.length; j++) {
        const v = row[j] as number | null | undefined;
        if (v === null || v === undefined) (childNulls ??= []).push(o + j);
        else out[o + j] = v;
      }
    }
    let cv: { nullBitmap?: Uint8Array; nullCount: number } = { nullCount: 0 };
    if (childNulls) {
      const set = new Set(childNulls);
      cv = validity(total, (k) => set.has(k));
    }
    const childData = makeData({ type: elem, length: total, ...cv, data: child } as Parameters<typeof makeData>[0]);
    const v = validity(n, (i) => isNullish(rows[i]));
    if (fixed >= 0) return makeData({ type: type as FixedSizeList, length: n, ...v, child: childData });
    return makeData({ type: type as List, length: n, ...v, valueOffsets: offsets, child: childData });
  }
  if (DataType.isUtf8(type)) return utf8Data(values as unknown as (string | null | undefined)[]);
  // Anything else (booleans, binary, lists of strings, structs): the Arrow builders, which handle
  // every type's JS values (ingest rejects such columns from the schema; `inspect` may read them).
  try {
    const vec = vectorFromArray(Array.from(values as ArrayLike<unknown>, (x) => (x === undefined ? null : x)) as unknown[], type);
    if (vec.data.length !== 1) throw new Error(`${vec.data.length} chunks`);
    return vec.data[0];
  } catch (e) {
    throw dataError(file, { column, row: start }, `cannot convert the column's values to ${String(type)} (${(e as Error).message})`, 'store the column as numbers or strings (see datasets/README.md)');
  }
}

const encoder = new TextEncoder();

/** Utf8 data (offsets and UTF-8 bytes) from JS strings; null or undefined are nulls. */
function utf8Data(values: (string | null | undefined)[]): Data {
  const n = values.length;
  const parts: Uint8Array[] = new Array<Uint8Array>(n);
  const offsets = new Int32Array(n + 1);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const s = values[i];
    parts[i] = isNullish(s) ? new Uint8Array(0) : encoder.encode(String(s));
    total += parts[i].length;
    offsets[i + 1] = total;
  }
  const bytes = new Uint8Array(total);
  for (let i = 0; i < n; i++) bytes.set(parts[i], offsets[i]);
  const v = validity(n, (i) => isNullish(values[i]));
  return makeData({ type: new Utf8(), length: n, ...v, valueOffsets: offsets, data: bytes });
}
