/** Specialist-ensemble combination (paper section 5): problem, solvers, active sets, metrics, weight choice. */
export * from './problem.ts';
export { numerator } from './numerator.ts';
export * from './solve-em.ts';
export * from './solve-gradient.ts';
export * from './active.ts';
export * from './metrics.ts';
export * from './weight.ts';
export * from './build.ts';
export * from './fold.ts';
