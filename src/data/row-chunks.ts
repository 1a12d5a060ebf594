/**
 * Re-chunks record batches of (label: Int32, values: FixedSizeList<Float32>[width]) into blocks of
 * a fixed row count, whatever the batches' sizes: the loop split files and prediction files share.
 */
import type { Data, RecordBatch } from 'apache-arrow';

/** One block: `labels` (n) and row-major `values` (n x width); the arrays are reused between blocks. */
export interface LabeledRowChunk {
  labels: Int32Array;
  values: Float32Array;
  n: number;
  /** Index of the block's first row in the file. */
  start: number;
}

/** Where the columns are and what to say when a batch is bad. */
export interface RowChunkOptions {
  labelIdx: number;
  valuesIdx: number;
  /** Values per row (the FixedSizeList's size). */
  width: number;
  /** Rows per block (>= 1). */
  rows: number;
  /** Extra checks of a batch's label and value data before it is read (throw to refuse it). */
  check?: (labels: Data, values: Data, row: number) => void;
  /** The error for a batch whose buffers are shorter than its row count. */
  tooShort: (row: number) => Error;
}

/**
 * Yields blocks of `opts.rows` rows (the last one may be shorter) from `batches`. Arrow JS slices
 * value buffers and FixedSizeList children, so element 0 of a batch's buffers is its first value.
 */
export async function* labeledRowChunks(batches: AsyncIterable<RecordBatch>, opts: RowChunkOptions): AsyncGenerator<LabeledRowChunk> {
  const { rows, width } = opts;
  const values = new Float32Array(rows * width);
  const labels = new Int32Array(rows);
  let k = 0;
  let start = 0;
  let row = 0;
  for await (const b of batches) {
    const m = b.numRows;
    if (m === 0) continue;
    const ld = b.data.children[opts.labelIdx]!;
    const vd = b.data.children[opts.valuesIdx]!;
    opts.check?.(ld, vd, row);
    const l = (ld.values as Int32Array).subarray(0, m);
    const v = (vd.children[0]!.values as Float32Array).subarray(0, m * width);
    if (l.length !== m || v.length !== m * width) throw opts.tooShort(row);
    for (let i = 0; i < m; ) {
      const take = Math.min(rows - k, m - i);
      labels.set(l.subarray(i, i + take), k);
      values.set(v.subarray(i * width, (i + take) * width), k * width);
      k += take;
      i += take;
      if (k === rows) {
        yield { labels, values, n: k, start };
        start += k;
        k = 0;
      }
    }
    row += m;
  }
  if (k > 0) yield { labels, values, n: k, start };
}
