/**
 * Streaming covariance of a model's predictions over C classes (paper section 5: "which classes
 * go together"). One pass over the data, in batches; numerically sound for long streams.
 *
 * Method (Chan, Golub & LeVeque's pairwise merge): each batch is centred at its own mean, its
 * centred cross-product is added into a Float64 accumulator `M2` (upper triangle only, rank-k
 * update), and the batch is merged with what came before by one extra rank-1 term
 * `delta delta^T * n_a n_b / (n_a + n_b)` where `delta` is the difference of the two means.
 * Nothing is ever formed as `sum x x^T - n mean mean^T`, so there is no catastrophic
 * cancellation when the means are large relative to the spread (e.g. logits around 20).
 *
 * Native fast path: when the OpenBLAS addon loads (`src/backend/native.ts`) and C is at least
 * {@link NATIVE_MIN_CLASSES}, the batch's centred cross-product `Y^T Y` is computed by OpenBLAS
 * `sgemm` (float32, the upper block triangle only: one call per column block of
 * {@link NATIVE_BLOCK} classes) into a reusable Float32 C x C buffer and added into the Float64
 * accumulator; centring, the softmax, the merge term and the means stay in Float64. The result
 * agrees with the JS loop to within 1e-5 of sqrt(cov_ii cov_jj): about 2e-7 on logits and up to
 * about 5e-6 on peaked probabilities with batches of 1,000 rows (float32 sums over the batch,
 * where a few large products dominate many small ones). The constructor option `native: false`
 * forces the JS loop.
 *
 * Memory: the accumulator is a Float64 C x C matrix (800 MB at C = 10,000) plus one Float64
 * batch of rows x C; the native path adds a Float32 C x C buffer (400 MB at C = 10,000) and a
 * Float32 batch. {@link CovarianceAccumulator.result} allocates the Float32 C x C output.
 * The covariance is the sample covariance (divisor n - 1).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { writeFileAtomic, writeJsonAtomic } from '../artifacts/atomic.ts';
import { loadNative, type NativeBlas } from '../backend/native.ts';
import { ArtifactError, DataError } from '../util/errors.ts';

/** Which quantity the covariance is computed over. */
export type CovarianceSource = 'probabilities' | 'logits';

/** The finished covariance. */
export interface CovarianceResult {
  /** C x C, row-major, symmetric, sample covariance (divisor n - 1). */
  cov: Float32Array;
  /** Per-class mean of the source quantity (length C). */
  mean: Float64Array;
  /** Number of rows accumulated. */
  examples: number;
}

/** Rows processed together by the blocked rank-k update (the accumulator row is loaded once per block). */
const ROW_BLOCK = 4;

/**
 * Below this many classes the JS loop is used even when the addon loads (unless `native: true`):
 * it is fast there, and stays entirely in Float64.
 */
export const NATIVE_MIN_CLASSES = 64;

/**
 * Column block width of the native path: block j computes `Y[:, 0:j1]^T Y[:, j0:j1]` (the part of
 * the upper triangle in those columns), so the sgemm calls do about (1 + 1/blocks) / 2 of the full
 * product's work. One block (a single sgemm) when C <= NATIVE_BLOCK.
 */
export const NATIVE_BLOCK = 1024;

/** Options of {@link CovarianceAccumulator}. */
export interface CovarianceOptions {
  /**
   * Use the native OpenBLAS sgemm for the cross-product: `true` whenever the addon loads, `false`
   * never (the JS Float64 loop), default (undefined) when the addon loads and
   * C >= {@link NATIVE_MIN_CLASSES}. Without the addon the JS loop is used in every case (see
   * {@link CovarianceAccumulator.path}).
   */
  native?: boolean;
}

/** Which implementation accumulates the cross-products. */
export type CovariancePath = 'native' | 'js';

/**
 * Streaming single-pass covariance accumulator over rows of logits.
 *
 * ```ts
 * const acc = new CovarianceAccumulator(C, 'probabilities');
 * for (const batch of batches) acc.addBatch(batch.logits, batch.rows);
 * const { cov, mean, examples } = acc.result();
 * ```
 */
