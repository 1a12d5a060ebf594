/**
 * Building the flat {@link EnsembleProblem} straight from predictions: the generalist's
 * distributions, the specialists' subsets, and a lookup of specialist m's distribution for case r.
 * Active specialists per case follow the paper: subsets meeting the generalist's top-n classes.
 */
import { DataError } from '../util/errors.ts';
import { activeSpecialists } from './active.ts';
import { validateSpecialists, type EnsembleProblem } from './problem.ts';

/** Inputs of {@link problemFromPredictions}. */
export interface ProblemFromPredictions {
  C: number;
  /** Specialist m's special classes, sorted ascending, distinct. */
  subsets: ReadonlyArray<ArrayLike<number>>;
  cases: number;
  /** Generalist distributions, cases x C. */
  pg: Float32Array;
  /** How many of the generalist's top classes decide the active specialists (paper: 1). */
  topN: number;
  /** Specialist m's |S^m| + 1 probabilities (special classes, dustbin last) for case r; called only for active pairs. */
  specialistProbs: (m: number, r: number) => ArrayLike<number>;
}

/**
 * Builds the flat problem and reports which cases have an active specialist.
 * @throws DataError when sizes disagree or a subset is not sorted/distinct/in range
 */
export function problemFromPredictions(input: ProblemFromPredictions): { problem: EnsembleProblem; active: boolean[] } {
  const { C, cases, pg, topN } = input;
  if (pg.length !== cases * C) throw new DataError(`problemFromPredictions: pg has ${pg.length} values, expected ${cases} x ${C}`);
  const specialists = input.subsets.map((s) => ({ classes: Int32Array.from(s) }));
  validateSpecialists(specialists, C);
  const activeOffsets = new Int32Array(cases + 1);
  const ids: number[] = [];
  const pmOffsetsList: number[] = [0];
  let values = 0;
  const activeLists: Int32Array[] = [];
  for (let r = 0; r < cases; r++) {
    const a = activeSpecialists(pg.subarray(r * C, (r + 1) * C), input.subsets, topN);
    activeLists.push(a);
    for (const m of a) {
      ids.push(m);
      values += specialists[m].classes.length + 1;
      pmOffsetsList.push(values);
    }
    activeOffsets[r + 1] = ids.length;
  }
  const pm = new Float32Array(values);
  let s = 0;
  for (let r = 0; r < cases; r++) {
    for (const m of activeLists[r]) {
      const probs = input.specialistProbs(m, r);
      const need = specialists[m].classes.length + 1;
      if (probs.length !== need) throw new DataError(`problemFromPredictions: specialist ${m}, case ${r}: ${probs.length} probabilities, expected |S^m| + 1 = ${need}`);
      for (let t = 0; t < need; t++) pm[pmOffsetsList[s] + t] = probs[t];
      s++;
    }
  }
  return {
    problem: { C, specialists, cases, pg, activeOffsets, activeIds: Int32Array.from(ids), pmOffsets: Int32Array.from(pmOffsetsList), pm },
    active: activeLists.map((a) => a.length > 0),
  };
}
