import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/select.ts';
import { openSplitStream } from '../../src/data/split-stream.ts';
import { PredictionsWriter, PREDICTION_BATCH_ROWS, readPredictionsFile } from '../../src/data/predictions-stream.ts';
import { readSplit, writeSplit, type LabeledSet } from '../../src/data/split-file.ts';
import { readPredictions, writePredictions } from '../../src/artifacts/predictions.ts';
import { buildMlp } from '../../src/models/mlp.ts';
import { saveModel } from '../../src/models/io.ts';
import { predictLogits } from '../../src/models/predict.ts';
import { CovarianceAccumulator, writeCovariance } from '../../src/specialists/covariance.ts';
import { covarianceStage } from '../../pipeline/stages/covariance.ts';
import { silentLogger } from '../../src/util/log.ts';
import { Rng } from '../../src/util/rng.ts';
import { cleanup, filesIn, tmpDir } from '../fixtures/data/build.ts';

let dir: string;
beforeAll(async () => {
  dir = tmpDir('streaming-io-');
  await initBackend('cpu');
});
afterAll(() => cleanup(dir));

function randomSet(n: number, dim: number, C: number, seed: number): LabeledSet {
  const rng = new Rng(seed);
  const x = new Float32Array(n * dim);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  return { x, y: Int32Array.from({ length: n }, () => rng.int(C)), n, dim, shape: [dim] };
}

describe('PredictionsWriter', () => {
  it.each([0, 1, PREDICTION_BATCH_ROWS, PREDICTION_BATCH_ROWS + 1, 9000])('writes the bytes of writePredictions (%i rows, added in uneven pieces)', async (n) => {
    const C = 5;
    const rng = new Rng(n + 1);
    const labels = Int32Array.from({ length: n }, () => rng.int(C));
    const values = Float32Array.from({ length: n * C }, () => rng.normal());
    const a = path.join(dir, `pred-${n}-a.arrow`);
    const b = path.join(dir, `pred-${n}-b.arrow`);
    await writePredictions(a, { labels, values, n, C }, 'probabilities', { split: 'test', weight: '0.5' });
    const w = new PredictionsWriter(b, C, 'probabilities', { split: 'test', weight: '0.5' });
    const pieces = [1000, 7, 4096, 333];
    for (let s = 0, k = 0; s < n; k++) {
      const m = Math.min(pieces[k % pieces.length]!, n - s);
      w.add(labels.subarray(s, s + m), values.subarray(s * C, (s + m) * C), m);
      s += m;
    }
    expect(w.rows).toBe(n);
    w.finish();
    expect(readFileSync(b).equals(readFileSync(a))).toBe(true);
  });

  it.each([0, 1, PREDICTION_BATCH_ROWS + 1, 9000])('readPredictionsFile (batch by batch) reads what readPredictions reads (%i rows)', async (n) => {
    const C = 4;
    const rng = new Rng(n + 7);
    const labels = Int32Array.from({ length: n }, () => rng.int(C));
    const values = Float32Array.from({ length: n * C }, () => rng.normal());
    const file = path.join(dir, `pred-read-${n}.arrow`);
    await writePredictions(file, { labels, values, n, C }, 'probabilities', { split: 'valid' });
    const a = readPredictions(file, 'probabilities');
    const b = await readPredictionsFile(file, 'probabilities');
    expect(b.n).toBe(n);
    expect(b.C).toBe(C);
    expect(b.labels).toEqual(a.labels);
    expect(b.values).toEqual(values);
    expect(b.metadata.get('split')).toBe('valid');
    await expect(readPredictionsFile(file, 'logits')).rejects.toThrow(/expected columns 'label' and 'logits'/);
  });

  it('abort leaves nothing under the target name or as a temp file', () => {
    const sub = path.join(dir, 'aborted');
    const w = new PredictionsWriter(path.join(sub, 'p.arrow'), 3);
    w.add(new Int32Array([1]), new Float32Array([1, 2, 3]), 1);
    w.abort();
    expect(filesIn(sub)).toEqual([]);
  });
});

