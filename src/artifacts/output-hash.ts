import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { listFiles, sha256, sha256File, stableStringify } from './hash.ts';

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

/**
 * The content hash of one output file: sha256 of the bytes, except for `.json` / `.jsonl` files,
 * which are hashed as their parsed values without wall-clock keys (see {@link VOLATILE_KEY}).
 * A JSON file that does not parse is hashed as bytes. Other files are hashed as a stream, so
 * hashing a large output does not hold it in memory.
 */
export async function hashOutputFile(file: string): Promise<string> {
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
