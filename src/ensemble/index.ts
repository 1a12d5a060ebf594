/**
 * `distill-kit/ensemble`: specialist-ensemble combination (paper section 5): the problem, the EM
 * and gradient solvers, active sets, metrics, the specialist weight's choice.
 */
export { checkProblem, makeProblem, objective, validateSpecialists } from './problem.ts';
export type { EnsembleProblem, NestedEnsembleProblem, SpecialistCells } from './problem.ts';
export { numerator } from './numerator.ts';
export { solveEm } from './solve-em.ts';
export type { EmOptions, SolveResult } from './solve-em.ts';
export { solveGradient } from './solve-gradient.ts';
export type { GradientOptions } from './solve-gradient.ts';
export { activeSpecialists, classToSpecialists, coverageCounts, topN } from './active.ts';
export type { ClassToSpecialists } from './active.ts';
export { argmaxRows, countCorrect, COVERAGE_BUCKETS, ensembleMetrics } from './metrics.ts';
export type { CoverageRow, EnsembleMetrics, EnsembleMetricsInput } from './metrics.ts';
export { chooseSpecialistWeight, DEFAULT_WEIGHT_GRID } from './weight.ts';
export type { ChooseWeightOptions, ChooseWeightResult } from './weight.ts';
export { problemFromPredictions } from './build.ts';
export type { ProblemFromPredictions } from './build.ts';
export { foldIntoDustbin, overlapDrops } from './fold.ts';
export { buildProblemFromModels } from './from-models.ts';
export type { ModelsProblem, ModelsProblemInput } from './from-models.ts';
