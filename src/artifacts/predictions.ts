import { readFileSync } from 'node:fs';
import {
  Field, FixedSizeList, Float32, Int32, RecordBatch, Schema, Struct, makeData, tableFromIPC, RecordBatchFileWriter, type Table,
} from 'apache-arrow';
import { writeFileAtomic } from './atomic.ts';
import { ArtifactError } from '../util/errors.ts';

/** Rows of model outputs on one split: true labels and one vector per row (logits or probabilities). */
export interface PredictionSet {
  labels: Int32Array;
  values: Float32Array;
  n: number;
  C: number;
}

const ROWS_PER_BATCH = 4096;

/**
 * Writes predictions as an Arrow IPC file with columns `label: Int32` and
 * `<column>: FixedSizeList<Float32>[C]` (default column `logits`), in record batches, atomically.
 */
export async function writePredictions(file: string, p: PredictionSet, column = 'logits', metadata: Record<string, string> = {}): Promise<void> {
  if (p.values.length !== p.n * p.C || p.labels.length !== p.n) throw new Error(`writePredictions: sizes do not match (n=${p.n}, C=${p.C})`);
  const listType = new FixedSizeList(p.C, new Field('v', new Float32(), false));
  const schema = new Schema([new Field('label', new Int32(), false), new Field(column, listType, false)], new Map(Object.entries({ ...metadata, classes: String(p.C) })));
  const writer = new RecordBatchFileWriter();
  writer.reset(undefined, schema);
  for (let start = 0; start < Math.max(p.n, 1); start += ROWS_PER_BATCH) {
    const rows = Math.min(ROWS_PER_BATCH, p.n - start);
    const label = makeData({ type: new Int32(), length: rows, data: p.labels.subarray(start, start + rows) });
    const child = makeData({ type: new Float32(), length: rows * p.C, data: p.values.subarray(start * p.C, (start + rows) * p.C) });
    const list = makeData({ type: listType, length: rows, child });
    const struct = makeData({ type: new Struct(schema.fields), length: rows, children: [label, list] });
    writer.write(new RecordBatch(schema, struct));
    if (rows <= 0) break;
  }
  writer.finish();
  await writeFileAtomic(file, writer.toUint8Array(true));
}

/** Reads a file written by {@link writePredictions}. @throws ArtifactError when missing or malformed. */
export function readPredictions(file: string, column = 'logits'): PredictionSet & { metadata: Map<string, string> } {
  let table: Table;
  try {
    table = tableFromIPC(readFileSync(file));
  } catch (e) {
    throw new ArtifactError(`cannot read predictions ${file}: ${(e as Error).message}; rerun the stage that wrote it with --force`);
  }
  const labelCol = table.getChild('label');
  const valCol = table.getChild(column);
  const type = valCol?.type as FixedSizeList | undefined;
  if (!labelCol || !valCol || !(type instanceof FixedSizeList)) {
    throw new ArtifactError(`${file}: expected columns 'label' and '${column}' (FixedSizeList<Float32>); rerun the stage that wrote it with --force`);
  }
  const n = table.numRows;
  const C = type.listSize;
  const labels = new Int32Array(n);
  const values = new Float32Array(n * C);
  let row = 0;
  for (const batch of table.batches) {
    const l = batch.getChild('label')!.data[0]!;
    const v = batch.getChild(column)!.data[0]!;
    const rows = batch.numRows;
    labels.set((l.values as Int32Array).subarray(l.offset, l.offset + rows), row);
    const child = v.children[0]!;
    const start = child.offset + v.offset * C;
    values.set((child.values as Float32Array).subarray(start, start + rows * C), row * C);
    row += rows;
  }
  return { labels, values, n, C, metadata: table.schema.metadata };
}
