import * as tf from '@tensorflow/tfjs';
import { buildCnn, cnnTrainer } from '../cnn.ts';
import { timeWindow, warmUp } from '../mlp.ts';
import { interleaveWithPeer, torchCnn, torchLabel } from '../peers/torch.ts';
import type { BenchCase, BenchContext, BenchMeasurement } from '../types.ts';

const BATCH = 128;
const NAME = `cnn-train-bn-28x28x1-c32-c64-d256-b${BATCH}`;

/**
 * Training throughput (examples/s) of the `cnn-train` CNN with batch normalisation on both conv
 * blocks (`buildCnn(batch, seed, true)` in `bench/cnn.ts`: conv without bias -> batch norm -> relu ->
 * max-pool, as the `cnn` architecture builds `batch_norm: true`), batch 128, Adam (lr 1e-3), stepped
 * as the pipeline's loop does. Timed windows alternate with runs of the PyTorch peer
 * (`bench/peers/torch_cnn.py --mode train --batch-norm`: BatchNorm2d, eps 1e-3, momentum 0.01);
 * each side reports its best window. On cpu: one short window, no peer.
 */
export const benchCase: BenchCase = {
  name: 'cnn-train-bn',
  description: 'CNN training throughput with batch norm (conv 32 / 64 + batch norm + max-pool, dense 256, Adam, batch 128, 28x28x1)',
  // Not the stock wasm backend: it has no Conv2DBackpropFilter kernel (wasm-blas adds a native one).
  backends: ['tensorflow', 'wasm-blas', 'cpu'],
  async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
    const before = tf.memory().numTensors;
    const slow = ctx.backend.tfBackend === 'cpu';
    const s = buildCnn(BATCH, 1, true);
    const trainer = cnnTrainer(s);
    try {
      const step = () => trainer.step();
      warmUp(step, slow || ctx.quick ? 1 : 3, 1.5);
      const rounds = slow ? 1 : ctx.quick ? 2 : 3;
      const r = await interleaveWithPeer(
        rounds,
        () => timeWindow(step, slow ? 0 : ctx.quick ? 0.25 : ctx.seconds / rounds, slow ? 1 : 3),
        () => torchCnn('train', BATCH, ctx.quick ? 5 : 20, true),
        ctx.peer && !slow,
      );
      return [{
        bench: NAME, value: r.best * BATCH, unit: 'ex/s',
        detail: `best of ${rounds} window${rounds > 1 ? 's' : ''}; median ${(r.median * BATCH).toFixed(0)}`,
        ...(r.peer ? { peer: { name: torchLabel(r.peer), value: r.peer.examples_per_s } } : {}),
      }];
    } finally {
      trainer.dispose();
      s.dispose();
      const leaked = tf.memory().numTensors - before;
      if (leaked > 0) ctx.log.warn(`${NAME}: ${leaked} tensors left over`);
    }
  },
};
