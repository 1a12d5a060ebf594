import * as tf from '@tensorflow/tfjs';
import { hardLoss } from '../../src/models/losses.ts';
import { ParamOptimizer } from '../../src/models/optimizer.ts';
import { buildCnn } from '../cnn.ts';
import { timeWindow, warmUp } from '../mlp.ts';
import { interleaveWithPeer, torchCnn, torchLabel } from '../peers/torch.ts';
import type { BenchCase, BenchContext, BenchMeasurement } from '../types.ts';

const BATCH = 128;
const NAME = `cnn-train-28x28x1-c32-c64-d256-b${BATCH}`;

/**
 * Training throughput (examples/s) of a small CNN (`bench/cnn.ts`: 2 conv 3x3 blocks of 32 / 64
 * filters with max-pooling, dense 256, 10 logits) on 28x28x1 random images, batch 128, Adam (lr
 * 1e-3) on softmax cross-entropy, stepped as the pipeline's training loop does (`tf.variableGrads`,
 * the loop's `hardLoss` and `ParamOptimizer`). Timed windows alternate with runs of
 * the PyTorch peer (`bench/peers/torch_cnn.py --mode train`, the same network, batch and optimizer);
 * each side reports its best window. On cpu: one short window, no peer.
 */
export const benchCase: BenchCase = {
  name: 'cnn-train',
  description: 'CNN training throughput (conv 32 / 64 + max-pool, dense 256, Adam, batch 128, 28x28x1)',
  async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
    const before = tf.memory().numTensors;
    const slow = ctx.backend.tfBackend === 'cpu';
    const s = buildCnn(BATCH);
    const vars = s.model.trainableWeights.map((w) => w.read() as tf.Variable);
    const opt = new ParamOptimizer({ name: 'adam', lr: 1e-3 }, vars);
    const y = tf.tidy(() => tf.argMax(s.yOneHot, 1).toInt() as tf.Tensor1D);
    const batch = { x: s.x as unknown as tf.Tensor2D, y };
    try {
      // One step of the pipeline's training loop (src/models/train.ts): gradients of the hard-label
      // loss by tf.variableGrads, then the loop's optimizer (native in-place Adam on wasm-blas).
      const step = () => {
        const { value, grads } = tf.variableGrads(() => hardLoss(s.model.apply(s.x, { training: true }) as tf.Tensor2D, batch), vars);
        opt.step(vars.map((v) => grads[v.name]), 1e-3, 0);
        tf.dispose([value, ...Object.values(grads)]);
      };
      warmUp(step, slow || ctx.quick ? 1 : 3, 1.5);
      const rounds = slow ? 1 : ctx.quick ? 2 : 3;
      const r = await interleaveWithPeer(
        rounds,
        () => timeWindow(step, slow ? 0 : ctx.quick ? 0.25 : ctx.seconds / rounds, slow ? 1 : 3),
        () => torchCnn('train', BATCH, ctx.quick ? 5 : 20),
        ctx.peer && !slow,
      );
      return [{
        bench: NAME, value: r.best * BATCH, unit: 'ex/s',
        detail: `best of ${rounds} window${rounds > 1 ? 's' : ''}; median ${(r.median * BATCH).toFixed(0)}`,
        ...(r.peer ? { peer: { name: torchLabel(r.peer), value: r.peer.examples_per_s } } : {}),
      }];
    } finally {
      opt.dispose();
      y.dispose();
      s.dispose();
      const leaked = tf.memory().numTensors - before;
      if (leaked > 0) ctx.log.warn(`${NAME}: ${leaked} tensors left over`);
    }
  },
};
