import { promises as fs } from 'node:fs';
import { describeArrowFile, openArrow, type TableInput } from './arrow-read.ts';
import { openParquet } from './parquet-read.ts';

/**
 * Whether `file` is read as Parquet: it starts with the `PAR1` magic, or (when it cannot be
 * read, or is too short to tell) its name ends in `.parquet`, so the Parquet reader reports the
 * problem in Parquet terms.
 */
export async function isParquetInput(file: string): Promise<boolean> {
  const byName = /\.parquet$/i.test(file);
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'r');
  } catch {
    return byName;
  }
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    if (bytesRead < 4) return byName;
    return head.toString('latin1') === 'PAR1' || byName;
  } finally {
    await fh.close();
  }
}

/**
 * Opens a user's table for streaming reads, whatever its format: Parquet (`PAR1` magic or a
 * `.parquet` name; one record batch per row group, see `openParquet`) or Arrow IPC file/stream
 * (`openArrow`). Both give the same {@link TableInput}: an Arrow schema and Arrow record batches,
 * so validation and conversion are one code path.
 *
 * @throws DataError for anything that is not a readable input of either format.
 */
export async function openTable(file: string): Promise<TableInput> {
  return (await isParquetInput(file)) ? openParquet(file) : openArrow(file);
}

/**
 * `describeArrowFile` for any input format (Arrow IPC file or stream, Parquet): the summary
 * `npm run inspect -- FILE` prints.
 *
 * @throws DataError if the file is not a readable input.
 */
export async function describeDataFile(file: string): Promise<string> {
  return describeArrowFile(file, openTable);
}
