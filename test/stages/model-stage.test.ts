/**
 * `type: model`: a user's own tfjs model (built and saved here as tfjs would), validated against
 * the data and then read like any trained stage: a distillation teacher (alone and in an
 * ensemble), `init_from` of a student, the generalist of the specialist pipeline, predict.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Int32 } from 'apache-arrow';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { initBackend } from '../../src/backend/select.ts';
import { readSplit, type LabeledSet } from '../../src/data/split-file.ts';
import { loadModel } from '../../src/models/io.ts';
import { evaluate } from '../../src/models/predict.ts';
import { loadPredictor } from '../../src/predict/predictor.ts';
import { predictFile } from '../../src/predict/predict-file.ts';
import { silentLogger } from '../../src/util/log.ts';
import { batchOf, col, fslFlat, writeArrow } from '../fixtures/data/build.ts';
import { saveLikeTfjs } from '../helpers/save-like-tfjs.ts';

const dirs: string[] = [];
const tmp = (p: string): string => {
  const d = mkdtempSync(path.join(os.tmpdir(), p));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
beforeAll(async () => {
  await initBackend('cpu');
});

const json = (f: string) => JSON.parse(readFileSync(f, 'utf8'));
const STILL = `epochs: 1, batch_size: 16, select: last, optimizer: {name: sgd, lr: 1.0e-9, momentum: 0}`;

/** Fits `m` (ending in softmax or not) on a split with tfjs's own `fit`, as a user would have. */
async function fitOn(m: tf.LayersModel, set: LabeledSet, C: number, epochs: number, probabilities: boolean): Promise<void> {
  const inShape = m.inputs[0]!.shape.slice(1) as number[];
  const x = tf.tensor2d(set.x, [set.n, set.dim]).reshape([set.n, ...inShape]);
  const y = tf.oneHot(tf.tensor1d(set.y, 'int32'), C).toFloat();
  m.compile({ optimizer: tf.train.adam(0.02), loss: probabilities ? 'categoricalCrossentropy' : (yt: tf.Tensor, yp: tf.Tensor) => tf.losses.softmaxCrossEntropy(yt, yp) });
  await m.fit(x, y, { epochs, batchSize: 16, shuffle: false, verbose: 0 });
  tf.dispose([x, y]);
}

async function run(config: string, out: string, cache: string) {
  return runPipeline(parseConfig(config, 'own.yaml', STAGES), { out, cacheDir: cache, log: silentLogger });
}

