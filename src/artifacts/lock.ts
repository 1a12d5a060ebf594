import { closeSync, linkSync, openSync, writeSync, readFileSync, renameSync, rmSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { UserError } from '../util/errors.ts';

/** What a lock file holds: the process that took it. */
interface Holder {
  pid?: number;
  host?: string;
  started?: string;
}

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
 * Writes this process's holder record to a temporary file next to `file` and returns its path:
 * lock files are then linked or renamed into place whole, so no process ever reads one half-written.
 */
function writeHolderTemp(file: string): string {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify({ pid: process.pid, host: os.hostname(), started: new Date().toISOString() }));
  } catch (e) {
    throw new UserError('io', `cannot create ${tmp}: ${(e as Error).message}; check that the output folder is writable`);
  }
  return tmp;
}

/** The holder recorded in a lock file; `{}` when it is missing or unreadable. */
function readHolder(file: string): Holder {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Holder;
  } catch {
    return {};
  }
}

/** When process `pid` started, in ms since the epoch, from `/proc` (Linux); undefined elsewhere. */
function processStartMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3; starttime is field 22.
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    if (!Number.isFinite(ticks) || !Number.isFinite(btime)) return undefined;
    return btime * 1000 + ticks * 10; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

/**
 * Whether the lock's pid now belongs to a process that started after the lock was taken: the
 * holder died and its pid was reused (after a reboot or a long time), so the lock is stale.
 */
function pidReused(h: Holder & { pid: number }): boolean {
  const taken = h.started ? Date.parse(h.started) : NaN;
  const start = processStartMs(h.pid);
  return Number.isFinite(taken) && start !== undefined && start > taken + 2000;
}

/**
 * Whether the holder is another process on this machine that is still running. A lock written on
 * another host (a run folder copied between machines) is treated as stale, as the folder lock was,
 * and so is one whose pid now belongs to a process started after the lock was taken.
 */
function liveOther(h: Holder): h is Holder & { pid: number } {
  if (h.pid === undefined || h.pid === process.pid) return false;
  return (h.host === undefined || h.host === os.hostname()) && alive(h.pid) && !pidReused(h as Holder & { pid: number });
}

/** The error for a stage that another live process is running. */
function runningElsewhere(runDir: string, stage: string, h: Holder & { pid: number }): UserError {
  return new UserError(
    'lock',
    `stage '${stage}' in ${runDir} is being run by another pipeline process (pid ${h.pid}, started ${h.started}); wait for it to finish, then rerun ` +
      `(if pid ${h.pid} is not a pipeline, delete ${path.join(runDir, `.lock-${stage}`)} and rerun)`,
  );
}

/**
 * Creates `file` with the content of `tmp` if it does not exist (EEXIST otherwise): a hard link,
 * atomic with the content in place; on file systems without hard links, an exclusive create and write.
 */
function createWhole(tmp: string, file: string): void {
  try {
    linkSync(tmp, file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw e;
    const fd = openSync(file, 'wx');
    try {
      writeSync(fd, readFileSync(tmp));
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * Creates `file` exclusively, holding this process's pid, host and start time. A file left by a
 * process that no longer exists is cleared, with a note through `onNote`; one held by a live
 * process makes `busy(holder)` the error.
 */
function createExclusive(file: string, onNote: (msg: string) => void, busy: (h: Holder & { pid: number }) => UserError): () => void {
  const tmp = writeHolderTemp(file);
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        createWhole(tmp, file);
        return () => rmSync(file, { force: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new UserError('io', `cannot create ${file}: ${(e as Error).message}; check that the output folder is writable`);
        }
        const holder = readHolder(file);
        if (liveOther(holder)) throw busy(holder);
        if (holder.pid === process.pid) throw new UserError('lock', `${file} is already held by this process`);
        onNote(`clearing a stale lock ${file} left by pid ${holder.pid ?? '?'} (no longer running)`);
        rmSync(file, { force: true });
      }
    }
    throw new UserError('lock', `could not create the lock ${file}`);
  } finally {
    rmSync(tmp, { force: true });
  }
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Locks one stage of a run folder, so that several pipeline processes can work in one folder on
 * different stages (e.g. two teachers side by side, each with `--only`).
 *
 * - `'read'` (the stage's outputs are read, or checked to be up to date): any number of processes
 *   may hold it at once; a file `<runDir>/.read-<stage>.<pid>` per process.
 * - `'write'` (the stage runs and replaces its folder): `<runDir>/.lock-<stage>`, exclusive, and
 *   refused while another live process reads the stage. This process's own read lock does not
 *   block it, so a stage held for reading can be upgraded when it turns out to need a rerun.
 *
 * Each side creates its own file before it looks for the other's, so of a reader and a writer that
 * start together at least one sees the other. Locks of processes that no longer run are cleared.
 * @returns a function that releases the lock.
 * @throws UserError (kind `lock`) naming the other process and what to do.
 */
export function lockStage(runDir: string, stage: string, mode: 'read' | 'write', onNote: (msg: string) => void = () => {}): () => void {
  mkdirSync(runDir, { recursive: true });
  const writeFile = path.join(runDir, `.lock-${stage}`);
  if (mode === 'read') {
    const file = path.join(runDir, `.read-${stage}.${process.pid}`);
    renameSync(writeHolderTemp(file), file);
    const w = readHolder(writeFile);
    if (liveOther(w)) {
      rmSync(file, { force: true });
      throw runningElsewhere(runDir, stage, w);
    }
    return () => rmSync(file, { force: true });
  }
  const release = createExclusive(writeFile, onNote, (h) => runningElsewhere(runDir, stage, h));
  const reader = new RegExp(`^\\.read-${escapeRe(stage)}\\.(\\d+)$`);
  for (const f of readdirSync(runDir)) {
    if (!reader.test(f)) continue;
    const file = path.join(runDir, f);
    const h = readHolder(file);
    if (liveOther(h)) {
      release();
      throw new UserError('lock', `stage '${stage}' in ${runDir} needs to run, but another pipeline process (pid ${h.pid}, started ${h.started}) is reading it as an input; wait for that process to finish (or run '${stage}' before starting it), then rerun (if pid ${h.pid} is not a pipeline, delete ${file} and rerun)`);
    }
    if (h.pid !== process.pid) {
      onNote(`clearing a stale read lock ${file} left by pid ${h.pid ?? '?'} (no longer running)`);
      rmSync(file, { force: true });
    }
  }
  return release;
}
