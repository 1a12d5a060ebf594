/**
 * Groups confusable classes by clustering the columns of the generalist's prediction covariance
 * (paper section 5): classes often predicted together land in one specialist subset S^m.
 *
 * Pipeline: normalise columns ({@link CovarianceColumns}), k-means++ seeding, k-means
 * (`online` MacQueen by default, `minibatch` Sculley, or `batch` Lloyd via ml-kmeans), then
 * assignment: size-balanced (default, the paper's specialists all had 300 classes) or nearest
 * centre with empty clusters reseeded, then optional overlap (each class also joins its r nearest
 * other clusters, or, with `overlapThreshold`, those of them nearly as near as its nearest: uneven
 * overlap). Deterministic for a given seed.
 */
import { ConfigError, assertUnreachable } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { CovarianceColumns, type ColumnNormalisation } from './cluster-columns.ts';
import { batchKmeans, kmeansPlusPlus, miniBatchKmeans, onlineKmeans } from './cluster-kmeans.ts';
import { balancedAssignment, buildClusters, distanceMatrix, nearestAssignment } from './cluster-assign.ts';
import { swapRefine } from './cluster-refine.ts';

/** k-means flavour. */
export type ClusterAlgorithm = 'online' | 'minibatch' | 'batch';

/** Options of {@link clusterClasses}; every field has a default (see {@link DEFAULT_CLUSTER_OPTIONS}). */
export interface ClusterOptions {
  /** Number of clusters K. When absent, K = ceil(C / targetSize). */
  k?: number;
  /** Target classes per cluster, used when `k` is absent. */
  targetSize?: number;
  /** Column normalisation; default `correlation`. */
  normalise?: ColumnNormalisation;
  /** Zero each column's own (diagonal) entry; default true. */
  zeroDiagonal?: boolean;
  /** Default `online`. */
  algorithm?: ClusterAlgorithm;
  /** Size-balanced assignment (sizes floor(C/K) or ceil(C/K)); default true. */
  balance?: boolean;
  /** r: each class also joins its r nearest other clusters (with `overlapThreshold`: at most r); default 0. */
  overlap?: number;
  /**
   * Uneven overlap: t >= 0. A class joins another cluster only when its distance to that centre is
   * within a factor (1 + t) of its distance to the nearest centre (at most `overlap` extra clusters,
   * the nearest first), so the number of specialists covering a class varies from 1 to overlap + 1
   * with how ambiguous the class is (see `buildClusters`). Default: none (every class in exactly
   * overlap + 1 clusters).
   */
  overlapThreshold?: number;
  /** online: passes over the columns; minibatch: epochs (ceil(C / batchSize) steps each); batch: max Lloyd iterations. Default 10. */
  iterations?: number;
  /** Mini-batch size (minibatch only); default 100. */
  batchSize?: number;
  /** Seed for k-means++ and the update order; default 0. */
  seed?: number;
  /** Independent k-means runs (different seeds derived from `seed`); the one with the lowest inertia is kept. Default 1. */
  restarts?: number;
  /**
   * Swap refinement after k-means (see `swapRefine` in cluster-refine.ts): at most this many
   * centre swaps (the centre cheapest to lose moved into the worst cluster, then Lloyd steps),
   * each kept only if it lowers the k-means objective. Leaves local optima where one centre serves
   * several groups while two share one. Default 0 (off).
   */
  swapRefine?: number;
}

/** Defaults applied by {@link clusterClasses} (k / targetSize have none: one must be given). */
export const DEFAULT_CLUSTER_OPTIONS = {
  normalise: 'correlation',
  zeroDiagonal: true,
  algorithm: 'online',
  balance: true,
  overlap: 0,
  iterations: 10,
  batchSize: 100,
  seed: 0,
  restarts: 1,
  swapRefine: 0,
} as const satisfies Omit<Required<ClusterOptions>, 'k' | 'targetSize' | 'overlapThreshold'>;

/** Output of {@link clusterClasses}. */
export interface ClusterResult {
  /** K class lists, each sorted ascending; with overlap r a class appears in r + 1 of them (1 .. r + 1 with `overlapThreshold`). */
  clusters: number[][];
  /** Primary cluster per class (length C). */
  assignment: Int32Array;
  /** Final centres, K x C row-major (in the normalised column space). */
  centroids: Float64Array;
  /** Number of clusters. */
  k: number;
  /** Sum over classes of the squared distance to the primary cluster's centre. */
  inertia: number;
}

