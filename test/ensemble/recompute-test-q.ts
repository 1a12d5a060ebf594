/**
 * Test helper: recomputes a finished run's ensemble q on the test split without
 * `buildProblemFromModels`: every specialist is run on ALL test rows and case r takes row r of its
 * output, so a stage that fed a specialist other rows than the cases it is combined on (or mixed up
 * a full head's cells) gives a different q than this.
 */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { readSplit } from '../../src/data/split-file.ts';
import { readPredictions } from '../../src/artifacts/predictions.ts';
import { loadModel } from '../../src/models/io.ts';
import { predictLogits } from '../../src/models/predict.ts';
import { softmaxRows } from '../../src/specialists/specialist-train.ts';
import { foldFullHead } from '../../src/ensemble/specialist-cells.ts';
import { problemFromPredictions } from '../../src/ensemble/build.ts';
import { solveEm } from '../../src/ensemble/solve-em.ts';
import { readSpecialistsSummary } from '../../pipeline/stages/ensemble.ts';

/** The stored and the recomputed test q of the run in `out` (stage folders ingest, covariance, specialists, ensemble). */
export async function recomputeTestQ(out: string): Promise<{ stored: Float32Array; recomputed: Float32Array; n: number; C: number; head: string; labelsMatch: boolean }> {
  const summary = readSpecialistsSummary(path.join(out, 'specialists'));
  const metrics = JSON.parse(readFileSync(path.join(out, 'ensemble', 'metrics.json'), 'utf8')) as { weight: number; top_n: number; solver: string };
  if (metrics.solver !== 'em') throw new Error('recomputeTestQ: only the em solver');
  const test = await readSplit(path.join(out, 'ingest', 'test.arrow'));
  const gen = readPredictions(path.join(out, 'covariance', 'predictions-test.arrow'));
  const { n, C } = gen;
  const pg = softmaxRows(gen.values, n, C);
  const subsets = summary.specialists.map((s) => [...s.classes].sort((a, b) => a - b));
  const cells: Float32Array[] = [];
  for (let m = 0; m < subsets.length; m++) {
    const model = await loadModel(path.join(out, 'specialists', summary.specialists[m]!.id, 'model'));
    try {
      const width = model.outputs[0]!.shape[1] as number;
      const logits = predictLogits(model, test.x, test.n, test.dim);
      cells.push(summary.head === 'full' ? foldFullHead(logits, n, C, subsets[m]!) : softmaxRows(logits, n, width));
    } finally {
      model.dispose();
    }
  }
  const { problem } = problemFromPredictions({
    C,
    subsets,
    cases: n,
    pg,
    topN: metrics.top_n,
    specialistProbs: (m, r) => {
      const w = subsets[m]!.length + 1;
      return cells[m]!.subarray(r * w, (r + 1) * w);
    },
  });
  const recomputed = solveEm(problem, { weight: metrics.weight, tolerance: 1e-7, maxIterations: 2000 }).q;
  const stored = readPredictions(path.join(out, 'ensemble', 'predictions-test.arrow'), 'probabilities');
  const labelsMatch = stored.n === test.n && stored.labels.every((y, r) => y === test.y[r]);
  return { stored: stored.values, recomputed, n, C, head: summary.head, labelsMatch };
}

/** Largest absolute difference of two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
