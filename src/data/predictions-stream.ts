import { promises as fs } from 'node:fs';
import { DataType, Field, FixedSizeList, Float32, Int32, RecordBatch, RecordBatchReader, Schema, Struct, makeData } from 'apache-arrow';
import { ArrowFileSink } from './arrow-write.ts';
import { isFloat32Type, isInt32Type, readRecordBatches } from './arrow-read.ts';
import { labeledRowChunks } from './row-chunks.ts';
import { ArtifactError } from '../util/errors.ts';

/** Rows per record batch: the same as `writePredictions` (`src/artifacts/predictions.ts`). */
export const PREDICTION_BATCH_ROWS = 4096;

/**
 * Writes a predictions file row block by row block: the same bytes as `writePredictions`
 * (`src/artifacts/predictions.ts`: columns `label: Int32` and `<column>: FixedSizeList<Float32>[C]`,
 * schema metadata plus `classes`, record batches of {@link PREDICTION_BATCH_ROWS} rows), but
 * with one record batch in memory instead of the whole file. Atomic: a temp file renamed into
 * place by {@link PredictionsWriter.finish}; {@link PredictionsWriter.abort} removes it.
 */
export class PredictionsWriter {
  private readonly sink: ArrowFileSink;
  private readonly listType: FixedSizeList<Float32>;
  private readonly labels = new Int32Array(PREDICTION_BATCH_ROWS);
  private readonly values: Float32Array;
  private k = 0;
  private written = 0;

  /**
   * @param file the target path
   * @param C values per row (classes)
   * @param column name of the vector column (`logits`, `probabilities`)
   * @param metadata schema metadata (`classes` is added)
   */
  constructor(
    file: string,
    readonly C: number,
    column = 'logits',
    metadata: Record<string, string> = {},
  ) {
    this.listType = new FixedSizeList(C, new Field('v', new Float32(), false));
    const schema = new Schema([new Field('label', new Int32(), false), new Field(column, this.listType, false)], new Map(Object.entries({ ...metadata, classes: String(C) })));
    this.values = new Float32Array(PREDICTION_BATCH_ROWS * C);
    this.sink = new ArrowFileSink(file, schema);
  }

  /** Rows written so far (including those buffered). */
  get rows(): number {
    return this.written + this.k;
  }

  /** Appends `rows` rows: labels `labels[0..rows)` and values `values[0 .. rows * C)` (row-major). */
  add(labels: Int32Array, values: Float32Array, rows: number): void {
    const C = this.C;
    if (labels.length < rows || values.length < rows * C) throw new RangeError(`PredictionsWriter.add: ${rows} rows need ${rows} labels and ${rows * C} values, got ${labels.length} and ${values.length}`);
    for (let i = 0; i < rows; ) {
      const take = Math.min(PREDICTION_BATCH_ROWS - this.k, rows - i);
      this.labels.set(labels.subarray(i, i + take), this.k);
      this.values.set(values.subarray(i * C, (i + take) * C), this.k * C);
      this.k += take;
      i += take;
      if (this.k === PREDICTION_BATCH_ROWS) this.flush();
    }
  }

  private flush(): void {
    const rows = this.k;
    const schema = this.sink.schema;
    // Built exactly as writePredictions builds its batches (same bytes).
    const label = makeData({ type: new Int32(), length: rows, data: this.labels.subarray(0, rows) });
    const child = makeData({ type: new Float32(), length: rows * this.C, data: this.values.subarray(0, rows * this.C) });
    const list = makeData({ type: this.listType, length: rows, child });
    const struct = makeData({ type: new Struct(schema.fields), length: rows, children: [label, list] });
    this.sink.write(new RecordBatch(schema, struct));
    this.written += rows;
    this.k = 0;
  }

  /** Writes the last (partial) batch and the footer, fsyncs and renames the file into place. */
  finish(): void {
    // writePredictions writes one empty batch for an empty set, and none after full batches.
    if (this.k > 0 || this.written === 0) this.flush();
    this.sink.finish();
  }

  /** Removes the temp file; nothing appears under the target name. */
  abort(): void {
    this.sink.abort();
  }
}

/** A block of consecutive rows of a predictions file (see {@link openPredictionsStream}). */
export interface PredictionsChunk {
  /** Labels; only the first `n` values belong to this chunk. */
  labels: Int32Array;
  /** Values, row-major; only the first `n * C` values belong to this chunk. */
  values: Float32Array;
  /** Rows in this chunk. */
  n: number;
  /** Index (in the whole file) of the chunk's first row. */
  start: number;
}

