/**
 * The specialist-ensemble combination problem (paper section 5, inference), batched over cases.
 *
 * C classes. Specialist m has special classes S^m (sorted, distinct) and a distribution p^m over
 * |S^m| + 1 cells: one cell per special class, then the dustbin (all classes outside S^m) last.
 * For a distribution q over the C classes, q mapped to m's cells is
 * `q^m = (q_i for i in S^m, sum of q outside S^m)`. Per case, with generalist distribution p^g
 * and active specialists A, the combined distribution minimises
 *
 *     F(q) = KL(p^g || q) + w * sum_{m in A} KL(p^m || q^m)        (w: specialist weight)
 *
 * over the simplex. F is convex in q.
 *
 * Representation ({@link EnsembleProblem}): flat typed arrays in CSR style, so 10,000 cases with
 * 10 active specialists each are a handful of arrays rather than 100,000 small ones:
 * `activeOffsets[r] .. activeOffsets[r + 1]` are case r's "slots"; slot s names a specialist
 * `activeIds[s]` and holds its |S^m| + 1 probabilities at `pm[pmOffsets[s] .. pmOffsets[s + 1])`.
 * {@link makeProblem} builds it from the nested form ({@link NestedEnsembleProblem}) and checks it.
 *
 * Conventions: cells with zero probability contribute nothing; a dustbin with positive
 * probability but no classes (a specialist covering all C classes) cannot receive mass: that
 * probability is ignored by the solvers and by {@link objective}.
 */
import { DataError } from '../util/errors.ts';

/** A specialist as the combination sees it: its special classes, sorted ascending, distinct. */
export interface SpecialistCells {
  classes: Int32Array;
}

/** Batched combination problem in flat (CSR) form; see the module documentation. */
export interface EnsembleProblem {
  C: number;
  specialists: SpecialistCells[];
  cases: number;
  /** Generalist distributions, cases x C row-major. */
  pg: Float32Array;
  /** Length cases + 1: case r's slots are activeOffsets[r] .. activeOffsets[r+1] - 1. */
  activeOffsets: Int32Array;
  /** Specialist id of each slot. */
  activeIds: Int32Array;
  /** Length slots + 1: slot s's |S^m| + 1 probabilities are pm[pmOffsets[s] .. pmOffsets[s+1]). */
  pmOffsets: Int32Array;
  /** All slots' specialist distributions, concatenated (special classes in S^m order, dustbin last). */
  pm: Float32Array;
}

/** The same problem with per-case arrays (convenient to build; flattened by {@link makeProblem}). */
export interface NestedEnsembleProblem {
  C: number;
  specialists: SpecialistCells[];
  cases: number;
  /** cases x C. */
  pg: Float32Array;
  /** Per case: active specialist ids. */
  active: Int32Array[];
  /** Per case, per active specialist (same order as `active`): |S^m| + 1 probabilities. */
  pm: Float32Array[][];
}

/**
 * Flattens and validates a nested problem.
 * @throws DataError when sizes disagree, a specialist's classes are not sorted/distinct/in range,
 *   or an id is unknown
 */
export function makeProblem(p: NestedEnsembleProblem): EnsembleProblem {
  const { C, cases } = p;
  validateSpecialists(p.specialists, C);
  if (p.pg.length !== cases * C) throw new DataError(`ensemble problem: pg has ${p.pg.length} values, expected cases x C = ${cases} x ${C}`);
  if (p.active.length !== cases || p.pm.length !== cases) throw new DataError(`ensemble problem: active/pm must have one entry per case (${cases}), got ${p.active.length}/${p.pm.length}`);
  const activeOffsets = new Int32Array(cases + 1);
  let slots = 0;
  let values = 0;
  for (let r = 0; r < cases; r++) {
    const a = p.active[r];
    if (p.pm[r].length !== a.length) throw new DataError(`ensemble problem: case ${r} has ${a.length} active specialists but ${p.pm[r].length} distributions`);
    for (let t = 0; t < a.length; t++) {
      const m = a[t];
      if (!(m >= 0 && m < p.specialists.length)) throw new DataError(`ensemble problem: case ${r} names specialist ${m}, but there are ${p.specialists.length}`);
      const need = p.specialists[m].classes.length + 1;
      if (p.pm[r][t].length !== need) throw new DataError(`ensemble problem: case ${r}, specialist ${m}: ${p.pm[r][t].length} probabilities, expected |S^m| + 1 = ${need}`);
      values += need;
    }
    slots += a.length;
    activeOffsets[r + 1] = slots;
  }
  const activeIds = new Int32Array(slots);
  const pmOffsets = new Int32Array(slots + 1);
  const pm = new Float32Array(values);
  let s = 0;
  let v = 0;
  for (let r = 0; r < cases; r++) {
    const a = p.active[r];
    for (let t = 0; t < a.length; t++) {
      activeIds[s] = a[t];
      pm.set(p.pm[r][t], v);
      v += p.pm[r][t].length;
      pmOffsets[++s] = v;
    }
  }
  return { C, specialists: p.specialists, cases, pg: p.pg, activeOffsets, activeIds, pmOffsets, pm };
}

