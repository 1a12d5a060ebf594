/** The specialist ensemble's accuracy tables (the paper's Tables 3 and 4) as plain text. */
import { formatTable, pct } from '../cli/table.ts';
import type { EnsembleMetrics } from './metrics.ts';

/**
 * Overall and conditional test accuracy of generalist and ensemble, then the by-coverage table
 * (non-empty buckets only), as aligned text.
 */
export function describeEnsemble(m: EnsembleMetrics, weight: number): string {
  const lines = [
    `test accuracy: generalist ${pct(m.generalist.accuracy)} -> ensemble ${pct(m.ensemble.accuracy)} (specialist weight ${weight})`,
    `conditional (${m.conditional.examples} cases with an active specialist): ${pct(m.conditional.generalist_accuracy ?? undefined)} -> ${pct(m.conditional.ensemble_accuracy ?? undefined)}`,
    formatTable(
      ['specialists covering', 'examples', 'generalist correct', 'ensemble correct', 'relative change'],
      m.by_coverage.filter((r) => r.examples > 0).map((r) => [r.label, r.examples, r.generalist_correct, r.ensemble_correct, r.relative_change === null ? '-' : `${(100 * r.relative_change).toFixed(1)}%`]),
    ),
  ];
  return lines.join('\n');
}
