/**
 * The generalist's logits on a split, computed ONCE by the `specialists` stage and shared by every
 * specialist job (each job needs the generalist's outputs on the whole validation split; computing
 * them per job repeated the same forward pass K times: 13 minutes of the synthetic-10k stage).
 *
 * Format: a raw little-endian Float32 file of n x C logits, row-major, no header (the job knows n
 * from its split and C from the generalist and checks the file size against n x C x 4). It is
 * written in `batchSize`-row forward passes, the same partition as {@link streamTeacherCells}, and
 * read back `batchSize` rows at a time through the same reduction ({@link reduceTeacherCells}), so
 * a job's cells are bit-identical to computing them from the model, and no process holds n x C
 * floats (C = 10,000 and 20,000 rows: 800 MB on disk, 20 MB per batch in memory).
 */
import * as tf from '@tensorflow/tfjs';
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { tempPathFor } from '../artifacts/atomic.ts';
import { ArtifactError, DataError } from '../util/errors.ts';
import { reduceTeacherCells, type TeacherCells } from './specialist-loss.ts';

/** Rows per forward pass; the default of `streamTeacherCells` and of the specialist job's `predictBatch`. */
export const TEACHER_LOGITS_BATCH = 500;

/**
 * Runs `generalist` over the n x dim rows of `x` in `batchSize`-row batches (inference mode) and
 * writes its logits to `file` (raw Float32 LE, n x C), atomically: a temporary file renamed into
 * place when complete, so an existing `file` is always whole.
 * @returns the number of classes C
 * @throws DataError when `x` is not n x dim
 */
export function writeTeacherLogitsFile(generalist: tf.LayersModel, x: Float32Array, n: number, dim: number, file: string, batchSize = TEACHER_LOGITS_BATCH): number {
  if (x.length !== n * dim) throw new DataError(`writeTeacherLogitsFile: feature array has ${x.length} values, expected n x dim = ${n} x ${dim}`);
  const C = generalist.outputs[0].shape[1] as number;
  const bs = Math.max(1, Math.floor(batchSize));
  const tmp = tempPathFor(file);
  const fd = openSync(tmp, 'w');
  try {
    for (let start = 0; start < n; start += bs) {
      const b = Math.min(bs, n - start);
      const z = tf.tidy(() => generalist.predict(tf.tensor2d(x.subarray(start * dim, (start + b) * dim), [b, dim])) as tf.Tensor2D);
      const v = z.dataSync() as Float32Array;
      z.dispose();
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
  return C;
}

/** Opens a logits file and checks it holds exactly n x C float32 values; the caller closes it. */
function openLogitsFile(file: string, n: number, C: number): number {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new ArtifactError(`cannot open the generalist's logits file ${file}: ${(e as Error).message}; rerun the specialists stage with --force`);
  }
  const size = fstatSync(fd).size;
  if (size !== n * C * 4) {
    closeSync(fd);
    throw new ArtifactError(`${file} holds ${size} bytes, expected ${n} rows x ${C} classes x 4 = ${n * C * 4}; it belongs to another split or generalist: rerun the specialists stage with --force`);
  }
  return fd;
}

/** Fills `bytes` from `fd` starting at byte `position` (short reads retried). */
function readFully(fd: number, bytes: Uint8Array, position: number, file: string, where: string): void {
  for (let got = 0; got < bytes.length; ) {
    const r = readSync(fd, bytes, got, bytes.length - got, position + got);
    if (r <= 0) throw new ArtifactError(`${file}: unexpected end of file${where}; rerun the specialists stage with --force`);
    got += r;
  }
}

/**
 * A specialist's teacher cells (`[z_S, logsumexp(z_outside)]` and the argmax over all C) from a
 * logits file written by {@link writeTeacherLogitsFile}, read `batchSize` rows at a time.
 * Bit-identical to `streamTeacherCells(generalist, x, n, dim, classes, { batchSize })` on the rows
 * the file was written from.
 * @throws ArtifactError when the file is missing or its size is not n x C x 4 bytes
 */
export function teacherCellsFromLogitsFile(file: string, n: number, C: number, classes: readonly number[], batchSize = TEACHER_LOGITS_BATCH): TeacherCells {
  const fd = openLogitsFile(file, n, C);
  try {
    const bs = Math.max(1, Math.floor(batchSize));
    const buf = new Float32Array(Math.min(bs, Math.max(1, n)) * C);
    const bytes = new Uint8Array(buf.buffer);
    return reduceTeacherCells(C, classes, n, bs, (start, b) => {
      readFully(fd, bytes.subarray(0, b * C * 4), start * C * 4, file, ` at row ${start}`);
      return tf.tensor2d(buf.subarray(0, b * C), [b, C]);
    });
  } finally {
    closeSync(fd);
  }
}

/**
 * The whole logits file as n x C floats (the full head and `teacherTargets: 'full'` keep them all).
 * @throws ArtifactError when the file is missing or its size is not n x C x 4 bytes
 */
export function readLogitsFile(file: string, n: number, C: number): Float32Array {
  const out = new Float32Array(n * C);
  const fd = openLogitsFile(file, n, C);
  try {
    const bytes = new Uint8Array(out.buffer);
    readFully(fd, bytes, 0, file, '');
  } finally {
    closeSync(fd);
  }
  return out;
}
