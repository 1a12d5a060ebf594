/**
 * Profiling harness: trains the 784-1200-1200-10 MLP (batch 128, SGD momentum) for a few seconds
 * on one backend and prints ex/s. Profile with
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/profile-train.ts [backend] [seconds]
 * With DISTILL_KERNEL_STATS=1 it prints the time spent per tfjs kernel (engine profiling).
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/select.ts';
import { buildMlp, disposeOptimizer, timeWindows, trainStep } from './mlp.ts';

async function main(): Promise<void> {
  const backend = process.argv[2] ?? 'wasm-blas';
  const seconds = Number(process.argv[3] ?? 5);
  const info = await initBackend(backend);
  tf.enableProdMode();
  const s = buildMlp([784, 1200, 1200, 10], 128);
  const opt = tf.train.momentum(0.01, 0.9);
  if (process.env.DISTILL_KERNEL_STATS === '1') {
    for (let i = 0; i < 3; i++) trainStep(s, opt);
    const prof = await tf.profile(() => {
      for (let i = 0; i < 10; i++) trainStep(s, opt);
    });
    const by = new Map<string, { ms: number; n: number }>();
    for (const k of prof.kernels) {
      const e = by.get(k.name) ?? { ms: 0, n: 0 };
      e.ms += Number(k.kernelTimeMs);
      e.n++;
      by.set(k.name, e);
    }
    for (const [name, e] of [...by.entries()].sort((a, b) => b[1].ms - a[1].ms)) {
      console.log(`${name.padEnd(24)} ${(e.ms / 10).toFixed(3).padStart(8)} ms/step  ${(e.n / 10).toFixed(0)} calls/step`);
    }
  }
  const cpu0 = process.cpuUsage();
  const t = timeWindows(() => trainStep(s, opt), { warmup: 3, windows: 5, windowSeconds: seconds / 5, minReps: 3 });
  const cpu = process.cpuUsage(cpu0);
  const cpuMsPerStep = (cpu.user + cpu.system) / 1000 / (t.reps + 3);
  console.log(`${info.name}: process CPU ${cpuMsPerStep.toFixed(2)} ms/step (all threads; with 1 BLAS thread ~ the step's work, less sensitive to other load)`);
  console.log(`${info.name}: best ${(t.best * 128).toFixed(0)} ex/s (${(1000 / t.best).toFixed(2)} ms/step), median ${(t.median * 128).toFixed(0)} ex/s, ${t.reps} steps`);
  disposeOptimizer(opt);
  s.dispose();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
