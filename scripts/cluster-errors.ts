/**
 * How many of the generalist's test errors a specialist could fix at all: the errors whose
 * predicted class shares a cluster with the true one (a specialist only separates the classes of
 * its own cluster), with the generalist's top-1/3/10 accuracy. Reads a run's
 * `covariance/predictions-test.arrow` (the generalist's test logits) and `clusters/clusters.json`.
 *
 *   npx tsx scripts/cluster-errors.ts <run folder>
 *   e.g. npx tsx scripts/cluster-errors.ts artifacts/glyphs-1k-tiny16-degraded
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { readPredictionsFile } from '../src/data/predictions-stream.ts';

const clustersSchema = z.looseObject({ clusters: z.array(z.looseObject({ classes: z.array(z.number().int().nonnegative()) })) });

async function main(): Promise<void> {
  const run = process.argv[2];
  if (!run) {
    console.error('usage: npx tsx scripts/cluster-errors.ts <run folder with covariance/ and clusters/ stages>');
    process.exit(2);
  }
  const clustersFile = path.join(run, 'clusters', 'clusters.json');
  const parsed = clustersSchema.safeParse(JSON.parse(readFileSync(clustersFile, 'utf8')));
  if (!parsed.success) {
    console.error(`${clustersFile}: not a clusters.json (${parsed.error.issues[0]?.message ?? 'bad shape'}); rerun the clusters stage with --force`);
    process.exit(2);
  }
  const p = await readPredictionsFile(path.join(run, 'covariance', 'predictions-test.arrow'));
  const { n, C } = p;
  const z32 = p.values;
  const member: Set<number>[] = Array.from({ length: C }, () => new Set());
  parsed.data.clusters.forEach((c, k) => c.classes.forEach((cl) => member[cl]?.add(k)));
  let top1 = 0, top3 = 0, top10 = 0, errors = 0, inCluster = 0;
  for (let i = 0; i < n; i++) {
    const y = p.labels[i]!;
    const row = z32.subarray(i * C, (i + 1) * C);
    const zy = row[y]!;
    let rank = 0, best = 0;
    for (let c = 0; c < C; c++) {
      if (row[c]! > zy || (row[c] === zy && c < y)) rank++;
      if (row[c]! > row[best]!) best = c;
    }
    if (rank === 0) top1++;
    if (rank < 3) top3++;
    if (rank < 10) top10++;
    if (rank === 0) continue;
    errors++;
    if ([...member[y]!].some((k) => member[best]!.has(k))) inCluster++;
  }
  console.log(JSON.stringify({ n, top1: top1 / n, top3: top3 / n, top10: top10 / n, errors, errors_into_a_shared_cluster: inCluster, fraction: inCluster / errors }));
}

await main();
