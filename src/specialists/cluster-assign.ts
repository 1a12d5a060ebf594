/**
 * Turning k-means centres into class subsets: nearest-centre assignment with reseeding of empty
 * clusters, size-balanced assignment, and overlap (each class also joins its r nearest other
 * clusters).
 */
import type { CovarianceColumns } from './cluster-columns.ts';
import { rowNorms, sqDistAll, sqNorm } from './cluster-kmeans.ts';

/** Squared distances from every column to every centre: C x K row-major. */
export function distanceMatrix(points: CovarianceColumns, centres: Float64Array, K: number): Float64Array {
  const C = points.C;
  const D = new Float64Array(C * K);
  const x = new Float64Array(C);
  const norms = rowNorms(centres, K, C);
  const d = new Float64Array(K);
  for (let j = 0; j < C; j++) {
    points.column(j, x);
    sqDistAll(x, sqNorm(x, C), centres, norms, K, C, d);
    D.set(d, j * K);
  }
  return D;
}

/**
 * Nearest-centre assignment; an empty cluster is reseeded with the point farthest from its own
 * centre among clusters with more than one member (its centre becomes that point, `D` and
 * `centres` are updated, and points now nearer to it move over if their cluster keeps a member).
 * @returns primary cluster per class; no cluster is empty when C >= K
 */
export function nearestAssignment(points: CovarianceColumns, centres: Float64Array, D: Float64Array, K: number): Int32Array {
  const C = points.C;
  const assign = new Int32Array(C);
  const sizes = new Int32Array(K);
  for (let j = 0; j < C; j++) {
    let best = 0;
    for (let k = 1; k < K; k++) if (D[j * K + k] < D[j * K + best]) best = k;
    assign[j] = best;
    sizes[best]++;
  }
  const x = new Float64Array(C);
  for (let guard = 0; guard < K; guard++) {
    const e = sizes.indexOf(0);
    if (e < 0) break;
    let far = -1;
    let farD = -1;
    for (let j = 0; j < C; j++) {
      const d = D[j * K + assign[j]];
      if (sizes[assign[j]] > 1 && d > farD) {
        farD = d;
        far = j;
      }
    }
    if (far < 0) break; // C < K: cannot happen after validation
    sizes[assign[far]]--;
    assign[far] = e;
    sizes[e]++;
    points.column(far, x);
    centres.set(x.subarray(0, C), e * C);
    const ce = centres.subarray(e * C, (e + 1) * C);
    const en = rowNorms(ce, 1, C);
    const one = new Float64Array(1);
    for (let j = 0; j < C; j++) {
      points.column(j, x);
      sqDistAll(x, sqNorm(x, C), ce, en, 1, C, one);
      D[j * K + e] = j === far ? 0 : one[0];
    }
    for (let j = 0; j < C; j++) {
      const a = assign[j];
      if (a !== e && sizes[a] > 1 && D[j * K + e] < D[j * K + a]) {
        sizes[a]--;
        assign[j] = e;
        sizes[e]++;
      }
    }
  }
  return assign;
}

/**
 * Size-balanced assignment: all (class, centre) pairs in increasing distance, each class taken by
 * the first centre with room. Sizes come out as equal as possible: every cluster gets
 * `floor(C/K)` or `ceil(C/K)` classes (exactly `C mod K` of them the larger size), hence none is
 * empty when C >= K. Then a local improvement: pairwise swaps between clusters that lower the
 * total distance (sizes unchanged), for up to `swapRounds` sweeps.
 */
export function balancedAssignment(D: Float64Array, C: number, K: number, swapRounds = 3): Int32Array {
  const lo = Math.floor(C / K);
  const extra = C % K; // clusters allowed to hold lo + 1
  const n = C * K;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => D[a] - D[b] || a - b);
  const assign = new Int32Array(C).fill(-1);
  const sizes = new Int32Array(K);
  let atHi = 0;
  let left = C;
  for (let t = 0; t < n && left > 0; t++) {
    const p = order[t];
    const j = Math.floor(p / K);
    const k = p - j * K;
    if (assign[j] >= 0) continue;
    if (sizes[k] < lo || (sizes[k] === lo && atHi < extra)) {
      if (sizes[k] === lo) atHi++;
      assign[j] = k;
      sizes[k]++;
      left--;
    }
  }
  improveBySwaps(D, assign, C, K, swapRounds);
  return assign;
}

/** Swaps pairs of classes between clusters when that lowers the summed distance to their centres. */
function improveBySwaps(D: Float64Array, assign: Int32Array, C: number, K: number, rounds: number): void {
  // Members per cluster for the search.
  for (let r = 0; r < rounds; r++) {
    let swaps = 0;
    for (let a = 0; a < C; a++) {
      const ka = assign[a];
      // Gain for a if moved to k: D[a,ka] - D[a,k]. Only look at clusters a would prefer.
      let bestGain = 1e-12;
      let bestB = -1;
      for (let b = a + 1; b < C; b++) {
        const kb = assign[b];
        if (kb === ka) continue;
        const gain = D[a * K + ka] + D[b * K + kb] - D[a * K + kb] - D[b * K + ka];
        if (gain > bestGain) {
          bestGain = gain;
          bestB = b;
        }
      }
      if (bestB >= 0) {
        const kb = assign[bestB];
        assign[bestB] = ka;
        assign[a] = kb;
        swaps++;
      }
    }
    if (swaps === 0) break;
  }
}