describe('model stage: your own MLP as teacher, ensemble member, init_from, predict', () => {
  const out = tmp('own-model-');
  const cache = tmp('own-model-cache-');
  const files = tmp('own-model-files-');
  const HEAD = `
name: own
seed: 5
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 6, groups: 2, dim: 8, perClass: 30, seed: 3, classSpread: 0.6}}
`;
  let user: tf.Sequential;
  let mineFile: string;
  let permFile: string;
  const order = ['3', '0', '5', '1', '4', '2'];
  let CONFIG: string;

  beforeAll(async () => {
    await run(HEAD, out, cache);
    const train = await readSplit(path.join(out, 'ingest', 'train.arrow'));
    user = tf.sequential({ name: 'user_mlp' });
    user.add(tf.layers.dense({ units: 16, activation: 'relu', inputShape: [8], kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
    user.add(tf.layers.dropout({ rate: 0.2 }));
    user.add(tf.layers.dense({ units: 6, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
    await fitOn(user, train, 6, 15, true);
    mineFile = await saveLikeTfjs(user, path.join(files, 'mine'), 2);
    // the same model with its output units in another class order (unit k = class order[k])
    const perm = tf.sequential({ name: 'user_mlp_perm' });
    perm.add(tf.layers.dense({ units: 16, activation: 'relu', inputShape: [8] }));
    perm.add(tf.layers.dense({ units: 6, activation: 'softmax' }));
    perm.layers[0]!.setWeights(user.layers[0]!.getWeights());
    const [k, b] = user.layers[2]!.getWeights() as [tf.Tensor, tf.Tensor];
    const idx = tf.tensor1d(order.map(Number), 'int32');
    const pk = tf.gather(k, idx, 1);
    const pb = tf.gather(b, idx);
    perm.layers[1]!.setWeights([pk, pb]);
    tf.dispose([idx, pk, pb]);
    permFile = await saveLikeTfjs(perm, path.join(files, 'perm'));
    perm.dispose();
    CONFIG = `${HEAD}
  mine: {type: model, path: ${JSON.stringify(mineFile)}}
  mine_perm: {type: model, path: ${JSON.stringify(permFile)}, classes: [${order.map((c) => `'${c}'`).join(', ')}], outputs: probabilities}
  trained: {type: train, hidden: [12], epochs: 6, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  student: {type: distill, teacher: mine, hidden: [8], loss: {type: soft, T: 2, alpha: 0.7}, epochs: 3, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  student_ens: {type: distill, teacher: [mine, trained], hidden: [8], loss: {type: soft, T: 2, alpha: 0.7}, epochs: 3, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  own_student: {type: distill, init_from: mine, teacher: trained, loss: {type: soft, T: 2, alpha: 0.5}, ${STILL}}
  tuned: {type: train, init_from: mine, ${STILL}}
`;
  }, 60_000);
  afterAll(() => user?.dispose());

  it('validates and writes the model, with metrics from our evaluate; classes: remaps another output order', async () => {
    const r = await run(CONFIG, out, cache);
    expect(r.stages.filter((s) => s.name !== 'ingest').map((s) => s.status)).toEqual(['ran', 'ran', 'ran', 'ran', 'ran', 'ran', 'ran']);
    for (const f of ['model/model.json', 'model/weights.bin', 'metrics.json', 'source.json', 'manifest.json']) expect(existsSync(path.join(out, 'mine', f)), f).toBe(true);
    const m = json(path.join(out, 'mine', 'metrics.json'));
    const test = await readSplit(path.join(out, 'ingest', 'test.arrow'));
    const theirs = evaluate(user, test); // argmax of the user's probabilities
    expect(m.test.accuracy).toBe(theirs.accuracy);
    expect(m.test.examples).toBe(test.n);
    expect(m.test.accuracy).toBeGreaterThan(0.5);
    expect(m.outputs).toBe('probabilities');
    const src = json(path.join(out, 'mine', 'source.json'));
    expect(src.softmax_removed).toMatch(/activation of dense/);
    expect(Object.keys(src.files)).toEqual(['model.json', 'group1-shard1of2.bin', 'group1-shard2of2.bin']);
    const p = json(path.join(out, 'mine_perm', 'metrics.json'));
    expect(p.test.accuracy).toBe(m.test.accuracy);
    expect(p.test.loss).toBeCloseTo(m.test.loss, 5);
    expect(json(path.join(out, 'mine_perm', 'source.json')).permutation).toEqual([1, 3, 5, 0, 4, 2]);
  }, 120_000);

  it('is a distillation teacher alone and in an ensemble', () => {
    const s = json(path.join(out, 'student', 'metrics.json'));
    expect(s.teacher).toEqual(['mine']);
    expect(s.test.accuracy).toBeGreaterThan(0.3);
    expect(existsSync(path.join(out, 'student', 'teacher-logits.arrow'))).toBe(true);
    const e = json(path.join(out, 'student_ens', 'metrics.json'));
    expect(e.teacher).toEqual(['mine', 'trained']);
    expect(e.teacher_models).toBe(2);
  });

  it('is init_from of a student and of a train stage: its own architecture and weights', async () => {
    const m = json(path.join(out, 'mine', 'metrics.json'));
    for (const stage of ['own_student', 'tuned']) {
      const s = json(path.join(out, stage, 'metrics.json'));
      expect(s.test.loss, stage).toBeCloseTo(m.test.loss, 5);
      expect(s.test.accuracy, stage).toBe(m.test.accuracy);
      const a = await loadModel(path.join(out, stage, 'model'));
      const b = await loadModel(path.join(out, 'mine', 'model'));
      expect(a.layers.map((l) => l.getClassName())).toEqual(b.layers.map((l) => l.getClassName()));
      expect(a.countParams()).toBe(b.countParams());
      a.dispose();
      b.dispose();
    }
    expect(json(path.join(out, 'own_student', 'manifest.json')).params.model).toBeNull();
  });

  it('predict on the test split reproduces its metrics.json accuracy', async () => {
    const pr = await loadPredictor(path.join(out, 'mine'));
    try {
      const r = await predictFile(pr, { input: path.join(out, 'ingest', 'test.arrow'), out: path.join(files, 'preds.arrow'), top: 2 });
      expect(r.accuracy).toBe(json(path.join(out, 'mine', 'metrics.json')).test.accuracy);
    } finally {
      pr.dispose();
    }
  });

  it("is cached by the model files' content: a rerun is a hit, new weights rerun it and what reads it", async () => {
    const before = tf.memory().numTensors;
    const again = await run(CONFIG, out, cache);
    expect(again.stages.map((s) => s.status)).toEqual(again.stages.map(() => 'skipped'));
    expect(tf.memory().numTensors).toBe(before);
    // same shapes, other values: the perm model's weights under the first shard's name would not fit, so swap the shards' bytes order
    const a = path.join(files, 'mine', 'group1-shard1of2.bin');
    const b = path.join(files, 'mine', 'group1-shard2of2.bin');
    const w = user.getWeights();
    const scaled = w.map((t) => tf.mul(t, 1.5));
    user.setWeights(scaled);
    tf.dispose(scaled);
    const dir2 = await saveLikeTfjs(user, path.join(files, 'mine2'), 2);
    copyFileSync(path.join(path.dirname(dir2), 'group1-shard1of2.bin'), a);
    copyFileSync(path.join(path.dirname(dir2), 'group1-shard2of2.bin'), b);
    const third = await run(CONFIG, out, cache);
    const status = Object.fromEntries(third.stages.map((s) => [s.name, s.status]));
    expect(status).toMatchObject({ ingest: 'skipped', mine: 'ran', mine_perm: 'skipped', trained: 'skipped', student: 'ran', own_student: 'ran' });
  }, 120_000);

  it('a mismatch with the data fails at the stage, naming the file, the layer and the fix', async () => {
    const seven = tf.sequential();
    seven.add(tf.layers.dense({ units: 7, inputShape: [8], name: 'scores' }));
    const f = await saveLikeTfjs(seven, path.join(files, 'seven'));
    seven.dispose();
    await expect(run(`${HEAD}  bad: {type: model, path: ${JSON.stringify(f)}}\n`, tmp('own-bad-'), cache)).rejects.toThrow(
      /seven\/model\.json: the last Dense layer 'scores' has 7 units but the dataset has 6 classes/,
    );
    // a folder, or a missing weight shard: the stage's own message, not a hashing error
    await expect(run(`${HEAD}  bad: {type: model, path: ${JSON.stringify(path.dirname(f))}}\n`, tmp('own-bad-'), cache)).rejects.toThrow(/seven is a folder; 'path' must name the model\.json inside it/);
    rmSync(path.join(path.dirname(f), 'group1-shard1of1.bin'));
    await expect(run(`${HEAD}  bad: {type: model, path: ${JSON.stringify(f)}}\n`, tmp('own-bad-'), cache)).rejects.toThrow(/lists the weight file group1-shard1of1\.bin, but .* does not exist: copy every file/);
  }, 60_000);
});

describe('model stage: your own CNN as the generalist of the specialist pipeline', () => {
  it('runs covariance, clusters, specialists and the ensemble on a user CNN over [2, 4, 1] images', async () => {
    const files = tmp('own-cnn-files-');
    const out = tmp('own-cnn-');
    const cache = tmp('own-cnn-cache-');
    // 6 classes in 2 groups of similar classes, 8 features shaped [2, 4, 1]
    const C = 6;
    const per = 40;
    const n = C * per;
    const x = new Float32Array(n * 8);
    const labels: number[] = [];
    let s = 11;
    const rnd = (): number => ((s = (s * 1103515245 + 12345) % 2 ** 31), s / 2 ** 31 - 0.5);
    const centres = Array.from({ length: C }, (_, c) => Array.from({ length: 8 }, (_, j) => (c < 3 ? 2 : -2) * (j % 2 ? 1 : -1) + 1.5 * Math.cos(c * 1.7 + j)));
    for (let i = 0; i < n; i++) {
      const c = i % C;
      labels.push(c);
      for (let j = 0; j < 8; j++) x[i * 8 + j] = centres[c]![j]! + 0.6 * rnd();
    }
    const data = writeArrow(path.join(files, 'images.arrow'), [batchOf({ label: col(labels, new Int32()), features: fslFlat(x, 8) }, { shape: '[2,4,1]' })]);
    const HEAD = `
name: own-cnn
seed: 3
backend: cpu
stages:
  ingest:
    dataset: {path: ${JSON.stringify(data)}}
`;
    await run(HEAD, out, cache);
    const train = await readSplit(path.join(out, 'ingest', 'train.arrow'));
    const cnn = tf.sequential({ name: 'user_cnn' });
    cnn.add(tf.layers.conv2d({ inputShape: [2, 4, 1], filters: 6, kernelSize: 2, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 7 }) }));
    cnn.add(tf.layers.flatten({}));
    cnn.add(tf.layers.dense({ units: 12, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 8 }) }));
    cnn.add(tf.layers.dense({ units: C, kernelInitializer: tf.initializers.glorotUniform({ seed: 9 }) }));
    await fitOn(cnn, train, C, 20, false);
    const file = await saveLikeTfjs(cnn, path.join(files, 'cnn'));
    const test = await readSplit(path.join(out, 'ingest', 'test.arrow'));
    const theirs = tf.tidy(() => (cnn.predict(tf.tensor2d(test.x, [test.n, 8]).reshape([test.n, 2, 4, 1])) as tf.Tensor).argMax(1).arraySync() as number[]);
    cnn.dispose();
    const r = await run(
      `${HEAD}  generalist: {type: model, path: ${JSON.stringify(file)}}
  covariance: {}
  clusters: {k: 2}
  specialists: {epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.005}}
  ensemble: {top_n: 2}
  student: {type: distill, teacher: generalist, hidden: [8], loss: {type: soft, T: 2, alpha: 0.7}, epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  report: {type: report}
`,
      out,
      cache,
    );
    expect(r.stages.filter((x) => x.name !== 'ingest').map((x) => x.status)).toEqual(['ran', 'ran', 'ran', 'ran', 'ran', 'ran', 'ran']);
    // the report runs with the user's model among the stages
    expect(readFileSync(path.join(out, 'report', 'index.html'), 'utf8')).toContain('generalist');
    const g = json(path.join(out, 'generalist', 'metrics.json'));
    expect(g.test.accuracy).toBe(theirs.filter((p, i) => p === test.y[i]).length / test.n);
    expect(json(path.join(out, 'generalist', 'source.json')).reshape_added).toBe(true);
    const spec = json(path.join(out, 'specialists', 'specialists.json'));
    expect(spec.specialists.length).toBeGreaterThan(0);
    const sm = await loadModel(path.join(out, 'specialists', 'specialist-00', 'model'));
    expect(sm.layers.map((l) => l.getClassName())).toEqual(['Reshape', 'Conv2D', 'Flatten', 'Dense', 'Dense']);
    sm.dispose();
    const e = json(path.join(out, 'ensemble', 'metrics.json'));
    expect(e.ensemble.accuracy).toBeGreaterThan(0.3);
  }, 120_000);
});
