import * as tf from '@tensorflow/tfjs';
import { distillationLoss } from '../../src/distill/losses.ts';
import { buildMlp } from '../../src/models/mlp.ts';
import { trainModel, type LossFn, type TrainSet } from '../../src/models/train.ts';
import { Rng } from '../../src/util/rng.ts';
import { bestTimedEpoch, interleaveWithPeer, torchDistillLoop, torchLabel } from '../peers/torch.ts';
import type { BenchCase, BenchContext, BenchMeasurement } from '../types.ts';

const SIZES = [64, 32, 1000] as const;
const SETUP = { batch: 128, lr: 0.003, T: 2, alpha: 0.7 };

/**
 * Distillation in the pipeline's training loop (`trainModel` with `distillationLoss({ T: 2, alpha:
 * 0.7, teacher: 'probabilities' })`) on the synthetic-1k student: 64-32-1000, ReLU, no dropout /
 * max-norm / jitter, Adam lr 0.003, batch 128, batches gathered from a shuffled epoch of random rows
 * with their rows of teacher probabilities (softmax of random logits * 3) and labels; examples per
 * second of the best timed epoch, each window (ours and the peer's alike) one warm-up epoch and
 * then 2 timed ones (`bestTimedEpoch`). Measured twice: with the soft-target loss
 * (`distill-loop-64-32-1000`) and with the hard-label cross-entropy alone (`hard-loop-64-32-1000`),
 * so the difference is the soft term's cost at C = 1,000. Each interleaved with the PyTorch peer
 * doing the same (`bench/peers/torch_distill_loop.py --loss soft|hard`).
 */
export const benchCase: BenchCase = {
  name: 'distill-loop',
  description: "the pipeline's training loop with the distillation loss (T = 2, alpha = 0.7, teacher probabilities) vs hard labels, 64-32-1000 student, Adam, batch 128",
  backends: ['wasm-blas', 'wasm'],
  async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
    const rows = ctx.quick ? 1280 : 12800;
    const [dim, hidden, classes] = SIZES;
    const rng = new Rng(7);
    const x = new Float32Array(rows * dim);
    for (let i = 0; i < x.length; i++) x[i] = rng.next();
    const y = Int32Array.from({ length: rows }, () => rng.int(classes));
    // Teacher probabilities: per row softmax(3 * N(0, 1) logits).
    const targets = new Float32Array(rows * classes);
    const z = new Float64Array(classes);
    for (let r = 0; r < rows; r++) {
      let max = -Infinity;
      for (let c = 0; c < classes; c++) max = Math.max(max, (z[c] = 3 * rng.normal()));
      let sum = 0;
      for (let c = 0; c < classes; c++) sum += z[c] = Math.exp(z[c]! - max);
      for (let c = 0; c < classes; c++) targets[r * classes + c] = z[c]! / sum;
    }
    const train: TrainSet = { x, y, n: rows, dim, targets, targetDim: classes };
    const rounds = ctx.quick ? 1 : 4;
    const withPeer = ctx.peer && !ctx.quick;
    const variants: { bench: string; loss: 'soft' | 'hard'; fn: LossFn | undefined }[] = [
      { bench: `distill-loop-${SIZES.join('-')}`, loss: 'soft', fn: distillationLoss({ T: SETUP.T, alpha: SETUP.alpha, teacher: 'probabilities' }) },
      { bench: `hard-loop-${SIZES.join('-')}`, loss: 'hard', fn: undefined },
    ];
    const out: BenchMeasurement[] = [];
    const before = tf.memory().numTensors;
    try {
      for (const v of variants) {
        const model = buildMlp({ inputDim: dim, hidden: [hidden], outputs: classes, activation: 'relu', inputDropout: 0, dropout: 0, maxNorm: null, seed: 1 });
        try {
          let seed = 1;
          const timed = ctx.quick ? 1 : 2;
          const window = async (): Promise<number> => {
            const r = await trainModel({ model, train, ...(v.fn ? { loss: v.fn } : {}), epochs: 1 + timed, batchSize: SETUP.batch, optimizer: { name: 'adam', lr: SETUP.lr }, seed: seed++, select: 'last' });
            return bestTimedEpoch(r.history);
          };
          const r = await interleaveWithPeer(rounds, window, () => torchDistillLoop(SIZES, { ...SETUP, rows, epochs: timed, loss: v.loss }), withPeer);
          out.push({
            bench: v.bench, value: r.best, unit: 'ex/s',
            detail: `${v.loss === 'soft' ? `soft T=${SETUP.T} alpha=${SETUP.alpha}` : 'hard CE'}; epochs of ${rows} rows; ${rounds} windows of 1 warm-up + ${timed} timed epochs, best; median ${r.median.toFixed(0)}`,
            ...(r.peer ? { peer: { name: torchLabel(r.peer), value: r.peer.examples_per_s } } : {}),
          });
        } finally {
          model.dispose();
        }
      }
      return out;
    } finally {
      const leaked = tf.memory().numTensors - before;
      if (leaked > 0) ctx.log.warn(`distill-loop: ${leaked} tensors left over`);
    }
  },
};
