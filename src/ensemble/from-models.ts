import type * as tf from '@tensorflow/tfjs';
import type { LabeledSet } from '../data/split-file.ts';
import { softmaxRows } from '../specialists/specialist-train.ts';
import { specialistCells, type SpecialistHead } from './specialist-cells.ts';
import { activeSpecialists, coverageCounts } from './active.ts';
import { problemFromPredictions } from './build.ts';
import type { EnsembleProblem } from './problem.ts';
import { silentLogger, type Logger } from '../util/log.ts';

/** Inputs of {@link buildProblemFromModels}. */
export interface ModelsProblemInput {
  /** The split's examples. */
  set: LabeledSet;
  /** The generalist's logits on `set`, n x C. */
  generalistLogits: Float32Array;
  C: number;
  /** Each specialist's special classes (sorted ascending). */
  subsets: number[][];
  /** Loads specialist m (the caller's cache policy; handed to `releaseSpecialist` after use). */
  loadSpecialist: (m: number) => Promise<tf.LayersModel>;
  /**
   * Called with each loaded specialist once its cases are predicted (default: dispose it). A
   * caller that keeps specialists loaded across blocks of cases passes a no-op or its cache's release.
   */
  releaseSpecialist?: (m: number, model: tf.LayersModel) => void;
  /**
   * The specialists' output layout (`head` in specialists.json): `dustbin` (|S|+1 logits, the
   * default) or `full` (C logits, folded onto the |S|+1 cells by `foldFullHead`).
   */
  head?: SpecialistHead;
  /** Names specialist m in errors (default `specialist m`), e.g. its folder. */
  specialistLabel?: (m: number) => string;
  /** Generalist top-n classes that decide the active specialists (paper: 1). */
  topN: number;
  log?: Logger;
}

/** The combination problem on one split, with what the metrics need. */
export interface ModelsProblem {
  problem: EnsembleProblem;
  /** Generalist probabilities, n x C. */
  pg: Float32Array;
  /** Per case: whether any specialist is active. */
  active: boolean[];
  /** Per case: number of ACTIVE specialists whose subset holds the true class (`by_coverage`). */
  coverage: Int32Array;
  /** Per case: number of specialists whose subset holds the true class, active or not (`by_membership`). */
  membership: Int32Array;
}

/**
 * Builds the KL-combination problem for a split: the generalist's probabilities, the active
 * specialists of each case (those whose subset meets the generalist's top-n classes) and their
 * distributions. Each specialist is loaded once and run only on the cases where it is active, so
 * memory is proportional to the active (case, specialist) pairs, not to cases x specialists.
 * Either head gives |S^m| + 1 cells per case (see `specialist-cells.ts`).
 * @throws ArtifactError when a specialist's output width does not match `head` and its subset
 */
export async function buildProblemFromModels(input: ModelsProblemInput): Promise<ModelsProblem> {
  const { set, C, subsets, topN } = input;
  const log = input.log ?? silentLogger;
  const head = input.head ?? 'dustbin';
  const label = input.specialistLabel ?? ((m: number) => `specialist ${m}`);
  const n = set.n;
  const pg = softmaxRows(input.generalistLogits, n, C);
  // Active specialists per case, and the cases of each specialist.
  const rowsOf: number[][] = subsets.map(() => []);
  const activeLists: Int32Array[] = [];
  for (let r = 0; r < n; r++) {
    const a = activeSpecialists(pg.subarray(r * C, (r + 1) * C), subsets, topN);
    activeLists.push(a);
    for (const m of a) rowsOf[m]!.push(r);
  }
  // Specialist distributions on their active cases only.
  const probs: { rowPos: Map<number, number>; p: Float32Array; width: number }[] = [];
  const bar = log.progress('specialist predictions', subsets.length);
  for (let m = 0; m < subsets.length; m++) {
    const rows = rowsOf[m]!;
    const width = subsets[m]!.length + 1; // cells: special classes, then the dustbin
    const rowPos = new Map<number, number>();
    let p: Float32Array = new Float32Array(0);
    if (rows.length > 0) {
      const x = new Float32Array(rows.length * set.dim);
      rows.forEach((r, i) => {
        x.set(set.x.subarray(r * set.dim, (r + 1) * set.dim), i * set.dim);
        rowPos.set(r, i);
      });
      const model = await input.loadSpecialist(m);
      try {
        p = specialistCells(model, x, rows.length, set.dim, subsets[m]!, C, head, label(m));
      } finally {
        if (input.releaseSpecialist) input.releaseSpecialist(m, model);
        else model.dispose();
      }
    }
    probs.push({ rowPos, p, width });
    bar.tick(1);
  }
  bar.done();
  const { problem, active } = problemFromPredictions({
    C,
    subsets,
    cases: n,
    pg,
    topN,
    specialistProbs: (m, r) => {
      const s = probs[m]!;
      const i = s.rowPos.get(r)!;
      return s.p.subarray(i * s.width, (i + 1) * s.width);
    },
  });
  const coverage = new Int32Array(n);
  const member = subsets.map((s) => new Set(s));
  for (let r = 0; r < n; r++) {
    let k = 0;
    for (const m of activeLists[r]!) if (member[m]!.has(set.y[r]!)) k++;
    coverage[r] = k;
  }
  return { problem, pg, active, coverage, membership: coverageCounts(set.y, subsets, C) };
}