export class CovarianceAccumulator {
  readonly C: number;
  readonly source: CovarianceSource;
  private n = 0;
  private readonly meanAcc: Float64Array;
  /** Upper triangle (b >= a) of the centred cross-product, stored in a full C x C layout. */
  private readonly m2: Float64Array;
  private scratch: Float64Array = new Float64Array(0);
  private readonly batchMean: Float64Array;
  /** The addon, when the native path is used. */
  private readonly blas: NativeBlas | undefined;
  /** Native path: the centred batch in float32 (rows x C). */
  private y32: Float32Array = new Float32Array(0);
  /** Native path: the batch's cross-product (upper block triangle), C x C, reused across batches. */
  private gram: Float32Array = new Float32Array(0);
  /** Native path: the merge vector. */
  private readonly delta: Float64Array;

  /**
   * @param C number of classes (columns of every batch)
   * @param source `'probabilities'` applies a softmax (T = 1) to each row first; `'logits'` uses rows as given
   * @param opts `native`: see {@link CovarianceOptions}
   */
  constructor(C: number, source: CovarianceSource, opts: CovarianceOptions = {}) {
    if (!Number.isInteger(C) || C < 1) throw new DataError(`covariance: the number of classes must be a positive integer, got ${C}`);
    this.C = C;
    this.source = source;
    this.meanAcc = new Float64Array(C);
    this.batchMean = new Float64Array(C);
    this.m2 = new Float64Array(C * C);
    const wanted = opts.native ?? C >= NATIVE_MIN_CLASSES;
    const l = wanted ? loadNative() : undefined;
    this.blas = l?.ok ? l.addon : undefined;
    this.delta = new Float64Array(this.blas ? C : 0);
  }

  /** Which implementation this accumulator uses: `native` (OpenBLAS sgemm) or `js`. */
  get path(): CovariancePath {
    return this.blas ? 'native' : 'js';
  }

  /** Number of rows accumulated so far. */
  get examples(): number {
    return this.n;
  }

  /**
   * Adds `rows` rows of logits (row-major, `rows x C`, extra trailing values are ignored).
   * @throws DataError when the array is too short or holds a non-finite value
   */
  addBatch(logits: Float32Array, rows: number): void {
    const C = this.C;
    if (!Number.isInteger(rows) || rows < 0) throw new DataError(`covariance.addBatch: rows must be a non-negative integer, got ${rows}`);
    if (rows === 0) return;
    if (logits.length < rows * C) {
      throw new DataError(`covariance.addBatch: expected ${rows} x ${C} = ${rows * C} values, got ${logits.length}; pass the number of rows actually in the batch`);
    }
    // One extra row for the merge term.
    const need = (rows + 1) * C;
    if (this.scratch.length < need) this.scratch = new Float64Array(need);
    const y = this.scratch;
    for (let r = 0; r < rows; r++) {
      const off = r * C;
      for (let i = 0; i < C; i++) {
        const v = logits[off + i];
        if (!Number.isFinite(v)) throw new DataError(`covariance.addBatch: non-finite value ${v} at batch row ${r}, class ${i}`);
        y[off + i] = v;
      }
      if (this.source === 'probabilities') softmaxInPlace(y, off, C);
    }
    // Batch mean, then centre the batch rows.
    const bm = this.batchMean;
    bm.fill(0);
    for (let r = 0; r < rows; r++) {
      const off = r * C;
      for (let i = 0; i < C; i++) bm[i] += y[off + i];
    }
    for (let i = 0; i < C; i++) bm[i] /= rows;
    for (let r = 0; r < rows; r++) {
      const off = r * C;
      for (let i = 0; i < C; i++) y[off + i] -= bm[i];
    }
    const na = this.n;
    const nb = rows;
    const n = na + nb;
    if (this.blas) {
      this.addNative(this.blas, y, rows, na > 0 ? Math.sqrt((na * nb) / n) : 0);
      for (let i = 0; i < C; i++) this.meanAcc[i] += ((bm[i] - this.meanAcc[i]) * nb) / n;
      this.n = n;
      return;
    }
    let total = rows;
    if (na > 0) {
      // Merge row: sqrt(na nb / n) * (mean_b - mean_a).
      const s = Math.sqrt((na * nb) / n);
      const off = rows * C;
      for (let i = 0; i < C; i++) y[off + i] = s * (bm[i] - this.meanAcc[i]);
      total++;
    }
    syrkUpper(this.m2, y, total, C);
    for (let i = 0; i < C; i++) this.meanAcc[i] += ((bm[i] - this.meanAcc[i]) * nb) / n;
    this.n = n;
  }

