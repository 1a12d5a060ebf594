/** A user's own tfjs Layers model: read, checked against the data, rewritten into the toolkit's form. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../../src/backend/select.ts';
import { importLayersModel, modelFilesOf, type ImportTarget } from '../../src/models/import-model.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { saveLikeTfjs } from '../helpers/save-like-tfjs.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'import-model-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await initBackend('cpu');
});

function rows(n: number, dim: number, seed: number): Float32Array {
  const x = new Float32Array(n * dim);
  let s = seed;
  for (let i = 0; i < x.length; i++) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    x[i] = s / 2 ** 31 - 0.5;
  }
  return x;
}

const CLASSES = ['a', 'b', 'c', 'd'];
const flat: ImportTarget = { dim: 6, shape: [6], classes: CLASSES };
const image: ImportTarget = { dim: 16, shape: [4, 4, 1], classes: CLASSES };

function mlp(opts: { softmax?: boolean; units?: number; inDim?: number; name?: string } = {}): tf.Sequential {
  const m = tf.sequential({ name: opts.name ?? 'user_mlp' });
  m.add(tf.layers.dense({ units: 7, activation: 'relu', inputShape: [opts.inDim ?? 6], kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
  m.add(tf.layers.dropout({ rate: 0.3 }));
  m.add(tf.layers.dense({ units: opts.units ?? 4, activation: opts.softmax ? 'softmax' : 'linear', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }), biasInitializer: tf.initializers.randomNormal({ seed: 3 }) }));
  return m;
}

function cnn(): tf.Sequential {
  const m = tf.sequential({ name: 'user_cnn' });
  m.add(tf.layers.conv2d({ inputShape: [4, 4, 1], filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }));
  m.add(tf.layers.batchNormalization({}));
  m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  m.add(tf.layers.flatten({}));
  m.add(tf.layers.dense({ units: 4, kernelInitializer: tf.initializers.glorotUniform({ seed: 5 }) }));
  m.add(tf.layers.activation({ activation: 'softmax' }));
  return m;
}

/** The model's outputs on flat rows (reshaped to its input shape). */
function outputsOf(m: tf.LayersModel, x: Float32Array, n: number): number[][] {
  return tf.tidy(() => (m.predict(tf.tensor2d(x, [n, x.length / n]).reshape([n, ...(m.inputs[0]!.shape.slice(1) as number[])])) as tf.Tensor).arraySync() as number[][]);
}

function softmaxRows(z: number[][]): number[][] {
  return z.map((r) => {
    const m = Math.max(...r);
    const e = r.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  });
}

function expectClose(a: number[][], b: number[][], tol: number): void {
  expect(a.length).toBe(b.length);
  let worst = 0;
  a.forEach((r, i) => r.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - b[i]![j]!)))));
  expect(worst).toBeLessThan(tol);
}

