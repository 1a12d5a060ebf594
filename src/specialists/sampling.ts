/**
 * The specialists' training stream (paper section 5): half of every batch from the specialist's
 * special subset, half from the rest of the training set, and the odds ratio by which this
 * oversamples the special classes relative to the dustbin.
 *
 * ## Why log(oversampling factor) is the dustbin correction
 *
 * Let p be the natural fraction of special examples and s the fraction in the sampled stream.
 * Within each side the sampler draws uniformly, so the class proportions inside the special side
 * and inside the rest are the natural ones and every p(x | c) is unchanged. Only the side weights
 * change: a special class's prior is multiplied by w_in = s / p, every other class's by
 * w_out = (1 - s) / (1 - p). A model trained to the Bayes posterior of the sampled stream has
 * (up to one shared constant per case) logits
 *
 *     z'_c = log p(x | c) + log p(c) + log w_in        for a special class c,
 *     z'_d = log sum_{c outside} p(x | c) p(c) + log w_out   for the dustbin.
 *
 * The natural posterior is obtained by subtracting log w_in from every special logit and log w_out
 * from the dustbin; since a softmax is invariant to adding one constant to all logits this is the
 * same as adding `log(w_in / w_out)` to the dustbin logit alone. `w_in / w_out` is the
 * {@link oversamplingFactor}: `s (1 - p) / (p (1 - s))`. For a specialist covering 1/50 of the data
 * with 50/50 batches it is 0.5 * 0.98 / (0.02 * 0.5) = 49, the paper's `log(49)`.
 *
 * This holds for a model trained on the sampled hard labels only. Soft targets from the generalist
 * carry the natural prior, so a model trained on a mix sits in between and the fixed correction
 * over-corrects (see `dustbin.ts`, mode `fitted`).
 */
import { ConfigError, DataError } from '../util/errors.ts';
import type { Rng } from '../util/rng.ts';

/** Options of {@link halfHalfSampler}. */
export interface HalfHalfOptions {
  /** Fraction of each batch drawn from the special subset, in (0, 1). Default 0.5. */
  specialFraction?: number;
  /**
   * Examples per epoch. Default `round(#special / specialFraction)`: every special example is
   * seen once per epoch on average, matched by the same number (for 0.5) of other examples.
   */
  epochSize?: number;
}

/** An epoch's index order, as taken by `TrainOptions.sampler` in `src/models/train.ts`. */
export type EpochSampler = (epoch: number, rng: Rng) => Int32Array;

/** Converts a set of special classes or a boolean mask into a mask predicate. */
function specialPredicate(special: Set<number> | boolean[] | readonly boolean[]): (c: number) => boolean {
  if (special instanceof Set) return (c) => special.has(c);
  return (c) => Boolean(special[c]);
}

/**
 * Splits example indices by whether their label is special.
 * @returns `{ inside, outside }` index lists (ascending).
 */
export function splitBySpecial(labels: Int32Array, special: Set<number> | readonly boolean[]): { inside: Int32Array; outside: Int32Array } {
  const isSpecial = specialPredicate(special);
  let nIn = 0;
  for (let i = 0; i < labels.length; i++) if (isSpecial(labels[i])) nIn++;
  const inside = new Int32Array(nIn);
  const outside = new Int32Array(labels.length - nIn);
  let a = 0;
  let b = 0;
  for (let i = 0; i < labels.length; i++) {
    if (isSpecial(labels[i])) inside[a++] = i;
    else outside[b++] = i;
  }
  return { inside, outside };
}

/** Fraction of `labels` that are special (the natural special rate p). */
export function naturalSpecialFraction(labels: Int32Array, special: Set<number> | readonly boolean[]): number {
  if (labels.length === 0) throw new DataError('naturalSpecialFraction: no labels given');
  const isSpecial = specialPredicate(special);
  let k = 0;
  for (let i = 0; i < labels.length; i++) if (isSpecial(labels[i])) k++;
  return k / labels.length;
}

/**
 * Draws indices from `pool` in the order of successive random permutations: without
 * replacement until the pool is used up, then a fresh permutation (so a small side repeats).
 */
class PermutationStream {
  private order: Int32Array;
  private pos: number;
  constructor(
    private readonly pool: Int32Array,
    private readonly rng: Rng,
  ) {
    this.order = rng.permutation(pool.length);
    this.pos = 0;
  }
  next(): number {
    if (this.pos >= this.order.length) {
      this.order = this.rng.permutation(this.pool.length);
      this.pos = 0;
    }
    return this.pool[this.order[this.pos++]];
  }
}

/**
 * A sampler for specialist training: each epoch is a sequence of `epochSize` example indices in
 * which position i is special exactly when `floor((i + 1) f) > floor(i f)` (f the special
 * fraction), so every run of consecutive positions, hence every batch, holds `f * B` special
 * examples up to one. Each side is drawn without replacement from a fresh random permutation,
 * starting a new permutation when it is used up (so a side smaller than its share of the epoch is
 * repeated, i.e. drawn with replacement across permutations).
 * @param labels the training labels (original class ids).
 * @param special the special classes, as a set or as a mask indexed by class id.
 * @throws DataError when either side is empty; ConfigError for a fraction outside (0, 1).
 */
export function halfHalfSampler(labels: Int32Array, special: Set<number> | readonly boolean[], opts: HalfHalfOptions = {}): EpochSampler {
  const f = opts.specialFraction ?? 0.5;
  if (!(f > 0 && f < 1)) throw new ConfigError(`halfHalfSampler: specialFraction must be in (0, 1), got ${f}`);
  const { inside, outside } = splitBySpecial(labels, special);
  if (inside.length === 0) throw new DataError('halfHalfSampler: no training example belongs to the special subset: check the specialist\'s classes against the training labels');
  if (outside.length === 0) throw new DataError('halfHalfSampler: every training example belongs to the special subset, so the dustbin has nothing to learn from');
  const epochSize = opts.epochSize ?? Math.max(2, Math.round(inside.length / f));
  if (!Number.isInteger(epochSize) || epochSize < 1) throw new ConfigError(`halfHalfSampler: epochSize must be a positive integer, got ${epochSize}`);
  return (_epoch: number, rng: Rng): Int32Array => {
    const inStream = new PermutationStream(inside, rng);
    const outStream = new PermutationStream(outside, rng);
    const out = new Int32Array(epochSize);
    for (let i = 0; i < epochSize; i++) {
      const isIn = Math.floor((i + 1) * f) > Math.floor(i * f);
      out[i] = isIn ? inStream.next() : outStream.next();
    }
    return out;
  };
}

/**
 * The odds ratio by which a sampled stream oversamples the special classes relative to the
 * dustbin: `(s / p) / ((1 - s) / (1 - p))` with p the natural and s the sampled special fraction.
 * `log` of it is the amount to add to the dustbin logit after training on hard labels (see the
 * module comment for the derivation).
 * @throws ConfigError when a fraction is not strictly between 0 and 1.
 */
export function oversamplingFactor(naturalFraction: number, sampledFraction: number): number {
  for (const [name, v] of [
    ['natural', naturalFraction],
    ['sampled', sampledFraction],
  ] as const) {
    if (!(v > 0 && v < 1)) throw new ConfigError(`oversamplingFactor: the ${name} special fraction must be in (0, 1), got ${v}`);
  }
  return (sampledFraction * (1 - naturalFraction)) / (naturalFraction * (1 - sampledFraction));
}