  /**
   * Native path of {@link addBatch}: `M2 += Y^T Y + s^2 (mean_b - mean_a)(mean_b - mean_a)^T` on the
   * upper triangle, with `Y^T Y` from OpenBLAS sgemm (float32, column blocks of the upper
   * triangle) and the rank-1 merge term in Float64 (skipped when s = 0, the first batch).
   * @param y the centred batch (Float64, rows x C)
   */
  private addNative(blas: NativeBlas, y: Float64Array, rows: number, s: number): void {
    const C = this.C;
    const len = rows * C;
    if (this.y32.length < len) this.y32 = new Float32Array(len);
    if (this.gram.length === 0) this.gram = new Float32Array(C * C);
    const y32 = this.y32;
    const G = this.gram;
    for (let i = 0; i < len; i++) y32[i] = y[i];
    for (let j0 = 0; j0 < C; j0 += NATIVE_BLOCK) {
      const j1 = Math.min(C, j0 + NATIVE_BLOCK);
      // G[0:j1, j0:j1] = Y[:, 0:j1]^T Y[:, j0:j1]
      blas.sgemm(true, false, j1, j1 - j0, rows, 1, y32, 0, C, y32, j0, C, 0, G, j0, C);
    }
    const m2 = this.m2;
    if (s > 0) {
      const d = this.delta;
      for (let i = 0; i < C; i++) d[i] = s * (this.batchMean[i] - this.meanAcc[i]);
      for (let a = 0; a < C; a++) {
        const da = d[a];
        const ra = a * C;
        for (let b = a; b < C; b++) m2[ra + b] += G[ra + b] + da * d[b];
      }
    } else {
      for (let a = 0; a < C; a++) {
        const ra = a * C;
        for (let b = a; b < C; b++) m2[ra + b] += G[ra + b];
      }
    }
  }

  /**
   * The covariance so far (sample covariance, divisor n - 1), as a new symmetric Float32 matrix.
   * @throws DataError when fewer than 2 rows were added
   */
  result(): CovarianceResult {
    const C = this.C;
    if (this.n < 2) throw new DataError(`covariance: need at least 2 examples, got ${this.n}`);
    const cov = new Float32Array(C * C);
    const d = 1 / (this.n - 1);
    const m2 = this.m2;
    for (let a = 0; a < C; a++) {
      const ra = a * C;
      for (let b = a; b < C; b++) {
        const v = m2[ra + b] * d;
        cov[ra + b] = v;
        cov[b * C + a] = v;
      }
    }
    return { cov, mean: Float64Array.from(this.meanAcc), examples: this.n };
  }
}

/** Numerically stable softmax of `x[off .. off + C)` in place. */
function softmaxInPlace(x: Float64Array, off: number, C: number): void {
  let mx = -Infinity;
  for (let i = 0; i < C; i++) if (x[off + i] > mx) mx = x[off + i];
  let s = 0;
  for (let i = 0; i < C; i++) {
    const e = Math.exp(x[off + i] - mx);
    x[off + i] = e;
    s += e;
  }
  const inv = 1 / s;
  for (let i = 0; i < C; i++) x[off + i] *= inv;
}

/**
 * `M[a, b] += sum_r Y[r, a] * Y[r, b]` for b >= a (upper triangle), blocked over ROW_BLOCK rows
 * so each accumulator row is read and written once per block.
 */
function syrkUpper(M: Float64Array, Y: Float64Array, rows: number, C: number): void {
  let r = 0;
  for (; r + ROW_BLOCK <= rows; r += ROW_BLOCK) {
    const o0 = r * C;
    const o1 = o0 + C;
    const o2 = o1 + C;
    const o3 = o2 + C;
    for (let a = 0; a < C; a++) {
      const y0 = Y[o0 + a];
      const y1 = Y[o1 + a];
      const y2 = Y[o2 + a];
      const y3 = Y[o3 + a];
      const ra = a * C;
      for (let b = a; b < C; b++) {
        M[ra + b] += y0 * Y[o0 + b] + y1 * Y[o1 + b] + y2 * Y[o2 + b] + y3 * Y[o3 + b];
      }
    }
  }
  for (; r < rows; r++) {
    const o = r * C;
    for (let a = 0; a < C; a++) {
      const ya = Y[o + a];
      if (ya === 0) continue;
      const ra = a * C;
      for (let b = a; b < C; b++) M[ra + b] += ya * Y[o + b];
    }
  }
}

