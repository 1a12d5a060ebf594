import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  AsyncByteQueue,
  Field,
  FixedSizeList,
  Float32,
  Int32,
  RecordBatch,
  RecordBatchFileWriter,
  Schema,
  Struct,
  Utf8,
  makeData,
  type Data,
  DataType,
} from 'apache-arrow';
import { tempPathFor } from '../artifacts/atomic.ts';

/**
 * A byte sink for the Arrow writer that writes every chunk straight to a file descriptor, so a
 * file of any size is written with one record batch in memory at a time (the stock writer
 * queues every byte in memory until someone reads them).
 */
class FdSink extends AsyncByteQueue<Uint8Array> {
  constructor(private readonly fd: number) {
    super();
  }
  override write(value: Uint8Array | ArrayBufferView | ArrayBuffer): void {
    const u8 =
      value instanceof Uint8Array
        ? value
        : ArrayBuffer.isView(value)
          ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
          : new Uint8Array(value as ArrayBuffer);
    let off = 0;
    while (off < u8.byteLength) off += writeSync(this.fd, u8, off, u8.byteLength - off);
  }
}

/**
 * Writes an Arrow IPC *file* (random-access format) batch by batch to a temp file beside
 * `target`; {@link ArrowFileSink.finish} fsyncs and renames it into place, so `target` is never
 * seen half-written (the same protocol as `src/artifacts/atomic.ts`, whose `tempPathFor` it
 * uses). {@link ArrowFileSink.abort} removes the temp file.
 */
export class ArrowFileSink {
  private readonly tmp: string;
  private readonly fd: number;
  private readonly writer: RecordBatchFileWriter;
  private open = true;
  private batches = 0;

  /** Opens the temp file for `target` (creating its folder) and starts a writer for `schema`. */
  constructor(
    readonly target: string,
    readonly schema: Schema,
  ) {
    mkdirSync(path.dirname(target), { recursive: true });
    this.tmp = tempPathFor(target);
    this.fd = openSync(this.tmp, 'w');
    this.writer = new RecordBatchFileWriter();
    this.writer.reset(new FdSink(this.fd), schema);
  }

  /** Appends one record batch (its schema must equal the sink's). */
  write(batch: RecordBatch): void {
    if (!this.open) throw new Error(`ArrowFileSink(${this.target}): write after finish/abort`);
    this.writer.write(batch);
    this.batches++;
  }

  /**
   * Writes the footer, fsyncs, closes and renames the temp file to `target`; `beforeRename` runs
   * when the temp file is complete, just before the rename (crash tests put a failpoint there).
   */
  finish(beforeRename?: () => void): void {
    if (!this.open) throw new Error(`ArrowFileSink(${this.target}): finish called twice`);
    try {
      if (this.batches === 0) {
        // The writer only emits the schema with the first batch: write an empty one so the
        // file still carries the schema (an empty split is a valid file).
        this.writer.write(new RecordBatch(this.schema, makeData({ type: new Struct(this.schema.fields), length: 0, nullCount: 0, children: this.schema.fields.map((f) => emptyData(f.type)) })));
      }
      this.writer.finish();
      fsyncSync(this.fd);
      closeSync(this.fd);
      this.open = false;
      beforeRename?.();
      renameSync(this.tmp, this.target);
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** Closes and deletes the temp file (nothing appears under `target`). Safe to call twice. */
  abort(): void {
    if (this.open) {
      this.open = false;
      try {
        closeSync(this.fd);
      } catch {
        // already closed
      }
    }
    rmSync(this.tmp, { force: true });
  }
}

function emptyData(type: DataType): Data {
  if (DataType.isFixedSizeList(type)) {
    const child = type.children[0];
    return makeData({ type, length: 0, nullCount: 0, child: emptyData(child.type) });
  }
  if (DataType.isUtf8(type)) return makeData({ type, length: 0, nullCount: 0, valueOffsets: new Int32Array(1), data: new Uint8Array(0) });
  if (DataType.isInt(type)) return makeData({ type, length: 0, nullCount: 0, data: new Int32Array(0) });
  if (DataType.isFloat(type)) return makeData({ type, length: 0, nullCount: 0, data: new Float32Array(0) });
  throw new Error(`emptyData: unsupported type ${String(type)}`);
}

/** The `features: FixedSizeList<Float32>[dim]` type used by every file this project writes. */
export function featuresType(dim: number): FixedSizeList<Float32> {
  return new FixedSizeList(dim, new Field('item', new Float32(), false));
}

/**
 * The schema of a labelled Arrow file: `label: Int32`, `features: FixedSizeList<Float32>[dim]`,
 * optionally `split: Utf8`, with schema metadata `shape` (JSON) when `shape` is given.
 */
export function labeledSchema(dim: number, shape: number[] | null | undefined, withSplit = false): Schema {
  const fields: Field[] = [new Field('label', new Int32(), false), new Field('features', featuresType(dim), false)];
  if (withSplit) fields.push(new Field('split', new Utf8(), false));
  const metadata = new Map<string, string>();
  if (shape) metadata.set('shape', JSON.stringify(shape));
  return new Schema(fields, metadata);
}

/** Encodes `n` strings given as codes into a vocabulary as Arrow Utf8 data (no per-row JS strings). */
export function utf8FromCodes(codes: Uint8Array | Int32Array, vocabulary: readonly string[], n = codes.length): Data<Utf8> {
  const enc = new TextEncoder();
  const bytes = vocabulary.map((s) => enc.encode(s));
  const offsets = new Int32Array(n + 1);
  let total = 0;
  for (let i = 0; i < n; i++) {
    total += bytes[codes[i]].byteLength;
    offsets[i + 1] = total;
  }
  const values = new Uint8Array(total);
  for (let i = 0; i < n; i++) values.set(bytes[codes[i]], offsets[i]);
  return makeData({ type: new Utf8(), length: n, nullCount: 0, valueOffsets: offsets, data: values });
}

/**
 * Builds one record batch of `schema` (from {@link labeledSchema}) from row-major features
 * `x` (n x dim), labels `y`, and optionally split codes into `splitVocabulary`.
 * The typed arrays are used without copying.
 */
export function labeledBatch(
  schema: Schema,
  x: Float32Array,
  y: Int32Array,
  n: number,
  split?: { codes: Uint8Array; vocabulary: readonly string[] },
): RecordBatch {
  const featField = schema.fields[1];
  const type = featField.type as FixedSizeList<Float32>;
  const dim = type.listSize;
  const child = makeData({ type: new Float32(), length: n * dim, nullCount: 0, data: x.subarray(0, n * dim) });
  const children: Data[] = [
    makeData({ type: new Int32(), length: n, nullCount: 0, data: y.subarray(0, n) }),
    makeData({ type, length: n, nullCount: 0, child }),
  ];
  if (split) children.push(utf8FromCodes(split.codes, split.vocabulary, n));
  if (children.length !== schema.fields.length) throw new Error('labeledBatch: split codes given iff the schema has a split column');
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: n, nullCount: 0, children }));
}
