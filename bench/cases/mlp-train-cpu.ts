import * as tf from '@tensorflow/tfjs';
import { getBlasThreads, setBlasThreads } from '../../src/backend/native.ts';
import { buildMlp, disposeOptimizer, trainStep, warmUp } from '../mlp.ts';
import { interleaveWithPeer, torchLabel, torchTrainCpu } from '../peers/torch.ts';
import type { BenchCase, BenchContext, BenchMeasurement } from '../types.ts';

const BATCH = 128;
const NETS: readonly (readonly number[])[] = [
  [784, 1200, 1200, 10],
  [784, 800, 800, 10],
];

/** Examples per CPU-second of this process over one window of at least `minReps` steps and about `seconds` of wall time. */
function cpuWindow(step: () => void, seconds: number, minReps: number): number {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  while (n < minReps || performance.now() - t0 < seconds * 1000) {
    step();
    n++;
  }
  const c = process.cpuUsage(c0);
  return (n * BATCH) / ((c.user + c.system) / 1e6);
}

/**
 * The CPU cost of MLP training, on one thread on both sides: examples per CPU-second of the
 * process (OpenBLAS set to 1 thread for the duration), against PyTorch on one thread
 * (`bench/peers/torch_train_cpu.py`, OPENBLAS_NUM_THREADS=1), interleaved as for `mlp-train`.
 * Unlike wall-clock throughput this hardly depends on what else runs on the machine (a step that
 * waits for a core costs no CPU time), so it compares the work each implementation does per
 * step; cache and memory-bandwidth contention still add some noise. Only on wasm-blas.
 */
export const benchCase: BenchCase = {
  name: 'mlp-train-cpu',
  description: 'MLP training CPU cost on 1 thread (examples per CPU-second), vs PyTorch on 1 thread',
  backends: ['wasm-blas'],
  async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
    const out: BenchMeasurement[] = [];
    const threads = getBlasThreads();
    setBlasThreads(1);
    try {
      for (const sizes of NETS) {
        const bench = `mlp-train-cpu-${sizes.join('-')}`;
        const before = tf.memory().numTensors;
        const s = buildMlp(sizes, BATCH);
        const opt = tf.train.momentum(0.01, 0.9);
        try {
          const step = () => trainStep(s, opt);
          warmUp(step, ctx.quick ? 1 : 5, 1.5);
          const rounds = ctx.quick ? 2 : 5;
          const r = await interleaveWithPeer(
            rounds,
            () => cpuWindow(step, ctx.quick ? 0.25 : ctx.seconds / rounds, 3),
            () => torchTrainCpu(sizes, BATCH, ctx.quick ? 10 : 40),
            ctx.peer,
          );
          out.push({
            bench, value: r.best, unit: 'ex/cpu-s',
            detail: `1 thread; best of ${rounds} windows; median ${r.median.toFixed(0)}`,
            ...(r.peer ? { peer: { name: `${torchLabel(r.peer)}, OpenBLAS 1 thread`, value: r.peer.examples_per_s } } : {}),
          });
        } finally {
          disposeOptimizer(opt);
          s.dispose();
        }
        const leaked = tf.memory().numTensors - before;
        if (leaked > 0) ctx.log.warn(`${bench}: ${leaked} tensors left over`);
      }
    } finally {
      if (threads !== undefined) setBlasThreads(threads);
    }
    return out;
  },
};
