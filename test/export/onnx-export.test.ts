import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { initBackend } from '../../src/backend/select.ts';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline, REPO_ROOT } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { silentLogger } from '../../src/util/log.ts';
import { readSplit, type LabeledSet } from '../../src/data/split-file.ts';
import { loadModel, saveModel } from '../../src/models/io.ts';
import { predictLogits } from '../../src/models/predict.ts';
import { Rng } from '../../src/util/rng.ts';
import { exportOnnx, modelToOnnx } from '../../src/export/export-model.ts';
import { buildModel, modelConfigSchema } from '../../src/models/arch/index.ts';

const H = 10;
const W = 12;
const C = 4;
const CONFIG = `
name: onnx
seed: 3
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: ${C}, groups: 2, dim: ${H * W}, perClass: 40, seed: 5, classSpread: 0.5}}
  generalist: {hidden: [16, 8], activation: tanh, dropout: 0.2, input_dropout: 0.1, epochs: 2, batch_size: 8, optimizer: {name: adam, lr: 0.01}}
`;

const root = mkdtempSync(path.join(os.tmpdir(), 'onnx-'));
const run = path.join(root, 'run');
let test: LabeledSet;
const ROWS = 16;

beforeAll(async () => {
  await initBackend('cpu');
  await runPipeline(parseConfig(CONFIG, 'onnx.yaml', STAGES), { out: run, cacheDir: path.join(root, 'cache'), log: silentLogger });
  test = await readSplit(path.join(run, 'ingest', 'test.arrow'));
}, 120_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The first `ROWS` rows of the test split, flat. */
const firstRows = (): Float32Array => test.x.slice(0, ROWS * test.dim);

/** Runs an ONNX model (file or bytes) on `x` with the given input shape; returns its `logits`. */
async function runOnnx(model: string | Uint8Array, x: Float32Array, shape: number[]): Promise<{ out: Float32Array; dims: readonly number[] }> {
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model) : await ort.InferenceSession.create(model);
  try {
    expect(session.inputNames).toEqual(['input']);
    expect(session.outputNames).toEqual(['logits']);
    const r = await session.run({ input: new ort.Tensor('float32', x, shape) });
    return { out: r.logits!.data as Float32Array, dims: r.logits!.dims };
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Sets every weight of `model` to seeded random values (variances positive), so no layer is trivial. */
function randomizeWeights(model: tf.LayersModel, seed: number): void {
  const rng = new Rng(seed);
  const values = model.weights.map((w) => {
    const shape = w.shape as number[];
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    const isVar = w.name.includes('moving_variance');
    for (let i = 0; i < n; i++) v[i] = isVar ? 0.5 + rng.next() : (rng.next() - 0.5) * (w.name.includes('moving_mean') ? 0.4 : 1.2);
    return tf.tensor(v, shape);
  });
  model.setWeights(values);
  tf.dispose(values);
}

describe('ONNX export', () => {
  it('the MLP a training stage wrote, via npm run export: onnxruntime logits equal ours within 1e-5 on the test split', async () => {
    const out = path.join(root, 'mlp.onnx');
    const cli = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'src', 'cli', 'export.ts'), path.join(run, 'generalist'), '--onnx', out], { cwd: REPO_ROOT, encoding: 'utf8' });
    expect(cli.status, cli.stderr).toBe(0);
    expect(cli.stdout + cli.stderr).toMatch(/wrote .*mlp\.onnx .*input 'input' \[batch, 120\], output 'logits' \[batch, 4\]/);
    const model = await loadModel(path.join(run, 'generalist', 'model'));
    const ours = predictLogits(model, firstRows(), ROWS, test.dim);
    model.dispose();
    const theirs = await runOnnx(out, firstRows(), [ROWS, test.dim]);
    expect(theirs.dims).toEqual([ROWS, C]);
    const diff = maxAbsDiff(theirs.out, ours);
    if (process.env.ONNX_DIFF) console.log(`mlp max |onnx - tfjs| = ${diff}`);
    expect(diff).toBeLessThanOrEqual(1e-5);
    // Class names travel in the metadata.
    const names = (JSON.parse(readFileSync(path.join(run, 'ingest', 'classes.json'), 'utf8')) as { classes: { name: string }[] }).classes.map((c) => c.name);
    expect(names).toHaveLength(C);
    expect(readFileSync(out).toString('utf8')).toContain(JSON.stringify(names));
    // Refuses to overwrite unless --force.
    const again = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'src', 'cli', 'export.ts'), path.join(run, 'generalist'), '--onnx', out], { cwd: REPO_ROOT, encoding: 'utf8' });
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/mlp\.onnx already exists; choose another --onnx file or add --force to replace it/);
  }, 60_000);

  it("a CNN (flat input, Reshape, conv 'same' and 'valid', stride 2, batchnorm, maxpool, flatten, dropout, dense): logits within 1e-5", async () => {
    const m = tf.sequential({ name: 'cnn' });
    m.add(tf.layers.reshape({ targetShape: [H, W, 1], inputShape: [H * W] }));
    m.add(tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' })); // 10x12x4
    m.add(tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'valid' })); // 4x5x6
    m.add(tf.layers.batchNormalization({ epsilon: 0.01 }));
    m.add(tf.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'same' })); // 2x3x6, padded on the right only
    m.add(tf.layers.conv2d({ filters: 5, kernelSize: [2, 3], padding: 'same', activation: 'tanh' })); // 2x3x5, asymmetric pads
    m.add(tf.layers.maxPooling2d({ poolSize: 2, strides: 1, padding: 'valid' })); // 1x2x5
    m.add(tf.layers.flatten());
    m.add(tf.layers.dropout({ rate: 0.5 }));
    m.add(tf.layers.dense({ units: 8, activation: 'elu' }));
    m.add(tf.layers.dense({ units: C }));
    randomizeWeights(m, 1);
    const dir = path.join(root, 'cnn-stage');
    await saveModel(m, path.join(dir, 'model'));
    const before = tf.memory().numTensors;
    const r = await exportOnnx(dir, path.join(root, 'cnn.onnx'));
    expect(tf.memory().numTensors).toBe(before);
    expect(r.inputShape).toEqual(['batch', H * W]);
    expect(r.outputShape).toEqual(['batch', C]);
    const ours = tf.tidy(() => (m.predict(tf.tensor2d(firstRows(), [ROWS, H * W])) as tf.Tensor).dataSync() as Float32Array);
    const theirs = await runOnnx(r.file, firstRows(), [ROWS, H * W]);
    const diff = maxAbsDiff(theirs.out, ours);
    if (process.env.ONNX_DIFF) console.log(`cnn max |onnx - tfjs| = ${diff}`);
    expect(diff).toBeLessThanOrEqual(1e-5);
    expect(Math.max(...ours.map(Math.abs))).toBeGreaterThan(0.1); // not a degenerate all-zero model
    m.dispose();
  });

  it("the project's CNN architecture (model: {type: cnn}: batch norm, activation layers, pooling, dropout): logits within 1e-5", async () => {
    const config = modelConfigSchema.parse({
      type: 'cnn',
      conv: [
        { filters: 4, kernel: 3, batch_norm: true, pool: 2 },
        { filters: 6, kernel: [3, 2], stride: 2, padding: 'valid' },
      ],
      dense: [8],
      activation: 'elu',
      conv_dropout: 0.1,
      dropout: 0.2,
    });
    const m = buildModel(config, { inputDim: H * W, shape: [H, W, 1], outputs: C, seed: 4 });
    randomizeWeights(m, 3);
    const dir = path.join(root, 'arch-cnn');
    await saveModel(m, path.join(dir, 'model'));
    const r = await exportOnnx(dir, path.join(root, 'arch-cnn.onnx'));
    const ours = tf.tidy(() => (m.predict(tf.tensor2d(firstRows(), [ROWS, H * W])) as tf.Tensor).dataSync() as Float32Array);
    const theirs = await runOnnx(r.file, firstRows(), [ROWS, H * W]);
    const diff = maxAbsDiff(theirs.out, ours);
    if (process.env.ONNX_DIFF) console.log(`arch cnn max |onnx - tfjs| = ${diff}`);
    expect(diff).toBeLessThanOrEqual(1e-5);
    m.dispose();
  });

  it('a CNN with an image input (NHWC), average pooling, global pooling and a softmax output', async () => {
    const m = tf.sequential();
    m.add(tf.layers.conv2d({ filters: 3, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', inputShape: [H, W, 1] })); // 5x6x3
    m.add(tf.layers.batchNormalization());
    m.add(tf.layers.averagePooling2d({ poolSize: 2, padding: 'same' })); // 3x3x3, the last row/column averaged over fewer pixels
    m.add(tf.layers.conv2d({ filters: 6, kernelSize: 1, activation: 'sigmoid' }));
    m.add(tf.layers.globalAveragePooling2d({}));
    m.add(tf.layers.dense({ units: C, activation: 'softmax' }));
    randomizeWeights(m, 2);
    const { bytes, inputShape } = modelToOnnx(m);
    expect(inputShape).toEqual(['batch', H, W, 1]);
    const ours = tf.tidy(() => (m.predict(tf.tensor4d(firstRows(), [ROWS, H, W, 1])) as tf.Tensor).dataSync() as Float32Array);
    const theirs = await runOnnx(bytes, firstRows(), [ROWS, H, W, 1]);
    const diff = maxAbsDiff(theirs.out, ours);
    if (process.env.ONNX_DIFF) console.log(`image-input cnn max |onnx - tfjs| = ${diff}`);
    expect(diff).toBeLessThanOrEqual(1e-5);
    m.dispose();
  });

  it('an unsupported layer or graph: one error naming the layer and its class', () => {
    const m = tf.sequential();
    m.add(tf.layers.dense({ units: 3, inputShape: [4] }));
    m.add(tf.layers.reshape({ targetShape: [3, 1] }));
    m.add(tf.layers.conv1d({ filters: 2, kernelSize: 1, name: 'my_conv1d' }));
    expect(() => modelToOnnx(m)).toThrow(/ONNX export: layer 'my_conv1d' \(class Conv1D\) is not supported by the ONNX export; supported layers: InputLayer, Dense, /);
    m.dispose();
    const a = tf.sequential();
    a.add(tf.layers.dense({ units: 3, inputShape: [4], activation: 'relu6' }));
    a.add(tf.layers.dense({ units: 3, activation: 'linear', name: 'odd' }));
    expect(() => modelToOnnx(a)).not.toThrow();
    a.dispose();
    const input = tf.input({ shape: [4] });
    const d1 = tf.layers.dense({ units: 3, name: 'left' }).apply(input) as tf.SymbolicTensor;
    const d2 = tf.layers.dense({ units: 3, name: 'right' }).apply(input) as tf.SymbolicTensor;
    const sum = tf.layers.add({ name: 'merge' }).apply([d1, d2]) as tf.SymbolicTensor;
    const g = tf.model({ inputs: input, outputs: sum });
    expect(() => modelToOnnx(g)).toThrow(/layer 'right' \(class Dense\) reads \[input\d*\]; only a chain of layers/);
    g.dispose();
  });

  it('a stage with several models, or none: the error says which folder to give', async () => {
    mkdirp(path.join(root, 'multi', 'specialist-00', 'model'));
    mkdirp(path.join(root, 'multi', 'specialist-01', 'model'));
    writeFileSync(path.join(root, 'multi', 'specialist-00', 'model', 'model.json'), '{}');
    writeFileSync(path.join(root, 'multi', 'specialist-01', 'model', 'model.json'), '{}');
    await expect(exportOnnx(path.join(root, 'multi'), path.join(root, 'x.onnx'))).rejects.toThrow(/multi holds 2 models \(specialist-00, specialist-01\), not one: export one of them, e.g. .*multi\/specialist-00/);
    await expect(exportOnnx(path.join(run, 'ingest'), path.join(root, 'x.onnx'))).rejects.toThrow(/ingest has no trained model \(no model\/model\.json\); give the folder of a stage that trains one/);
    expect(existsSync(path.join(root, 'x.onnx'))).toBe(false);
  });
});

function mkdirp(d: string): void {
  mkdirSync(d, { recursive: true });
}
