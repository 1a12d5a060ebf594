import * as tf from '@tensorflow/tfjs';
import { buildMlp, timeWindow, warmUp } from '../mlp.ts';
import { interleaveWithPeer, torchInfer, torchLabel } from '../peers/torch.ts';
import type { BenchCase, BenchContext, BenchMeasurement } from '../types.ts';

const BATCH = 512;
const NET = [784, 1200, 1200, 10] as const;
const NAME = `mlp-infer-${NET.join('-')}-b${BATCH}`;

/**
 * Batch inference throughput (examples/s) of the MLP through `model.predict`, batch 512, with the
 * PyTorch peer (no grad) interleaved as for training.
 */
export const benchCase: BenchCase = {
  name: 'mlp-infer',
  description: 'MLP batch inference throughput (model.predict, batch 512)',
  async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
    const before = tf.memory().numTensors;
    const slow = ctx.backend.tfBackend === 'cpu';
    const s = buildMlp(NET, BATCH);
    try {
      const predict = () => tf.dispose(s.model.predict(s.x, { batchSize: BATCH }));
      warmUp(predict, slow || ctx.quick ? 1 : 3, 1.5);
      const rounds = slow ? 1 : ctx.quick ? 2 : 3;
      const r = await interleaveWithPeer(
        rounds,
        () => timeWindow(predict, slow ? 0 : ctx.quick ? 0.25 : ctx.seconds / rounds, slow ? 2 : 3),
        () => torchInfer(NET, BATCH, ctx.quick ? 10 : 40),
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
