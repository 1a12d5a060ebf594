/**
 * k-means variants over the columns of a covariance matrix ({@link CovarianceColumns}): seeded
 * k-means++ initialisation, MacQueen's online k-means, Sculley's mini-batch k-means, and batch
 * (Lloyd) k-means through ml-kmeans. Centres are a flat Float64Array `K x C`.
 */
import { kmeans as mlKmeans } from 'ml-kmeans';
import { Rng } from '../util/rng.ts';
import type { CovarianceColumns } from './cluster-columns.ts';

/** Squared norm of the first C entries of `x`. */
export function sqNorm(x: Float64Array, C: number): number {
  let s = 0;
  for (let i = 0; i < C; i++) s += x[i] * x[i];
  return s;
}

/** Squared norms of the K rows of `centres` (K x C). */
export function rowNorms(centres: Float64Array, K: number, C: number): Float64Array {
  const out = new Float64Array(K);
  for (let k = 0; k < K; k++) out[k] = sqNorm(centres.subarray(k * C, (k + 1) * C), C);
  return out;
}

/**
 * Squared distances from `x` to all K centres, `out[k] = |x|^2 + |c_k|^2 - 2 x.c_k` (clamped at
 * 0), with the dot products computed four centres at a time (x is read once per four centres).
 */
export function sqDistAll(x: Float64Array, xNorm: number, centres: Float64Array, cNorms: Float64Array, K: number, C: number, out: Float64Array): void {
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const o0 = k * C;
    const o1 = o0 + C;
    const o2 = o1 + C;
    const o3 = o2 + C;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let i = 0; i < C; i++) {
      const xi = x[i];
      s0 += xi * centres[o0 + i];
      s1 += xi * centres[o1 + i];
      s2 += xi * centres[o2 + i];
      s3 += xi * centres[o3 + i];
    }
    out[k] = Math.max(0, xNorm + cNorms[k] - 2 * s0);
    out[k + 1] = Math.max(0, xNorm + cNorms[k + 1] - 2 * s1);
    out[k + 2] = Math.max(0, xNorm + cNorms[k + 2] - 2 * s2);
    out[k + 3] = Math.max(0, xNorm + cNorms[k + 3] - 2 * s3);
  }
  for (; k < K; k++) {
    const o = k * C;
    let s = 0;
    for (let i = 0; i < C; i++) s += x[i] * centres[o + i];
    out[k] = Math.max(0, xNorm + cNorms[k] - 2 * s);
  }
}

/** Index of the smallest of the first K entries (ties: lowest index). */
export function argmin(d: Float64Array, K: number): number {
  let best = 0;
  for (let k = 1; k < K; k++) if (d[k] < d[best]) best = k;
  return best;
}

/**
 * Greedy k-means++ seeding (Arthur & Vassilvitskii; the greedy variant used by scikit-learn): the
 * first centre uniformly at random; each next one drawn `2 + floor(ln K)` times with probability
 * proportional to the squared distance to the nearest centre so far, keeping the candidate that
 * lowers the total potential most. The local trials avoid the common failure of plain k-means++
 * with many well-separated groups (two seeds in one group, another group left without one).
 * @returns the K x C centres and the column index each was copied from
 */
