/**
 * Choosing the specialist weight w on the validation split (paper section 6 pitfall: the
 * equal-weight combination can lose to the generalist when the specialists' subset-vs-dustbin
 * judgement is worse than the generalist's; a tuned w recovers it). Never use the test split here.
 */
import { ConfigError, DataError } from '../util/errors.ts';
import type { EnsembleProblem } from './problem.ts';
import { solveEm, type EmOptions } from './solve-em.ts';
import { solveGradient, type GradientOptions } from './solve-gradient.ts';
import { countCorrect } from './metrics.ts';

/** Default grid of weights tried (0 = the generalist alone). */
export const DEFAULT_WEIGHT_GRID: readonly number[] = [0, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5];

/** Options of {@link chooseSpecialistWeight}. */
export interface ChooseWeightOptions {
  /** The combination problem on the validation split. */
  problem: EnsembleProblem;
  /** Validation labels, one per case. */
  labels: ArrayLike<number>;
  /** Weights to try (default {@link DEFAULT_WEIGHT_GRID}). */
  grid?: readonly number[];
  /** Solver (default `em`). */
  solver?: 'em' | 'gradient';
  /** Options passed to the solver (its `weight` is overridden). */
  solverOptions?: Omit<EmOptions, 'weight'> & Omit<GradientOptions, 'weight'>;
  /**
   * Extension beyond the grid (default 0: the grid only). When the best weight is the grid's
   * largest (and > 0), so the optimum may lie above the grid, the weight is doubled up to `extend`
   * times, stopping early when the validation accuracy drops below the best so far.
   */
  extend?: number;
}

/** Output of {@link chooseSpecialistWeight}. */
export interface ChooseWeightResult {
  /** The weight with the highest validation accuracy (ties: the earlier grid entry). */
  weight: number;
  accuracy: number;
  /** Accuracy of every weight tried, in grid order, then the extension's doublings. */
  table: { weight: number; accuracy: number }[];
  /** Whether the chosen weight is still the largest one tried (the optimum may lie above it). */
  atTop: boolean;
}

/**
 * Solves the validation problem for each weight of the grid and returns the one with the highest
 * top-1 accuracy (ties broken in favour of the earlier grid entry, so put the preferred weights first).
 * @throws ConfigError for an empty grid or a negative weight; DataError when labels and cases disagree
 */
export function chooseSpecialistWeight(opts: ChooseWeightOptions): ChooseWeightResult {
  const grid = opts.grid ?? DEFAULT_WEIGHT_GRID;
  const extend = opts.extend ?? 0;
  if (grid.length === 0) throw new ConfigError('ensemble.weight_grid must not be empty');
  for (const w of grid) if (!(w >= 0) || !Number.isFinite(w)) throw new ConfigError(`ensemble.weight_grid: ${w} is not a finite number >= 0`);
  if (!Number.isInteger(extend) || extend < 0) throw new ConfigError(`ensemble.weight_extend = ${extend} must be a non-negative integer`);
  const { problem, labels } = opts;
  if (labels.length !== problem.cases) throw new DataError(`chooseSpecialistWeight: ${labels.length} labels for ${problem.cases} cases`);
  const table: { weight: number; accuracy: number }[] = [];
  let best = 0;
  const tryWeight = (w: number): number => {
    const res = opts.solver === 'gradient' ? solveGradient(problem, { ...opts.solverOptions, weight: w }) : solveEm(problem, { ...opts.solverOptions, weight: w });
    const accuracy = problem.cases > 0 ? countCorrect(res.q, labels, problem.C) / problem.cases : 0;
    table.push({ weight: w, accuracy });
    if (accuracy > table[best].accuracy) best = table.length - 1;
    return accuracy;
  };
  for (const w of grid) tryWeight(w);
  const top = Math.max(...grid);
  // The best is the grid's largest weight: the optimum may lie above the grid, so keep doubling.
  if (table[best].weight === top && top > 0) {
    let w = top;
    for (let step = 0; step < extend; step++) {
      w *= 2;
      if (tryWeight(w) < table[best].accuracy) break;
    }
  }
  const tried = Math.max(...table.map((t) => t.weight));
  return { weight: table[best].weight, accuracy: table[best].accuracy, table, atTop: table[best].weight === tried && tried > 0 };
}

/**
 * The weights the extension of {@link chooseSpecialistWeight} would try after the grid, given the
 * grid's accuracies: the largest weight doubled `extend` times when it is the best (and > 0),
 * else none. A streaming caller solves these in a second pass and ends with {@link finishWeightChoice}.
 * @param gridTable the grid's weights and accuracies, in grid order
 */
export function extensionWeights(gridTable: ReadonlyArray<{ weight: number; accuracy: number }>, extend: number): number[] {
  if (gridTable.length === 0) throw new ConfigError('ensemble.weight_grid must not be empty');
  const best = bestIndex(gridTable);
  const top = Math.max(...gridTable.map((t) => t.weight));
  if (gridTable[best]!.weight !== top || !(top > 0)) return [];
  const out: number[] = [];
  let w = top;
  for (let step = 0; step < extend; step++) out.push((w *= 2));
  return out;
}

/**
 * The choice {@link chooseSpecialistWeight} makes, from accuracies computed elsewhere (e.g.
 * accumulated over blocks of validation cases): the grid's table, then the extension's doublings
 * in order until one drops below the best so far (later ones are dropped, as if never tried).
 * @param extension the accuracies of {@link extensionWeights}' weights, in that order
 */
export function finishWeightChoice(gridTable: ReadonlyArray<{ weight: number; accuracy: number }>, extension: ReadonlyArray<{ weight: number; accuracy: number }> = []): ChooseWeightResult {
  const table = gridTable.map((t) => ({ ...t }));
  let best = bestIndex(table);
  for (const t of extension) {
    table.push({ ...t });
    if (t.accuracy > table[best]!.accuracy) best = table.length - 1;
    if (t.accuracy < table[best]!.accuracy) break;
  }
  const tried = Math.max(...table.map((t) => t.weight));
  return { weight: table[best]!.weight, accuracy: table[best]!.accuracy, table, atTop: table[best]!.weight === tried && tried > 0 };
}

function bestIndex(table: ReadonlyArray<{ accuracy: number }>): number {
  let best = 0;
  for (let i = 1; i < table.length; i++) if (table[i]!.accuracy > table[best]!.accuracy) best = i;
  return best;
}
