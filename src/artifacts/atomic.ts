import { promises as fs, writeFileSync, renameSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { diskFullError } from './disk-full.ts';

/** A temp path beside `target` (same folder, so the final rename is atomic). */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/**
 * Writes `data` to `target` atomically: a temp file in the same folder, fsync, then rename.
 * A crash leaves either the old file or the new one, never a partial file under `target`.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): Promise<void> {
  const bytes = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
  try {
    await fs.mkdir(path.dirname(target), { recursive: true });
  } catch (e) {
    throw diskFullError(e, { path: target, bytes });
  }
  const tmp = tempPathFor(target);
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(tmp, 'w');
  } catch (e) {
    throw diskFullError(e, { path: target, bytes });
  }
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await fs.rm(tmp, { force: true });
    throw diskFullError(e, { path: target, bytes });
  }
  await fh.close();
  opts.beforeRename?.();
  await fs.rename(tmp, target);
}

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** Called when the temp file is complete, just before the rename (crash tests put a failpoint here). */
  beforeRename?: () => void;
}

/** Synchronous {@link writeFileAtomic} (for exit handlers and small files). */
export function writeFileAtomicSync(target: string, data: string | Uint8Array): void {
  const tmp = tempPathFor(target);
  try {
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(tmp, data);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw diskFullError(e, { path: target, bytes: typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength });
  }
  renameSync(tmp, target);
}

/** Writes `value` as pretty JSON (2-space indent, trailing newline), atomically. */
export async function writeJsonAtomic(target: string, value: unknown): Promise<void> {
  await writeFileAtomic(target, JSON.stringify(value, null, 2) + '\n');
}