export function kmeansPlusPlus(points: CovarianceColumns, K: number, rng: Rng): { centres: Float64Array; seeds: Int32Array } {
  const C = points.C;
  const trials = 2 + Math.floor(Math.log(K));
  const centres = new Float64Array(K * C);
  const seeds = new Int32Array(K);
  const d2 = new Float64Array(C);
  const x = new Float64Array(C);
  const y = new Float64Array(C);
  const chosen = new Uint8Array(C);
  const first = rng.int(C);
  const place = (k: number, j: number): void => {
    seeds[k] = j;
    chosen[j] = 1;
    points.column(j, x);
    centres.set(x.subarray(0, C), k * C);
  };
  place(0, first);
  let total = 0;
  const one = new Float64Array(1);
  const firstNorm = rowNorms(centres, 1, C);
  for (let j = 0; j < C; j++) {
    points.column(j, y);
    sqDistAll(y, sqNorm(y, C), centres, firstNorm, 1, C, one);
    d2[j] = j === first ? 0 : one[0];
    total += d2[j];
  }
  const candCols = new Float64Array(trials * C);
  const candIdx = new Int32Array(trials);
  const pots = new Float64Array(trials);
  const candD = new Float64Array(trials * C);
  const cd = new Float64Array(trials);
  for (let k = 1; k < K; k++) {
    let nc = 0;
    for (let t = 0; t < trials; t++) {
      const j = total > 0 ? sampleByWeight(d2, total, chosen, rng) : sampleUnchosen(chosen, C, k, rng);
      if (j < 0) continue;
      candIdx[nc] = j;
      points.column(j, x);
      candCols.set(x.subarray(0, C), nc * C);
      nc++;
    }
    if (nc === 0) {
      candIdx[0] = sampleUnchosen(chosen, C, k, rng);
      points.column(candIdx[0], x);
      candCols.set(x.subarray(0, C), 0);
      nc = 1;
    }
    // Potential if each candidate became a centre: one pass over the columns for all candidates.
    const candNorms = rowNorms(candCols, nc, C);
    pots.fill(0);
    for (let i = 0; i < C; i++) {
      if (d2[i] === 0) {
        for (let t = 0; t < nc; t++) candD[t * C + i] = 0;
        continue;
      }
      points.column(i, y);
      sqDistAll(y, sqNorm(y, C), candCols, candNorms, nc, C, cd);
      for (let t = 0; t < nc; t++) {
        const s = i === candIdx[t] ? 0 : cd[t];
        const v = s < d2[i] ? s : d2[i];
        candD[t * C + i] = v;
        pots[t] += v;
      }
    }
    let bt = 0;
    for (let t = 1; t < nc; t++) if (pots[t] < pots[bt]) bt = t;
    const best = candIdx[bt];
    place(k, best);
    d2.set(candD.subarray(bt * C, (bt + 1) * C));
    d2[best] = 0;
    total = pots[bt] - candD[bt * C + best];
  }
  return { centres, seeds };
}

/** Index drawn with probability proportional to `w` among unchosen indices with positive weight. */
function sampleByWeight(w: Float64Array, total: number, chosen: Uint8Array, rng: Rng): number {
  let u = rng.next() * total;
  let last = -1;
  for (let j = 0; j < w.length; j++) {
    if (chosen[j] || w[j] <= 0) continue;
    last = j;
    u -= w[j];
    if (u < 0) return j;
  }
  return last;
}

/** A uniformly random index not yet chosen (`k` are chosen). */
function sampleUnchosen(chosen: Uint8Array, C: number, k: number, rng: Rng): number {
  let r = rng.int(C - k);
  for (let j = 0; j < C; j++) {
    if (chosen[j]) continue;
    if (r-- === 0) return j;
  }
  return -1;
}

/**
 * MacQueen's online k-means: `passes` passes over the columns in a fresh seeded random order;
 * each column moves its nearest centre towards it with learning rate `1 / count` (count = points
 * the centre has absorbed so far, cumulative over passes, the k-means++ seed counting as one), so
 * each centre is the running mean of the points it has won. Updates `centres` in place.
 */
export function onlineKmeans(points: CovarianceColumns, centres: Float64Array, K: number, passes: number, rng: Rng): void {
  const C = points.C;
  const counts = new Float64Array(K).fill(1);
  const x = new Float64Array(C);
  const d = new Float64Array(K);
  const norms = rowNorms(centres, K, C);
  const wins = new Int32Array(K);
  const d2 = new Float64Array(C);
  for (let p = 0; p < passes; p++) {
    const order = rng.permutation(C);
    wins.fill(0);
    for (let t = 0; t < C; t++) {
      const j = order[t];
      points.column(j, x);
      sqDistAll(x, sqNorm(x, C), centres, norms, K, C, d);
      const k = argmin(d, K);
      d2[j] = d[k];
      wins[k]++;
      counts[k] += 1;
      const eta = 1 / counts[k];
      const off = k * C;
      let nn = 0;
      for (let i = 0; i < C; i++) {
        const v = centres[off + i] + eta * (x[i] - centres[off + i]);
        centres[off + i] = v;
        nn += v * v;
      }
      norms[k] = nn;
    }
    if (p < passes - 1) reassignStarved(points, centres, norms, counts, wins, d2, K, rng);
  }
}

/** A centre is starved when it won fewer than this fraction of the mean cluster size C/K in a pass. */
export const STARVED_FRACTION = 0.1;

/**
 * Moves starved centres (see {@link STARVED_FRACTION}) to columns drawn with probability
 * proportional to their squared distance to their nearest centre (as in scikit-learn's mini-batch
 * reassignment): a centre stuck on a handful of points is given a group that has none, typically
 * one of two groups that shared a centre. Its count is reset to 1.
 */
