import * as tf from '@tensorflow/tfjs';
import { buildMlp, timeWindows } from '../mlp.ts';
import { bestOf, torchInfer, torchLabel } from '../peers/torch.ts';
import type { BenchCase, BenchContext, BenchMeasurement, PeerMeasurement } from '../types.ts';

const BATCH = 512;
const NET = [784, 1200, 1200, 10] as const;
const NAME = `mlp-infer-${NET.join('-')}-b${BATCH}`;

/** Batch inference throughput (examples/s) of the MLP through `model.predict`, batch 512. */
export const benchCase: BenchCase = {
  name: 'mlp-infer',
  description: 'MLP batch inference throughput (model.predict, batch 512)',
  async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
    const before = tf.memory().numTensors;
    const slow = ctx.backend.tfBackend === 'cpu';
    const s = buildMlp(NET, BATCH);
    try {
      const t = timeWindows(() => tf.dispose(s.model.predict(s.x, { batchSize: BATCH })), slow
        ? { warmup: 1, windows: 1, windowSeconds: 0, minReps: 2 }
        : { warmup: ctx.quick ? 1 : 3, windows: ctx.quick ? 2 : 4, windowSeconds: ctx.quick ? 0.25 : ctx.seconds / 4, minReps: 3 });
      return [{ bench: NAME, value: t.best * BATCH, unit: 'ex/s', detail: `best window; median ${(t.median * BATCH).toFixed(0)} ex/s over ${t.reps} batches` }];
    } finally {
      s.dispose();
      const leaked = tf.memory().numTensors - before;
      if (leaked > 0) ctx.log.warn(`${NAME}: ${leaked} tensors left over`);
    }
  },
  async peers(ctx): Promise<PeerMeasurement[]> {
    const r = bestOf(ctx.quick ? 1 : 3, () => torchInfer(NET, BATCH, ctx.quick ? 10 : 60));
    return r ? [{ bench: NAME, peer: torchLabel(r), value: r.examples_per_s, unit: 'ex/s' }] : [];
  },
};
