import { checkProblem, solveEm, solveGradient, type EnsembleProblem, type SolveResult, type SpecialistCells } from '../../src/ensemble/index.ts';
import { Rng } from '../../src/util/rng.ts';
import type { BenchCase, BenchContext, BenchMeasurement } from '../types.ts';

const C = 1000;
/** Specialists of SIZE classes in COPIES partitions of the classes: each class is covered by exactly COPIES specialists. */
const SIZE = 50;
const COPIES = 10;
const CASES = 10_000;
/** The gradient (Adam) solver needs many more, and more expensive, steps: fewer cases. */
const GRADIENT_CASES = 200;

/** Softmax of `logits` into `out[off ..]`, in float32. */
function softmaxInto(logits: Float64Array, n: number, out: Float32Array, off: number): void {
  let mx = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > mx) mx = logits[i];
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(logits[i] - mx);
  for (let i = 0; i < n; i++) out[off + i] = Math.exp(logits[i] - mx) / s;
}

/**
 * A synthetic combination problem like the paper's (section 5) at C = 1,000: 200 specialists of
 * 50 classes (10 random partitions of the classes, so every class is covered by exactly 10 of
 * them), and per case a peaked generalist distribution whose top class picks the 10 active
 * specialists; each specialist's distribution over its 50 classes + dustbin is peaked on the true
 * class when it covers it. Built in flat (CSR) form directly.
 */
export function makeKlProblem(cases: number, seed: number): EnsembleProblem {
  const rng = new Rng(seed);
  const specialists: SpecialistCells[] = [];
  const covering: number[][] = Array.from({ length: C }, () => []);
  for (let copy = 0; copy < COPIES; copy++) {
    const perm = rng.permutation(C);
    for (let g = 0; g < C / SIZE; g++) {
      const classes = Int32Array.from(perm.subarray(g * SIZE, (g + 1) * SIZE)).sort();
      for (const i of classes) covering[i]!.push(specialists.length);
      specialists.push({ classes });
    }
  }
  const slots = cases * COPIES;
  const pg = new Float32Array(cases * C);
  const activeOffsets = new Int32Array(cases + 1);
  const activeIds = new Int32Array(slots);
  const pmOffsets = new Int32Array(slots + 1);
  const pm = new Float32Array(slots * (SIZE + 1));
  const z = new Float64Array(C);
  const zm = new Float64Array(SIZE + 1);
  let s = 0;
  for (let r = 0; r < cases; r++) {
    const y = rng.int(C);
    for (let i = 0; i < C; i++) z[i] = rng.normal();
    z[y] += 6;
    softmaxInto(z, C, pg, r * C);
    for (const m of covering[y]!) {
      const S = specialists[m]!.classes;
      for (let t = 0; t <= SIZE; t++) zm[t] = rng.normal();
      zm[S.indexOf(y)] += 5;
      zm[SIZE] += 1; // the dustbin holds the other 950 classes
      softmaxInto(zm, SIZE + 1, pm, pmOffsets[s]!);
      activeIds[s] = m;
      pmOffsets[s + 1] = pmOffsets[s]! + SIZE + 1;
      s++;
    }
    activeOffsets[r + 1] = s;
  }
  const p: EnsembleProblem = { C, specialists, cases, pg, activeOffsets, activeIds, pmOffsets, pm };
  checkProblem(p);
  return p;
}

function measurement(bench: string, cases: number, seconds: number, r: SolveResult): BenchMeasurement {
  let it = 0;
  for (const v of r.iterations) it += v;
  return {
    bench,
    value: cases / seconds,
    unit: 'cases/s',
    detail: `${cases} cases in ${seconds.toFixed(2)} s; C ${C}, ${COPIES} active specialists of ${SIZE}; mean ${(it / cases).toFixed(0)} steps${r.unconverged ? `, ${r.unconverged} unconverged` : ''}; JS, backend-independent`,
  };
}

let ran = false;

/**
 * The specialist-ensemble combination solvers (`src/ensemble`) on a synthetic problem at C = 1,000
 * with 10 active specialists of 50 classes per case: EM on 10,000 cases, the gradient (Adam)
 * solver on 200, both with their default tolerances (cases/s). Plain JS: measured once, on the
 * first backend.
 */
export const benchCase: BenchCase = {
  name: 'kl-solver',
  description: 'specialist-ensemble KL combination: EM and gradient solvers, C = 1,000, 10 active specialists of 50 classes',
  async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
    if (ran) return [];
    ran = true;
    const cases = ctx.quick ? 1000 : CASES;
    const gradCases = ctx.quick ? 50 : GRADIENT_CASES;
    const problem = makeKlProblem(cases, 7);
    const out: BenchMeasurement[] = [];
    let t0 = performance.now();
    const em = solveEm(problem);
    out.push(measurement(`kl-solver-em-${C}`, cases, (performance.now() - t0) / 1000, em));
    const small = makeKlProblem(gradCases, 8);
    t0 = performance.now();
    const grad = solveGradient(small);
    out.push(measurement(`kl-solver-gradient-${C}`, gradCases, (performance.now() - t0) / 1000, grad));
    return out;
  },
};
