import * as tf from '@tensorflow/tfjs';
import { buildCnn } from '../cnn.ts';
import { timeWindow, warmUp } from '../mlp.ts';
import { interleaveWithPeer, torchCnn, torchLabel } from '../peers/torch.ts';
import type { BenchCase, BenchContext, BenchMeasurement } from '../types.ts';

const BATCH = 128;
const NAME = `cnn-infer-28x28x1-c32-c64-d256-b${BATCH}`;

/**
 * Inference throughput (examples/s) of the bench CNN (`bench/cnn.ts`) through `model.predict`,
 * batch 128, with the PyTorch peer (`bench/peers/torch_cnn.py --mode infer`, no grad) interleaved.
 */
export const benchCase: BenchCase = {
  name: 'cnn-infer',
  description: 'CNN batch inference throughput (model.predict, batch 128, 28x28x1)',
  async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
    const before = tf.memory().numTensors;
    const slow = ctx.backend.tfBackend === 'cpu';
    const s = buildCnn(BATCH);
    try {
      const predict = () => tf.dispose(s.model.predict(s.x, { batchSize: BATCH }));
      warmUp(predict, slow || ctx.quick ? 1 : 3, 1.5);
      const rounds = slow ? 1 : ctx.quick ? 2 : 3;
      const r = await interleaveWithPeer(
        rounds,
        () => timeWindow(predict, slow ? 0 : ctx.quick ? 0.25 : ctx.seconds / rounds, slow ? 1 : 3),
        () => torchCnn('infer', BATCH, ctx.quick ? 5 : 30),
        ctx.peer && !slow,
      );
      return [{
        bench: NAME, value: r.best * BATCH, unit: 'ex/s',
        detail: `best of ${rounds} window${rounds > 1 ? 's' : ''}; median ${(r.median * BATCH).toFixed(0)}`,
        ...(r.peer ? { peer: { name: torchLabel(r.peer), value: r.peer.examples_per_s } } : {}),
      }];
    } finally {
      s.dispose();
      const leaked = tf.memory().numTensors - before;
      if (leaked > 0) ctx.log.warn(`${NAME}: ${leaked} tensors left over`);
    }
  },
};
