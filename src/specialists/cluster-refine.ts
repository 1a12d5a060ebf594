/**
 * Swap refinement of k-means centres: the local search of Kanungo et al. (2002), "A local search
 * approximation algorithm for k-means clustering", with Lloyd steps after each swap.
 *
 * k-means from k-means++ seeds ends in local optima where one centre serves two (or three) groups
 * while two centres share another group: on synthetic-1k (100 planted groups of 10) 3 to 11 groups
 * came out merged or split depending on the seed. Lloyd and online updates cannot leave such an
 * optimum, because moving one centre alone raises the objective; a swap (take away the centre that
 * is cheapest to lose, put it where the objective is worst) followed by Lloyd steps can.
 */
import type { CovarianceColumns } from './cluster-columns.ts';
import { rowNorms, sqDistAll, sqNorm } from './cluster-kmeans.ts';

/** Output of {@link swapRefine}. */
export interface SwapRefineResult {
  /** Refined K x C centres (a new array; the input is not modified). */
  centres: Float64Array;
  /** Swaps accepted (each lowered the objective). */
  swaps: number;
  /** k-means objective of the returned centres: sum over points of the squared distance to the nearest centre. */
  inertia: number;
}

/** Nearest and second-nearest centre of every point, with their squared distances. */
interface Nearest {
  first: Int32Array;
  d1: Float64Array;
  d2: Float64Array;
  inertia: number;
}

function nearestTwo(points: CovarianceColumns, centres: Float64Array, K: number): Nearest {
  const C = points.C;
  const first = new Int32Array(C);
  const d1 = new Float64Array(C);
  const d2 = new Float64Array(C);
  const x = new Float64Array(C);
  const d = new Float64Array(K);
  const norms = rowNorms(centres, K, C);
  let inertia = 0;
  for (let j = 0; j < C; j++) {
    points.column(j, x);
    sqDistAll(x, sqNorm(x, C), centres, norms, K, C, d);
    let a = 0;
    let b = -1;
    for (let k = 1; k < K; k++) {
      if (d[k] < d[a]) {
        b = a;
        a = k;
      } else if (b < 0 || d[k] < d[b]) b = k;
    }
    first[j] = a;
    d1[j] = d[a];
    d2[j] = b >= 0 ? d[b] : d[a];
    inertia += d[a];
  }
  return { first, d1, d2, inertia };
}

/**
 * Lloyd (batch k-means) steps in place: each centre becomes the mean of the points nearest to it;
 * a centre that wins no point keeps its position.
 */
export function lloydSteps(points: CovarianceColumns, centres: Float64Array, K: number, steps: number): void {
  const C = points.C;
  const x = new Float64Array(C);
  const sums = new Float64Array(K * C);
  const counts = new Int32Array(K);
  for (let s = 0; s < steps; s++) {
    const { first } = nearestTwo(points, centres, K);
    sums.fill(0);
    counts.fill(0);
    let moved = false;
    for (let j = 0; j < C; j++) {
      points.column(j, x);
      const off = first[j] * C;
      for (let i = 0; i < C; i++) sums[off + i] += x[i];
      counts[first[j]]++;
    }
    for (let k = 0; k < K; k++) {
      if (counts[k] === 0) continue;
      const off = k * C;
      const inv = 1 / counts[k];
      for (let i = 0; i < C; i++) {
        const v = sums[off + i] * inv;
        if (v !== centres[off + i]) moved = true;
        centres[off + i] = v;
      }
    }
    if (!moved) break;
  }
}

/**
 * Swap refinement (see the module documentation). Each round:
 * 1. the centre cheapest to remove, `argmin_k sum_{j nearest to k} (d2_j - d1_j)` (d1, d2: squared
 *    distances of point j to its nearest and second-nearest centre), and the cluster with the
 *    largest sum of squared distances are found (they differ; else the round ends the search);
 * 2. the first centre is moved onto the point of the second cluster farthest from its centre,
 *    and `lloyd` Lloyd steps are run from there;
 * 3. the swap is kept only if the k-means objective decreased; the first swap that does not lower
 *    it ends the search (so the objective never increases), as do `rounds` accepted swaps.
 * Deterministic (no randomness). Cost per round: `lloyd + 1` passes of O(C K C).
 *
 * @param points the normalised covariance columns
 * @param centres K x C starting centres (e.g. from k-means); not modified
 * @param rounds most swaps to accept (0: the centres come back unchanged)
 * @param lloyd Lloyd steps after each swap (default 5)
 */
export function swapRefine(points: CovarianceColumns, centres: Float64Array, K: number, rounds: number, lloyd = 5): SwapRefineResult {
  const C = points.C;
  let cur = Float64Array.from(centres);
  let near = nearestTwo(points, cur, K);
  let swaps = 0;
  const x = new Float64Array(C);
  while (swaps < rounds && K > 1) {
    const removeCost = new Float64Array(K);
    const sse = new Float64Array(K);
    for (let j = 0; j < C; j++) {
      removeCost[near.first[j]] += near.d2[j] - near.d1[j];
      sse[near.first[j]] += near.d1[j];
    }
    let kr = 0;
    let ks = 0;
    for (let k = 1; k < K; k++) {
      if (removeCost[k] < removeCost[kr]) kr = k;
      if (sse[k] > sse[ks]) ks = k;
    }
    if (kr === ks || !(sse[ks] > 0)) break;
    let far = -1;
    for (let j = 0; j < C; j++) if (near.first[j] === ks && (far < 0 || near.d1[j] > near.d1[far])) far = j;
    const next = Float64Array.from(cur);
    points.column(far, x);
    next.set(x.subarray(0, C), kr * C);
    lloydSteps(points, next, K, lloyd);
    const nextNear = nearestTwo(points, next, K);
    if (!(nextNear.inertia < near.inertia * (1 - 1e-12))) break;
    cur = next;
    near = nextNear;
    swaps++;
  }
  return { centres: cur, swaps, inertia: near.inertia };
}
