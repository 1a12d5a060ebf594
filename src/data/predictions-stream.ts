import { Field, FixedSizeList, Float32, Int32, RecordBatch, Schema, Struct, makeData } from 'apache-arrow';
import { ArrowFileSink } from './arrow-write.ts';

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