describe('openSplitStream', () => {
  it.each([1, 7, 1000, 8192, 20_000])('chunks of %i rows reproduce readSplit exactly', async (rows) => {
    const file = path.join(dir, 'split.arrow');
    const set = randomSet(9001, 3, 4, 5); // two record batches (8,192 + 809 rows)
    await writeSplit(file, set);
    const whole = await readSplit(file);
    const s = await openSplitStream(file);
    expect([s.dim, s.shape]).toEqual([3, [3]]);
    const x = new Float32Array(whole.n * 3);
    const y = new Int32Array(whole.n);
    let next = 0;
    for await (const c of s.chunks(rows)) {
      expect(c.start).toBe(next);
      expect(c.n).toBe(Math.min(rows, whole.n - next));
      x.set(c.x.subarray(0, c.n * 3), c.start * 3);
      y.set(c.y.subarray(0, c.n), c.start);
      next += c.n;
    }
    await s.close();
    expect(next).toBe(whole.n);
    expect(x).toEqual(whole.x);
    expect(y).toEqual(whole.y);
  });

  it('a missing file or another schema is an ArtifactError saying to re-run ingest', async () => {
    await expect(openSplitStream(path.join(dir, 'nope.arrow'))).rejects.toThrow(/split file .*nope\.arrow cannot be read .*re-run the ingest stage/);
    const pred = path.join(dir, 'not-a-split.arrow');
    await writePredictions(pred, { labels: new Int32Array([0]), values: new Float32Array([1, 2]), n: 1, C: 2 });
    await expect(openSplitStream(pred)).rejects.toThrow(/has schema label: Int32, logits: .*expected label: Int32 and features: FixedSizeList<Float32>\. Re-run the ingest stage/);
  });
});

describe('covariance stage (streamed) = the in-memory computation, byte for byte', () => {
  it.each(['valid', 'train'] as const)('split %s, batch_size 64 over splits of 1,000 / 700 / 300 rows', async (split) => {
    const C = 6;
    const dim = 4;
    const root = path.join(dir, `cov-${split}`);
    const data = path.join(root, 'ingest');
    const gen = path.join(root, 'generalist');
    mkdirSync(data, { recursive: true });
    const sets = { train: randomSet(1000, dim, C, 1), valid: randomSet(700, dim, C, 2), test: randomSet(300, dim, C, 3) };
    for (const [s, set] of Object.entries(sets)) await writeSplit(path.join(data, `${s}.arrow`), set);
    writeFileSync(path.join(data, 'classes.json'), JSON.stringify({ rows: { train: 1000, valid: 700, test: 300 } }));
    const model = buildMlp({ inputDim: dim, hidden: [5], outputs: C, activation: 'relu', inputDropout: 0, dropout: 0, maxNorm: null, seed: 9 });
    await saveModel(model, path.join(gen, 'model'));

    // The earlier implementation: whole splits in memory.
    const expected = path.join(root, 'expected');
    const acc = new CovarianceAccumulator(C, 'probabilities');
    predictLogits(model, sets[split].x, sets[split].n, dim, { batchSize: 64, onBatch: (_s, logits, rows) => acc.addBatch(logits, rows) });
    await writeCovariance(expected, acc.result(), { split, source: 'probabilities' });
    for (const s of ['valid', 'test'] as const) {
      const values = predictLogits(model, sets[s].x, sets[s].n, dim, { batchSize: 64 });
      await writePredictions(path.join(expected, `predictions-${s}.arrow`), { labels: sets[s].y, values, n: sets[s].n, C }, 'logits', { split: s, model: 'generalist' });
    }
    model.dispose();

    const out = path.join(root, 'out');
    mkdirSync(out);
    const params = covarianceStage.schema.parse({ split, batch_size: 64 });
    const before = tf.memory().numTensors;
    await covarianceStage.run({
      name: 'covariance',
      params,
      seed: 1,
      outDir: out,
      scratchDir: path.join(root, 'scratch'),
      runDir: root,
      cacheDir: root,
      input: (name) => path.join(root, name),
      has: () => true,
      backend: { name: 'cpu', tfBackend: 'cpu', detail: 'test' },
      workers: 1,
      log: silentLogger,
    });
    expect(tf.memory().numTensors).toBe(before);
    const files = ['covariance.bin', 'covariance.json', 'predictions-test.arrow', 'predictions-valid.arrow'];
    expect(filesIn(out)).toEqual(files);
    for (const f of files) expect(readFileSync(path.join(out, f)).equals(readFileSync(path.join(expected, f))), f).toBe(true);
  });
});
