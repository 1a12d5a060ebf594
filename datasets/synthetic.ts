/**
 * Synthetic recipe: many classes arranged in groups of mutually confusable classes, the
 * situation the paper's specialist models are for (JFT: many kinds of mushroom, many kinds of
 * car).
 *
 * Model (all Gaussians isotropic, in `dim` dimensions):
 * - group g (g = 0..groups-1) has a centre  m_g ~ N(0, groupSpread^2 I)
 * - class c belongs to group g = c mod groups and has a centre  m_c = m_g + N(0, classSpread^2 I)
 * - an example of class c is  x = m_c + N(0, noise^2 I)
 *
 * Confusability knobs. Two class centres at distance d with noise sigma are confused by the
 * best possible classifier with probability Phi(-d / (2 sigma)). The expected distance between
 * two class centres of the SAME group is classSpread * sqrt(2 dim); of DIFFERENT groups,
 * sqrt(2 dim (groupSpread^2 + classSpread^2)). So
 * - classSpread / noise sets how confusable classes within a group are (smaller: more confusion),
 * - groupSpread / noise sets how separable groups are (larger: fewer cross-group errors),
 * - dim scales both separations by sqrt(dim).
 * Defaults (groupSpread 1, classSpread 0.3, noise 1) at dim 64: within-group pairwise Bayes
 * error Phi(-1.70) = 4.5 %, across groups Phi(-5.9) ~ 2e-9 (measured: a nearest-class-mean
 * classifier on 100 classes / 10 groups / 500 per class makes 22.7 % test errors, all of them
 * within a group). {@link syntheticSeparation} computes these numbers for any options.
 *
 * Output: `label: Int32`, `features: FixedSizeList<Float32>[dim]`, `split: Utf8`
 * (train/valid/test, and unlabeled with `unlabeledPerClass`), schema metadata `shape = [dim]` and `synthetic` (the options, JSON). Rows
 * are written in record batches as they are generated (memory: the centres plus one batch), so
 * 10,000 classes are no problem.
 */
import { Rng } from '../src/util/rng.ts';
import { ArrowFileSink, labeledBatch, labeledSchema } from '../src/data/arrow-write.ts';
import { Schema } from 'apache-arrow';

/** Options of {@link makeSynthetic}. */
export interface SyntheticOptions {
  /** Number of classes C (>= 2). */
  classes: number;
  /** Number of groups G (1..C); class c is in group c mod G. */
  groups: number;
  /** Feature dimension. */
  dim: number;
  /** Training examples per class. */
  perClass: number;
  /** Seed of centres and noise. */
  seed: number;
  /** Std of group centres around the origin (default 1). */
  groupSpread?: number;
  /** Std of class centres around their group centre (default 0.3). */
  classSpread?: number;
  /** Std of examples around their class centre (default 1). */
  noise?: number;
  /** Test examples per class (default max(1, round(perClass / 5))). */
  testPerClass?: number;
  /** Validation examples per class (default max(1, round(perClass / 10))). */
  validPerClass?: number;
  /**
   * Rows per class written with split = 'unlabeled' after the test rows (default 0): an
   * unlabelled transfer set drawn like the training rows. Their `label` column holds the true
   * class (for analysis); ingest ignores it. The other rows are the same numbers as without them.
   */
  unlabeledPerClass?: number;
  /** Bridge classes confusable with several groups (default: none). See {@link SyntheticBridges}. */
  bridges?: SyntheticBridges;
}

/**
 * Bridge classes: `round(fraction * classes)` classes (chosen by a seeded draw) are tied to
 * k groups, k uniform in 2..min(groups, G): their home group `c mod G` plus k-1 other distinct
 * groups. With mode
 * - `between` (default): the class centre is the MEAN of the k group centres plus the class's
 *   usual N(0, classSpread^2 I) offset, so it is equidistant (up to the offset) from its groups;
 * - `mixture`: the class has k modes, mode i = centre of group i + its own N(0, classSpread^2 I)
 *   offset (mode 0 uses the class's usual offset), and each example picks a mode uniformly: the
 *   class looks like a member of each of its groups.
 * Everything bridges need comes from streams of their own (`synthetic-bridges`,
 * `synthetic-bridge-modes`), so the non-bridge classes and the noise are the same numbers as
 * without bridges, and without bridges the file is byte-identical to before the option existed.
 */
export interface SyntheticBridges {
  /** Fraction of the classes that are bridges, in [0, 1]. */
  fraction: number;
  /** Largest number of groups a bridge is tied to (>= 2; capped at the number of groups). */
  groups: number;
  /** `between` (default) or `mixture` (see above). */
  mode?: 'between' | 'mixture';
}

/** One bridge class of {@link syntheticCentres}. */
export interface SyntheticBridge {
  /** The class index. */
  cls: number;
  /** Its k groups, home group (`cls mod G`) first. */
  groups: number[];
  /** `mixture` only: k x dim mode centres (row i belongs to `groups[i]`). */
  modes: Float32Array | null;
}

