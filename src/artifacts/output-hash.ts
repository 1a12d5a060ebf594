import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { listFiles, sha256, sha256File, stableStringify } from './hash.ts';
import { readRecords } from '../tensorboard/tfrecord.ts';
import { withoutWallTime } from '../tensorboard/event.ts';

/**
 * JSON keys that hold wall-clock measurements (durations, throughput, timestamps). They change
 * from run to run on the same inputs, so output hashes leave them out: two runs with the same
 * config, seed and backend then have identical output hashes, while every other value of a JSON
 * artifact (and every byte of other files) is still covered.
 */
export const VOLATILE_KEY = /^(seconds|examples_per_s|[a-z_]*_seconds|[a-z_]*peak_rss_mb|generated_at|generatedAt|started_at|ended_at|finished)$/;

/** A deep copy of `v` without {@link VOLATILE_KEY} keys. */
export function stripVolatile(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripVolatile);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (!VOLATILE_KEY.test(k)) out[k] = stripVolatile(x);
    return out;
  }
  return v;
}

/** Whether `file` is a TensorBoard event file (TensorBoard's own test: `tfevents` in the name). */
export function isEventFile(file: string): boolean {
  return path.basename(file).includes('tfevents');
}

/**
 * The hash of a TensorBoard event file without its wall times: each record's `Event` bytes minus
 * field 1 (`wall_time`), length-prefixed. Undefined unless every record is complete, its CRCs
 * match and it parses as a protobuf message; then the file is hashed as bytes (so a damaged or
 * edited file still counts as modified).
 */
function eventFileHash(bytes: Uint8Array): string | undefined {
  const r = readRecords(bytes);
  if (r.truncated || r.corrupt) return undefined;
  const h = createHash('sha256').update('tfevents-without-wall-time\n');
  for (const rec of r.records) {
    const kept = withoutWallTime(rec);
    if (!kept) return undefined;
    h.update(`${kept.length}:`).update(kept);
  }
  return h.digest('hex');
}

/**
 * The content hash of one output file: sha256 of the bytes, except for `.json` / `.jsonl` files,
 * which are hashed as their parsed values without wall-clock keys (see {@link VOLATILE_KEY}), and
 * TensorBoard event files, hashed without their events' wall times. A JSON or event file that
 * does not parse is hashed as bytes. Other files are hashed as a stream, so hashing a large
 * output does not hold it in memory.
 */
export async function hashOutputFile(file: string): Promise<string> {
  if (isEventFile(file)) {
    const bytes = await readFile(file);
    return eventFileHash(bytes) ?? sha256(bytes);
  }
  // Other files (Arrow splits, weights: possibly GBs) are streamed, never held whole.
  if (!file.endsWith('.json') && !file.endsWith('.jsonl')) return sha256File(file);
  const bytes = await readFile(file);
  try {
    if (file.endsWith('.json')) return sha256(stableStringify(stripVolatile(JSON.parse(bytes.toString('utf8')))));
    if (file.endsWith('.jsonl')) {
      const lines = bytes.toString('utf8').split('\n').filter((l) => l.trim() !== '');
      return sha256(lines.map((l) => stableStringify(stripVolatile(JSON.parse(l)))).join('\n'));
    }
  } catch {
    /* not valid JSON: hash the bytes */
  }
  return sha256(bytes);
}

/** {@link hashOutputFile} of every file below `dir` (relative paths), skipping `skip(rel)`. */
export async function hashOutputs(dir: string, skip: (rel: string) => boolean): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of await listFiles(dir)) if (!skip(f)) out[f] = await hashOutputFile(path.join(dir, f));
  return out;
}
