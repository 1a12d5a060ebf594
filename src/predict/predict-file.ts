/**
 * Predictions of a finished stage on a file of new rows, streamed: rows are read one record
 * batch (or Parquet row group) at a time, predicted, and written to an Arrow file as they go, so
 * memory does not grow with the rows.
 */
import { Field, FixedSizeList, Float32, Int32, makeData, RecordBatch, Schema, Struct, Utf8, type Data } from 'apache-arrow';
import { ArrowFileSink, utf8FromCodes } from '../data/arrow-write.ts';
import { readFeatureRows } from '../data/feature-rows.ts';
import { ConfigError } from '../util/errors.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { arrowHasGenerator, checkOutputFile, GENERATOR, GENERATOR_KEY } from '../artifacts/output-file.ts';
import type { Predictor } from './predictor.ts';

/** Options of {@link predictFile}. */
export interface PredictFileOptions {
  /** Input rows: Arrow IPC (file or stream) or Parquet, the columns ingest accepts; `label` optional. */
  input: string;
  /** Output Arrow file; none: only the accuracy (when there are labels) is computed. */
  out?: string;
  /** Classes (with probabilities) listed per row, most probable first. Default 5 (at most C). */
  top?: number;
  /** Rows predicted at once at most (bigger record batches are cut). Default 8,192. */
  blockRows?: number;
  /**
   * Replace an existing `out` that distill-kit did not write (a file an earlier predict wrote is
   * replaced anyway). Never the input itself.
   */
  force?: boolean;
  log?: Logger;
}

/** What {@link predictFile} did. */
export interface PredictFileResult {
  rows: number;
  /** Rows with a label. */
  labelled: number;
  /** Fraction of the labelled rows whose most probable class is the label; null without labels. */
  accuracy: number | null;
  /** Errors among the labelled rows. */
  errors: number;
  /** The output file, when one was written. */
  out: string | null;
}

/** The schema of a predictions file with `top` classes per row (and the label when known). */
export function predictionsSchema(top: number, withLabel: boolean, metadata: Record<string, string>): Schema {
  const fields = [
    new Field('predicted', new Int32(), false),
    new Field('predicted_name', new Utf8(), false),
    new Field('top_classes', new FixedSizeList(top, new Field('item', new Int32(), false)), false),
    new Field('top_probabilities', new FixedSizeList(top, new Field('item', new Float32(), false)), false),
  ];
  if (withLabel) fields.push(new Field('label', new Int32(), false));
  return new Schema(fields, new Map(Object.entries(metadata)));
}

/**
 * The `top` most probable classes of each row of `probs` (`n x C`), most probable first; ties go
 * to the lower class index (the arg-max the metrics use).
 */
export function topK(probs: Float32Array, n: number, C: number, top: number): { index: Int32Array; prob: Float32Array } {
  const index = new Int32Array(n * top);
  const prob = new Float32Array(n * top);
  for (let r = 0; r < n; r++) {
    const row = probs.subarray(r * C, (r + 1) * C);
    // Insertion into a sorted list of `top`: O(C * top), fine for top << C.
    const bi = index.subarray(r * top, (r + 1) * top).fill(-1);
    const bp = prob.subarray(r * top, (r + 1) * top).fill(-Infinity);
    for (let c = 0; c < C; c++) {
      const v = row[c]!;
      if (v <= bp[top - 1]!) continue;
      let k = top - 1;
      while (k > 0 && v > bp[k - 1]!) {
        bp[k] = bp[k - 1]!;
        bi[k] = bi[k - 1]!;
        k--;
      }
      bp[k] = v;
      bi[k] = c;
    }
  }
  return { index, prob };
}

/**
 * Predicts every row of `opts.input` with `predictor`, writing `predicted`, `predicted_name`,
 * `top_classes`, `top_probabilities` (and `label` when the input has one) to `opts.out`.
 *
 * @throws DataError for input the model cannot take (see `readFeatureRows`); ConfigError for a bad
 * `top`; UserError('io') when `out` is the input, a folder, or a file distill-kit did not write
 * (without `force`), before anything is read or written
 */
export async function predictFile(predictor: Predictor, opts: PredictFileOptions): Promise<PredictFileResult> {
  const log = opts.log ?? silentLogger;
  const C = predictor.classes.length;
  const top = Math.min(opts.top ?? 5, C);
  if (!Number.isInteger(top) || top < 1) throw new ConfigError(`--top must be a whole number >= 1, got ${String(opts.top)}`);
  const blockRows = Math.max(1, Math.floor(opts.blockRows ?? 8192));
  if (opts.out) {
    await checkOutputFile(opts.out, { flag: '--out', force: opts.force ?? false, inputs: [opts.input], ours: (f) => arrowHasGenerator(f, GENERATOR.predict) });
  }
  let sink: ArrowFileSink | null = null;
  let schema: Schema | null = null;
  let rows = 0;
  let labelled = 0;
  let correct = 0;
  const progress = log.progress(`predicting ${opts.input}`, 0);
  try {
    for await (const block of readFeatureRows(opts.input, { dim: predictor.dim, shape: predictor.shape, classes: predictor.classes })) {
      if (opts.out && !sink) {
        schema = predictionsSchema(top, block.labels !== null, { [GENERATOR_KEY]: GENERATOR.predict, stage: predictor.stageDir, kind: predictor.kind, classes: String(C) });
        sink = new ArrowFileSink(opts.out, schema);
      }
      for (let s = 0; s < block.rows; s += blockRows) {
        const n = Math.min(blockRows, block.rows - s);
        const probs = await predictor.predict(block.x.subarray(s * predictor.dim, (s + n) * predictor.dim), n);
        const { index, prob } = topK(probs, n, C, top);
        const labels = block.labels?.subarray(s, s + n) ?? null;
        if (labels) {
          for (let r = 0; r < n; r++) {
            if (labels[r]! < 0) continue;
            labelled++;
            if (index[r * top] === labels[r]) correct++;
          }
        }
        if (sink && schema) {
          const predicted = new Int32Array(n);
          for (let r = 0; r < n; r++) predicted[r] = index[r * top]!;
          const listOf = (child: Data, type: FixedSizeList): Data => makeData({ type, length: n, nullCount: 0, child });
          const children: Data[] = [
            makeData({ type: new Int32(), length: n, nullCount: 0, data: predicted }),
            utf8FromCodes(predicted, predictor.classes, n),
            listOf(makeData({ type: new Int32(), length: n * top, nullCount: 0, data: index }), schema.fields[2]!.type as FixedSizeList),
            listOf(makeData({ type: new Float32(), length: n * top, nullCount: 0, data: prob }), schema.fields[3]!.type as FixedSizeList),
          ];
          if (labels) children.push(makeData({ type: new Int32(), length: n, nullCount: 0, data: labels.slice() }));
          sink.write(new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: n, nullCount: 0, children })));
        }
        rows += n;
        progress.tick(n, `${rows} rows`);
      }
    }
    progress.done(`${rows} rows`);
    sink?.finish();
  } catch (e) {
    sink?.abort();
    throw e;
  }
  return { rows, labelled, accuracy: labelled > 0 ? correct / labelled : null, errors: labelled - correct, out: sink ? opts.out! : null };
}
