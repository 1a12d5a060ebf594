/**
 * A full disk (ENOSPC, or EDQUOT for a quota) as a user error: which path could not be written,
 * how much space it needed and how much is free, and what to do. Raw Node errors
 * ("ENOSPC: no space left on device, write") name neither the file nor the size.
 */
import { readdirSync, lstatSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.ts';

/** Whether `e` is a Node file-system error for a full disk or an exceeded quota. */
export function isDiskFull(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** A byte count in human units (B, KiB, MiB, GiB). */
function human(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return `${u === 0 ? n : n.toFixed(1)} ${units[u]}`;
}

/** Free and total bytes of the file system holding `p` (its nearest existing ancestor); undefined if unknown. */
export function spaceOf(p: string): { free: number; total: number } | undefined {
  for (let d = path.resolve(p); ; d = path.dirname(d)) {
    try {
      const s = statfsSync(d);
      return { free: Number(s.bavail) * Number(s.bsize), total: Number(s.blocks) * Number(s.bsize) };
    } catch {
      if (path.dirname(d) === d) return undefined;
    }
  }
}

/** Bytes of the files below `dir` (0 when it does not exist). */
export function treeBytes(dir: string): number {
  let total = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += treeBytes(p);
    else {
      try {
        total += lstatSync(p).size;
      } catch {
        // removed meanwhile
      }
    }
  }
  return total;
}

/** Options of {@link diskFullError}. */
export interface DiskFullContext {
  /** The file or folder being written (default: the error's own `path`). */
  path?: string;
  /** Bytes the failed write needed, when known exactly. */
  bytes?: number;
  /** A folder the failing work had been writing into: its size is a lower bound of what is needed. */
  partialDir?: string;
}

/**
 * The user error for a full disk: names the path, the space needed (exact, or at least what was
 * written before the disk filled) and the free space, and says how to go on.
 * Returns `e` itself when it is not a full-disk error.
 */
export function diskFullError(e: unknown, ctx: DiskFullContext = {}): unknown {
  if (!isDiskFull(e)) return e;
  const target = ctx.path ?? (e as NodeJS.ErrnoException).path ?? ctx.partialDir ?? '(unknown path)';
  const space = spaceOf(target);
  const written = ctx.partialDir !== undefined ? treeBytes(ctx.partialDir) : 0;
  const need =
    ctx.bytes !== undefined
      ? `${human(ctx.bytes)} needed for this file`
      : written > 0
        ? `more than the ${human(written)} written into ${ctx.partialDir} before the disk filled is needed`
        : 'the space needed is unknown';
  const free = space ? `${human(space.free)} free of ${human(space.total)}` : 'free space unknown';
  return new UserError(
    'disk',
    `disk full: no space left to write ${target} (${need}; ${free} on its file system): free some space there or choose an output folder on another disk (--out); finished stages are kept, and rerunning the same command resumes`,
    { cause: e },
  );
}
