/** The specialist ensemble's accuracy tables (the paper's Tables 3 and 4) as plain text. */
import { formatTable, pct } from '../cli/table.ts';
import type { CoverageRow, EnsembleMetrics } from './metrics.ts';

const HEADER = ['examples', 'generalist correct', 'ensemble correct', 'relative change'];

/** Rows of a by-coverage / by-membership table as text cells, empty buckets left out. */
export function coverageCells(rows: readonly CoverageRow[]): (string | number)[][] {
  return rows.filter((r) => r.examples > 0).map((r) => [r.label, r.examples, r.generalist_correct, r.ensemble_correct, changeCell(r.relative_change)]);
}

/** A bucket's relative change of correct cases as a cell, e.g. `11.3%`; `-` when undefined. */
function changeCell(v: number | null): string {
  return v === null ? '-' : `${(100 * v).toFixed(1)}%`;
}

/**
 * Overall and conditional test accuracy of generalist and ensemble, then the by-coverage table
 * (active specialists covering the true class) and, when present, the by-membership table
 * (clusters holding the true class, the paper's Table 4 grouping) and its split by class kind;
 * non-empty buckets only, as aligned text.
 */
export function describeEnsemble(m: EnsembleMetrics, weight: number): string {
  const lines = [
    `test accuracy: generalist ${pct(m.generalist.accuracy)} -> ensemble ${pct(m.ensemble.accuracy)} (specialist weight ${weight})`,
    `conditional (${m.conditional.examples} cases with an active specialist): ${pct(m.conditional.generalist_accuracy ?? undefined)} -> ${pct(m.conditional.ensemble_accuracy ?? undefined)}`,
    'by_coverage: test cases by the number of ACTIVE specialists covering the true class',
    formatTable(['specialists covering', ...HEADER], coverageCells(m.by_coverage)),
  ];
  if (m.by_membership) {
    lines.push('by_membership: test cases by the number of clusters holding the true class (active or not; paper Table 4)', formatTable(['clusters holding', ...HEADER], coverageCells(m.by_membership)));
  }
  for (const [kind, rows] of Object.entries(m.by_membership_kind ?? {})) {
    lines.push(`by_membership, ${kind} classes only`, formatTable(['clusters holding', ...HEADER], coverageCells(rows)));
  }
  return lines.join('\n');
}

/**
 * The overlap ablation beside the full ensemble, by the number of clusters holding the true class:
 * generalist correct, ensemble correct with every specialist and with one specialist per class
 * (the others' knowledge of it merged into their dustbins), and both relative changes. Rows are
 * matched by bucket; empty buckets are left out.
 */
export function describeOverlapAblation(full: readonly CoverageRow[], ablated: readonly CoverageRow[]): string {
  const rows = full
    .filter((r) => r.examples > 0)
    .map((r) => {
      const a = ablated.find((b) => b.specialists === r.specialists);
      return [r.label, r.examples, r.generalist_correct, r.ensemble_correct, a ? a.ensemble_correct : '-', changeCell(r.relative_change), changeCell(a?.relative_change ?? null)];
    });
  return [
    'overlap ablation: test cases by the number of clusters holding the true class',
    formatTable(['clusters holding', 'examples', 'generalist correct', 'ensemble correct', 'one specialist per class', 'relative change', 'one per class'], rows),
  ].join('\n');
}
