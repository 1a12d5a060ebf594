import { openSync, writeSync, closeSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { UserError } from '../util/errors.ts';

/** Whether a process with this pid exists on this machine. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes an exclusive lock on a run folder (`<dir>/.lock`, holding pid, host and start time).
 * A lock left by a process that no longer exists is cleared, with a note through `onNote`.
 * @returns a function that releases the lock.
 * @throws UserError naming the holder when another live process holds it.
 */
export function acquireLock(dir: string, onNote: (msg: string) => void = () => {}): () => void {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, '.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, JSON.stringify({ pid: process.pid, host: os.hostname(), started: new Date().toISOString() }));
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new UserError('io', `cannot create ${file}: ${(e as Error).message}; check that the output folder is writable`);
      }
      let holder: { pid?: number; host?: string; started?: string } = {};
      try {
        holder = JSON.parse(readFileSync(file, 'utf8')) as typeof holder;
      } catch {
        /* unreadable lock: treat as stale */
      }
      const sameHost = !holder.host || holder.host === os.hostname();
      if (holder.pid && sameHost && alive(holder.pid) && holder.pid !== process.pid) {
        throw new UserError('lock', `${dir} is in use by another pipeline process (pid ${holder.pid}, started ${holder.started}); wait for it to finish, or stop it, then rerun`);
      }
      onNote(`clearing a stale lock on ${dir} left by pid ${holder.pid ?? '?'} (no longer running)`);
      rmSync(file, { force: true });
    }
  }
  throw new UserError('lock', `could not lock ${dir}`);
}
