/**
 * Parquet inputs for the data tests, written in code with hyparquet-writer from the same Arrow
 * record batches the Arrow tests use, so one fixture exists in both formats.
 */
import { writeFileSync } from 'node:fs';
import { DataType, Table, tableToIPC, type RecordBatch, type Schema, type Vector } from 'apache-arrow';
import { parquetWriteBuffer } from 'hyparquet-writer';
import type { SchemaElement } from 'hyparquet-writer';
import { ARROW_SCHEMA_KEY } from '../../src/data/parquet-read.ts';

/** Options of {@link writeParquet}. */
export interface ParquetFixtureOptions {
  /** Rows per row group (a number, or sizes with the last repeating). Default: all in one. */
  rowGroupSize?: number | number[];
  /**
   * Store the Arrow schema under `ARROW:schema` as pyarrow (and Hugging Face `datasets`) do, so
   * fixed-size lists and dictionaries read back as written. Default true.
   */
  arrowSchema?: boolean;
  /** Page compression (default SNAPPY, what pyarrow writes). */
  codec?: 'UNCOMPRESSED' | 'SNAPPY';
}

/** The Parquet schema element(s) of one Arrow field (a LIST is three elements). */
function elementsOf(name: string, t: DataType): SchemaElement[] {
  const repetition_type = 'OPTIONAL' as const;
  if (DataType.isList(t) || DataType.isFixedSizeList(t)) {
    return [
      { name, repetition_type, num_children: 1, converted_type: 'LIST' },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      ...elementsOf('element', t.children[0].type),
    ];
  }
  if (DataType.isDictionary(t)) return elementsOf(name, t.dictionary);
  if (DataType.isUtf8(t)) return [{ name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type }];
  if (DataType.isFloat(t)) return [{ name, type: t.precision === 1 ? 'FLOAT' : 'DOUBLE', repetition_type }];
  if (DataType.isInt(t)) {
    if (t.bitWidth === 64) return [{ name, type: 'INT64', repetition_type, ...(t.isSigned ? {} : { converted_type: 'UINT_64' as const }) }];
    if (t.bitWidth === 32 && t.isSigned) return [{ name, type: 'INT32', repetition_type }];
    return [{ name, type: 'INT32', repetition_type, converted_type: `${t.isSigned ? '' : 'U'}INT_${t.bitWidth}` as SchemaElement['converted_type'] }];
  }
  throw new Error(`parquet fixture: no mapping for ${String(t)}`);
}

/** Row `i` of a column as the JS value hyparquet-writer takes (lists as arrays, nulls as null). */
function jsValue(v: Vector, i: number): unknown {
  const x: unknown = v.get(i);
  if (x === null || x === undefined) return null;
  if (DataType.isList(v.type) || DataType.isFixedSizeList(v.type)) {
    const sub = x as Vector;
    return Array.from({ length: sub.length }, (_, j) => {
      const e: unknown = sub.get(j);
      return e === undefined ? null : e;
    });
  }
  return x;
}

/** The serialized Arrow schema message pyarrow stores under `ARROW:schema` (base64). */
export function arrowSchemaValue(schema: Schema): string {
  const bytes = tableToIPC(new Table(schema), 'stream');
  // The stream is the schema message then the 8-byte end-of-stream marker.
  return Buffer.from(bytes.subarray(0, bytes.length - 8)).toString('base64');
}

/**
 * Writes the rows of `batches` (all with the first one's schema) to a Parquet file: one column
 * per Arrow field (lists as 3-level LIST groups, dictionaries as plain strings, which the writer
 * dictionary-encodes when that halves their size), schema metadata as key-value metadata.
 */
export function writeParquet(file: string, batches: RecordBatch[], opts: ParquetFixtureOptions = {}): string {
  const schema = batches[0].schema;
  const columnData = schema.fields.map((f, k) => {
    const data: unknown[] = [];
    for (const b of batches) {
      const v = b.getChildAt(k) as Vector;
      for (let i = 0; i < b.numRows; i++) data.push(jsValue(v, i));
    }
    return { name: f.name, data };
  });
  const elements = schema.fields.flatMap((f) => elementsOf(f.name, f.type));
  const kvMetadata = [...schema.metadata].map(([key, value]) => ({ key, value }));
  if (opts.arrowSchema ?? true) kvMetadata.push({ key: ARROW_SCHEMA_KEY, value: arrowSchemaValue(schema) });
  const n = columnData[0]?.data.length ?? 0;
  const buf = parquetWriteBuffer({
    columnData: columnData as Parameters<typeof parquetWriteBuffer>[0]['columnData'],
    schema: [{ name: 'schema', num_children: schema.fields.length }, ...elements],
    rowGroupSize: opts.rowGroupSize ?? Math.max(1, n),
    kvMetadata,
    codec: opts.codec ?? 'SNAPPY',
  });
  writeFileSync(file, new Uint8Array(buf));
  return file;
}
