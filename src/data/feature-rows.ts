/**
 * Reads a user's table (Arrow IPC file/stream or Parquet) for prediction: the same column rules,
 * checks and messages as ingest (src/data/validate.ts, `scanFeatures`), labels optional, streamed
 * record batch by record batch so memory does not grow with the rows.
 */
import type { Data } from 'apache-arrow';
import { dataError, intValues, stringIds } from './arrow-read.ts';
import { columnsOf, readColumns, scanFeatures } from './ingest.ts';
import { openTable } from './table-input.ts';
import { planIngest } from './validate.ts';

/** What the rows must look like: the dataset a model was trained on. */
export interface FeatureExpectation {
  /** Features per row. */
  dim: number;
  /** The training data's example shape, when it had one: a file with another `shape` is refused. */
  shape?: number[] | null;
  /** Class names in index order (`classes.json`): string labels are mapped by name. */
  classes: readonly string[];
}

/** One block of rows. */
export interface FeatureBlock {
  /** Row-major `rows x dim` features, scaled by the file's `feature_scale` (a fresh array). */
  x: Float32Array;
  rows: number;
  /** Index of the block's first row in the file. */
  firstRow: number;
  /** Class index per row, when the file has labels (-1 where a row's label is null). */
  labels: Int32Array | null;
}

/**
 * Streams `file`'s rows in blocks (at most one record batch / row group each), checked like
 * ingest checks them. Integer labels are class indices (checked against the class count); string
 * labels are class names, mapped to indices by `expect.classes`.
 *
 * @throws DataError naming the file, column and row: another feature width or shape than the
 *   model's, null or non-finite features, ragged lists, a label that is not one of the classes.
 */
export async function* readFeatureRows(file: string, expect: FeatureExpectation): AsyncGenerator<FeatureBlock> {
  const input = await openTable(file);
  try {
    const plan = planIngest(input.schema, file, { labelOptional: true });
    const feat = plan.features;
    if (feat.kind !== 'list' && feat.dim !== expect.dim) {
      throw dataError(file, { column: feat.kind === 'fixed' ? feat.column : 'features' }, `each row has ${feat.dim} features but the model takes ${expect.dim}`, 'give rows with the features the model was trained on (same columns, same order)');
    }
    if (plan.shape && expect.shape && plan.shape.join('x') !== expect.shape.join('x')) {
      throw dataError(file, {}, `schema metadata 'shape' ${JSON.stringify(plan.shape)} differs from the training data's ${JSON.stringify(expect.shape)}`, 'give images of the shape the model was trained on');
    }
    const cols = columnsOf(input, plan);
    const byName = new Map(expect.classes.map((c, i) => [c, i]));
    const dimRef = { value: feat.kind === 'list' ? 0 : feat.dim, scratch: new Float32Array(0) };
    let row = 0;
    for await (const batch of input.batches(readColumns(plan))) {
      const m = batch.numRows;
      if (m === 0) continue;
      const x = new Float32Array(m * expect.dim);
      scanFeatures(batch, plan, cols, file, row, dimRef, (view, rows, first) => {
        if (dimRef.value !== expect.dim) {
          throw dataError(file, { column: 'features', row: first }, `each row has ${dimRef.value} features but the model takes ${expect.dim}`, 'give rows with the features the model was trained on');
        }
        x.set(view.subarray(0, rows * expect.dim), (first - row) * expect.dim);
      });
      if (plan.scale !== 1) for (let i = 0; i < x.length; i++) x[i] *= plan.scale;
      let labels: Int32Array | null = null;
      if (plan.label !== null) {
        const ld: Data = batch.data.children[cols.label];
        labels = new Int32Array(m);
        if (plan.label === 'int') {
          const v = intValues(ld);
          for (let i = 0; i < m; i++) {
            if (!ld.getValid(i)) {
              labels[i] = -1;
              continue;
            }
            if (!(v[i] >= 0 && v[i] < expect.classes.length)) {
              throw dataError(file, { column: 'label', row: row + i }, `class index ${v[i]} is not one of the model's ${expect.classes.length} classes (0..${expect.classes.length - 1})`, 'give the class indices of the training data (classes.json), or class names as strings');
            }
            labels[i] = v[i];
          }
        } else {
          const names: string[] = [];
          const ids = stringIds(ld, (s) => names.push(s) - 1);
          for (let i = 0; i < m; i++) {
            if (ids[i] < 0 || !ld.getValid(i)) {
              labels[i] = -1;
              continue;
            }
            const k = byName.get(names[ids[i]]!);
            if (k === undefined) {
              throw dataError(file, { column: 'label', row: row + i }, `label ${JSON.stringify(names[ids[i]])} is not one of the model's classes (${expect.classes.slice(0, 5).join(', ')}${expect.classes.length > 5 ? ', ...' : ''})`, 'give labels named as in the run\'s classes.json, or drop the label column to predict without accuracy');
            }
            labels[i] = k;
          }
        }
      }
      yield { x, rows: m, firstRow: row, labels };
      row += m;
    }
    if (row === 0) throw dataError(file, {}, 'the table is empty (0 rows)', 'give at least one row to predict');
  } finally {
    await input.close();
  }
}