describe('importLayersModel', () => {
  it('an MLP ending in softmax: same probabilities, logits out, head named logits, flat input', async () => {
    const user = mlp({ softmax: true });
    const file = await saveLikeTfjs(user, path.join(tmp, 'mlp-softmax'), 2);
    const x = rows(20, 6, 1);
    const before = tf.memory().numTensors;
    const { model, report } = await importLayersModel(file, flat, { sample: { x, n: 20 } });
    expect(report.outputs).toBe('probabilities');
    expect(report.softmax_removed).toMatch(/activation of dense/);
    expect(report.reshape_added).toBe(false);
    expect(report.check_max_diff).toBeLessThan(1e-5);
    const last = model.layers[model.layers.length - 1]!;
    expect(last.name).toBe('logits');
    expect((last.getConfig() as { activation: string }).activation).toBe('linear');
    expect(model.inputs[0]!.shape).toEqual([null, 6]);
    expectClose(softmaxRows(outputsOf(model, x, 20)), outputsOf(user, x, 20), 1e-6);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
    user.dispose();
  });

  it('a CNN on [4, 4, 1] images gets a Reshape from the flat rows; a final Softmax layer is removed', async () => {
    const user = cnn();
    const file = await saveLikeTfjs(user, path.join(tmp, 'cnn'));
    const x = rows(10, 16, 2);
    const { model, report } = await importLayersModel(file, image, { sample: { x, n: 10 } });
    expect(report.reshape_added).toBe(true);
    expect(report.input_shape).toEqual([4, 4, 1]);
    expect(report.softmax_removed).toMatch(/layer activation/);
    expect(report.layers).toEqual(['Reshape', 'Conv2D', 'BatchNormalization', 'MaxPooling2D', 'Flatten', 'Dense']);
    expect(model.inputs[0]!.shape).toEqual([null, 16]);
    expectClose(softmaxRows(outputsOf(model, x, 10)), outputsOf(user, x, 10), 1e-6);
    // batch norm's moving statistics are copied too (not the fresh 0 / 1)
    const bn = model.layers[2]!.getWeights().map((w) => w.shape.join('x'));
    expect(bn).toHaveLength(4);
    model.dispose();
    user.dispose();
  });

  it('classes: in the model order are remapped to classes.json order (kernel columns and bias)', async () => {
    const user = mlp();
    const file = await saveLikeTfjs(user, path.join(tmp, 'mlp-order'));
    const x = rows(12, 6, 3);
    const order = ['c', 'a', 'd', 'b']; // unit 0 of the model is class 'c', ...
    const { model, report } = await importLayersModel(file, flat, { classes: order, sample: { x, n: 12 } });
    expect(report.outputs).toBe('logits');
    expect(report.permutation).toEqual([1, 3, 0, 2]);
    const theirs = outputsOf(user, x, 12);
    const mine = outputsOf(model, x, 12);
    expectClose(mine, theirs.map((r) => CLASSES.map((c) => r[order.indexOf(c)]!)), 1e-5);
    model.dispose();
    user.dispose();
  });

  it('modelFilesOf lists model.json and every weight shard (the cache key)', async () => {
    const file = await saveLikeTfjs(mlp(), path.join(tmp, 'mlp-files'), 3);
    expect(modelFilesOf(file).map((f) => path.basename(f))).toEqual(['model.json', 'group1-shard1of3.bin', 'group1-shard2of3.bin', 'group1-shard3of3.bin']);
    expect(modelFilesOf(path.join(tmp, 'nowhere.json'))).toEqual([]);
    expect(modelFilesOf(path.join(tmp, 'mlp-files'))).toEqual([]);
  });

  it('an unknown (custom) layer class is refused, naming the layer, the class and the supported ones', async () => {
    const file = await saveLikeTfjs(mlp(), path.join(tmp, 'custom'));
    const json = JSON.parse(readFileSync(file, 'utf8'));
    json.modelTopology.config.layers[0].class_name = 'MyAttention';
    writeFileSync(file, JSON.stringify(json));
    const e = await importLayersModel(file, flat).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).message).toMatch(/custom\/model\.json: layer 'dense_\w+' is of class MyAttention: tfjs does not know this class.*Supported layer classes: Dense, .*rebuild the model/);
  });

  it('a layer tfjs runs but the toolkit cannot copy or export (LSTM) is refused at import', async () => {
    const m = tf.sequential();
    m.add(tf.layers.reshape({ targetShape: [3, 2], inputShape: [6] }));
    m.add(tf.layers.lstm({ units: 5 }));
    m.add(tf.layers.dense({ units: 4 }));
    const file = await saveLikeTfjs(m, path.join(tmp, 'lstm'));
    m.dispose();
    await expect(importLayersModel(file, flat)).rejects.toThrow(/layer 'lstm_\w+' is of class LSTM: tfjs can run it, but the specialists' copy and the ONNX export of the toolkit do not support it/);
  });

  it('a branching model is refused: only chains of layers', async () => {
    const inp = tf.input({ shape: [6] });
    const a = tf.layers.dense({ units: 5, name: 'a' }).apply(inp) as tf.SymbolicTensor;
    const b = tf.layers.dense({ units: 5, name: 'b' }).apply(inp) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 4, name: 'out' }).apply(tf.layers.concatenate({ name: 'join' }).apply([a, b]) as tf.SymbolicTensor) as tf.SymbolicTensor;
    const m = tf.model({ inputs: inp, outputs: out });
    const file = await saveLikeTfjs(m, path.join(tmp, 'branch'));
    m.dispose();
    await expect(importLayersModel(file, flat)).rejects.toThrow(/layer 'join' is of class Concatenate/);
  });

  it('every mismatch with the data or the config is one clear error naming the file, the layer or shape and the fix', async () => {
    const soft = await saveLikeTfjs(mlp({ softmax: true }), path.join(tmp, 'e-soft'));
    const lin = await saveLikeTfjs(mlp(), path.join(tmp, 'e-lin'));
    const five = await saveLikeTfjs(mlp({ units: 5 }), path.join(tmp, 'e-five'));
    const wide = await saveLikeTfjs(mlp({ inDim: 7 }), path.join(tmp, 'e-wide'));
    const img = await saveLikeTfjs(cnn(), path.join(tmp, 'e-img'));
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => importLayersModel(five, flat), /e-five\/model\.json: the last Dense layer 'dense_\w+' has 5 units but the dataset has 4 classes.*one output unit per class/],
      [() => importLayersModel(wide, flat), /e-wide\/model\.json: the model takes inputs of shape \[7\] \(7 values, layer '\w+'\) but the data's rows have 6 features/],
      [() => importLayersModel(img, { dim: 16, shape: [1, 4, 4], classes: CLASSES }), /takes images of shape \[4, 4, 1\] but the data's examples have shape \[1, 4, 4\].*channels first/],
      [() => importLayersModel(soft, flat, { outputs: 'logits' }), /outputs: logits, but .*e-soft\/model\.json ends in a softmax \(activation of dense_\w+\).*set outputs: probabilities/],
      [() => importLayersModel(lin, flat, { outputs: 'probabilities' }), /outputs: probabilities, but .*does not end in a softmax.*set outputs: logits/],
      [() => importLayersModel(lin, flat, { classes: ['a', 'b', 'x', 'd'] }), /classes: 'x' is not a class of the dataset \(classes\.json has 'a', 'b', 'c', 'd'\)/],
      [() => importLayersModel(lin, flat, { classes: ['a', 'b', 'c'] }), /classes: lists 3 names but the model .* has 4 output units/],
      [() => importLayersModel(lin, flat, { classes: ['a', 'b', 'a', 'd'] }), /classes: 'a' is listed twice/],
      [() => importLayersModel(path.join(tmp, 'none', 'model.json'), flat), /none\/model\.json: no such file/],
      [() => importLayersModel(path.join(tmp, 'e-lin'), flat), /e-lin is a folder; 'path' must name the model\.json inside it/],
    ];
    for (const [p, re] of cases) {
      const e = await p().catch((x: unknown) => x);
      expect(e, String(re)).toBeInstanceOf(ConfigError);
      expect((e as Error).message).toMatch(re);
    }
    rmSync(path.join(tmp, 'e-lin', 'group1-shard1of1.bin'));
    await expect(importLayersModel(lin, flat)).rejects.toThrow(/lists the weight file group1-shard1of1\.bin, but .* does not exist/);
    writeFileSync(path.join(tmp, 'e-lin', 'group1-shard1of1.bin'), new Uint8Array(8));
    await expect(importLayersModel(lin, flat)).rejects.toThrow(/hold 8 bytes but the manifest's weights need \d+/);
    writeFileSync(path.join(tmp, 'e-lin', 'model.json'), JSON.stringify({ format: 'graph-model', modelTopology: {}, weightsManifest: [] }));
    await expect(importLayersModel(lin, flat)).rejects.toThrow(/not a tfjs Layers model.*graph model/);
  });

  it('a last layer that is not a Dense layer, or has another activation, is refused', async () => {
    const m = tf.sequential();
    m.add(tf.layers.dense({ units: 4, inputShape: [6], activation: 'sigmoid', name: 'out' }));
    const sig = await saveLikeTfjs(m, path.join(tmp, 'sig'));
    m.dispose();
    await expect(importLayersModel(sig, flat)).rejects.toThrow(/the last layer 'out' has activation sigmoid.*linear or softmax/);
    const c = tf.sequential();
    c.add(tf.layers.reshape({ targetShape: [4, 4, 1], inputShape: [16] }));
    c.add(tf.layers.conv2d({ filters: 4, kernelSize: 4, padding: 'valid', name: 'conv_out' }));
    c.add(tf.layers.flatten({ name: 'flat' }));
    const conv = await saveLikeTfjs(c, path.join(tmp, 'conv-out'));
    c.dispose();
    await expect(importLayersModel(conv, image)).rejects.toThrow(/scores come from layer 'flat' \(Flatten\), not from a Dense layer.*end the model with a Dense layer of 4 units/);
  });
});

