import * as tf from '@tensorflow/tfjs';
import { buildMlp, disposeOptimizer, timeWindow, trainStep, warmUp } from '../mlp.ts';
import { interleaveWithPeer, torchLabel, torchTrain } from '../peers/torch.ts';
import type { BenchCase, BenchContext, BenchMeasurement } from '../types.ts';

const BATCH = 128;
const NETS: readonly (readonly number[])[] = [
  [784, 1200, 1200, 10],
  [784, 800, 800, 10],
];

/**
 * Training throughput (examples/s) of a tf.layers MLP with relu hidden layers, batch 128, SGD with
 * momentum 0.9 on softmax cross-entropy through `optimizer.minimize`, on random data. Timed windows
 * alternate with runs of the PyTorch peer (same MLP, batch, optimizer); each side reports its best
 * (least disturbed) number. On cpu: two steps, no peer.
 */
export const benchCase: BenchCase = {
  name: 'mlp-train',
  description: 'MLP training throughput (tf.layers, SGD momentum, softmax cross-entropy, batch 128)',
  async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
    const out: BenchMeasurement[] = [];
    const slow = ctx.backend.tfBackend === 'cpu';
    for (const sizes of NETS) {
      const bench = `mlp-train-${sizes.join('-')}`;
      const before = tf.memory().numTensors;
      const s = buildMlp(sizes, BATCH);
      const opt = tf.train.momentum(0.01, 0.9);
      try {
        const step = () => trainStep(s, opt);
        warmUp(step, slow || ctx.quick ? 1 : 5, 1.5);
        const rounds = slow ? 1 : ctx.quick ? 2 : 4;
        const r = await interleaveWithPeer(
          rounds,
          () => timeWindow(step, slow ? 0 : ctx.quick ? 0.25 : ctx.seconds / rounds, slow ? 2 : 3),
          () => torchTrain(sizes, BATCH, ctx.quick ? 10 : 60),
          ctx.peer && !slow,
        );
        out.push({
          bench, value: r.best * BATCH, unit: 'ex/s',
          detail: `best of ${rounds} window${rounds > 1 ? 's' : ''}; median ${(r.median * BATCH).toFixed(0)}`,
          ...(r.peer ? { peer: { name: torchLabel(r.peer), value: r.peer.examples_per_s } } : {}),
        });
      } finally {
        disposeOptimizer(opt);
        s.dispose();
      }
      const leaked = tf.memory().numTensors - before;
      if (leaked > 0) ctx.log.warn(`${bench}: ${leaked} tensors left over`);
    }
    return out;
  },
};
