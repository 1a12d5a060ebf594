/**
 * The generalist's logits on a split, computed ONCE by the `specialists` stage and shared by every
 * specialist job (each job needs the generalist's outputs on the validation split and on its
 * training rows; computing them per job repeated the same forward pass K times: 13 minutes of the
 * synthetic-10k stage, and 0.9 s of each of synthetic-1k's 100 jobs, 60% of the stage).
 *
 * Format: a raw little-endian Float32 file of n x C logits, row-major, no header (the job knows n
 * from its split and C from the generalist and checks the file size against n x C x 4), and beside
 * it `<file>.stats`: n x 3 float64 per-row statistics (`logitRowStats`: max, argmax, sum of
 * exp(z - max)), so a job's dustbin cell costs |S| exps per row, not C. It is written in
 * `batchSize`-row forward passes, the same partition as {@link streamTeacherCells}, and read back
 * `batchSize` rows at a time through the same reduction ({@link reduceTeacherCells}), so a job's
 * cells are bit-identical to computing them from the model, and no process holds n x C floats
 * (C = 10,000 and 20,000 rows: 800 MB on disk, 20 MB per batch in memory). A job that trains on a
 * subset of the rows (`rows`) reads only those rows.
 */
import * as tf from '@tensorflow/tfjs';
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { tempPathFor } from '../artifacts/atomic.ts';
import { ArtifactError, DataError } from '../util/errors.ts';
import { LOGIT_ROW_STATS, logitRowStats, reduceTeacherCells, type TeacherCells } from './specialist-loss.ts';

/** Rows per forward pass; the default of `streamTeacherCells` and of the specialist job's `predictBatch`. */
export const TEACHER_LOGITS_BATCH = 500;

/** The row-statistics file beside a logits file (see the module comment). */
export function logitStatsFile(file: string): string {
  return `${file}.stats`;
}

/** Writes all of `bytes` to `fd`. */
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
}

/**
 * Runs `generalist` over the n x dim rows of `x` in `batchSize`-row batches (inference mode) and
 * writes its logits to `file` (raw Float32 LE, n x C) and their row statistics to
 * {@link logitStatsFile}, atomically: temporary files renamed into place when complete, the
 * statistics first, so an existing `file` is always whole and has its statistics.
 * @returns the number of classes C
 * @throws DataError when `x` is not n x dim
 */