/** Checks each specialist's classes are strictly increasing and inside 0..C-1. */
export function validateSpecialists(specialists: ReadonlyArray<SpecialistCells>, C: number): void {
  specialists.forEach((sp, m) => {
    const c = sp.classes;
    for (let t = 0; t < c.length; t++) {
      if (!(c[t] >= 0 && c[t] < C)) throw new DataError(`specialist ${m}: class ${c[t]} is outside 0..${C - 1}`);
      if (t > 0 && c[t] <= c[t - 1]) throw new DataError(`specialist ${m}: classes must be sorted and distinct (${c[t - 1]} then ${c[t]})`);
    }
  });
}

/** Checks the flat arrays are consistent (used by the solvers on problems not built by {@link makeProblem}). */
export function checkProblem(p: EnsembleProblem): void {
  const { C, cases } = p;
  if (p.pg.length !== cases * C) throw new DataError(`ensemble problem: pg has ${p.pg.length} values, expected ${cases} x ${C}`);
  if (p.activeOffsets.length !== cases + 1) throw new DataError(`ensemble problem: activeOffsets must have cases + 1 = ${cases + 1} entries`);
  const slots = p.activeOffsets[cases];
  if (p.activeIds.length !== slots || p.pmOffsets.length !== slots + 1) throw new DataError('ensemble problem: activeIds/pmOffsets do not match activeOffsets');
  for (let s = 0; s < slots; s++) {
    const m = p.activeIds[s];
    if (!(m >= 0 && m < p.specialists.length)) throw new DataError(`ensemble problem: slot ${s} names specialist ${m}, but there are ${p.specialists.length}`);
    if (p.pmOffsets[s + 1] - p.pmOffsets[s] !== p.specialists[m].classes.length + 1) throw new DataError(`ensemble problem: slot ${s} (specialist ${m}) has the wrong number of probabilities`);
  }
  if (p.pm.length < p.pmOffsets[slots]) throw new DataError('ensemble problem: pm is shorter than pmOffsets says');
}

/**
 * The objective `KL(p^g || q) + w * sum_m KL(p^m || q^m)` for every case.
 * @param q cases x C candidate distributions
 * @param weight specialist weight w (default 1)
 * @returns one value per case (Infinity where q puts zero mass on a cell with positive probability)
 */
export function objective(p: EnsembleProblem, q: Float32Array | Float64Array, weight = 1): Float64Array {
  const { C, cases } = p;
  const out = new Float64Array(cases);
  for (let r = 0; r < cases; r++) {
    const off = r * C;
    let qsum = 0;
    for (let i = 0; i < C; i++) qsum += q[off + i];
    let f = 0;
    for (let i = 0; i < C; i++) f += klTerm(p.pg[off + i], q[off + i]);
    if (weight !== 0) {
      for (let s = p.activeOffsets[r]; s < p.activeOffsets[r + 1]; s++) {
        const S = p.specialists[p.activeIds[s]].classes;
        const po = p.pmOffsets[s];
        let qin = 0;
        let g = 0;
        for (let t = 0; t < S.length; t++) {
          const qi = q[off + S[t]];
          qin += qi;
          g += klTerm(p.pm[po + t], qi);
        }
        if (S.length < C) g += klTerm(p.pm[po + S.length], Math.max(qsum - qin, 0));
        f += weight * g;
      }
    }
    out[r] = f;
  }
  return out;
}

/** `p log(p / q)` with the conventions 0 log 0 = 0 and p log(p / 0) = Infinity. */
function klTerm(p: number, q: number): number {
  if (p <= 0) return 0;
  if (q <= 0) return Infinity;
  return p * Math.log(p / q);
}
