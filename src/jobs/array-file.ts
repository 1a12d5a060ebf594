/**
 * Job inputs a stage computes once for all its jobs (the rows of a transfer set, a teacher's targets
 * on it), as raw typed-array files in the stage's scratch folder: the array's bytes in the
 * machine's order (little-endian on every platform Node runs on), no header. Written atomically, so
 * a job never reads half a file; the reader checks the size against what it expects.
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../artifacts/atomic.ts';
import { ArtifactError } from '../util/errors.ts';

/** Writes the values of `a` to `file` (temp file + rename). */
export async function writeArrayFile(file: string, a: Float32Array | Int32Array): Promise<void> {
  await writeFileAtomic(file, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}

/** The bytes of `file`, with an error naming it and `what` it holds when it cannot be read. */
function readBytes(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new ArtifactError(`cannot read ${what} ${file}: ${(e as Error).message}; the stage writes it before queueing its jobs: rerun the stage`);
  }
}

/**
 * Reads a file written by {@link writeArrayFile} from a `Float32Array`.
 * @param count the number of values expected
 * @throws ArtifactError when the file is missing or holds another number of values.
 */
export function readFloat32File(file: string, count: number, what: string): Float32Array {
  const b = readBytes(file, what);
  if (b.byteLength !== count * 4) throw new ArtifactError(`${what} ${file} holds ${b.byteLength} bytes, expected ${count} float32 values = ${count * 4}; it belongs to another run of the stage: rerun the stage with --force`);
  const out = new Float32Array(count);
  new Uint8Array(out.buffer).set(b);
  return out;
}

/**
 * Reads a file written by {@link writeArrayFile} from an `Int32Array`.
 * @throws ArtifactError when the file is missing or its size is not a whole number of values.
 */
export function readInt32File(file: string, what: string): Int32Array {
  const b = readBytes(file, what);
  if (b.byteLength % 4 !== 0) throw new ArtifactError(`${what} ${file} holds ${b.byteLength} bytes, not a whole number of int32 values; rerun the stage with --force`);
  const out = new Int32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}
