/**
 * Diagnostics of a class clustering (paper section 6 pitfall: check a clustering by the
 * generalist's accuracy *within* each subset; good clusters hold the generalist's confusions, so
 * it is markedly lower there than overall).
 *
 * Confusion mass is measured on the covariance: by default the sum of the *positive part* of the
 * off-diagonal covariance (classes predicted together co-vary positively; negative covariance
 * means the two are not confused), optionally the absolute value.
 * - `within_mass`: sum over unordered pairs {i, j}, i != j, both in the cluster;
 * - `between_mass`: sum over i in the cluster, j outside it.
 */
import { DataError } from '../util/errors.ts';

/** Per-cluster diagnostics. */
export interface ClusterStat {
  id: number;
  size: number;
  classes: number[];
  names: string[];
  /** Confusion mass inside the cluster (see module doc). */
  within_mass: number;
  /** Confusion mass from the cluster's classes to the classes outside it. */
  between_mass: number;
  /** Generalist top-1 accuracy (over all classes) on validation examples whose true class is in the cluster; null without data. */
  generalist_accuracy_within: number | null;
  /** Number of validation examples whose true class is in the cluster. */
  valid_examples: number;
}

/** Options of {@link clusterStats}. */
export interface ClusterStatsOptions {
  classNames: string[];
  /** True labels of the validation split. */
  validLabels?: Int32Array;
  /** Generalist logits (or probabilities) on the validation split, examples x C. */
  validLogits?: Float32Array;
  /** Which part of the off-diagonal covariance counts as confusion mass; default `positive`. */
  mass?: 'positive' | 'absolute';
}

/**
 * Computes {@link ClusterStat} for each cluster.
 * @param cov symmetric C x C covariance, row-major
 * @throws DataError when the validation arrays disagree in size or a label is out of range
 */
export function clusterStats(cov: Float32Array, C: number, clusters: ReadonlyArray<ReadonlyArray<number>>, opts: ClusterStatsOptions): ClusterStat[] {
  if (cov.length !== C * C) throw new DataError(`clusterStats: covariance has ${cov.length} values, expected ${C} x ${C}`);
  if (opts.classNames.length !== C) throw new DataError(`clusterStats: ${opts.classNames.length} class names for ${C} classes`);
  const part = opts.mass === 'absolute' ? Math.abs : (v: number) => (v > 0 ? v : 0);
  // Generalist predictions on validation.
  let correctByClass: Int32Array | undefined;
  let countByClass: Int32Array | undefined;
  if (opts.validLabels && opts.validLogits) {
    const n = opts.validLabels.length;
    if (opts.validLogits.length !== n * C) throw new DataError(`clusterStats: validLogits has ${opts.validLogits.length} values, expected ${n} x ${C}`);
    correctByClass = new Int32Array(C);
    countByClass = new Int32Array(C);
    for (let r = 0; r < n; r++) {
      const y = opts.validLabels[r];
      if (!(y >= 0 && y < C)) throw new DataError(`clusterStats: validation label ${y} at row ${r} is outside 0..${C - 1}`);
      let best = 0;
      const off = r * C;
      for (let i = 1; i < C; i++) if (opts.validLogits[off + i] > opts.validLogits[off + best]) best = i;
      countByClass[y]++;
      if (best === y) correctByClass[y]++;
    }
  }
  const member = new Uint8Array(C);
  return clusters.map((cl, id) => {
    for (const i of cl) member[i] = 1;
    let within = 0;
    let between = 0;
    for (const i of cl) {
      const off = i * C;
      for (let j = 0; j < C; j++) {
        if (j === i) continue;
        const v = part(cov[off + j]);
        if (member[j]) within += v;
        else between += v;
      }
    }
    within /= 2; // each unordered pair was counted twice
    let acc: number | null = null;
    let examples = 0;
    if (correctByClass && countByClass) {
      let correct = 0;
      for (const i of cl) {
        examples += countByClass[i];
        correct += correctByClass[i];
      }
      acc = examples > 0 ? correct / examples : null;
    }
    for (const i of cl) member[i] = 0;
    return {
      id,
      size: cl.length,
      classes: [...cl],
      names: cl.map((i) => opts.classNames[i]),
      within_mass: within,
      between_mass: between,
      generalist_accuracy_within: acc,
      valid_examples: examples,
    };
  });
}

/**
 * An aligned plain-text table of cluster diagnostics: id, size, within / between mass and their
 * ratio, the generalist's within-subset accuracy, example count, and the first class names.
 * @param maxNames how many class names to list per cluster (default 6)
 */
export function formatClusterTable(stats: ReadonlyArray<ClusterStat>, maxNames = 6): string {
  const header = ['id', 'size', 'within', 'between', 'within/between', 'gen_acc_within', 'valid_n', 'classes'];
  const fmt = (v: number): string => (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : v.toFixed(4));
  const rows = stats.map((s) => [
    String(s.id),
    String(s.size),
    fmt(s.within_mass),
    fmt(s.between_mass),
    s.between_mass > 0 ? fmt(s.within_mass / s.between_mass) : '-',
    s.generalist_accuracy_within === null ? '-' : `${(100 * s.generalist_accuracy_within).toFixed(1)}%`,
    String(s.valid_examples),
    s.names.slice(0, maxNames).join(', ') + (s.names.length > maxNames ? `, ... (+${s.names.length - maxNames})` : ''),
  ]);
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => r[c].length)));
  const line = (r: string[]): string =>
    r
      .map((cell, c) => (c === r.length - 1 ? cell : c <= 1 || (c >= 2 && c <= 6) ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w, c) => '-'.repeat(c === widths.length - 1 ? Math.max(7, Math.min(w, 40)) : w)).join('  '), ...rows.map(line)].join('\n');
}
