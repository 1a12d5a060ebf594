import * as tf from '@tensorflow/tfjs';
import { Rng } from '../src/util/rng.ts';

/** A tf.layers MLP (relu hidden layers, linear logits) and random data for it. */
export interface MlpSetup {
  model: tf.Sequential;
  x: tf.Tensor2D;
  yOneHot: tf.Tensor2D;
  dispose(): void;
}

/** Builds the MLP `sizes[0] -> ... -> sizes[last]` and a random batch (seeded). */
export function buildMlp(sizes: readonly number[], batch: number, seed = 1): MlpSetup {
  const rng = new Rng(seed);
  const model = tf.sequential();
  for (let i = 1; i < sizes.length; i++) {
    const last = i === sizes.length - 1;
    model.add(tf.layers.dense({
      units: sizes[i]!,
      activation: last ? 'linear' : 'relu',
      ...(i === 1 ? { inputShape: [sizes[0]!] } : {}),
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed + i }),
    }));
  }
  const d = sizes[0]!;
  const c = sizes[sizes.length - 1]!;
  const xv = new Float32Array(batch * d);
  for (let i = 0; i < xv.length; i++) xv[i] = rng.normal();
  const yv = new Float32Array(batch * c);
  for (let r = 0; r < batch; r++) yv[r * c + rng.int(c)] = 1;
  const x = tf.tensor2d(xv, [batch, d]);
  const yOneHot = tf.tensor2d(yv, [batch, c]);
  return {
    model, x, yOneHot,
    dispose() {
      x.dispose();
      yOneHot.dispose();
      model.dispose();
    },
  };
}

/** One SGD-momentum step on softmax cross-entropy, through `optimizer.minimize`. */
export function trainStep(s: MlpSetup, opt: tf.Optimizer): void {
  opt.minimize(() => tf.losses.softmaxCrossEntropy(s.yOneHot, s.model.apply(s.x) as tf.Tensor2D) as tf.Scalar, false);
}

/**
 * Disposes an optimizer completely: tfjs 4.22's `MomentumOptimizer.dispose` forgets the
 * learning-rate scalar of its SGD base class, which would leak one tensor per optimizer.
 */
export function disposeOptimizer(opt: tf.Optimizer): void {
  opt.dispose();
  const c = (opt as unknown as { c?: tf.Tensor }).c;
  if (opt instanceof tf.MomentumOptimizer && c && !c.isDisposed) c.dispose();
}

/** Throughput of a repeated action: the best and the median of several timed windows. */
export interface Timing {
  /** Repetitions per second in the fastest window (least disturbed by other load). */
  best: number;
  /** Median over windows. */
  median: number;
  /** Total timed repetitions. */
  reps: number;
}

/**
 * Runs `fn` `warmup` times, then in `windows` windows of at least `minReps` repetitions and about
 * `windowSeconds` each; reports the best and median rate. The best window is the number least
 * affected by other processes on a shared machine.
 */
/** Runs `fn` at least once and until `maxReps` runs or `seconds` have passed (JIT, allocator, caches). */
export function warmUp(fn: () => void, maxReps: number, seconds: number): void {
  const t0 = performance.now();
  for (let i = 0; i < maxReps && (i === 0 || performance.now() - t0 < seconds * 1000); i++) fn();
}

/** Repetitions per second of `fn` over one window of at least `minReps` runs and about `seconds`. */
export function timeWindow(fn: () => void, seconds: number, minReps: number): number {
  const t0 = performance.now();
  let n = 0;
  while (n < minReps || performance.now() - t0 < seconds * 1000) {
    fn();
    n++;
  }
  return n / ((performance.now() - t0) / 1000);
}

/** As {@link timeWindow}, several times after a warmup: best and median rate. */
export function timeWindows(fn: () => void, opts: { warmup: number; windows: number; windowSeconds: number; minReps: number }): Timing {
  for (let i = 0; i < opts.warmup; i++) fn();
  const rates: number[] = [];
  let reps = 0;
  for (let w = 0; w < opts.windows; w++) {
    const t0 = performance.now();
    let n = 0;
    while (n < opts.minReps || performance.now() - t0 < opts.windowSeconds * 1000) {
      fn();
      n++;
    }
    rates.push(n / ((performance.now() - t0) / 1000));
    reps += n;
  }
  rates.sort((a, b) => a - b);
  return { best: rates[rates.length - 1]!, median: rates[Math.floor((rates.length - 1) / 2)]!, reps };
}
