/**
 * Shared synthetic data for the specialist tests: 12 classes in 3 groups of 4, 16 features.
 * Classes of a group share a group centre, so the generalist's confusions stay inside groups.
 * Group 0 (classes 0-3) is rarer (class weight 1 vs 3), so its natural rate is 4/28 = 1/7 and
 * 50/50 sampling oversamples it by the odds ratio (1/2 * 6/7) / (1/7 * 1/2) = 6.
 */
import * as tf from '@tensorflow/tfjs';
import { buildMlp } from '../../src/models/mlp.ts';
import { predictLogits } from '../../src/models/predict.ts';
import { hardLoss, trainModel } from '../../src/models/train.ts';
import type { LabeledSet } from '../../src/models/types.ts';
import { Rng } from '../../src/util/rng.ts';

export const C = 12;
export const DIM = 16;
export const SPECIAL = [0, 1, 2, 3];
const WEIGHTS = [1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3];
/** Scale of the group centres and of the per-example noise: groups overlap, so special-vs-rest is not trivially separable (AUC ~0.98). */
const GROUP = 1.0;
const NOISE = 2.0;

/** Class means: GROUP * group centre + 1.0 * class offset, both standard normal vectors. */
function classMeans(seed: number): Float64Array[] {
  const rng = Rng.derive(seed, 'means');
  const groups = [0, 1, 2].map(() => Float64Array.from({ length: DIM }, () => rng.normal()));
  return Array.from({ length: C }, (_, c) => Float64Array.from({ length: DIM }, (_, d) => GROUP * groups[Math.floor(c / 4)][d] + 1.0 * rng.normal()));
}

/** n examples: labels drawn from the class weights, x = mean + NOISE * N(0, I). */
export function makeSet(n: number, seed: number, split: string): LabeledSet {
  const means = classMeans(seed);
  const rng = Rng.derive(seed, split);
  const tot = WEIGHTS.reduce((a, b) => a + b, 0);
  const x = new Float32Array(n * DIM);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let u = rng.next() * tot;
    let c = 0;
    while (u >= WEIGHTS[c]) u -= WEIGHTS[c++];
    y[i] = c;
    for (let d = 0; d < DIM; d++) x[i * DIM + d] = means[c][d] + NOISE * rng.normal();
  }
  return { x, y, n, dim: DIM };
}

export interface Fixture {
  train: LabeledSet;
  valid: LabeledSet;
  generalist: tf.LayersModel;
  trainLogits: Float32Array;
  validLogits: Float32Array;
}

/** A small generalist (16 -> 24 relu -> 12) trained for a few epochs on 2,800 examples. */
export async function makeFixture(seed = 1, hidden = 24): Promise<Fixture> {
  const train = makeSet(2800, seed, 'train');
  const valid = makeSet(1400, seed, 'valid');
  const generalist = buildMlp({ inputDim: DIM, hidden: [hidden], outputs: C, activation: 'relu', inputDropout: 0, dropout: 0, maxNorm: null, seed });
  await trainModel({ model: generalist, train, loss: hardLoss, epochs: 8, batchSize: 64, optimizer: { name: 'adam', lr: 0.01 }, seed, select: 'last' });
  return {
    train,
    valid,
    generalist,
    trainLogits: predictLogits(generalist, train.x, train.n, DIM),
    validLogits: predictLogits(generalist, valid.x, valid.n, DIM),
  };
}

/** Accuracy of argmax over all classes. */
export function accuracy(logits: Float32Array, y: Int32Array, k: number): number {
  let ok = 0;
  for (let i = 0; i < y.length; i++) {
    let b = 0;
    for (let j = 1; j < k; j++) if (logits[i * k + j] > logits[i * k + b]) b = j;
    if (b === y[i]) ok++;
  }
  return ok / y.length;
}
