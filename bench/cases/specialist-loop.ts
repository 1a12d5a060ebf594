import * as tf from '@tensorflow/tfjs';
import { installNativeMlpStep, uninstallNativeMlpStep } from '../../src/backend/mlp-step.ts';
import { loadNative } from '../../src/backend/native.ts';
import { buildMlp } from '../../src/models/mlp.ts';
import { trainModel, type TrainSet } from '../../src/models/train.ts';
import { specialistLoss } from '../../src/specialists/specialist-loss.ts';
import { Rng } from '../../src/util/rng.ts';
import type { BenchCase, BenchContext, BenchMeasurement } from '../types.ts';

/** A synthetic-1k specialist: 64 inputs, the generalist's 32 hidden units, 10 classes + dustbin. */
const SIZES = [64, 32, 11] as const;
const SETUP = { batch: 64, lr: 0.003, T: 2, softWeight: 1 };

/**
 * The jobs of synthetic-1k's specialists stage (`trainModel` with the `specialist` loss on the
 * teacher's cells, soft weight 1, T = 2; 64-32-11, Adam lr 0.003, batch 64, as in
 * `pipeline/configs/synthetic-1k.yaml`), examples per second of one epoch of 2,048 rows, with the
 * fused MLP step (`src/backend/mlp-step.ts`, the default on wasm-blas) and, alternating with it in
 * the same run, with the generic tfjs path (the step turned off): the detail gives the speed-up.
 */
export const benchCase: BenchCase = {
  name: 'specialist-loop',
  description: "a synthetic-1k specialist's training loop (64-32-11, specialist loss on cells, Adam, batch 64): fused MLP step vs the generic tfjs path",
  backends: ['wasm-blas'],
  async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
    const addon = loadNative();
    if (!addon.ok) throw new Error(`specialist-loop needs the native addon: ${addon.reason}`);
    const rows = ctx.quick ? 512 : 2048;
    const [dim, hidden, cells] = SIZES;
    const rng = new Rng(11);
    const x = new Float32Array(rows * dim);
    for (let i = 0; i < x.length; i++) x[i] = rng.next();
    const y = Int32Array.from({ length: rows }, () => rng.int(cells));
    const targets = new Float32Array(rows * cells);
    for (let i = 0; i < targets.length; i++) targets[i] = 3 * rng.normal();
    const train: TrainSet = { x, y, n: rows, dim, targets, targetDim: cells };
    const loss = specialistLoss({ classes: Array.from({ length: cells - 1 }, (_, i) => i * 7), C: 1000, head: 'dustbin', softWeight: SETUP.softWeight, T: SETUP.T, targets: 'cells' });
    const model = buildMlp({ inputDim: dim, hidden: [hidden], outputs: cells, activation: 'relu', inputDropout: 0, dropout: 0, maxNorm: null, seed: 1 });
    const before = tf.memory().numTensors;
    let seed = 1;
    const epoch = async (): Promise<number> => {
      const r = await trainModel({ model, train, loss, epochs: 1, batchSize: SETUP.batch, optimizer: { name: 'adam', lr: SETUP.lr }, seed: seed++, select: 'last' });
      return r.history[0]!.examples_per_s;
    };
    const rounds = ctx.quick ? 1 : 5;
    const fused: number[] = [];
    const generic: number[] = [];
    try {
      await epoch();
      for (let r = 0; r < rounds; r++) {
        fused.push(await epoch());
        uninstallNativeMlpStep();
        try {
          generic.push(await epoch());
        } finally {
          installNativeMlpStep(addon.addon);
        }
      }
    } finally {
      installNativeMlpStep(addon.addon);
      model.dispose();
      const leaked = tf.memory().numTensors - before;
      if (leaked > 0) ctx.log.warn(`specialist-loop: ${leaked} tensors left over`);
    }
    const best = (a: number[]): number => Math.max(...a);
    return [
      { bench: `specialist-loop-${SIZES.join('-')}`, value: best(fused), unit: 'ex/s', detail: `fused MLP step; best of ${rounds} epochs of ${rows} rows; generic tfjs path in the same run ${best(generic).toFixed(0)} ex/s: ${(best(fused) / best(generic)).toFixed(2)}x` },
      { bench: `specialist-loop-generic-${SIZES.join('-')}`, value: best(generic), unit: 'ex/s', detail: `generic tfjs path (model.apply + tf.variableGrads), alternating with the fused run` },
    ];
  },
};
