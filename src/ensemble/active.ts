/**
 * Which specialists take part for a case (paper section 5): those whose special subset S^m
 * intersects the generalist's top-n classes (the paper uses n = 1); and how many specialists
 * cover a given class (the grouping of the paper's Table 4).
 */
import { DataError } from '../util/errors.ts';

/** Class -> specialists covering it, in CSR form. */
export interface ClassToSpecialists {
  C: number;
  /** Length C + 1: class i's specialists are ids[offsets[i] .. offsets[i+1]). */
  offsets: Int32Array;
  ids: Int32Array;
}

type Subsets = ReadonlyArray<ArrayLike<number>>;

const cache = new WeakMap<object, ClassToSpecialists>();

/**
 * Builds the class -> specialists index of `clusters` (subset m = clusters[m]).
 * @throws DataError when a class index is outside 0..C-1
 */
export function classToSpecialists(clusters: Subsets, C: number): ClassToSpecialists {
  const counts = new Int32Array(C + 1);
  clusters.forEach((cl, m) => {
    for (let t = 0; t < cl.length; t++) {
      const i = cl[t];
      if (!(i >= 0 && i < C)) throw new DataError(`specialist ${m}: class ${i} is outside 0..${C - 1}`);
      counts[i + 1]++;
    }
  });
  for (let i = 0; i < C; i++) counts[i + 1] += counts[i];
  const ids = new Int32Array(counts[C]);
  const fill = counts.slice(0, C);
  clusters.forEach((cl, m) => {
    for (let t = 0; t < cl.length; t++) ids[fill[cl[t]]++] = m;
  });
  return { C, offsets: counts, ids };
}

function indexFor(clusters: Subsets, C: number): ClassToSpecialists {
  let idx = cache.get(clusters);
  if (!idx || idx.C !== C) {
    idx = classToSpecialists(clusters, C);
    cache.set(clusters, idx);
  }
  return idx;
}

/** Indices of the `n` largest entries of `row` (ties: lower index first), largest first. */
export function topN(row: ArrayLike<number>, n: number): Int32Array {
  const C = row.length;
  const k = Math.min(n, C);
  const best = new Int32Array(k).fill(-1);
  for (let i = 0; i < C; i++) {
    const v = row[i];
    let pos = k;
    while (pos > 0 && (best[pos - 1] < 0 || v > row[best[pos - 1]])) pos--;
    if (pos >= k) continue;
    for (let t = k - 1; t > pos; t--) best[t] = best[t - 1];
    best[pos] = i;
  }
  return best;
}

/**
 * Specialists whose subset intersects the generalist's top-`n` classes for one case.
 * @param pgRow the generalist's distribution (or logits) for the case, length C
 * @param clusters the specialists' special classes (the index is cached per `clusters` object)
 * @param n how many of the generalist's top classes to look at (paper: 1)
 * @returns specialist ids, sorted ascending, distinct
 */
export function activeSpecialists(pgRow: ArrayLike<number>, clusters: Subsets, n: number): Int32Array {
  const idx = indexFor(clusters, pgRow.length);
  const top = topN(pgRow, n);
  const set = new Set<number>();
  for (const c of top) for (let t = idx.offsets[c]; t < idx.offsets[c + 1]; t++) set.add(idx.ids[t]);
  return Int32Array.from([...set].sort((a, b) => a - b));
}

/**
 * Number of specialists covering each case's true class (the x-axis of the paper's Table 4);
 * 0 for an unlabeled row (label -1).
 * @throws DataError when a label is outside -1..C-1
 */
export function coverageCounts(labels: ArrayLike<number>, clusters: Subsets, C: number): Int32Array {
  const idx = indexFor(clusters, C);
  const out = new Int32Array(labels.length);
  for (let r = 0; r < labels.length; r++) {
    const y = labels[r];
    if (y === -1) continue; // an unlabeled row (ingest's unlabeled.arrow): no true class, coverage 0
    if (!(y >= 0 && y < C)) throw new DataError(`label ${y} at row ${r} is outside 0..${C - 1}`);
    out[r] = idx.offsets[y + 1] - idx.offsets[y];
  }
  return out;
}
