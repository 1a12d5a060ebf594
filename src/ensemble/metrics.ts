/**
 * Accuracy of the specialist ensemble against the generalist, in the form of the paper's
 * Tables 3 and 4: overall, conditional on a specialist being active, and grouped by how many
 * specialists cover the true class ("10 or more" as the last bucket), counted two ways:
 * `by_coverage` counts the ACTIVE specialists of a case whose subset holds the true class;
 * `by_membership` (the paper's Table 4 grouping) counts every cluster holding the true class,
 * whether its specialist was active for the case or not.
 */
import { z } from 'zod';
import { DataError } from '../util/errors.ts';

/** One row of the by-coverage and by-membership tables. */
export interface CoverageRow {
  /**
   * Number of specialists covering the true class (active ones for `by_coverage`, all clusters
   * holding it for `by_membership`); the last bucket (10) means "10 or more".
   */
  specialists: number;
  /** `"0"` .. `"9"`, `"10 or more"`. */
  label: string;
  examples: number;
  generalist_correct: number;
  ensemble_correct: number;
  /** (ensemble_correct - generalist_correct) / generalist_correct; null when the generalist got none right. */
  relative_change: number | null;
}

/** The schema of a {@link CoverageRow} as read back from a `metrics.json` (extra keys kept). */
export const coverageRowSchema = z.looseObject({
  specialists: z.number(),
  label: z.string(),
  examples: z.number(),
  generalist_correct: z.number(),
  ensemble_correct: z.number(),
  relative_change: z.number().nullable(),
});

/** Output of {@link ensembleMetrics}. */
export interface EnsembleMetrics {
  examples: number;
  generalist: { accuracy: number; correct: number };
  ensemble: { accuracy: number; correct: number };
  /** Only the cases where at least one specialist was active. */
  conditional: { examples: number; generalist_accuracy: number | null; ensemble_accuracy: number | null };
  /** Cases by the number of ACTIVE specialists (for that case) whose subset holds the true class. */
  by_coverage: CoverageRow[];
  /**
   * Cases by the number of clusters holding the true class, active or not (the paper's Table 4
   * grouping: a property of the class, not of the case). Present when `membership` was given.
   */
  by_membership?: CoverageRow[];
  /**
   * `by_membership` split by kind of the true class (e.g. `ordinary` / `bridge` for the synthetic
   * recipe with bridges), kinds in first-seen class order. Present when `membership` and
   * `classKinds` were given.
   */
  by_membership_kind?: Record<string, CoverageRow[]>;
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
  /** Per case: number of clusters (specialists) whose subset holds the TRUE class, active or not. */
  membership?: Int32Array;
  /** Per class (length C): its kind, e.g. `ordinary` or `bridge`; needs `membership`. */
  classKinds?: readonly string[];
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

/** Rows of `scores` (rows x C) whose first arg-max is the row's label in `labels`. */
export function countCorrect(scores: Float32Array, labels: ArrayLike<number>, C: number): number {
  const pred = argmaxRows(scores, labels.length, C);
  let correct = 0;
  for (let r = 0; r < labels.length; r++) if (pred[r] === labels[r]) correct++;
  return correct;
}

/** The empty table: buckets 0 .. {@link COVERAGE_BUCKETS} ("10 or more"). */
function emptyRows(): CoverageRow[] {
  const rows: CoverageRow[] = [];
  for (let k = 0; k <= COVERAGE_BUCKETS; k++) {
    rows.push({ specialists: k, label: k === COVERAGE_BUCKETS ? `${k} or more` : String(k), examples: 0, generalist_correct: 0, ensemble_correct: 0, relative_change: null });
  }
  return rows;
}

/** Adds one case to the bucket of `count` (negative counts go to 0, large ones to the last bucket). */
function addCase(rows: CoverageRow[], count: number, g: number, e: number): void {
  const row = rows[Math.min(Math.max(count, 0), COVERAGE_BUCKETS)]!;
  row.examples++;
  row.generalist_correct += g;
  row.ensemble_correct += e;
}

function finishRows(rows: CoverageRow[]): CoverageRow[] {
  for (const row of rows) row.relative_change = row.generalist_correct > 0 ? (row.ensemble_correct - row.generalist_correct) / row.generalist_correct : null;
  return rows;
}

/**
 * Top-1 accuracy of generalist and ensemble, overall, conditional on an active specialist, by the
 * number of active specialists covering the true class (`by_coverage`) and, with `membership`, by
 * the number of clusters holding the true class (`by_membership`, split by class kind with
 * `classKinds`). The whole split at once: one {@link MetricsAccumulator} fed one block.
 * @throws DataError when the arrays disagree in size, or a label is outside 0..C-1 while class kinds are given
 */
export function ensembleMetrics(input: EnsembleMetricsInput): EnsembleMetrics {
  const acc = new MetricsAccumulator(input.C, { membership: input.membership !== undefined, ...(input.classKinds ? { classKinds: input.classKinds } : {}) });
  acc.add(input);
  return acc.result();
}

/**
 * {@link ensembleMetrics} accumulated over blocks of cases: every table is a sum of integer
 * counts per case, so adding the blocks of a split in any partition gives exactly the whole
 * split's metrics, with memory independent of the number of cases.
 */
export class MetricsAccumulator {
  private readonly rows = emptyRows();
  private readonly memberRows: CoverageRow[] | null;
  private readonly kindRows = new Map<string, CoverageRow[]>();
  private readonly classKinds: readonly string[] | undefined;
  private n = 0;
  private gc = 0;
  private ec = 0;
  private cn = 0;
  private cg = 0;
  private ce = 0;

