/**
 * The points clustered by the specialist pipeline: the (normalised) columns of a C x C
 * covariance matrix. Nothing is copied: a column is materialised on demand from the covariance
 * and two per-class scale vectors, so clustering C = 10,000 classes needs no second 400 MB
 * matrix.
 *
 * Normalisations (paper section 6 pitfall: raw columns are dominated by their diagonal, so plain
 * k-means groups classes by their variance):
 * - `none`: `x_j[i] = cov_ij`;
 * - `correlation`: `x_j[i] = cov_ij / sqrt(cov_ii cov_jj)` (a class with zero variance gives a
 *   zero column);
 * - `unit`: column j scaled to unit Euclidean length (after zeroing the diagonal if asked).
 * With `zeroDiagonal`, `x_j[j] = 0` in every mode.
 */
import { assertUnreachable } from '../util/errors.ts';

/** How covariance columns are normalised before clustering. */
export type ColumnNormalisation = 'none' | 'correlation' | 'unit';

/** Read-only view of the normalised columns of a symmetric C x C matrix. */
export class CovarianceColumns {
  readonly C: number;
  private readonly cov: Float32Array;
  /** Element scale: x_j[i] = cov_ij * elem[i] * col[j] (off the diagonal). */
  private readonly elem: Float64Array;
  private readonly col: Float64Array;
  /** The value placed on the diagonal x_j[j]. */
  private readonly diag: Float64Array;

  /**
   * @param cov symmetric C x C row-major matrix (column j = row j is read)
   * @param C number of classes
   */
  constructor(cov: Float32Array, C: number, normalise: ColumnNormalisation, zeroDiagonal: boolean) {
    this.cov = cov;
    this.C = C;
    this.elem = new Float64Array(C).fill(1);
    this.col = new Float64Array(C).fill(1);
    this.diag = new Float64Array(C);
    switch (normalise) {
      case 'none':
        for (let j = 0; j < C; j++) this.diag[j] = zeroDiagonal ? 0 : cov[j * C + j];
        break;
      case 'correlation':
        for (let i = 0; i < C; i++) {
          const v = cov[i * C + i];
          const s = v > 0 ? 1 / Math.sqrt(v) : 0;
          this.elem[i] = s;
          this.col[i] = s;
          this.diag[i] = zeroDiagonal || s === 0 ? 0 : 1;
        }
        break;
      case 'unit':
        for (let j = 0; j < C; j++) {
          let ss = 0;
          const off = j * C;
          for (let i = 0; i < C; i++) {
            const v = cov[off + i];
            ss += v * v;
          }
          const d = cov[off + j];
          if (zeroDiagonal) ss -= d * d;
          const s = ss > 0 ? 1 / Math.sqrt(ss) : 0;
          this.col[j] = s;
          this.diag[j] = zeroDiagonal ? 0 : d * s;
        }
        break;
      default:
        assertUnreachable(normalise);
    }
  }

  /** Writes the normalised column j into `out` (length >= C). */
  column(j: number, out: Float64Array): void {
    const C = this.C;
    const off = j * C;
    const cj = this.col[j];
    const cov = this.cov;
    const e = this.elem;
    for (let i = 0; i < C; i++) out[i] = cov[off + i] * e[i] * cj;
    out[j] = this.diag[j];
  }
}
