import { promises as fs } from 'node:fs';
import { DataType, RecordBatchReader, type FixedSizeList, type Schema } from 'apache-arrow';
import { ArtifactError } from '../util/errors.ts';
import { isFloat32Type, isInt32Type, readRecordBatches } from './arrow-read.ts';
import { labeledRowChunks } from './row-chunks.ts';

/** A block of consecutive rows of a split file: `x` row-major `n x dim`, labels `y`. */
export interface SplitChunk {
  /** Features, row-major; only the first `n * dim` values belong to this chunk. */
  x: Float32Array;
  /** Labels; only the first `n` values belong to this chunk. */
  y: Int32Array;
  /** Rows in this chunk. */
  n: number;
  /** Index (in the whole file) of the chunk's first row. */
  start: number;
}

/** A split file opened for streaming reads (see {@link openSplitStream}). */
export interface SplitStream {
  file: string;
  dim: number;
  /** The `shape` schema metadata, when present. */
  shape: number[] | null;
  /**
   * The rows in chunks of exactly `rows` rows (the last one may be shorter), in file order. The
   * chunk's arrays are reused: a chunk is valid until the next one is requested.
   */
  chunks(rows: number): AsyncGenerator<SplitChunk>;
  close(): Promise<void>;
}

/**
 * Opens a split file written by ingest (`label: Int32`, `features: FixedSizeList<Float32>[D]`)
 * for streaming: record batches are read from disk one at a time and regrouped into chunks of a
 * fixed number of rows, so a split of any size is read with one record batch and one chunk in
 * memory. The same file content as `readSplit` (`src/data/split-file.ts`) returns, without
 * materialising it.
 *
 * @throws ArtifactError if the file is missing, not Arrow, truncated, or has another schema
 *   (when opening, or from `chunks` for a corrupt record batch).
 */
export async function openSplitStream(file: string): Promise<SplitStream> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'r');
  } catch (e) {
    throw new ArtifactError(`split file ${file} cannot be read (${(e as Error).message}); re-run the ingest stage to recreate it`, { cause: e });
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
    throw new ArtifactError(`split file ${file} is not a readable Arrow IPC file (${(e as Error).message}); it is truncated or corrupt: re-run the ingest stage`, { cause: e });
  }
  const labelIdx = schema.fields.findIndex((f) => f.name === 'label');
  const featIdx = schema.fields.findIndex((f) => f.name === 'features');
  const featType = featIdx >= 0 ? schema.fields[featIdx]!.type : undefined;
  if (labelIdx < 0 || !isInt32Type(schema.fields[labelIdx]!.type) || !featType || !DataType.isFixedSizeList(featType) || !isFloat32Type(featType.children[0]!.type)) {
    await fh.close();
    throw new ArtifactError(
      `split file ${file} has schema ${schema.fields.map((f) => `${f.name}: ${String(f.type)}`).join(', ')}; expected label: Int32 and features: FixedSizeList<Float32>. Re-run the ingest stage`,
    );
  }
  const dim = (featType as FixedSizeList).listSize;
  let shape: number[] | null = null;
  const shapeText = schema.metadata.get('shape');
  if (shapeText !== undefined) {
    const parsed: unknown = (() => {
      try {
        return JSON.parse(shapeText);
      } catch {
        return undefined;
      }
    })();
    if (!(Array.isArray(parsed) && parsed.every((v) => Number.isInteger(v) && v > 0) && parsed.reduce((a: number, b: number) => a * b, 1) === dim)) {
      await fh.close();
      throw new ArtifactError(`split file ${file}: bad schema metadata shape (${shapeText} is not a list of positive integers multiplying to ${dim}); re-run the ingest stage`);
    }
    shape = parsed as number[];
  }
  const r = reader;
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await fh.close();
  };
  return {
    file,
    dim,
    shape,
    close,
    async *chunks(rows: number) {
      if (!Number.isInteger(rows) || rows < 1) throw new RangeError(`SplitStream.chunks: rows must be a positive integer, got ${rows}`);
      const batches = readRecordBatches(
        r,
        (_batch, at, e) => new ArtifactError(`split file ${file}: the record batch at row ${at} cannot be read (${(e as Error).message}); the file is truncated or corrupt: re-run the ingest stage`, { cause: e }),
      );
      const chunks = labeledRowChunks(batches, {
        labelIdx,
        valuesIdx: featIdx,
        width: dim,
        rows,
        check: (ld, fd, row) => {
          if (ld.nullCount > 0 || fd.nullCount > 0) throw new ArtifactError(`split file ${file}: null values in record batch at row ${row}; re-run the ingest stage`);
        },
        tooShort: (row) => new ArtifactError(`split file ${file}: buffers too short in record batch at row ${row}; the file is corrupt, re-run the ingest stage`),
      });
      for await (const c of chunks) yield { x: c.values, y: c.labels, n: c.n, start: c.start };
    },
  };
}