/** Metadata stored beside the matrix in `covariance.json`. */
export interface CovarianceMeta {
  /** Which split the covariance was computed on (e.g. `train`, `valid`). */
  split: string;
  /** Probabilities or logits (must match the result's source). */
  source: CovarianceSource;
}

/** What {@link readCovariance} returns. */
export interface StoredCovariance extends CovarianceResult {
  classes: number;
  source: CovarianceSource;
  split: string;
}

/**
 * Writes `covariance.bin` (Float32 little-endian, C x C row-major) and `covariance.json`
 * `{ classes, source, split, examples, mean }` into `dir`, each atomically.
 */
export async function writeCovariance(dir: string, result: CovarianceResult, meta: CovarianceMeta): Promise<void> {
  const C = result.mean.length;
  if (result.cov.length !== C * C) throw new DataError(`writeCovariance: cov has ${result.cov.length} values, expected ${C} x ${C} from the mean's length`);
  let bytes: Uint8Array;
  if (os.endianness() === 'LE') {
    bytes = new Uint8Array(result.cov.buffer, result.cov.byteOffset, result.cov.byteLength);
  } else {
    const buf = new ArrayBuffer(C * C * 4);
    const dv = new DataView(buf);
    for (let i = 0; i < C * C; i++) dv.setFloat32(i * 4, result.cov[i], true);
    bytes = new Uint8Array(buf);
  }
  await writeFileAtomic(path.join(dir, 'covariance.bin'), bytes);
  await writeJsonAtomic(path.join(dir, 'covariance.json'), {
    classes: C,
    source: meta.source,
    split: meta.split,
    examples: result.examples,
    mean: Array.from(result.mean),
  });
}

/**
 * Reads what {@link writeCovariance} wrote.
 * @throws ArtifactError when a file is missing, malformed, or the matrix size disagrees with `classes`
 */
export async function readCovariance(dir: string): Promise<StoredCovariance> {
  const jsonPath = path.join(dir, 'covariance.json');
  const binPath = path.join(dir, 'covariance.bin');
  let meta: unknown;
  try {
    meta = JSON.parse(await fs.readFile(jsonPath, 'utf8'));
  } catch (e) {
    throw new ArtifactError(`cannot read ${jsonPath}: ${(e as Error).message}; re-run the covariance stage`, { cause: e });
  }
  const m = meta as Record<string, unknown>;
  const C = m.classes;
  if (typeof C !== 'number' || !Number.isInteger(C) || C < 1) throw new ArtifactError(`${jsonPath}: "classes" must be a positive integer`);
  if (m.source !== 'probabilities' && m.source !== 'logits') throw new ArtifactError(`${jsonPath}: "source" must be "probabilities" or "logits", got ${JSON.stringify(m.source)}`);
  if (typeof m.split !== 'string') throw new ArtifactError(`${jsonPath}: "split" must be a string`);
  if (typeof m.examples !== 'number') throw new ArtifactError(`${jsonPath}: "examples" must be a number`);
  if (!Array.isArray(m.mean) || m.mean.length !== C || !m.mean.every((v) => typeof v === 'number')) {
    throw new ArtifactError(`${jsonPath}: "mean" must be an array of ${C} numbers`);
  }
  let buf: Buffer;
  try {
    buf = await fs.readFile(binPath);
  } catch (e) {
    throw new ArtifactError(`cannot read ${binPath}: ${(e as Error).message}; re-run the covariance stage`, { cause: e });
  }
  if (buf.byteLength !== C * C * 4) {
    throw new ArtifactError(`${binPath}: ${buf.byteLength} bytes, expected ${C} x ${C} x 4 = ${C * C * 4} (classes = ${C} in covariance.json); the artifact is truncated or from another run`);
  }
  const cov = new Float32Array(C * C);
  if (os.endianness() === 'LE') {
    new Uint8Array(cov.buffer).set(buf);
  } else {
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    for (let i = 0; i < C * C; i++) cov[i] = dv.getFloat32(i * 4, true);
  }
  return { cov, mean: Float64Array.from(m.mean as number[]), examples: m.examples, classes: C, source: m.source, split: m.split };
}