/**
 * A model.json as tensorflowjs_converter writes it from a Keras 2 `.h5` (snake_case configs under
 * modelTopology.model_config, an InputLayer entry, `dense/kernel` weight names), or from Keras 3
 * (`batch_shape`, dtype policies as objects, module/registered_name keys).
 */
function kerasConverted(dir: string, keras3: boolean): { file: string; weights: Float32Array[] } {
  mkdirSync(dir, { recursive: true });
  const dt = keras3 ? { module: 'keras', class_name: 'DTypePolicy', config: { name: 'float32' }, registered_name: null } : 'float32';
  const dense = (name: string, units: number, activation: string) => ({
    ...(keras3 ? { module: 'keras.layers', registered_name: null } : {}),
    class_name: 'Dense',
    config: { name, trainable: true, dtype: dt, units, activation, use_bias: true, kernel_initializer: { class_name: 'GlorotUniform', config: { seed: null } }, bias_initializer: { class_name: 'Zeros', config: {} }, kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null, kernel_constraint: null, bias_constraint: null },
  });
  const input = { class_name: 'InputLayer', config: { [keras3 ? 'batch_shape' : 'batch_input_shape']: [null, 6], dtype: 'float32', sparse: false, ragged: false, name: 'input_1' } };
  const model_config = { class_name: 'Sequential', config: { name: 'sequential', layers: [input, dense('dense', 5, 'relu'), dense('dense_1', 4, 'softmax')] } };
  const specs: [string, number[]][] = [['dense/kernel', [6, 5]], ['dense/bias', [5]], ['dense_1/kernel', [5, 4]], ['dense_1/bias', [4]]];
  const weights = specs.map(([, sh], k) => Float32Array.from({ length: sh.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(3 * i + k)));
  const bytes = new Uint8Array(weights.reduce((a, v) => a + v.byteLength, 0));
  let o = 0;
  for (const v of weights) (bytes.set(new Uint8Array(v.buffer), o), (o += v.byteLength));
  writeFileSync(path.join(dir, 'group1-shard1of1.bin'), bytes);
  const topology = { keras_version: keras3 ? '3.3.3' : '2.15.0', backend: 'tensorflow', model_config, training_config: { loss: 'categorical_crossentropy', metrics: ['accuracy'] } };
  const json = { format: 'layers-model', generatedBy: 'keras', convertedBy: 'TensorFlow.js Converter v4.17.0', modelTopology: topology, weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: specs.map(([name, shape]) => ({ name, shape, dtype: 'float32' })) }] };
  writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
  return { file: path.join(dir, 'model.json'), weights };
}

