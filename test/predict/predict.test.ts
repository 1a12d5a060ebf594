import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Float32, Int32, Utf8, tableFromIPC } from 'apache-arrow';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline, REPO_ROOT } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { silentLogger } from '../../src/util/log.ts';
import { initBackend } from '../../src/backend/select.ts';
import { readSplit } from '../../src/data/split-file.ts';
import { loadPredictor } from '../../src/predict/predictor.ts';
import { predictFile, topK } from '../../src/predict/predict-file.ts';
import { batchOf, col, fslCol, fslFlat, writeArrow } from '../fixtures/data/build.ts';
import { writeParquet } from '../data/parquet-fixtures.ts';

/**
 * Predictions on new data from a finished run: a generalist, a distilled student and the
 * ensemble (generalist + active specialists + the KL combination at the chosen weight), each
 * reproducing its own metrics.json on the run's test split.
 */
const CONFIG = `
name: tiny-predict
seed: 7
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 12, groups: 3, dim: 8, perClass: 30, seed: 3, classSpread: 0.5}}
  generalist:
    hidden: [8]
    epochs: 3
    batch_size: 32
    optimizer: {name: adam, lr: 0.01}
  covariance: {}
  clusters: {k: 3}
  specialists: {epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.005}}
  ensemble: {top_n: 2}
  student:
    type: distill
    teacher: generalist
    hidden: [8]
    loss: {type: soft, T: 2, alpha: 0.5}
    epochs: 2
    batch_size: 32
    optimizer: {name: adam, lr: 0.01}
`;

let out: string;
let cache: string;
let tmp: string;
beforeAll(async () => {
  out = mkdtempSync(path.join(os.tmpdir(), 'pred-'));
  cache = mkdtempSync(path.join(os.tmpdir(), 'pred-cache-'));
  tmp = mkdtempSync(path.join(os.tmpdir(), 'pred-files-'));
  await initBackend('cpu');
  await runPipeline(parseConfig(CONFIG, 'tiny-predict.yaml', STAGES), { out, cacheDir: cache, log: silentLogger });
}, 120_000);
afterAll(() => {
  for (const d of [out, cache, tmp]) rmSync(d, { recursive: true, force: true });
});

const json = (f: string): { test?: { accuracy: number }; ensemble?: { accuracy: number } } => JSON.parse(readFileSync(f, 'utf8'));

