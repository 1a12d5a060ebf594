/** Random combination problems for the ensemble tests. */
import { Rng } from '../../src/util/rng.ts';
import { makeProblem, type EnsembleProblem } from '../../src/ensemble/problem.ts';

/** A random distribution of length n from softmax of scaled normals. */
export function randomDist(rng: Rng, n: number, scale = 2): Float32Array {
  const v = new Float64Array(n);
  let s = 0;
  for (let i = 0; i < n; i++) {
    v[i] = Math.exp(scale * rng.normal());
    s += v[i];
  }
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = v[i] / s;
  return out;
}

/** Random specialist subsets (sorted, distinct) of the given size. */
export function randomSubsets(rng: Rng, C: number, count: number, size: number): Int32Array[] {
  const out: Int32Array[] = [];
  for (let m = 0; m < count; m++) out.push(rng.permutation(C).slice(0, size).sort());
  return out;
}

/** A random problem: `specs` specialists of `size` classes, each case with `perCase` random active ones. */
export function randomProblem(seed: number, C: number, specs: number, size: number, cases: number, perCase: number, scale = 2): EnsembleProblem {
  const rng = new Rng(seed);
  const subsets = randomSubsets(rng, C, specs, size);
  const pg = new Float32Array(cases * C);
  const active: Int32Array[] = [];
  const pm: Float32Array[][] = [];
  for (let r = 0; r < cases; r++) {
    pg.set(randomDist(rng, C, scale), r * C);
    const ids = rng.permutation(specs).slice(0, perCase).sort();
    active.push(ids);
    pm.push(Array.from(ids, (m) => randomDist(rng, subsets[m].length + 1, scale)));
  }
  return makeProblem({ C, specialists: subsets.map((classes) => ({ classes })), cases, pg, active, pm });
}
