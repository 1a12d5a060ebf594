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
 * (train/valid/test), schema metadata `shape = [dim]` and `synthetic` (the options, JSON). Rows
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
export function syntheticSplitSizes(o: SyntheticOptions): { train: number; valid: number; test: number } {
  return {
    train: o.perClass,
    valid: o.validPerClass ?? Math.max(1, Math.round(o.perClass / 10)),
    test: o.testPerClass ?? Math.max(1, Math.round(o.perClass / 5)),
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

/**
 * Writes a synthetic grouped-classes dataset to `outFile` (atomically). Rows come train first,
 * then valid, then test; within a split, example e of every class in turn (classes interleaved,
 * so each record batch mixes classes). Deterministic for a given seed.
 */
export async function makeSynthetic(outFile: string, opts: SyntheticOptions): Promise<void> {
  const { classes: C, groups: G, dim: D } = opts;
  if (!(Number.isInteger(C) && C >= 2 && Number.isInteger(G) && G >= 1 && G <= C && Number.isInteger(D) && D >= 1 && Number.isInteger(opts.perClass) && opts.perClass >= 1)) {
    throw new RangeError(`makeSynthetic: need integers classes >= 2, 1 <= groups <= classes, dim >= 1, perClass >= 1 (got ${JSON.stringify(opts)})`);
  }
  const gs = opts.groupSpread ?? SYNTHETIC_DEFAULTS.groupSpread;
  const cs = opts.classSpread ?? SYNTHETIC_DEFAULTS.classSpread;
  const nz = opts.noise ?? SYNTHETIC_DEFAULTS.noise;
  const sizes = syntheticSplitSizes(opts);

  const centreRng = Rng.derive(opts.seed, 'synthetic-centres');
  const groupCentres = new Float64Array(G * D);
  fillNormal(centreRng, groupCentres, gs);
  const classCentres = new Float32Array(C * D);
  const offset = new Float64Array(D);
  for (let c = 0; c < C; c++) {
    fillNormal(centreRng, offset, cs);
    const g = c % G;
    for (let j = 0; j < D; j++) classCentres[c * D + j] = groupCentres[g * D + j] + offset[j];
  }

  const base = labeledSchema(D, [D], true);
  const meta = new Map(base.metadata);
  meta.set('synthetic', JSON.stringify({ ...opts, groupSpread: gs, classSpread: cs, noise: nz, validPerClass: sizes.valid, testPerClass: sizes.test, group_of_class: 'c mod groups' }));
  const schema = new Schema(base.fields, meta);
  const sink = new ArrowFileSink(outFile, schema);
  const noiseRng = Rng.derive(opts.seed, 'synthetic-noise');
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
        for (let j = 0; j < D; j++) x[i * D + j] = classCentres[c * D + j] + eps[i * D + j];
      }
      sink.write(labeledBatch(schema, x, y, m, { codes, vocabulary: ['train', 'valid', 'test'] }));
      m = 0;
    };
    const perSplit = [sizes.train, sizes.valid, sizes.test];
    for (let s = 0; s < 3; s++) {
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