  /**
   * @param C number of classes
   * @param opts `membership`: the blocks carry `membership` (the by_membership table);
   *   `classKinds`: per class its kind (needs `membership`)
   * @throws DataError when `classKinds` has not one kind per class or comes without membership
   */
  constructor(
    readonly C: number,
    opts: { membership?: boolean; classKinds?: readonly string[] } = {},
  ) {
    const { classKinds } = opts;
    if (classKinds && classKinds.length !== C) throw new DataError(`ensembleMetrics: classKinds must have one kind per class (${C}), got ${classKinds.length}`);
    if (classKinds && !opts.membership) throw new DataError('ensembleMetrics: classKinds needs membership (the split by kind is of the by-membership table)');
    this.memberRows = opts.membership ? emptyRows() : null;
    this.classKinds = classKinds;
    if (classKinds) for (const k of classKinds) if (!this.kindRows.has(k)) this.kindRows.set(k, emptyRows());
  }

  /**
   * Adds one block of cases (`labels.length` of them; `C` must be the accumulator's).
   * @throws DataError when the arrays disagree in size, or a label is outside 0..C-1 while class kinds are given
   */
  add(input: Omit<EnsembleMetricsInput, 'classKinds'>): void {
    const { labels, pg, q, coverage, active, membership } = input;
    const C = this.C;
    const n = labels.length;
    if (input.C !== C) throw new DataError(`ensembleMetrics: a block of ${input.C} classes added to metrics of ${C}`);
    if (pg.length !== n * C || q.length !== n * C) throw new DataError(`ensembleMetrics: pg/q must be ${n} x ${C} (got ${pg.length}, ${q.length} values)`);
    if (coverage.length !== n || active.length !== n) throw new DataError(`ensembleMetrics: coverage/active must have ${n} entries`);
    if (membership && membership.length !== n) throw new DataError(`ensembleMetrics: membership must have ${n} entries (got ${membership.length})`);
    if (this.memberRows && !membership) throw new DataError('ensembleMetrics: this accumulator counts by_membership: every block needs membership');
    const gp = argmaxRows(pg, n, C);
    const ep = argmaxRows(q, n, C);
    const classKinds = this.classKinds;
    for (let r = 0; r < n; r++) {
      const y = labels[r]!;
      const g = gp[r] === y ? 1 : 0;
      const e = ep[r] === y ? 1 : 0;
      this.gc += g;
      this.ec += e;
      if (active[r]) {
        this.cn++;
        this.cg += g;
        this.ce += e;
      }
      addCase(this.rows, coverage[r]!, g, e);
      if (this.memberRows) addCase(this.memberRows, membership![r]!, g, e);
      if (classKinds) {
        if (!(y >= 0 && y < C)) throw new DataError(`ensembleMetrics: label ${y} at row ${this.n + r} is outside 0..${C - 1}`);
        addCase(this.kindRows.get(classKinds[y]!)!, membership![r]!, g, e);
      }
    }
    this.n += n;
  }

  /** Cases added so far. */
  get examples(): number {
    return this.n;
  }

  /** The metrics of every case added so far (fresh objects; the accumulator can go on). */
  result(): EnsembleMetrics {
    const { n, gc, ec, cn, cg, ce } = this;
    const copy = (t: CoverageRow[]): CoverageRow[] => finishRows(t.map((row) => ({ ...row })));
    const out: EnsembleMetrics = {
      examples: n,
      generalist: { accuracy: n > 0 ? gc / n : 0, correct: gc },
      ensemble: { accuracy: n > 0 ? ec / n : 0, correct: ec },
      conditional: { examples: cn, generalist_accuracy: cn > 0 ? cg / cn : null, ensemble_accuracy: cn > 0 ? ce / cn : null },
      by_coverage: copy(this.rows),
    };
    if (this.memberRows) out.by_membership = copy(this.memberRows);
    if (this.classKinds) out.by_membership_kind = Object.fromEntries([...this.kindRows].map(([k, t]) => [k, copy(t)]));
    return out;
  }
}
