import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/backend/native.ts';
import { installNativeMlpStep, nativeMlpStepRuns, uninstallNativeMlpStep } from '../../src/backend/mlp-step.ts';
import { distillationLoss } from '../../src/distill/losses.ts';
import { specialistLoss } from '../../src/specialists/specialist-loss.ts';
import { buildMlp, type MlpSpec } from '../../src/models/mlp.ts';
import type { OptimizerSpec } from '../../src/models/optimizer.ts';
import { trainModel, type LossFn, type TrainSet } from '../../src/models/train.ts';
import { seededArrays, useWasmBlas } from '../helpers/backend-compare.ts';

const native = loadNative();
const skip = !native.ok;
if (!native.ok) console.log(`skipping fused MLP step tests: ${native.reason}`);

/** Runs `fn` with the fused MLP step off (the generic tfjs path), then back on. */
async function generic<T>(fn: () => Promise<T>): Promise<T> {
  uninstallNativeMlpStep();
  try {
    return await fn();
  } finally {
    if (native.ok) installNativeMlpStep(native.addon);
  }
}

interface Run {
  weights: Float32Array[];
  loss: number[];
  acc: number[];
}

const base: MlpSpec = { inputDim: 12, hidden: [9, 7], outputs: 5, activation: 'relu', inputDropout: 0, dropout: 0, maxNorm: null, seed: 3 };

/** A tiny training set with teacher probabilities; rows 0 and 7 unlabeled. */
function dataset(): TrainSet {
  const { randArray, rng } = seededArrays(11);
  const n = 70;
  const dim = 12;
  const C = 5;
  const y = Int32Array.from({ length: n }, () => rng.int(C));
  y[0] = -1;
  y[7] = -1;
  const t = randArray(n * C).map((v) => Math.abs(v) + 0.01);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += t[r * C + c]!;
    for (let c = 0; c < C; c++) t[r * C + c]! /= s;
  }
  return { x: randArray(n * dim), y, n, dim, targets: t, targetDim: C };
}

async function train(spec: MlpSpec, optimizer: OptimizerSpec, loss: LossFn | undefined, set: TrainSet): Promise<Run> {
  const model = buildMlp(spec);
  try {
    const r = await trainModel({ model, train: set, ...(loss ? { loss } : {}), epochs: 3, batchSize: 16, optimizer, seed: 5, select: 'last' });
    return { weights: model.getWeights().map((w) => Float32Array.from(w.dataSync())), loss: r.history.map((h) => h.train_loss), acc: r.history.map((h) => h.train_accuracy) };
  } finally {
    model.dispose();
  }
}

function expectNear(got: Run, want: Run, tol: number): void {
  expect(got.weights.length).toBe(want.weights.length);
  for (let i = 0; i < want.weights.length; i++) {
    const a = got.weights[i]!;
    const b = want.weights[i]!;
    expect(a.length).toBe(b.length);
    let maxErr = 0;
    for (let j = 0; j < b.length; j++) maxErr = Math.max(maxErr, Math.abs(a[j]! - b[j]!) / Math.max(Math.abs(b[j]!), 1e-2));
    expect(maxErr).toBeLessThan(tol);
  }
  for (let e = 0; e < want.loss.length; e++) {
    expect(got.loss[e]!).toBeCloseTo(want.loss[e]!, 4);
    expect(got.acc[e]!).toBeCloseTo(want.acc[e]!, 6);
  }
}

describe.skipIf(skip)('fused MLP training step (wasm-blas)', () => {
  useWasmBlas(/softmax cross-entropy/);

  const cases: { name: string; spec: MlpSpec; opt: OptimizerSpec; loss: () => LossFn | undefined }[] = [
    { name: 'hard labels, Adam', spec: base, opt: { name: 'adam', lr: 0.01 }, loss: () => undefined },
    { name: 'distillation T=2 alpha=0.7 (probabilities), Adam', spec: base, opt: { name: 'adam', lr: 0.01 }, loss: () => distillationLoss({ T: 2, alpha: 0.7, teacher: 'probabilities' }) },
    { name: 'soft only (alpha=1, logits), SGD nesterov momentum, max-norm', spec: { ...base, maxNorm: 0.6 }, opt: { name: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true }, loss: () => distillationLoss({ T: 3, alpha: 1 }) },
    // The specialists' loss on the teacher's cells: weights 1 + 1, so the fused loss is scaled by 2.
    { name: 'specialist loss (dustbin cells, soft weight 1, T=2), Adam', spec: base, opt: { name: 'adam', lr: 0.01 }, loss: () => specialistLoss({ classes: [1, 3, 5, 7], C: 9, head: 'dustbin', softWeight: 1, T: 2, targets: 'cells' }) },
    { name: 'one linear layer, plain SGD', spec: { ...base, hidden: [] }, opt: { name: 'sgd', lr: 0.2, momentum: 0 }, loss: () => undefined },
  ];
  for (const c of cases) {
    it(`${c.name}: fused and generic paths train to the same weights, loss and accuracy`, async () => {
      const set = dataset();
      const before = nativeMlpStepRuns();
      const fused = await train(c.spec, c.opt, c.loss(), set);
      const runs = nativeMlpStepRuns() - before;
      expect(runs).toBe(3 * Math.ceil(70 / 16)); // every step of the 3 epochs ran fused
      const ref = await generic(() => train(c.spec, c.opt, c.loss(), set));
      expect(nativeMlpStepRuns() - before).toBe(runs); // the generic run did not use it
      expectNear(fused, ref, 2e-4);
      // Deterministic: the same run again gives the same bits.
      const again = await train(c.spec, c.opt, c.loss(), set);
      for (let i = 0; i < again.weights.length; i++) expect(Array.from(again.weights[i]!)).toEqual(Array.from(fused.weights[i]!));
    });
  }

  it('falls back to the generic path where it does not apply (dropout, logit matching loss)', async () => {
    const set = dataset();
    const before = nativeMlpStepRuns();
    await train({ ...base, dropout: 0.5 }, { name: 'adam', lr: 0.01 }, undefined, set);
    const custom: LossFn = (z, b) => tf.tidy(() => tf.losses.softmaxCrossEntropy(tf.oneHot(b.y, 5), z) as tf.Scalar);
    await train(base, { name: 'adam', lr: 0.01 }, custom, { ...set, y: set.y.map((v) => Math.max(v, 0)) });
    expect(nativeMlpStepRuns()).toBe(before);
  });

  it('DISTILL_NO_FUSED_STEP=1 keeps the generic path (the switch to time a stage without the step)', async () => {
    if (!native.ok) return;
    const set = dataset();
    process.env.DISTILL_NO_FUSED_STEP = '1';
    try {
      installNativeMlpStep(native.addon);
      const before = nativeMlpStepRuns();
      await train(base, { name: 'adam', lr: 0.01 }, undefined, set);
      expect(nativeMlpStepRuns()).toBe(before);
    } finally {
      delete process.env.DISTILL_NO_FUSED_STEP;
      installNativeMlpStep(native.addon);
    }
    const before = nativeMlpStepRuns();
    await train(base, { name: 'adam', lr: 0.01 }, undefined, set);
    expect(nativeMlpStepRuns()).toBeGreaterThan(before);
  });
});