function reassignStarved(points: CovarianceColumns, centres: Float64Array, norms: Float64Array, counts: Float64Array, wins: Int32Array, d2: Float64Array, K: number, rng: Rng): void {
  const C = points.C;
  const limit = (STARVED_FRACTION * C) / K;
  const x = new Float64Array(C);
  const w = Float64Array.from(d2);
  let total = 0;
  for (let j = 0; j < C; j++) total += w[j];
  for (let k = 0; k < K; k++) {
    if (wins[k] >= limit || total <= 0) continue;
    let u = rng.next() * total;
    let pick = -1;
    for (let j = 0; j < C; j++) {
      if (w[j] <= 0) continue;
      pick = j;
      u -= w[j];
      if (u < 0) break;
    }
    if (pick < 0) return;
    total -= w[pick];
    w[pick] = 0;
    points.column(pick, x);
    centres.set(x.subarray(0, C), k * C);
    norms[k] = sqNorm(x, C);
    counts[k] = 1;
  }
}

/**
 * Sculley's mini-batch k-means (WWW 2010): `epochs` x ceil(C / batchSize) steps, each drawing
 * `batchSize` columns uniformly (with replacement), assigning them all to their nearest centre
 * first, then moving each centre towards each of its points with per-centre learning rate
 * `1 / v[c]` (v counts all points the centre has received). Starved centres are reassigned after
 * each epoch but the last, as in {@link onlineKmeans}. Updates `centres` in place.
 */
export function miniBatchKmeans(points: CovarianceColumns, centres: Float64Array, K: number, epochs: number, batchSize: number, rng: Rng): void {
  const C = points.C;
  const v = new Float64Array(K);
  const b = Math.min(batchSize, C);
  const steps = Math.ceil(C / b);
  const batch = new Int32Array(b);
  const near = new Int32Array(b);
  const xs = new Float64Array(b * C);
  const d = new Float64Array(K);
  const wins = new Int32Array(K);
  const d2 = new Float64Array(C);
  for (let e = 0; e < epochs; e++) {
    wins.fill(0);
    d2.fill(0);
    for (let s = 0; s < steps; s++) {
      const norms = rowNorms(centres, K, C);
      for (let t = 0; t < b; t++) {
        batch[t] = rng.int(C);
        const x = xs.subarray(t * C, (t + 1) * C);
        points.column(batch[t], x);
        sqDistAll(x, sqNorm(x, C), centres, norms, K, C, d);
        near[t] = argmin(d, K);
        d2[batch[t]] = d[near[t]];
        wins[near[t]]++;
      }
      for (let t = 0; t < b; t++) {
        const k = near[t];
        v[k] += 1;
        const eta = 1 / v[k];
        const off = k * C;
        const xo = t * C;
        for (let i = 0; i < C; i++) centres[off + i] = (1 - eta) * centres[off + i] + eta * xs[xo + i];
      }
    }
    if (e < epochs - 1) {
      const norms = rowNorms(centres, K, C);
      // wins were counted over steps * b draws, about C: same scale as a pass.
      reassignStarved(points, centres, norms, v, wins, d2, K, rng);
    }
  }
}

/**
 * Batch (Lloyd) k-means via ml-kmeans, started from the given centres.
 * Note: ml-kmeans takes arrays of arrays, so this materialises all C columns as `number[][]`
 * (C^2 doubles: about 800 MB at C = 10,000); prefer `online` or `minibatch` for large C.
 * Updates `centres` in place.
 */
export function batchKmeans(points: CovarianceColumns, centres: Float64Array, K: number, maxIterations: number, seed: number): void {
  const C = points.C;
  const x = new Float64Array(C);
  const data: number[][] = new Array<number[]>(C);
  for (let j = 0; j < C; j++) {
    points.column(j, x);
    data[j] = Array.from(x);
  }
  const init: number[][] = [];
  for (let k = 0; k < K; k++) init.push(Array.from(centres.subarray(k * C, (k + 1) * C)));
  const res = mlKmeans(data, K, { initialization: init, maxIterations, seed });
  for (let k = 0; k < K; k++) {
    const c = res.centroids[k];
    // ml-kmeans leaves an empty cluster's centroid as NaN or unchanged; keep the old centre then.
    if (c.every((v) => Number.isFinite(v))) centres.set(c, k * C);
  }
}