/** Centres of a synthetic dataset (see {@link syntheticCentres}). */
export interface SyntheticCentres {
  /** G x dim group centres. */
  groupCentres: Float64Array;
  /** C x dim class centres (for a `mixture` bridge: its mode 0). */
  classCentres: Float32Array;
  /** The bridge classes in increasing class order (empty without bridges). */
  bridges: SyntheticBridge[];
}

/** Defaults of the optional knobs of {@link SyntheticOptions}. */
export const SYNTHETIC_DEFAULTS = { groupSpread: 1, classSpread: 0.3, noise: 1 } as const;

const BATCH_ROWS = 8192;

/** Standard normal cdf (Abramowitz-Stegun 7.1.26 erf, |error| < 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + y) : 0.5 * (1 - y);
}

/**
 * Expected centre distances and pairwise Bayes confusion Phi(-d / 2 noise) for two classes of
 * the same group and of different groups (see the module comment).
 */
export function syntheticSeparation(o: Pick<SyntheticOptions, 'dim' | 'groupSpread' | 'classSpread' | 'noise'>): {
  withinDistance: number;
  acrossDistance: number;
  withinPairError: number;
  acrossPairError: number;
} {
  const gs = o.groupSpread ?? SYNTHETIC_DEFAULTS.groupSpread;
  const cs = o.classSpread ?? SYNTHETIC_DEFAULTS.classSpread;
  const nz = o.noise ?? SYNTHETIC_DEFAULTS.noise;
  const withinDistance = cs * Math.sqrt(2 * o.dim);
  const acrossDistance = Math.sqrt(2 * o.dim * (gs * gs + cs * cs));
  return {
    withinDistance,
    acrossDistance,
    withinPairError: nz > 0 ? normalCdf(-withinDistance / (2 * nz)) : 0,
    acrossPairError: nz > 0 ? normalCdf(-acrossDistance / (2 * nz)) : 0,
  };
}

/** The split sizes per class after defaults. */
export function syntheticSplitSizes(o: SyntheticOptions): { train: number; valid: number; test: number; unlabeled: number } {
  return {
    train: o.perClass,
    valid: o.validPerClass ?? Math.max(1, Math.round(o.perClass / 10)),
    test: o.testPerClass ?? Math.max(1, Math.round(o.perClass / 5)),
    unlabeled: o.unlabeledPerClass ?? 0,
  };
}

/** Fills `out` with N(0, 1) samples using both Box-Muller outputs. */
function fillNormal(rng: Rng, out: Float32Array | Float64Array, scale: number): void {
  for (let i = 0; i < out.length; i += 2) {
    let u = 0;
    while (u === 0) u = rng.next();
    const r = Math.sqrt(-2 * Math.log(u)) * scale;
    const a = 2 * Math.PI * rng.next();
    out[i] = r * Math.cos(a);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(a);
  }
}

/** Checks the integer options of {@link makeSynthetic} / {@link syntheticCentres}. */
function checkOptions(opts: SyntheticOptions): void {
  const { classes: C, groups: G, dim: D } = opts;
  if (!(Number.isInteger(C) && C >= 2 && Number.isInteger(G) && G >= 1 && G <= C && Number.isInteger(D) && D >= 1 && Number.isInteger(opts.perClass) && opts.perClass >= 1)) {
    throw new RangeError(`makeSynthetic: need integers classes >= 2, 1 <= groups <= classes, dim >= 1, perClass >= 1 (got ${JSON.stringify(opts)})`);
  }
  const b = opts.bridges;
  if (b && b.fraction > 0 && !(b.fraction <= 1 && Number.isInteger(b.groups) && b.groups >= 2 && G >= 2)) {
    throw new RangeError(`makeSynthetic: bridges need 0 <= fraction <= 1, an integer groups >= 2 and at least 2 groups in the data (got bridges ${JSON.stringify(b)} with groups ${G})`);
  }
}

/**
 * The group and class centres of a synthetic dataset, and its bridge classes: exactly the
 * centres {@link makeSynthetic} samples from for the same options (deterministic in the seed).
 */