export function writeTeacherLogitsFile(generalist: tf.LayersModel, x: Float32Array, n: number, dim: number, file: string, batchSize = TEACHER_LOGITS_BATCH): number {
  if (x.length !== n * dim) throw new DataError(`writeTeacherLogitsFile: feature array has ${x.length} values, expected n x dim = ${n} x ${dim}`);
  const C = generalist.outputs[0].shape[1] as number;
  const bs = Math.max(1, Math.floor(batchSize));
  const tmp = tempPathFor(file);
  const statsFile = logitStatsFile(file);
  const statsTmp = tempPathFor(statsFile);
  const stats = new Float64Array(n * LOGIT_ROW_STATS);
  const fd = openSync(tmp, 'w');
  try {
    for (let start = 0; start < n; start += bs) {
      const b = Math.min(bs, n - start);
      const z = tf.tidy(() => generalist.predict(tf.tensor2d(x.subarray(start * dim, (start + b) * dim), [b, dim])) as tf.Tensor2D);
      const v = z.dataSync() as Float32Array;
      z.dispose();
      logitRowStats(v, b, C, stats.subarray(start * LOGIT_ROW_STATS, (start + b) * LOGIT_ROW_STATS));
      writeAll(fd, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    }
    fsyncSync(fd);
    const sfd = openSync(statsTmp, 'w');
    try {
      writeAll(sfd, new Uint8Array(stats.buffer));
      fsyncSync(sfd);
    } finally {
      closeSync(sfd);
    }
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    rmSync(statsTmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(statsTmp, statsFile);
  renameSync(tmp, file);
  return C;
}

/** Removes a logits file and its statistics (missing ones are ignored). */
export function removeTeacherLogitsFile(file: string): void {
  rmSync(file, { force: true });
  rmSync(logitStatsFile(file), { force: true });
}

/** Opens `file` and checks it holds exactly `size` bytes (`what`, for the message); the caller closes it. */
function openSizedFile(file: string, size: number, what: string): number {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new ArtifactError(`cannot open the generalist's logits file ${file}: ${(e as Error).message}; rerun the specialists stage with --force`);
  }
  const got = fstatSync(fd).size;
  if (got !== size) {
    closeSync(fd);
    throw new ArtifactError(`${file} holds ${got} bytes, expected ${what} = ${size}; it belongs to another split or generalist: rerun the specialists stage with --force`);
  }
  return fd;
}

/** Opens a logits file and checks it holds exactly n x C float32 values; the caller closes it. */
function openLogitsFile(file: string, n: number, C: number): number {
  return openSizedFile(file, n * C * 4, `${n} rows x ${C} classes x 4`);
}

/** Fills `bytes` from `fd` starting at byte `position` (short reads retried). */
function readFully(fd: number, bytes: Uint8Array, position: number, file: string, where: string): void {
  for (let got = 0; got < bytes.length; ) {
    const r = readSync(fd, bytes, got, bytes.length - got, position + got);
    if (r <= 0) throw new ArtifactError(`${file}: unexpected end of file${where}; rerun the specialists stage with --force`);
    got += r;
  }
}

/** Options of {@link teacherCellsFromLogitsFile}. */
export interface LogitsFileCellsOptions {
  /** Rows per read and reduction (use the batch size the file was written with for bit-identical cells). Default 500. */
  batchSize?: number;
  /** Rows of the file to use, in this order (default all n): row r of the result is row `rows[r]`. */
  rows?: Int32Array;
}

/** Checks that every row index lies in [0, n). */
function checkRows(rows: Int32Array, n: number, file: string): void {
  for (let r = 0; r < rows.length; r++) if (!(rows[r] >= 0 && rows[r] < n)) throw new DataError(`${file}: row index ${rows[r]} (position ${r}) outside [0, ${n})`);
}

/**
 * Reads rows `rows[from .. from + b)` (or `[from, from + b)` without `rows`) of a file of rows of
 * `rowBytes` bytes each into `bytes`, one read per run of consecutive row indices.
 */
function readRows(fd: number, bytes: Uint8Array, rowBytes: number, from: number, b: number, rows: Int32Array | undefined, file: string): void {
  if (!rows) {
    readFully(fd, bytes.subarray(0, b * rowBytes), from * rowBytes, file, ` at row ${from}`);
    return;
  }
  for (let r = 0; r < b; ) {
    const first = rows[from + r];
    let run = 1;
    while (r + run < b && rows[from + r + run] === first + run) run++;
    readFully(fd, bytes.subarray(r * rowBytes, (r + run) * rowBytes), first * rowBytes, file, ` at row ${first}`);
    r += run;
  }
}

/**
 * A specialist's teacher cells (`[z_S, logsumexp(z_outside)]` and the argmax over all C) from a
 * logits file written by {@link writeTeacherLogitsFile} and its statistics, read `batchSize` rows
 * at a time (only the rows asked for). Bit-identical to `streamTeacherCells(generalist, x, n, dim,
 * classes, { batchSize, rows })` on the rows the file was written from.
 * @throws ArtifactError when a file is missing or its size is not n x C x 4 (statistics n x 24) bytes; DataError for a row out of range
 */
export function teacherCellsFromLogitsFile(file: string, n: number, C: number, classes: readonly number[], opts: LogitsFileCellsOptions = {}): TeacherCells {
  const rows = opts.rows;
  if (rows) checkRows(rows, n, file);
  const m = rows ? rows.length : n;
  const fd = openLogitsFile(file, n, C);
  let sfd: number | undefined;
  try {
    sfd = openSizedFile(logitStatsFile(file), n * LOGIT_ROW_STATS * 8, `${n} rows x ${LOGIT_ROW_STATS} float64 statistics`);
    const bs = Math.max(1, Math.floor(opts.batchSize ?? TEACHER_LOGITS_BATCH));
    const cap = Math.min(bs, Math.max(1, m));
    const buf = new Float32Array(cap * C);
    const bytes = new Uint8Array(buf.buffer);
    const stats = new Float64Array(cap * LOGIT_ROW_STATS);
    const statBytes = new Uint8Array(stats.buffer);
    const statsFd = sfd;
    return reduceTeacherCells(C, classes, m, bs, (start, b) => {
      readRows(fd, bytes, C * 4, start, b, rows, file);
      readRows(statsFd, statBytes, LOGIT_ROW_STATS * 8, start, b, rows, logitStatsFile(file));
      return { logits: buf.subarray(0, b * C), stats: stats.subarray(0, b * LOGIT_ROW_STATS) };
    });
  } finally {
    closeSync(fd);
    if (sfd !== undefined) closeSync(sfd);
  }
}

/**
 * The logits file as rows x C floats: all n rows, or `rows` in that order (the full head and
 * `teacherTargets: 'full'` keep them all).
 * @throws ArtifactError when the file is missing or its size is not n x C x 4 bytes; DataError for a row out of range
 */
export function readLogitsFile(file: string, n: number, C: number, rows?: Int32Array): Float32Array {
  if (rows) checkRows(rows, n, file);
  const m = rows ? rows.length : n;
  const out = new Float32Array(m * C);
  const fd = openLogitsFile(file, n, C);
  try {
    readRows(fd, new Uint8Array(out.buffer), C * 4, 0, m, rows, file);
  } finally {
    closeSync(fd);
  }
  return out;
}
