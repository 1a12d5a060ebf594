/**
 * Writing TensorBoard event files: a whole file at once ({@link encodeEventFile}, for a finished
 * training history written atomically), or record by record ({@link EventFileWriter}, for a live
 * training loop that TensorBoard follows while it runs).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeEvent, FILE_VERSION, type Scalar, type EventSpec } from './event.ts';
import { frameRecord } from './tfrecord.ts';

/** The bytes of an event file: the `file_version` event at `wallTime`, then `events` in order. */
export function encodeEventFile(wallTime: number, events: readonly EventSpec[]): Uint8Array {
  const parts = [frameRecord(encodeEvent({ wallTime, step: 0, fileVersion: FILE_VERSION })), ...events.map((e) => frameRecord(encodeEvent(e)))];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** TensorFlow's event file name: `events.out.tfevents.<unix seconds>.<host>`. */
export function defaultEventFileName(now = Date.now()): string {
  return `events.out.tfevents.${Math.floor(now / 1000)}.${os.hostname().replace(/[^A-Za-z0-9._-]/g, '_')}`;
}

/**
 * Appends events to a new TensorBoard event file, one `write` per record, so TensorBoard can
 * follow the file while it grows. Tail safety: a process killed mid-write leaves complete records
 * followed by at most one truncated record, which TensorBoard (and `readRecords`) ignore. The file
 * is created new (never appended to an existing file, whose truncated tail would swallow the next
 * record).
 */
export class EventFileWriter {
  /** The file being written. */
  readonly file: string;
  private fd: number | undefined;

  /**
   * Creates `dir` if needed and a new event file in it (default name {@link defaultEventFileName}),
   * writing the `file_version` event first.
   * @throws Error (EEXIST) when the file already exists.
   */
  constructor(dir: string, opts: { fileName?: string; wallTime?: number } = {}) {
    mkdirSync(dir, { recursive: true });
    this.file = path.join(dir, opts.fileName ?? defaultEventFileName());
    this.fd = openSync(this.file, 'wx');
    this.write(encodeEvent({ wallTime: opts.wallTime ?? Date.now() / 1000, step: 0, fileVersion: FILE_VERSION }));
  }

  private write(event: Uint8Array): void {
    if (this.fd === undefined) throw new Error(`event file ${this.file} is closed`);
    const rec = frameRecord(event);
    let o = 0;
    while (o < rec.length) o += writeSync(this.fd, rec, o, rec.length - o);
  }

  /** Appends one summary event: `scalars` at `step` (wall time now unless given). */
  addScalars(step: number, scalars: readonly Scalar[], wallTime = Date.now() / 1000): void {
    this.write(encodeEvent({ wallTime, step, scalars }));
  }

  /** Flushes to disk and closes the file; further writes throw. */
  close(): void {
    if (this.fd === undefined) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = undefined;
  }
}