describe('importLayersModel on models converted from Keras', () => {
  for (const keras3 of [false, true]) {
    it(`reads a tensorflowjs_converter model.json of Keras ${keras3 ? 3 : 2} and computes its function`, async () => {
      const { file, weights } = kerasConverted(path.join(tmp, `keras${keras3 ? 3 : 2}`), keras3);
      const x = rows(5, 6, 9);
      const { model, report } = await importLayersModel(file, flat, { sample: { x, n: 5 } });
      expect(report.outputs).toBe('probabilities');
      expect(report.head_from).toBe('dense_1');
      // by hand: softmax(relu(x W1 + b1) W2 + b2)
      const [w1, b1, w2, b2] = weights as [Float32Array, Float32Array, Float32Array, Float32Array];
      const expected = Array.from({ length: 5 }, (_, r) => {
        const h = Array.from({ length: 5 }, (_, j) => Math.max(0, b1[j]! + Array.from({ length: 6 }, (_, i) => x[r * 6 + i]! * w1[i * 5 + j]!).reduce((a, b) => a + b, 0)));
        return Array.from({ length: 4 }, (_, c) => b2[c]! + h.reduce((a, v, j) => a + v * w2[j * 4 + c]!, 0));
      });
      expectClose(softmaxRows(outputsOf(model, x, 5)), softmaxRows(expected), 1e-5);
      model.dispose();
    });
  }
});
