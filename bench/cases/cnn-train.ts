import * as tf from '@tensorflow/tfjs';
import { buildCnn, cnnTrainer } from '../cnn.ts';
import { timeWindow, warmUp } from '../mlp.ts';
import { interleaveWithPeer, torchCnn, torchLabel } from '../peers/torch.ts';
import type { BenchCase, BenchContext, BenchMeasurement } from '../types.ts';

const BATCH = 128;

/**
 * The wall-clock case of the bench CNN's training (`batchNorm`: batch norm on both conv blocks, as
 * `cnn-train-bn`), named `name`: see {@link benchCase}.
 */
export function cnnTrainCase(name: string, batchNorm: boolean): BenchCase {
  const bench = `${name}-28x28x1-c32-c64-d256-b${BATCH}`;
  return {
    name,
    description: `CNN training throughput${batchNorm ? ' with batch norm' : ''} (conv 32 / 64${batchNorm ? ' + batch norm' : ''} + max-pool, dense 256, Adam, batch 128, 28x28x1)`,
    // Not the stock wasm backend: it has no Conv2DBackpropFilter kernel (wasm-blas adds a native one).
    backends: ['tensorflow', 'wasm-blas', 'cpu'],
    async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
      const before = tf.memory().numTensors;
      const slow = ctx.backend.tfBackend === 'cpu';
      const s = buildCnn(BATCH, 1, batchNorm);
      const trainer = cnnTrainer(s);
      try {
        const step = () => trainer.step();
        warmUp(step, slow || ctx.quick ? 1 : 3, 1.5);
        const rounds = slow ? 1 : ctx.quick ? 2 : 3;
        const r = await interleaveWithPeer(
          rounds,
          () => timeWindow(step, slow ? 0 : ctx.quick ? 0.25 : ctx.seconds / rounds, slow ? 1 : 3),
          () => torchCnn('train', BATCH, ctx.quick ? 5 : 20, batchNorm),
          ctx.peer && !slow,
        );
        return [{
          bench, value: r.best * BATCH, unit: 'ex/s',
          detail: `best of ${rounds} window${rounds > 1 ? 's' : ''}; median ${(r.median * BATCH).toFixed(0)}`,
          ...(r.peer ? { peer: { name: torchLabel(r.peer), value: r.peer.examples_per_s } } : {}),
        }];
      } finally {
        trainer.dispose();
        s.dispose();
        const leaked = tf.memory().numTensors - before;
        if (leaked > 0) ctx.log.warn(`${bench}: ${leaked} tensors left over`);
      }
    },
  };
}

/**
 * Training throughput (examples/s) of a small CNN (`bench/cnn.ts`: 2 conv 3x3 blocks of 32 / 64
 * filters with max-pooling, dense 256, 10 logits) on 28x28x1 random images, batch 128, Adam (lr
 * 1e-3) on softmax cross-entropy, stepped as the pipeline's training loop does (`tf.variableGrads`,
 * the loop's `hardLoss` and `ParamOptimizer`). Timed windows alternate with runs of
 * the PyTorch peer (`bench/peers/torch_cnn.py --mode train`, the same network, batch and optimizer);
 * each side reports its best window. On cpu: one short window, no peer.
 */
export const benchCase: BenchCase = cnnTrainCase('cnn-train', false);