/** Resolves K from `k` / `targetSize` and validates every option against C. */
export function resolveClusterOptions(C: number, opts: ClusterOptions): Required<Omit<ClusterOptions, 'targetSize' | 'overlapThreshold'>> & { targetSize?: number; overlapThreshold?: number } {
  // Explicit `undefined` fields fall back to the defaults too.
  const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as ClusterOptions;
  const o = { ...DEFAULT_CLUSTER_OPTIONS, ...given };
  let k: number;
  if (o.k !== undefined) {
    if (!Number.isInteger(o.k) || o.k < 1) throw new ConfigError(`clusters.k = ${o.k} must be a positive integer`);
    k = o.k;
  } else if (o.targetSize !== undefined) {
    if (!Number.isInteger(o.targetSize) || o.targetSize < 1) throw new ConfigError(`clusters.target_size = ${o.targetSize} must be a positive integer`);
    k = Math.ceil(C / o.targetSize);
  } else {
    throw new ConfigError('clusters: give either k (number of clusters) or target_size (classes per cluster)');
  }
  if (k > C) throw new ConfigError(`clusters.k = ${k} is larger than the number of classes (${C}); choose k <= ${C}`);
  if (!Number.isInteger(o.overlap) || o.overlap < 0) throw new ConfigError(`clusters.overlap = ${o.overlap} must be a non-negative integer`);
  if (o.overlapThreshold !== undefined) {
    if (!(Number.isFinite(o.overlapThreshold) && o.overlapThreshold >= 0)) throw new ConfigError(`clusters.overlap_threshold = ${o.overlapThreshold} must be a finite number >= 0`);
    if (o.overlap < 1) throw new ConfigError('clusters.overlap_threshold needs clusters.overlap >= 1 (the most extra clusters a class may join); set overlap, e.g. 2');
  }
  if (o.overlap > k - 1) throw new ConfigError(`clusters.overlap = ${o.overlap} needs at least ${o.overlap + 1} clusters, but k = ${k}; lower overlap or raise k`);
  if (!Number.isInteger(o.iterations) || o.iterations < 1) throw new ConfigError(`clusters.iterations = ${o.iterations} must be a positive integer`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new ConfigError(`clusters.batch_size = ${o.batchSize} must be a positive integer`);
  if (!Number.isInteger(o.swapRefine) || o.swapRefine < 0) throw new ConfigError(`clusters.swap_refine = ${o.swapRefine} must be a non-negative integer (0 turns the swap refinement off)`);
  if (!Number.isInteger(o.restarts) || o.restarts < 1) throw new ConfigError(`clusters.restarts = ${o.restarts} must be a positive integer`);
  if (!['none', 'correlation', 'unit'].includes(o.normalise)) throw new ConfigError(`clusters.normalise = ${String(o.normalise)} must be one of none, correlation, unit`);
  if (!['online', 'minibatch', 'batch'].includes(o.algorithm)) throw new ConfigError(`clusters.algorithm = ${String(o.algorithm)} must be one of online, minibatch, batch`);
  return { ...o, k };
}

/** One seeded k-means run (k-means++ then the chosen algorithm); returns the K x C centres. */
function runKmeans(points: CovarianceColumns, K: number, o: ReturnType<typeof resolveClusterOptions>, label: string): Float64Array {
  const { centres } = kmeansPlusPlus(points, K, Rng.derive(o.seed, `kmeans++${label}`));
  const rng = Rng.derive(o.seed, `kmeans-${o.algorithm}${label}`);
  switch (o.algorithm) {
    case 'online':
      onlineKmeans(points, centres, K, o.iterations, rng);
      break;
    case 'minibatch':
      miniBatchKmeans(points, centres, K, o.iterations, o.batchSize, rng);
      break;
    case 'batch':
      batchKmeans(points, centres, K, o.iterations, rng.seed());
      break;
    default:
      assertUnreachable(o.algorithm);
  }
  return centres;
}

/**
 * Clusters the C classes into K subsets by k-means on the (normalised) columns of `cov`.
 *
 * @param cov symmetric C x C covariance, row-major (e.g. from {@link CovarianceAccumulator})
 * @param C number of classes
 * @throws ConfigError for an invalid option, e.g. `clusters.k = 50 is larger than the number of classes (10)`
 */
export function clusterClasses(cov: Float32Array, C: number, opts: ClusterOptions, log: Logger = silentLogger): ClusterResult {
  if (cov.length !== C * C) throw new ConfigError(`clusterClasses: covariance has ${cov.length} values, expected ${C} x ${C}`);
  const o = resolveClusterOptions(C, opts);
  const K = o.k;
  const points = new CovarianceColumns(cov, C, o.normalise, o.zeroDiagonal);
  const t0 = Date.now();
  let centres: Float64Array = new Float64Array(0);
  let D: Float64Array = new Float64Array(0);
  let bestInertia = Infinity;
  for (let run = 0; run < o.restarts; run++) {
    const label = run === 0 ? '' : `-restart${run}`;
    let c = runKmeans(points, K, o, `${label}`);
    if (o.swapRefine > 0) {
      const refined = swapRefine(points, c, K, o.swapRefine);
      log.info(`k-means run ${run + 1}: ${refined.swaps} centre swap(s) accepted by the swap refinement (objective ${refined.inertia.toFixed(3)})`);
      c = refined.centres;
    }
    const d = distanceMatrix(points, c, K);
    let inertia = 0;
    for (let j = 0; j < C; j++) {
      let m = Infinity;
      for (let k = 0; k < K; k++) if (d[j * K + k] < m) m = d[j * K + k];
      inertia += m;
    }
    if (inertia < bestInertia) {
      bestInertia = inertia;
      centres = c;
      D = d;
    }
  }
  const assignment = o.balance ? balancedAssignment(D, C, K) : nearestAssignment(points, centres, D, K);
  const clusters = buildClusters(assignment, D, C, K, o.overlap, o.balance ? Math.ceil((C * (1 + o.overlap)) / K) : undefined, o.overlapThreshold);
  let inertia = 0;
  for (let j = 0; j < C; j++) inertia += D[j * K + assignment[j]];
  log.info(
    `clustered ${C} classes into ${K} clusters (${o.algorithm}, ${o.normalise}${o.zeroDiagonal ? ', zero diagonal' : ''}${o.balance ? ', balanced' : ''}, overlap ${o.overlapThreshold !== undefined ? `<= ${o.overlap} within (1 + ${o.overlapThreshold}) x nearest distance` : o.overlap}) in ${((Date.now() - t0) / 1000).toFixed(1)}s`,
  );
  return { clusters, assignment, centroids: centres, k: K, inertia };
}
