import * as tf from '@tensorflow/tfjs';
import { buildMlp } from '../../src/models/mlp.ts';
import { trainModel } from '../../src/models/train.ts';
import { Rng } from '../../src/util/rng.ts';
import { bestTimedEpoch, interleaveWithPeer, torchLabel, torchTrainLoop } from '../peers/torch.ts';
import type { BenchCase, BenchContext, BenchMeasurement } from '../types.ts';

const SIZES = [784, 1200, 1200, 10] as const;
const SETUP = { batch: 100, inputDropout: 0.2, dropout: 0.5, maxNorm: 3.5, jitter: 2 };

/**
 * The training loop the pipeline runs (`trainModel`), on the paper's MNIST teacher: 784-1200-1200-10,
 * input dropout 0.2, hidden dropout 0.5, max-norm 3.5, Adam, batch 100, every example shifted by up
 * to 2 pixels, batches gathered from a shuffled epoch of random 28x28 rows; examples per second of
 * one epoch's training (no validation pass). Interleaved with the PyTorch peer doing the same
 * (`bench/peers/torch_train_loop.py`). Unlike `mlp-train` (one fixed batch, tf.layers'
 * `optimizer.minimize`) this includes the per-step work of a real run: batch gathering, jitter,
 * dropout masks, the optimizer, the constraint, accuracy counting.
 */
export const benchCase: BenchCase = {
  name: 'train-loop',
  description: "the pipeline's training loop on the paper's regularised teacher (dropout, max-norm, jitter, Adam, batch 100)",
  backends: ['wasm-blas', 'wasm'],
  async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
    const rows = ctx.quick ? 400 : 3000;
    const rng = new Rng(7);
    const dim = SIZES[0];
    const x = new Float32Array(rows * dim);
    for (let i = 0; i < x.length; i++) x[i] = rng.next();
    const y = Int32Array.from({ length: rows }, () => rng.int(SIZES[3]));
    const train = { x, y, n: rows, dim, shape: [28, 28] };
    const before = tf.memory().numTensors;
    const model = buildMlp({ inputDim: dim, hidden: [SIZES[1], SIZES[2]], outputs: SIZES[3], activation: 'relu', inputDropout: SETUP.inputDropout, dropout: SETUP.dropout, maxNorm: SETUP.maxNorm, seed: 1 });
    let seed = 1;
    const timed = ctx.quick ? 1 : 2;
    // one warm-up and `timed` timed epochs per window, as the peer's run (`bestTimedEpoch`)
    const window = async (): Promise<number> => {
      const r = await trainModel({ model, train, epochs: 1 + timed, batchSize: SETUP.batch, optimizer: { name: 'adam', lr: 0.001 }, jitter: SETUP.jitter, seed: seed++, select: 'last' });
      return bestTimedEpoch(r.history);
    };
    try {
      const rounds = ctx.quick ? 1 : 4;
      const r = await interleaveWithPeer(rounds, window, () => torchTrainLoop(SIZES, { ...SETUP, rows, epochs: timed }), ctx.peer && !ctx.quick);
      return [{
        bench: 'train-loop-784-1200-1200-10', value: r.best, unit: 'ex/s',
        detail: `epochs of ${rows} rows; ${rounds} windows of 1 warm-up + ${timed} timed epochs, best; median ${r.median.toFixed(0)}`,
        ...(r.peer ? { peer: { name: torchLabel(r.peer), value: r.peer.examples_per_s } } : {}),
      }];
    } finally {
      model.dispose();
      const leaked = tf.memory().numTensors - before;
      if (leaked > 0) ctx.log.warn(`train-loop: ${leaked} tensors left over`);
    }
  },
};
