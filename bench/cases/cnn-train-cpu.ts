import * as tf from '@tensorflow/tfjs';
import { getBlasThreads, setBlasThreads } from '../../src/backend/native.ts';
import { buildCnn, cnnTrainer } from '../cnn.ts';
import { warmUp } from '../mlp.ts';
import { interleaveWithPeer, torchCnnCpu, torchLabel } from '../peers/torch.ts';
import type { BenchCase, BenchContext, BenchMeasurement } from '../types.ts';

const BATCH = 128;

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
 * The CPU-cost case of the bench CNN's training (`batchNorm`: with batch norm on both conv blocks,
 * as `cnn-train-bn`), named `name`: see {@link benchCase}.
 */
export function cnnCpuCase(name: string, batchNorm: boolean): BenchCase {
  const bench = `${name}-28x28x1-c32-c64-d256-b${BATCH}`;
  return {
    name,
    description: `CNN training${batchNorm ? ' with batch norm' : ''} CPU cost on 1 thread (examples per CPU-second), vs PyTorch on 1 thread`,
    backends: ['wasm-blas'],
    async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
      const threads = getBlasThreads();
      setBlasThreads(1);
      const before = tf.memory().numTensors;
      const s = buildCnn(BATCH, 1, batchNorm);
      const trainer = cnnTrainer(s);
      try {
        warmUp(() => trainer.step(), ctx.quick ? 1 : 3, 1.5);
        const rounds = ctx.quick ? 2 : 4;
        const r = await interleaveWithPeer(
          rounds,
          () => cpuWindow(() => trainer.step(), ctx.quick ? 0.25 : ctx.seconds / rounds, 2),
          () => torchCnnCpu(BATCH, ctx.quick ? 4 : 12, batchNorm),
          ctx.peer,
        );
        return [{
          bench, value: r.best, unit: 'ex/cpu-s',
          detail: `1 thread; best of ${rounds} windows; median ${r.median.toFixed(0)}`,
          ...(r.peer ? { peer: { name: `${torchLabel(r.peer)}, OpenBLAS 1 thread`, value: r.peer.examples_per_s } } : {}),
        }];
      } finally {
        trainer.dispose();
        s.dispose();
        if (threads !== undefined) setBlasThreads(threads);
        const leaked = tf.memory().numTensors - before;
        if (leaked > 0) ctx.log.warn(`${bench}: ${leaked} tensors left over`);
      }
    },
  };
}

/**
 * The CPU cost of the bench CNN's training (as `cnn-train`), on one thread on both sides: examples
 * per CPU-second of the process (OpenBLAS set to 1 thread for the duration), against PyTorch on one
 * thread (`bench/peers/torch_cnn.py --mode train --threads 1`, OPENBLAS_NUM_THREADS=1), interleaved.
 * It hardly depends on other load on the machine (a step waiting for a core costs no CPU time), so
 * it compares the work per step. Only on wasm-blas.
 */
export const benchCase: BenchCase = cnnCpuCase('cnn-train-cpu', false);