export function syntheticCentres(opts: SyntheticOptions): SyntheticCentres {
  checkOptions(opts);
  const { classes: C, groups: G, dim: D } = opts;
  const gs = opts.groupSpread ?? SYNTHETIC_DEFAULTS.groupSpread;
  const cs = opts.classSpread ?? SYNTHETIC_DEFAULTS.classSpread;
  const centreRng = Rng.derive(opts.seed, 'synthetic-centres');
  const groupCentres = new Float64Array(G * D);
  fillNormal(centreRng, groupCentres, gs);
  const classCentres = new Float32Array(C * D);
  const offset = new Float64Array(D);
  const offsets = new Float64Array(C * D);
  for (let c = 0; c < C; c++) {
    fillNormal(centreRng, offset, cs);
    offsets.set(offset, c * D);
    const g = c % G;
    for (let j = 0; j < D; j++) classCentres[c * D + j] = groupCentres[g * D + j] + offset[j];
  }
  const bridges: SyntheticBridge[] = [];
  const b = opts.bridges;
  const count = b ? Math.round(b.fraction * C) : 0;
  if (b && count > 0) {
    const rng = Rng.derive(opts.seed, 'synthetic-bridges');
    const chosen = Array.from(rng.permutation(C).subarray(0, count)).sort((p, q) => p - q);
    const kMax = Math.min(b.groups, G);
    for (const c of chosen) {
      const k = 2 + rng.int(kMax - 1);
      const groups = [c % G];
      while (groups.length < k) {
        const g = rng.int(G);
        if (!groups.includes(g)) groups.push(g);
      }
      let modes: Float32Array | null = null;
      if ((b.mode ?? 'between') === 'between') {
        for (let j = 0; j < D; j++) {
          let m = 0;
          for (const g of groups) m += groupCentres[g * D + j];
          classCentres[c * D + j] = m / k + offsets[c * D + j];
        }
      } else {
        modes = new Float32Array(k * D);
        modes.set(classCentres.subarray(c * D, (c + 1) * D), 0);
        for (let i = 1; i < k; i++) {
          fillNormal(rng, offset, cs);
          for (let j = 0; j < D; j++) modes[i * D + j] = groupCentres[groups[i] * D + j] + offset[j];
        }
      }
      bridges.push({ cls: c, groups, modes });
    }
  }
  return { groupCentres, classCentres, bridges };
}

/**
 * Writes a synthetic grouped-classes dataset to `outFile` (atomically). Rows come train first,
 * then valid, then test, then unlabeled; within a split, example e of every class in turn (classes interleaved,
 * so each record batch mixes classes). Deterministic for a given seed. With `bridges`, the
 * schema metadata `synthetic` also lists each bridge class and its groups (`bridge_groups`).
 */
export async function makeSynthetic(outFile: string, opts: SyntheticOptions): Promise<void> {
  const { classes: C, dim: D } = opts;
  const { classCentres, bridges } = syntheticCentres(opts);
  const gs = opts.groupSpread ?? SYNTHETIC_DEFAULTS.groupSpread;
  const cs = opts.classSpread ?? SYNTHETIC_DEFAULTS.classSpread;
  const nz = opts.noise ?? SYNTHETIC_DEFAULTS.noise;
  const sizes = syntheticSplitSizes(opts);
  // mixture bridges: class -> its k x D modes, the mode of each example drawn from a stream of its own
  const modesOf = new Map<number, Float32Array>();
  for (const br of bridges) if (br.modes) modesOf.set(br.cls, br.modes);
  const modeRng = Rng.derive(opts.seed, 'synthetic-bridge-modes');

  const base = labeledSchema(D, [D], true);
  const meta = new Map(base.metadata);
  const described: Record<string, unknown> = { ...opts, groupSpread: gs, classSpread: cs, noise: nz, validPerClass: sizes.valid, testPerClass: sizes.test, group_of_class: 'c mod groups' };
  if (opts.bridges) {
    described.bridges = { ...opts.bridges, mode: opts.bridges.mode ?? 'between' };
    described.bridge_groups = Object.fromEntries(bridges.map((br) => [String(br.cls), br.groups]));
  }
  meta.set('synthetic', JSON.stringify(described));
  const schema = new Schema(base.fields, meta);
  const sink = new ArrowFileSink(outFile, schema);
  const noiseRng = Rng.derive(opts.seed, 'synthetic-noise');
  // Without unlabeled rows the vocabulary (and so the file) is what it was before the option.
  const vocabulary = sizes.unlabeled > 0 ? ['train', 'valid', 'test', 'unlabeled'] : ['train', 'valid', 'test'];
  try {
    const x = new Float32Array(BATCH_ROWS * D);
    const y = new Int32Array(BATCH_ROWS);
    const codes = new Uint8Array(BATCH_ROWS);
    const eps = new Float32Array(BATCH_ROWS * D);
    let m = 0;
    const flush = (): void => {
      if (m === 0) return;
      fillNormal(noiseRng, eps.subarray(0, m * D), nz);
      for (let i = 0; i < m; i++) {
        const c = y[i];
        const modes = modesOf.size > 0 ? modesOf.get(c) : undefined;
        const centre = modes ? modes.subarray(modeRng.int(modes.length / D) * D) : classCentres.subarray(c * D);
        for (let j = 0; j < D; j++) x[i * D + j] = centre[j] + eps[i * D + j];
      }
      sink.write(labeledBatch(schema, x, y, m, { codes, vocabulary }));
      m = 0;
    };
    const perSplit = [sizes.train, sizes.valid, sizes.test, sizes.unlabeled];
    for (let s = 0; s < perSplit.length; s++) {
      for (let e = 0; e < perSplit[s]; e++) {
        for (let c = 0; c < C; c++) {
          y[m] = c;
          codes[m] = s;
          if (++m === BATCH_ROWS) flush();
        }
      }
    }
    flush();
    sink.finish();
  } catch (e) {
    sink.abort();
    throw e;
  }
}
