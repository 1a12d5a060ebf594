/**
 * The one rule for a file a command writes at a path the user names (`--out`): it may replace a
 * file only when distill-kit wrote that file itself (its generator mark is in it) or the user
 * said `--force`; never a folder, and never the command's own input.
 */
import { closeSync, createReadStream, existsSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { RecordBatchReader } from 'apache-arrow';
import { UserError } from '../util/errors.ts';

/** The schema-metadata key / HTML meta name that marks a file as written by distill-kit. */
export const GENERATOR_KEY = 'generator';

/** The generator value of the files distill-kit writes at a user's path, by command. */
export const GENERATOR = {
  report: 'distill-kit report',
  predict: 'distill-kit predict',
} as const;

/** The `<meta>` line that marks a report page as distill-kit's. */
export function generatorMeta(value: string): string {
  return `<meta name="${GENERATOR_KEY}" content="${value}">`;
}

/** Whether `file` (an HTML page) carries `generatorMeta(value)` in its first 8 KiB. */
export function htmlHasGenerator(file: string, value: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(8192);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString('utf8').includes(generatorMeta(value));
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether `file` is an Arrow IPC file whose schema metadata says `generator: value`. Reads only
 * the schema (the file's first message); anything that is not such a file is `false`.
 */
export async function arrowHasGenerator(file: string, value: string): Promise<boolean> {
  const stream = createReadStream(file);
  try {
    const reader = await RecordBatchReader.from(stream);
    await reader.open();
    return reader.schema.metadata.get(GENERATOR_KEY) === value;
  } catch {
    return false;
  } finally {
    stream.destroy();
  }
}

/** What {@link checkOutputFile} needs to know about the command. */
export interface OutputFileCheck {
  /** The flag that named the path, for messages (e.g. `--out`). */
  flag: string;
  /** Replace a file distill-kit did not write (the user's `--force`). */
  force: boolean;
  /** Whether an existing file at the path is one this command wrote before (its generator mark). */
  ours: (file: string) => boolean | Promise<boolean>;
  /** Files the command reads: the output may never be one of them, even with `force`. */
  inputs?: readonly string[];
}

/** `p`'s real path when it exists, else its absolute path. */
function realOrResolved(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

/**
 * Checks, before anything is written, that `out` may be written: it does not exist, or it is a
 * file this command wrote before, or `force` is set. The file is then replaced atomically by the
 * caller (temp file + rename), so a failed command leaves the old file as it was.
 * @throws UserError('io') when `out` is a folder, one of the inputs, or a file distill-kit did not
 * write and `force` is not set.
 */
export async function checkOutputFile(out: string, check: OutputFileCheck): Promise<void> {
  const target = realOrResolved(out);
  for (const input of check.inputs ?? []) {
    if (realOrResolved(input) === target) {
      throw new UserError('io', `${check.flag} ${out} is the input file ${input}: writing it would destroy what is being read; give another ${check.flag} path`);
    }
  }
  if (!existsSync(out)) return;
  if (statSync(out).isDirectory()) throw new UserError('io', `${check.flag} ${out} is a folder; give the path of a file to write (e.g. ${path.join(out, 'out')})`);
  if (await check.ours(out)) return;
  if (check.force) return;
  throw new UserError('io', `${check.flag} ${out} already exists and was not written by distill-kit; choose another ${check.flag} path, or add --force to replace it`);
}
