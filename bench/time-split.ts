/**
 * Where a training step's time goes on wasm-blas: wall time per tfjs kernel (every kernel of the
 * wasm backend wrapped with a timer) and inside the native addon's functions; the rest is engine
 * and layers JavaScript. `node --import tsx bench/time-split.ts [784,1200,1200,10] [steps]`
 */
import * as tf from '@tensorflow/tfjs';
import { loadNative } from '../src/backend/native.ts';
import { initBackend } from '../src/backend/select.ts';
import { buildMlp, disposeOptimizer, trainStep } from './mlp.ts';

const sizes = (process.argv[2] ?? '784,1200,1200,10').split(',').map(Number);
const steps = Number(process.argv[3] ?? 100);
const l = loadNative();
if (!l.ok) throw new Error(l.reason);
const orig = l.addon as unknown as Record<string, (...a: unknown[]) => unknown>;
const addon: Record<string, (...a: unknown[]) => unknown> = {};
const nat = new Map<string, number>();
for (const k of Object.getOwnPropertyNames(orig)) {
  const f = orig[k]!;
  addon[k] = (...a: unknown[]) => {
    const t0 = performance.now();
    const r = f(...a);
    nat.set(k, (nat.get(k) ?? 0) + performance.now() - t0);
    return r;
  };
}
(l as { addon: unknown }).addon = addon;
await initBackend('wasm-blas');
tf.enableProdMode();
const kern = new Map<string, { ms: number; n: number }>();
for (const k of tf.getKernelsForBackend('wasm')) {
  const f = k.kernelFunc;
  tf.unregisterKernel(k.kernelName, 'wasm');
  tf.registerKernel({
    ...k,
    kernelFunc: (args) => {
      const t0 = performance.now();
      const r = f(args);
      const e = kern.get(k.kernelName) ?? { ms: 0, n: 0 };
      e.ms += performance.now() - t0;
      e.n++;
      kern.set(k.kernelName, e);
      return r;
    },
  });
}
const s = buildMlp(sizes, 128);
const opt = tf.train.momentum(0.01, 0.9);
for (let i = 0; i < 10; i++) trainStep(s, opt);
for (let r = 0; r < 3; r++) {
  nat.clear();
  kern.clear();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let i = 0; i < steps; i++) trainStep(s, opt);
  const tot = (performance.now() - t0) / steps;
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1000 / steps;
  const kSum = [...kern.values()].reduce((a, b) => a + b.ms, 0) / steps;
  const mom = (nat.get('momentum') ?? 0) / steps;
  console.log(`step ${tot.toFixed(2)} ms (${(128000 / tot).toFixed(0)} ex/s), process CPU ${cpu.toFixed(2)} ms: kernels ${kSum.toFixed(2)}, momentum ${mom.toFixed(2)}, other JS ${(tot - kSum - mom).toFixed(2)}`);
  console.log('  ' + [...kern].sort((a, b) => b[1].ms - a[1].ms).map(([k, e]) => `${k} ${(e.ms / steps).toFixed(3)}/${e.n / steps}`).join(', '));
  console.log('  native: ' + [...nat].map(([k, v]) => `${k} ${(v / steps).toFixed(3)}`).join(', '));
}
disposeOptimizer(opt);
s.dispose();
