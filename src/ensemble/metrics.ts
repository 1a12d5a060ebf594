/**
 * Accuracy of the specialist ensemble against the generalist, in the form of the paper's
 * Tables 3 and 4: overall, conditional on a specialist being active, and grouped by how many
 * specialists cover the true class ("10 or more" as the last bucket).
 */
import { DataError } from '../util/errors.ts';

/** One row of the by-coverage table. */
export interface CoverageRow {
  /** Number of specialists covering the true class; the last bucket (10) means "10 or more". */
  specialists: number;
  /** `"0"` .. `"9"`, `"10 or more"`. */
  label: string;
  examples: number;
  generalist_correct: number;
  ensemble_correct: number;
  /** (ensemble_correct - generalist_correct) / generalist_correct; null when the generalist got none right. */
  relative_change: number | null;
}

/** Output of {@link ensembleMetrics}. */
export interface EnsembleMetrics {
  examples: number;
  generalist: { accuracy: number; correct: number };
  ensemble: { accuracy: number; correct: number };
  /** Only the cases where at least one specialist was active. */
  conditional: { examples: number; generalist_accuracy: number | null; ensemble_accuracy: number | null };
  by_coverage: CoverageRow[];
}

/** Inputs of {@link ensembleMetrics}. */
export interface EnsembleMetricsInput {
  labels: ArrayLike<number>;
  /** Generalist distributions (or logits), cases x C. */
  pg: Float32Array;
  /** Ensemble distributions, cases x C. */
  q: Float32Array;
  C: number;
  /** Per case: number of specialists covering the TRUE class. */
  coverage: Int32Array;
  /** Per case: whether any specialist was active. */
  active: ArrayLike<boolean>;
}

/** Last bucket of the by-coverage table ("10 or more"), as in the paper. */
export const COVERAGE_BUCKETS = 10;

/** Row-wise argmax (ties: lowest index). */
export function argmaxRows(x: Float32Array, rows: number, C: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const off = r * C;
    let b = 0;
    for (let i = 1; i < C; i++) if (x[off + i] > x[off + b]) b = i;
    out[r] = b;
  }
  return out;
}

/**
 * Top-1 accuracy of generalist and ensemble, overall, conditional on an active specialist, and by
 * the number of specialists covering the true class.
 * @throws DataError when the arrays disagree in size
 */
export function ensembleMetrics(input: EnsembleMetricsInput): EnsembleMetrics {
  const { labels, pg, q, C, coverage, active } = input;
  const n = labels.length;
  if (pg.length !== n * C || q.length !== n * C) throw new DataError(`ensembleMetrics: pg/q must be ${n} x ${C} (got ${pg.length}, ${q.length} values)`);
  if (coverage.length !== n || active.length !== n) throw new DataError(`ensembleMetrics: coverage/active must have ${n} entries`);
  const gp = argmaxRows(pg, n, C);
  const ep = argmaxRows(q, n, C);
  const rows: CoverageRow[] = [];
  for (let k = 0; k <= COVERAGE_BUCKETS; k++) {
    rows.push({ specialists: k, label: k === COVERAGE_BUCKETS ? `${k} or more` : String(k), examples: 0, generalist_correct: 0, ensemble_correct: 0, relative_change: null });
  }
  let gc = 0;
  let ec = 0;
  let cn = 0;
  let cg = 0;
  let ce = 0;
  for (let r = 0; r < n; r++) {
    const g = gp[r] === labels[r] ? 1 : 0;
    const e = ep[r] === labels[r] ? 1 : 0;
    gc += g;
    ec += e;
    if (active[r]) {
      cn++;
      cg += g;
      ce += e;
    }
    const row = rows[Math.min(Math.max(coverage[r], 0), COVERAGE_BUCKETS)];
    row.examples++;
    row.generalist_correct += g;
    row.ensemble_correct += e;
  }
  for (const row of rows) row.relative_change = row.generalist_correct > 0 ? (row.ensemble_correct - row.generalist_correct) / row.generalist_correct : null;
  return {
    examples: n,
    generalist: { accuracy: n > 0 ? gc / n : 0, correct: gc },
    ensemble: { accuracy: n > 0 ? ec / n : 0, correct: ec },
    conditional: { examples: cn, generalist_accuracy: cn > 0 ? cg / cn : null, ensemble_accuracy: cn > 0 ? ce / cn : null },
    by_coverage: rows,
  };
}
