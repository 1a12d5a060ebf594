/**
 * Where a CNN training step's time goes, per tfjs kernel: the `model: {type: cnn}` architecture
 * (`src/models/arch/cnn.ts`) of the MNIST configs (conv 32 k5 pool 2, conv 64 k5 pool 2, dense 512,
 * dropout 0.5), or with `--bench` the bench cases' CNN (`bench/cnn.ts`: conv 3x3 32 / 64, dense
 * 256), with or without batch norm on both conv blocks, on random 28x28x1 images, stepped as the
 * pipeline's loop does (`tf.variableGrads`, `hardLoss`, `ParamOptimizer` Adam).
 *
 *   node --import tsx bench/profile-cnn.ts [--bn] [--bench] [--batch 100] [--steps 20] [--backend wasm-blas]
 *
 * Prints ex/s and the wall time per kernel (every kernel of the active backend wrapped with a
 * timer); the rest of the step is engine and tf.layers JavaScript.
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend/select.ts';
import { buildCnn, cnnConfigSchema } from '../src/models/arch/cnn.ts';
import { hardLoss } from '../src/models/losses.ts';
import { ParamOptimizer } from '../src/models/optimizer.ts';
import { Rng } from '../src/util/rng.ts';
import { buildCnn as buildBenchCnn } from './cnn.ts';

const { values: opts } = parseArgs({
  options: {
    bn: { type: 'boolean', default: false },
    bench: { type: 'boolean', default: false },
    batch: { type: 'string', default: '100' },
    steps: { type: 'string', default: '20' },
    backend: { type: 'string', default: 'wasm-blas' },
  },
});
const batch = Number(opts.batch);
const steps = Number(opts.steps);
const info = await initBackend(opts.backend);
tf.enableProdMode();
const bn = opts.bn ?? false;
const config = cnnConfigSchema.parse({
  type: 'cnn',
  conv: [{ filters: 32, kernel: 5, pool: 2, batch_norm: bn }, { filters: 64, kernel: 5, pool: 2, batch_norm: bn }],
  dense: [512],
  dropout: 0.5,
});
const model = opts.bench ? buildBenchCnn(batch, 1, bn).model : buildCnn(config, { inputDim: 784, shape: [28, 28, 1], outputs: 10, seed: 1 });
const rng = new Rng(1);
const xv = new Float32Array(batch * 784);
for (let i = 0; i < xv.length; i++) xv[i] = rng.normal();
const yv = new Int32Array(batch);
for (let i = 0; i < batch; i++) yv[i] = rng.int(10);
const x = opts.bench ? tf.tensor4d(xv, [batch, 28, 28, 1]) : tf.tensor2d(xv, [batch, 784]);
const y = tf.tensor1d(yv, 'int32');
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
const opt = new ParamOptimizer({ name: 'adam', lr: 1e-3 }, vars);
const step = (): void => {
  const { value, grads } = tf.variableGrads(() => hardLoss(model.apply(x, { training: true }) as tf.Tensor2D, { x: x as tf.Tensor2D, y }), vars);
  opt.step(vars.map((v) => grads[v.name]), 1e-3, 0);
  tf.dispose([value, ...Object.values(grads)]);
};

const kern = new Map<string, { ms: number; n: number }>();
for (const k of tf.getKernelsForBackend(info.tfBackend)) {
  const f = k.kernelFunc;
  tf.unregisterKernel(k.kernelName, info.tfBackend);
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
for (let i = 0; i < 3; i++) step();
const before = tf.memory().numTensors;
for (let r = 0; r < 2; r++) {
  kern.clear();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  const tot = (performance.now() - t0) / steps;
  const kSum = [...kern.values()].reduce((a, b) => a + b.ms, 0) / steps;
  console.log(`${info.name}, batch ${batch}, batch norm ${bn}: step ${tot.toFixed(1)} ms (${((batch * 1000) / tot).toFixed(0)} ex/s): kernels ${kSum.toFixed(1)} ms, other JS ${(tot - kSum).toFixed(1)} ms`);
  for (const [name, e] of [...kern].sort((a, b) => b[1].ms - a[1].ms).slice(0, 30)) {
    console.log(`  ${name.padEnd(24)} ${(e.ms / steps).toFixed(2).padStart(8)} ms/step  ${(e.n / steps).toFixed(0).padStart(4)} calls/step`);
  }
}
if (tf.memory().numTensors !== before) console.log(`tensors: ${before} -> ${tf.memory().numTensors}`);
opt.dispose();
tf.dispose([x, y]);
model.dispose();
