/**
 * Child process of the `mlp-train-gemm` bench case: MLP training on wasm-blas with whichever
 * native addon `DISTILL_NATIVE_ADDON` names (or the default build). Started with the layer sizes
 * as its argument (`784,1200,1200,10`), it warms up, prints `{"ready":true,"detail":...}`, then
 * for each line `<seconds>` on stdin times one window and prints `{"rate": examples/s}`; a line
 * `q` (or end of input) ends it. Kept alive between windows so that the parent can alternate
 * two such children (two GEMMs) without paying their start-up each time.
 */
import * as tf from '@tensorflow/tfjs';
import { createInterface } from 'node:readline';
import { blasKernelsEnabled } from '../src/backend/blas-kernels.ts';
import { initBackend } from '../src/backend/select.ts';
import { buildMlp, disposeOptimizer, timeWindow, trainStep, warmUp } from './mlp.ts';

const BATCH = 128;
const sizes = (process.argv[2] ?? '').split(',').map(Number);
if (sizes.length < 2 || sizes.some((n) => !Number.isInteger(n) || n < 1)) {
  process.stderr.write(`gemm-child: expected layer sizes such as 784,1200,1200,10, got '${process.argv[2] ?? ''}'\n`);
  process.exit(2);
}
await initBackend('wasm-blas');
const detail = blasKernelsEnabled();
if (!detail) {
  process.stderr.write('gemm-child: the native kernels are not enabled on wasm-blas\n');
  process.exit(3);
}
const s = buildMlp(sizes, BATCH);
const opt = tf.train.momentum(0.01, 0.9);
const step = () => trainStep(s, opt);
warmUp(step, 5, 1.5);
process.stdout.write(`${JSON.stringify({ ready: true, detail })}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === 'q') break;
  const seconds = Number(line);
  const rate = timeWindow(step, seconds > 0 ? seconds : 1, 3) * BATCH;
  process.stdout.write(`${JSON.stringify({ rate })}\n`);
}
disposeOptimizer(opt);
s.dispose();
process.exit(0);
