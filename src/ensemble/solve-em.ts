/**
 * Monotone fixed-point (EM / minorise-maximise) solver of the specialist-ensemble combination
 * ({@link EnsembleProblem}):
 *
 *     q_i <- (p^g_i + w * sum_m p^m_{c_m(i)} * q_i / Q^m_{c_m(i)}) / (1 + w |A|)
 *
 * started at p^g. Each step minimises a Jensen upper bound of the objective that touches it at
 * the current q, so the objective never increases; it converges to the global minimum (the
 * objective is convex in q). The denominator is the numerator's actual sum (= 1 + w|A| for
 * normalised inputs), which keeps q on the simplex under round-off.
 */
import { silentLogger, type Logger } from '../util/log.ts';
import { ConfigError } from '../util/errors.ts';
import { checkProblem, type EnsembleProblem } from './problem.ts';
import { numerator } from './numerator.ts';

/** Options of {@link solveEm}. */
export interface EmOptions {
  /** Specialist weight w (default 1). */
  weight?: number;
  /** Stop a case when the largest change of any q_i in one step is below this (default 1e-8). */
  tolerance?: number;
  /** Upper limit of steps per case (default 2000). */
  maxIterations?: number;
  log?: Logger;
}

/** Output of a solver. */
export interface SolveResult {
  /** Combined distributions, cases x C. */
  q: Float32Array;
  /** Steps taken per case (0 where nothing was to be done). */
  iterations: Int32Array;
  /** Number of cases that hit maxIterations before the tolerance. */
  unconverged: number;
}

/**
 * Solves every case by the EM fixed point. Cases without active specialists, and every case when
 * w = 0, return p^g unchanged (bit for bit).
 */
export function solveEm(problem: EnsembleProblem, opts: EmOptions = {}): SolveResult {
  const w = opts.weight ?? 1;
  const tol = opts.tolerance ?? 1e-8;
  const maxIt = opts.maxIterations ?? 2000;
  const log = opts.log ?? silentLogger;
  if (!(w >= 0) || !Number.isFinite(w)) throw new ConfigError(`ensemble.weight = ${w} must be a finite number >= 0`);
  checkProblem(problem);
  const { C, cases } = problem;
  const out = new Float32Array(cases * C);
  const iterations = new Int32Array(cases);
  let unconverged = 0;
  const q = new Float64Array(C);
  const num = new Float64Array(C);
  const progress = log.progress('ensemble EM', cases);
  for (let r = 0; r < cases; r++) {
    const off = r * C;
    if (w === 0 || problem.activeOffsets[r + 1] === problem.activeOffsets[r]) {
      out.set(problem.pg.subarray(off, off + C), off);
      progress.tick();
      continue;
    }
    let s = 0;
    for (let i = 0; i < C; i++) s += problem.pg[off + i];
    for (let i = 0; i < C; i++) q[i] = problem.pg[off + i] / s;
    let it = 0;
    let done = false;
    while (it < maxIt) {
      const total = numerator(problem, r, q, w, num);
      const inv = 1 / total;
      let delta = 0;
      for (let i = 0; i < C; i++) {
        const v = num[i] * inv;
        const d = Math.abs(v - q[i]);
        if (d > delta) delta = d;
        q[i] = v;
      }
      it++;
      if (delta < tol) {
        done = true;
        break;
      }
    }
    if (!done) unconverged++;
    iterations[r] = it;
    for (let i = 0; i < C; i++) out[off + i] = q[i];
    progress.tick();
  }
  progress.done(unconverged > 0 ? `${unconverged} cases hit maxIterations` : '');
  return { q: out, iterations, unconverged };
}