/** A predictions file opened for streaming reads. */
export interface PredictionsStream {
  file: string;
  /** Values per row. */
  C: number;
  /** The schema metadata. */
  metadata: Map<string, string>;
  /**
   * The rows in chunks of exactly `rows` rows (the last one may be shorter), in file order. The
   * chunk's arrays are reused: a chunk is valid until the next one is requested.
   */
  chunks(rows: number): AsyncGenerator<PredictionsChunk>;
  close(): Promise<void>;
}

/**
 * Opens a predictions file (written by `writePredictions` or {@link PredictionsWriter}: columns
 * `label: Int32`, `<column>: FixedSizeList<Float32>[C]`) for streaming: record batches are read
 * from disk one at a time and regrouped into chunks of a fixed number of rows, so a file of any
 * size is read with one record batch and one chunk in memory. The same rows as `readPredictions`
 * (`src/artifacts/predictions.ts`) returns, without materialising them.
 * @throws ArtifactError when the file is missing, not Arrow, truncated, or lacks the columns
 */
export async function openPredictionsStream(file: string, column = 'logits'): Promise<PredictionsStream> {
  const fix = 'rerun the stage that wrote it with --force';
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'r');
  } catch (e) {
    throw new ArtifactError(`cannot read predictions ${file} (${(e as Error).message}); ${fix}`, { cause: e });
  }
  let reader: Awaited<ReturnType<typeof RecordBatchReader.from>>;
  let schema: Schema;
  try {
    reader = await RecordBatchReader.from(fh);
    await reader.open();
    schema = reader.schema;
    if (!schema) throw new Error('no schema');
  } catch (e) {
    await fh.close();
    throw new ArtifactError(`cannot read predictions ${file} (${(e as Error).message}): it is truncated or corrupt; ${fix}`, { cause: e });
  }
  const labelIdx = schema.fields.findIndex((f) => f.name === 'label');
  const valIdx = schema.fields.findIndex((f) => f.name === column);
  const valType = valIdx >= 0 ? schema.fields[valIdx]!.type : undefined;
  if (labelIdx < 0 || !isInt32Type(schema.fields[labelIdx]!.type) || !valType || !DataType.isFixedSizeList(valType) || !isFloat32Type(valType.children[0]!.type)) {
    await fh.close();
    throw new ArtifactError(`${file}: expected columns 'label' and '${column}' (FixedSizeList<Float32>); ${fix}`);
  }
  const C = (valType as FixedSizeList).listSize;
  const r = reader;
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await fh.close();
  };
  return {
    file,
    C,
    metadata: schema.metadata,
    close,
    async *chunks(rows: number) {
      if (!Number.isInteger(rows) || rows < 1) throw new RangeError(`PredictionsStream.chunks: rows must be a positive integer, got ${rows}`);
      const batches = readRecordBatches(r, (_b, at, e) => new ArtifactError(`${file}: the record batch at row ${at} cannot be read (${(e as Error).message}): the file is truncated or corrupt; ${fix}`, { cause: e }));
      yield* labeledRowChunks(batches, {
        labelIdx,
        valuesIdx: valIdx,
        width: C,
        rows,
        tooShort: (row) => new ArtifactError(`${file}: buffers too short in the record batch at row ${row}: the file is corrupt; ${fix}`),
      });
    },
  };
}

/**
 * A whole predictions file in memory, read a record batch at a time (a first pass counts the rows,
 * a second fills the arrays): the result of `readPredictions` (`src/artifacts/predictions.ts`)
 * without its single file read, which stops at 2 GiB (135,000 valid rows x 6,763 classes is
 * 3.7 GB), and without a second copy of the file in memory.
 * @throws ArtifactError when the file is missing, not Arrow, truncated, or lacks the columns
 */
export async function readPredictionsFile(file: string, column = 'logits'): Promise<{ labels: Int32Array; values: Float32Array; n: number; C: number; metadata: Map<string, string> }> {
  let n = 0;
  const first = await openPredictionsStream(file, column);
  try {
    for await (const chunk of first.chunks(PREDICTION_BATCH_ROWS)) n += chunk.n;
  } finally {
    await first.close();
  }
  const s = await openPredictionsStream(file, column);
  const C = s.C;
  const labels = new Int32Array(n);
  const values = new Float32Array(n * C);
  let at = 0;
  try {
    for await (const chunk of s.chunks(PREDICTION_BATCH_ROWS)) {
      if (at + chunk.n > n) throw new ArtifactError(`${file} changed while it was read; rerun the stage that wrote it`);
      labels.set(chunk.labels.subarray(0, chunk.n), at);
      values.set(chunk.values.subarray(0, chunk.n * C), at * C);
      at += chunk.n;
    }
  } finally {
    await s.close();
  }
  if (at !== n) throw new ArtifactError(`${file} changed while it was read; rerun the stage that wrote it`);
  return { labels, values, n, C, metadata: s.metadata };
}