/**
 * Builds the class lists: each class in its primary cluster and in up to `overlap` other clusters,
 * the nearest ones (by distance to their centres). With `capacity`, no cluster grows beyond it: the
 * extra memberships are handed out greedily in order of distance over all (class, cluster) pairs,
 * so overlapping clusters stay balanced too (without it, one central cluster can collect every
 * class as their second choice). Lists are sorted ascending.
 *
 * Without `threshold` every class gets exactly `overlap` extra memberships (full clusters are
 * skipped, and a class left short takes the nearest cluster with room, else the nearest at all).
 *
 * With `threshold` t (uneven overlap): class j joins another cluster k only when its Euclidean
 * distance to k's centre is within a factor (1 + t) of its distance to the NEAREST centre,
 * `|x_j - c_k| <= (1 + t) min_k' |x_j - c_k'|`, nearest first, at most `overlap` of them (the cap)
 * and never into a cluster at `capacity`; pairs are granted in increasing order of that ratio over
 * all classes, and a class with no such cluster gets no extra membership. So a class in the middle
 * of its cluster stays in one specialist and a class the generalist confuses with several groups
 * (its column lies between their centres) is covered by several: the number of specialists per
 * class ranges over 1 .. overlap + 1 and follows the data. t = 0 adds only ties (a class displaced
 * from its nearest cluster by the size balancing joins it back).
 */
export function buildClusters(assign: Int32Array, D: Float64Array, C: number, K: number, overlap: number, capacity?: number, threshold?: number): number[][] {
  const clusters: number[][] = Array.from({ length: K }, () => []);
  for (let j = 0; j < C; j++) clusters[assign[j]].push(j);
  if (overlap > 0 && threshold !== undefined) {
    addThresholdOverlap(clusters, assign, D, C, K, overlap, capacity ?? Number.POSITIVE_INFINITY, threshold);
  } else if (overlap > 0) {
    const cap = capacity ?? Number.POSITIVE_INFINITY;
    const extra = new Int32Array(C);
    const member = new Uint8Array(C * K);
    for (let j = 0; j < C; j++) member[j * K + assign[j]] = 1;
    // Candidate pairs: for a bounded capacity all of them in distance order; else each class's own order.
    const pairs: number[] = [];
    for (let j = 0; j < C; j++) for (let k = 0; k < K; k++) if (k !== assign[j]) pairs.push(j * K + k);
    if (Number.isFinite(cap)) pairs.sort((a, b) => D[a] - D[b] || a - b);
    else pairs.sort((a, b) => Math.floor(a / K) - Math.floor(b / K) || D[a] - D[b] || a - b);
    for (const pr of pairs) {
      const j = Math.floor(pr / K);
      const k = pr - j * K;
      if (extra[j] >= overlap || member[pr] || clusters[k].length >= cap) continue;
      clusters[k].push(j);
      member[pr] = 1;
      extra[j]++;
    }
    // Classes still short of memberships (every nearer cluster was full): the nearest with room,
    // else the nearest at all.
    for (let j = 0; j < C; j++) {
      while (extra[j] < overlap) {
        let best = -1;
        let bestFull = -1;
        for (let k = 0; k < K; k++) {
          if (member[j * K + k]) continue;
          if (clusters[k].length < cap && (best < 0 || D[j * K + k] < D[j * K + best])) best = k;
          if (bestFull < 0 || D[j * K + k] < D[j * K + bestFull]) bestFull = k;
        }
        const k = best >= 0 ? best : bestFull;
        if (k < 0) break;
        clusters[k].push(j);
        member[j * K + k] = 1;
        extra[j]++;
      }
    }
  }
  for (const c of clusters) c.sort((a, b) => a - b);
  return clusters;
}

/**
 * Squared-distance ratio of class j to cluster k against j's nearest centre, `D[j,k] / min_k' D[j,k']`
 * (1 for the nearest; a class sitting exactly on a centre has ratio 1 there and +Infinity elsewhere).
 */
function distanceRatio(D: Float64Array, K: number, j: number, k: number, dmin: number): number {
  const d = D[j * K + k];
  if (dmin > 0) return d / dmin;
  return d <= 0 ? 1 : Number.POSITIVE_INFINITY;
}

/** The uneven overlap of {@link buildClusters} (its `threshold` branch); adds to `clusters` in place. */
function addThresholdOverlap(clusters: number[][], assign: Int32Array, D: Float64Array, C: number, K: number, overlap: number, cap: number, threshold: number): void {
  // Distances in D are squared: |x - c_k| <= (1 + t) d_min  <=>  D[j,k] <= (1 + t)^2 D_min.
  const limit = (1 + threshold) * (1 + threshold);
  const pairs: number[] = [];
  const ratio = new Float64Array(C * K);
  for (let j = 0; j < C; j++) {
    let dmin = Infinity;
    for (let k = 0; k < K; k++) if (D[j * K + k] < dmin) dmin = D[j * K + k];
    for (let k = 0; k < K; k++) {
      if (k === assign[j]) continue;
      const r = distanceRatio(D, K, j, k, dmin);
      ratio[j * K + k] = r;
      if (r <= limit) pairs.push(j * K + k);
    }
  }
  pairs.sort((a, b) => ratio[a] - ratio[b] || a - b);
  const extra = new Int32Array(C);
  for (const pr of pairs) {
    const j = Math.floor(pr / K);
    const k = pr - j * K;
    if (extra[j] >= overlap || clusters[k].length >= cap) continue;
    clusters[k].push(j);
    extra[j]++;
  }
}
