import * as tf from '@tensorflow/tfjs';
import { loadNative } from '../src/backend/native.ts';
import { initBackend } from '../src/backend/select.ts';
import { buildMlp, trainStep } from './mlp.ts';
const l = loadNative(); if (!l.ok) throw new Error(l.reason);
const acc: Record<string, number> = {};
const orig = l.addon as any; const w: any = { setThreads: orig.setThreads, getThreads: orig.getThreads, config: orig.config };
(l as any).addon = w;
for (const k of ['sgemm', 'momentum', 'biasAct', 'colSum'] as const) {
  const f = orig[k];
  w[k] = (...a: unknown[]) => { const t = performance.now(); const r = f(...a); acc[k] = (acc[k] ?? 0) + performance.now() - t; return r; };
}
await initBackend('wasm-blas');
const s = buildMlp([784, 1200, 1200, 10], 128);
const opt = tf.train.momentum(0.01, 0.9);
for (let i = 0; i < 5; i++) trainStep(s, opt);
for (const k in acc) acc[k] = 0;
const N = 60; const t0 = performance.now();
for (let i = 0; i < N; i++) trainStep(s, opt);
const tot = (performance.now() - t0) / N;
const nat = Object.values(acc).reduce((a, b) => a + b, 0) / N;
console.log(`step ${tot.toFixed(2)} ms: ` + Object.entries(acc).map(([k, v]) => `${k} ${(v / N).toFixed(2)}`).join(', ') + `; everything else ${(tot - nat).toFixed(2)} ms`);
