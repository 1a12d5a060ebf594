/**
 * The overlap ablation: a causal version of the paper's Table 4. Table 4 groups test cases by how
 * many specialists cover the true class, but the classes covered several times are different
 * classes (on synthetic data with bridges, mostly the hard ones), so the rows differ in more than
 * coverage. Here the same specialists, cases and activation are kept, and only the specialists'
 * *knowledge* of overlapping classes is withheld: each class covered by several specialists keeps
 * one of them (its home, drawn at random with a seed), and every other specialist covering it has
 * that class merged into its dustbin, i.e. its distribution is coarsened to the cells
 * `(S^m minus the class, dustbin plus the class)`. That is exactly what a specialist that never
 * told the class apart would report, so the combination is still the paper's KL problem.
 * Comparing the ensemble's gain per coverage row with and without the extra specialists then
 * measures what the extra coverage adds for the same classes.
 */
import { DataError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { classToSpecialists } from './active.ts';
import { checkProblem, validateSpecialists, type EnsembleProblem } from './problem.ts';

/**
 * For each class covered by more than one specialist, one home specialist drawn uniformly at
 * random (seeded); returns, per specialist, the classes it must give up (those whose home is
 * another specialist). Classes covered once are never dropped.
 * @param subsets specialist m's special classes
 * @param C number of classes
 * @param seed seed of the draw
 */
export function overlapDrops(subsets: ReadonlyArray<ArrayLike<number>>, C: number, seed: number): Set<number>[] {
  const idx = classToSpecialists(subsets, C);
  const rng = Rng.derive(seed, 'overlap-ablation');
  const drops = subsets.map(() => new Set<number>());
  for (let c = 0; c < C; c++) {
    const from = idx.offsets[c];
    const k = idx.offsets[c + 1] - from;
    if (k < 2) continue;
    const home = rng.int(k);
    for (let t = 0; t < k; t++) if (t !== home) drops[idx.ids[from + t]!]!.add(c);
  }
  return drops;
}

/**
 * The same problem with specialist m's classes `drops[m]` merged into m's dustbin: m's special
 * classes become `S^m \ drops[m]` and, in every slot of m, the probabilities of the dropped
 * classes are added to the dustbin cell. Slots whose specialist is left with no special class
 * (its only cell would be every class, a constant term) are removed. The generalist's
 * distributions are shared with `problem`, not copied.
 * @throws DataError when `drops` has the wrong length, or names a class outside a specialist's subset
 */
export function foldIntoDustbin(problem: EnsembleProblem, drops: ReadonlyArray<ReadonlySet<number>>): EnsembleProblem {
  checkProblem(problem);
  const { C, cases } = problem;
  if (drops.length !== problem.specialists.length) throw new DataError(`foldIntoDustbin: ${drops.length} drop sets for ${problem.specialists.length} specialists`);
  // Per specialist: the kept classes and, for each original position, the new position (-1: dustbin).
  const position: Int32Array[] = [];
  const specialists = problem.specialists.map((sp, m) => {
    const d = drops[m]!;
    for (const c of d) if (!sp.classes.includes(c)) throw new DataError(`foldIntoDustbin: specialist ${m} does not hold class ${c}, so it cannot drop it`);
    const pos = new Int32Array(sp.classes.length);
    const kept: number[] = [];
    sp.classes.forEach((c, t) => {
      pos[t] = d.has(c) ? -1 : kept.length;
      if (!d.has(c)) kept.push(c);
    });
    position.push(pos);
    return { classes: Int32Array.from(kept) };
  });
  validateSpecialists(specialists, C);
  // Two passes: count the kept slots and values, then fill typed arrays (no per-value JS array).
  const slotsIn = problem.activeOffsets[cases]!;
  let slots = 0;
  let total = 0;
  for (let s = 0; s < slotsIn; s++) {
    const width = specialists[problem.activeIds[s]!]!.classes.length;
    if (width === 0) continue;
    slots++;
    total += width + 1;
  }
  const activeOffsets = new Int32Array(cases + 1);
  const activeIds = new Int32Array(slots);
  const pmOffsets = new Int32Array(slots + 1);
  const pm = new Float32Array(total);
  let out = 0;
  for (let r = 0; r < cases; r++) {
    for (let s = problem.activeOffsets[r]!; s < problem.activeOffsets[r + 1]!; s++) {
      const m = problem.activeIds[s]!;
      const width = specialists[m]!.classes.length;
      if (width === 0) continue;
      const pos = position[m]!;
      const src = problem.pmOffsets[s]!;
      const dst = pmOffsets[out]!;
      let dustbin = problem.pm[src + pos.length]!; // the original dustbin
      for (let t = 0; t < pos.length; t++) {
        const v = problem.pm[src + t]!;
        if (pos[t]! < 0) dustbin += v;
        else pm[dst + pos[t]!] = v;
      }
      pm[dst + width] = dustbin;
      activeIds[out] = m;
      pmOffsets[++out] = dst + width + 1;
    }
    activeOffsets[r + 1] = out;
  }
  return { C, specialists, cases, pg: problem.pg, activeOffsets, activeIds, pmOffsets, pm };
}