describe('predict on new data', () => {
  it("reproduces each stage's test accuracy exactly on the run's own test split: generalist, student, ensemble", async () => {
    const testFile = path.join(out, 'ingest', 'test.arrow');
    const expected: Record<string, number> = {
      generalist: json(path.join(out, 'generalist', 'metrics.json')).test!.accuracy,
      student: json(path.join(out, 'student', 'metrics.json')).test!.accuracy,
      ensemble: json(path.join(out, 'ensemble', 'metrics.json')).ensemble!.accuracy,
    };
    // The ensemble differs from its generalist on this run, so it is not the generalist's numbers reached by accident.
    expect(expected.ensemble).not.toBe(json(path.join(out, 'ensemble', 'metrics.json')).test?.accuracy ?? expected.generalist);
    const before = tf.memory().numTensors;
    for (const stage of ['generalist', 'student', 'ensemble']) {
      const p = await loadPredictor(path.join(out, stage));
      try {
        expect(p.kind).toBe(stage === 'ensemble' ? 'ensemble' : 'model');
        const file = path.join(tmp, `${stage}.arrow`);
        const r = await predictFile(p, { input: testFile, out: file, top: 3 });
        expect(r.rows).toBe(72);
        expect(r.labelled).toBe(72);
        expect(r.accuracy).toBe(expected[stage]);
        // The file: predicted = first of top_classes, names from classes.json, probabilities sorted.
        const t = tableFromIPC(readFileSync(file));
        expect(t.numRows).toBe(72);
        expect(t.schema.fields.map((f) => f.name)).toEqual(['predicted', 'predicted_name', 'top_classes', 'top_probabilities', 'label']);
        const test = await readSplit(testFile);
        let correct = 0;
        for (let i = 0; i < t.numRows; i++) {
          const pred = t.getChild('predicted')!.get(i) as number;
          const tops = Array.from(t.getChild('top_classes')!.get(i)!.toArray() as Int32Array);
          const probs = Array.from(t.getChild('top_probabilities')!.get(i)!.toArray() as Float32Array);
          expect(tops[0]).toBe(pred);
          expect(t.getChild('predicted_name')!.get(i)).toBe(p.classes[pred]);
          expect(probs[0]!).toBeGreaterThanOrEqual(probs[1]!);
          expect(probs[1]!).toBeGreaterThanOrEqual(probs[2]!);
          expect(t.getChild('label')!.get(i)).toBe(test.y[i]);
          if (pred === test.y[i]) correct++;
        }
        expect(correct / 72).toBe(expected[stage]);
      } finally {
        p.dispose();
      }
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('streams: blocks of 5 rows give the same file as one block; the library call on a Float32Array agrees', async () => {
    const testFile = path.join(out, 'ingest', 'test.arrow');
    const p = await loadPredictor(path.join(out, 'ensemble'));
    try {
      const a = path.join(tmp, 'a.arrow');
      const b = path.join(tmp, 'b.arrow');
      await predictFile(p, { input: testFile, out: a, top: 2 });
      await predictFile(p, { input: testFile, out: b, top: 2, blockRows: 5 });
      const ta = tableFromIPC(readFileSync(a));
      const tb = tableFromIPC(readFileSync(b));
      expect(tb.batches.length).toBeGreaterThan(ta.batches.length);
      for (const c of ['predicted', 'top_probabilities']) expect(JSON.stringify(tb.getChild(c)!.toArray())).toBe(JSON.stringify(ta.getChild(c)!.toArray()));
      const test = await readSplit(testFile);
      const probs = await p.predict(test.x, test.n);
      expect(probs.length).toBe(72 * 12);
      for (let r = 0; r < 72; r++) {
        let s = 0;
        for (let c = 0; c < 12; c++) s += probs[r * 12 + c]!;
        expect(s).toBeCloseTo(1, 4);
      }
      expect(Array.from(topK(probs, 72, 12, 1).index)).toEqual(Array.from(ta.getChild('predicted')!.toArray() as Int32Array));
    } finally {
      p.dispose();
    }
  });

  it('takes class names as labels, no labels at all, and Parquet; bad input gets one clear error', async () => {
    const test = await readSplit(path.join(out, 'ingest', 'test.arrow'));
    const p = await loadPredictor(path.join(out, 'generalist'));
    try {
      const expected = json(path.join(out, 'generalist', 'metrics.json')).test!.accuracy;
      const names = Array.from(test.y, (y) => p.classes[y]!);
      const named = writeArrow(path.join(tmp, 'named.arrow'), [batchOf({ label: col(names, new Utf8()), features: fslFlat(test.x, 8) })]);
      expect((await predictFile(p, { input: named })).accuracy).toBe(expected);
      // feature_scale is applied as ingest applies it: features stored times 1024 with a scale of 1/1024 predict the same.
      const doubled = writeArrow(path.join(tmp, 'scaled.arrow'), [batchOf({ label: col(Array.from(test.y), new Int32()), features: fslFlat(test.x.map((v) => 1024 * v), 8) }, { feature_scale: '1/1024' })]);
      expect((await predictFile(p, { input: doubled })).accuracy).toBe(expected);
      const unlabelled = writeArrow(path.join(tmp, 'nolabel.arrow'), [batchOf({ features: fslFlat(test.x, 8) })]);
      const r = await predictFile(p, { input: unlabelled, out: path.join(tmp, 'nolabel-out.arrow') });
      expect(r).toMatchObject({ rows: 72, labelled: 0, accuracy: null });
      expect(tableFromIPC(readFileSync(path.join(tmp, 'nolabel-out.arrow'))).schema.fields.map((f) => f.name)).not.toContain('label');
      const pq = writeParquet(path.join(tmp, 'test.parquet'), [batchOf({ label: col(Array.from(test.y), new Int32()), features: fslFlat(test.x, 8) })], { rowGroupSize: 20 });
      expect((await predictFile(p, { input: pq })).accuracy).toBe(expected);

      const wrongDim = writeArrow(path.join(tmp, 'dim.arrow'), [batchOf({ label: col([0, 1], new Int32()), features: fslCol([[1, 2, 3], [4, 5, 6]], 3, new Float32()) })]);
      await expect(predictFile(p, { input: wrongDim, out: path.join(tmp, 'x.arrow') })).rejects.toThrow(/dim\.arrow.*features.*3 features but the model takes 8/);
      const badName = writeArrow(path.join(tmp, 'name.arrow'), [batchOf({ label: col([p.classes[0]!, 'no-such-class'], new Utf8()), features: fslFlat(test.x.subarray(0, 16), 8) })]);
      await expect(predictFile(p, { input: badName, out: path.join(tmp, 'y.arrow') })).rejects.toThrow(/row 1.*"no-such-class" is not one of the model's classes/);
      const badIndex = writeArrow(path.join(tmp, 'index.arrow'), [batchOf({ label: col([0, 12], new Int32()), features: fslFlat(test.x.subarray(0, 16), 8) })]);
      await expect(predictFile(p, { input: badIndex })).rejects.toThrow(/row 1.*class index 12 is not one of the model's 12 classes/);
      // Nothing half-written under the names asked for.
      expect(() => readFileSync(path.join(tmp, 'x.arrow'))).toThrow();
      expect(() => readFileSync(path.join(tmp, 'y.arrow'))).toThrow();
    } finally {
      p.dispose();
    }
    await expect(loadPredictor(path.join(out, 'clusters'))).rejects.toThrow(/no trained model.*give a stage that trains one/);
    await expect(loadPredictor(tmp)).rejects.toThrow(/not a finished stage/);
  });

  it("--out never replaces a user's file: only an earlier prediction file, or with force; never the input or a folder", async () => {
    const p = await loadPredictor(path.join(out, 'generalist'));
    try {
      const input = path.join(out, 'ingest', 'test.arrow');
      const mine = path.join(tmp, 'mine.arrow');
      writeFileSync(mine, 'my own notes, not an Arrow file');
      await expect(predictFile(p, { input, out: mine })).rejects.toThrow(/--out .*mine\.arrow already exists and was not written by distill-kit; choose another --out path, or add --force/);
      expect(readFileSync(mine, 'utf8')).toBe('my own notes, not an Arrow file');
      // An Arrow file of someone else's (no generator mark) is the user's too.
      const foreign = path.join(tmp, 'foreign.arrow');
      copyFileSync(input, foreign);
      const before = readFileSync(foreign);
      await expect(predictFile(p, { input, out: foreign })).rejects.toThrow(/already exists and was not written by distill-kit/);
      expect(readFileSync(foreign).equals(before)).toBe(true);
      // With force it is replaced; after that the file is ours and a rerun replaces it without force.
      await predictFile(p, { input, out: mine, force: true });
      expect(tableFromIPC(readFileSync(mine)).numRows).toBe(72);
      expect(tableFromIPC(readFileSync(mine)).schema.metadata.get('generator')).toBe('distill-kit predict');
      await predictFile(p, { input, out: mine, top: 1 });
      expect(tableFromIPC(readFileSync(mine)).getChild('top_classes')!.type.listSize).toBe(1);
      // Never the input itself (even with force), never a folder.
      const inputBytes = readFileSync(input);
      await expect(predictFile(p, { input, out: input, force: true })).rejects.toThrow(/is the input file/);
      expect(readFileSync(input).equals(inputBytes)).toBe(true);
      await expect(predictFile(p, { input, out: tmp, force: true })).rejects.toThrow(/is a folder; give the path of a file/);
    } finally {
      p.dispose();
    }
  });

  it('the CLI: prints the accuracy, writes the file; a bad stage folder is one error line', () => {
    const tsx = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
    const file = path.join(tmp, 'cli.arrow');
    const stdout = execFileSync(tsx, [path.join(REPO_ROOT, 'src/cli/predict.ts'), path.join(out, 'ensemble'), '--input', path.join(out, 'ingest', 'test.arrow'), '--out', file, '--top', '2', '--backend', 'cpu'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const acc = json(path.join(out, 'ensemble', 'metrics.json')).ensemble!.accuracy;
    expect(stdout).toContain(`72 rows predicted by ensemble ensemble: accuracy ${(100 * acc).toFixed(2)}%`);
    expect(tableFromIPC(readFileSync(file)).numRows).toBe(72);
    const bad = spawnSync(tsx, [path.join(REPO_ROOT, 'src/cli/predict.ts'), path.join(out, 'clusters'), '--input', file, '--backend', 'cpu'], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim().split('\n').filter((l) => l.startsWith('error:'))).toHaveLength(1);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);
});
