import * as tf from '@tensorflow/tfjs';
import { buildMlp, disposeOptimizer, timeWindows, trainStep } from '../mlp.ts';
import { bestOf, torchLabel, torchTrain } from '../peers/torch.ts';
import type { BenchCase, BenchContext, BenchMeasurement, PeerMeasurement } from '../types.ts';

const BATCH = 128;
const NETS: readonly (readonly number[])[] = [
  [784, 1200, 1200, 10],
  [784, 800, 800, 10],
];

function benchName(sizes: readonly number[]): string {
  return `mlp-train-${sizes.join('-')}`;
}

/**
 * Training throughput (examples/s) of a tf.layers MLP with relu hidden layers, batch 128, SGD with
 * momentum 0.9 on softmax cross-entropy through `optimizer.minimize`, on random data. Reports the
 * best of several timed windows (median in the detail); the peer likewise the best of 3 runs.
 */
export const benchCase: BenchCase = {
  name: 'mlp-train',
  description: 'MLP training throughput (tf.layers, SGD momentum, softmax cross-entropy, batch 128)',
  async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
    const out: BenchMeasurement[] = [];
    const slow = ctx.backend.tfBackend === 'cpu';
    for (const sizes of NETS) {
      const before = tf.memory().numTensors;
      const s = buildMlp(sizes, BATCH);
      const opt = tf.train.momentum(0.01, 0.9);
      try {
        const t = timeWindows(() => trainStep(s, opt), slow
          ? { warmup: 1, windows: 1, windowSeconds: 0, minReps: 2 }
          : { warmup: ctx.quick ? 1 : 5, windows: ctx.quick ? 2 : 6, windowSeconds: ctx.quick ? 0.25 : ctx.seconds / 6, minReps: 3 });
        out.push({
          bench: benchName(sizes), value: t.best * BATCH, unit: 'ex/s',
          detail: `best window; median ${(t.median * BATCH).toFixed(0)} ex/s over ${t.reps} steps`,
        });
      } finally {
        disposeOptimizer(opt);
        s.dispose();
      }
      const leaked = tf.memory().numTensors - before;
      if (leaked > 0) ctx.log.warn(`${benchName(sizes)}: ${leaked} tensors left over`);
    }
    return out;
  },
  async peers(ctx): Promise<PeerMeasurement[]> {
    const out: PeerMeasurement[] = [];
    for (const sizes of NETS) {
      const r = bestOf(ctx.quick ? 1 : 3, () => torchTrain(sizes, BATCH, ctx.quick ? 10 : 60));
      if (r) out.push({ bench: benchName(sizes), peer: torchLabel(r), value: r.examples_per_s, unit: 'ex/s' });
    }
    return out;
  },
};
