import path from 'node:path';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { defineStage } from '../stage.ts';
import { readCovariance } from '../../src/specialists/covariance.ts';
import { clusterClasses } from '../../src/specialists/clustering.ts';
import { clusterStats, formatClusterTable } from '../../src/specialists/cluster-stats.ts';
import { readPredictionsFile } from '../../src/data/predictions-stream.ts';
import { writeJsonAtomic } from '../../src/artifacts/atomic.ts';
import type { ClassesFile } from '../../src/data/ingest.ts';
import { failpoint } from '../../src/util/failpoint.ts';

const schema = z
  .strictObject({
    /** The `ingest` stage (class names). */
    data: z.string().default('ingest'),
    /** The `covariance` stage. */
    covariance: z.string().default('covariance'),
    /** Number of clusters (specialists). */
    k: z.number().int().positive().optional(),
    /** Classes per cluster, used when `k` is absent: K = ceil(C / target_size). */
    target_size: z.number().int().positive().optional(),
    /** Column normalisation: raw columns degenerate (clusters by variance), see README. */
    normalise: z.enum(['correlation', 'unit', 'none']).default('correlation'),
    /** Zero each column's own (diagonal) entry before clustering. */
    zero_diagonal: z.boolean().default(true),
    /** online = sequential (MacQueen) updates; minibatch = Sculley; batch = ml-kmeans (Lloyd). */
    algorithm: z.enum(['online', 'minibatch', 'batch']).default('online'),
    /** Size-balanced assignment (every cluster floor or ceil of C/K classes). */
    balance: z.boolean().default(true),
    /** r: each class also joins its r nearest other clusters (with `overlap_threshold`: at most r). */
    overlap: z.number().int().min(0).default(0),
    /**
     * Uneven overlap, t >= 0 (needs overlap >= 1): a class joins another cluster only when its
     * distance to that cluster's centre (normalised column space) is within a factor (1 + t) of its
     * distance to the nearest centre, the nearest first, at most `overlap` of them. Classes the
     * generalist confuses with several groups lie between their centres and get several
     * specialists, the others one: coverage varies from 1 to overlap + 1 as the paper's Table 4 needs.
     * Absent: every class in exactly overlap + 1 clusters.
     */
    overlap_threshold: z.number().min(0).optional(),
    /** online: passes over the columns; minibatch: epochs; batch: max Lloyd iterations. */
    iterations: z.number().int().positive().default(10),
    /** Mini-batch size (minibatch only). */
    batch_size: z.number().int().positive().default(100),
    /**
     * Swap refinement after k-means: at most this many centre swaps (the centre cheapest to lose
     * moved into the cluster with the largest squared error, then Lloyd steps), each kept only if
     * it lowers the k-means objective; repairs one centre serving several groups. 0: off.
     */
    swap_refine: z.number().int().min(0).default(0),
  })
  .refine((p) => p.k !== undefined || p.target_size !== undefined, { message: "give 'k' (number of clusters) or 'target_size' (classes per cluster)" })
  .refine((p) => p.overlap_threshold === undefined || p.overlap >= 1, { message: "'overlap_threshold' needs 'overlap' >= 1 (the most extra clusters a class may join)", path: ['overlap_threshold'] });

/** `clusters`: online k-means on the covariance's columns: which classes each specialist covers. */
export const clustersStage = defineStage({
  type: 'clusters',
  description: 'online k-means on the covariance columns: the classes of each specialist',
  schema,
  deps: (p) => [p.data, p.covariance],
  code: ['pipeline/stages/clusters.ts'],
  async run(ctx) {
    const p = ctx.params;
    const covDir = ctx.input(p.covariance);
    const cov = await readCovariance(covDir);
    const classes = JSON.parse(readFileSync(path.join(ctx.input(p.data), 'classes.json'), 'utf8')) as ClassesFile;
    const C = cov.classes;
    const started = Date.now();
    const result = clusterClasses(
      cov.cov,
      C,
      {
        ...(p.k !== undefined ? { k: p.k } : {}),
        ...(p.target_size !== undefined ? { targetSize: p.target_size } : {}),
        normalise: p.normalise,
        zeroDiagonal: p.zero_diagonal,
        algorithm: p.algorithm,
        balance: p.balance,
        overlap: p.overlap,
        ...(p.overlap_threshold !== undefined ? { overlapThreshold: p.overlap_threshold } : {}),
        iterations: p.iterations,
        batchSize: p.batch_size,
        swapRefine: p.swap_refine,
        seed: ctx.seed,
      },
      ctx.log,
    );
    const seconds = (Date.now() - started) / 1000;
    failpoint('clusters-computed');
    const valid = await readPredictionsFile(path.join(covDir, 'predictions-valid.arrow'));
    const names = classes.classes.map((c) => c.name);
    const stats = clusterStats(cov.cov, C, result.clusters, { classNames: names, validLabels: valid.labels, validLogits: valid.values, mass: cov.source === "probabilities" ? "absolute" : "positive" });
    // Generalist accuracy on valid overall, for comparison with the within-cluster accuracies.
    let correct = 0;
    for (let r = 0; r < valid.n; r++) {
      let best = 0;
      for (let j = 1; j < C; j++) if (valid.values[r * C + j]! > valid.values[r * C + best]!) best = j;
      if (best === valid.labels[r]) correct++;
    }
    const coverage = new Map<number, number>();
    const per = new Int32Array(C);
    for (const cl of result.clusters) for (const c of cl) per[c]!++;
    for (const v of per) coverage.set(v, (coverage.get(v) ?? 0) + 1);
    // The clustering has logged its one-line summary (classes, clusters, options, time): the table follows it.
    ctx.log.info(formatClusterTable(stats));
    await writeJsonAtomic(path.join(ctx.outDir, 'clusters.json'), {
      k: result.k,
      classes: C,
      options: p,
      inertia: result.inertia,
      seconds,
      generalist_valid_accuracy: valid.n ? correct / valid.n : null,
      classes_per_coverage: Object.fromEntries([...coverage.entries()].sort((a, b) => a[0] - b[0])),
      clusters: stats,
    });
    const accs = stats.map((s) => s.generalist_accuracy_within).filter((a): a is number => a !== null);
    return { k: result.k, mean_generalist_accuracy_within: accs.length ? accs.reduce((a, b) => a + b, 0) / accs.length : null, generalist_valid_accuracy: valid.n ? correct / valid.n : null };
  },
});
