import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { silentLogger } from '../../src/util/log.ts';
import { readCovariance } from '../../src/specialists/covariance.ts';
import { readPredictions } from '../../src/artifacts/predictions.ts';
import { readSplit } from '../../src/data/split-file.ts';
import { distillationLoss } from '../../src/distill/losses.ts';

/**
 * The unlabelled transfer set end to end on a tiny synthetic dataset: ingest keeps the rows with
 * split = 'unlabeled', the covariance is computed on them, the ensemble labels them, and students
 * learn from them alone or together with the training split.
 */
const BASE = `
name: tiny-unlabeled
seed: 7
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 12, groups: 3, dim: 8, perClass: 30, seed: 3, classSpread: 0.5, unlabeledPerClass: 20}}
  generalist:
    hidden: [8]
    epochs: 3
    batch_size: 32
    optimizer: {name: adam, lr: 0.01}
  covariance: {split: unlabeled}
  clusters: {k: 3}
  specialists: {epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.005}}
  ensemble: {top_n: 1, weight: 1, unlabeled_targets: true}
  student_unlabeled:
    type: distill
    teacher_targets: ensemble
    hidden: [8]
    loss: {type: soft, T: 2, alpha: 1}
    transfer: {source: unlabeled}
    epochs: 2
    batch_size: 32
    optimizer: {name: adam, lr: 0.01}
  student_both:
    type: distill
    teacher: generalist
    hidden: [8]
    loss: {type: soft, T: 2, alpha: 0.5}
    transfer: {source: both}
    epochs: 2
    batch_size: 32
    optimizer: {name: adam, lr: 0.01}
`;

let out: string;
let cache: string;
beforeAll(() => {
  out = mkdtempSync(path.join(os.tmpdir(), 'unl-'));
  cache = mkdtempSync(path.join(os.tmpdir(), 'unl-cache-'));
});
afterAll(() => {
  rmSync(out, { recursive: true, force: true });
  rmSync(cache, { recursive: true, force: true });
});
const run = (text = BASE) => runPipeline(parseConfig(text, 'tiny-unlabeled.yaml', STAGES), { out, cacheDir: cache, log: silentLogger });
const json = (...p: string[]) => JSON.parse(readFileSync(path.join(out, ...p), 'utf8'));

describe('unlabelled transfer set, through the pipeline', () => {
  let tensors = 0;
  it('covariance, ensemble targets and students use the 240 unlabeled rows', async () => {
    const r = await run();
    tensors = tf.memory().numTensors;
    expect(r.stages.every((s) => s.status === 'ran')).toBe(true);
    const classes = json('ingest', 'classes.json');
    expect(classes.rows.unlabeled).toBe(240);
    const cov = await readCovariance(path.join(out, 'covariance'));
    expect(cov.split).toBe('unlabeled');
    expect(cov.examples).toBe(240);
    const targets = readPredictions(path.join(out, 'ensemble', 'soft-targets-unlabeled.arrow'), 'probabilities');
    expect(targets.n).toBe(240);
    expect(Array.from(targets.labels).every((y) => y === -1)).toBe(true);
    for (let i = 0; i < targets.n; i++) {
      let s = 0;
      for (let c = 0; c < targets.C; c++) s += targets.values[i * targets.C + c]!;
      expect(s).toBeCloseTo(1, 4);
    }
    const unl = json('student_unlabeled', 'metrics.json');
    expect(unl.transfer_examples).toBe(240);
    expect(unl.transfer_unlabeled).toBe(240);
    expect(unl.transfer).toBeNull(); // no labelled transfer rows to score
    expect(unl.test.examples).toBe(12 * 6);
    const both = json('student_both', 'metrics.json');
    const trainRows = classes.rows.train as number;
    expect(both.transfer_examples).toBe(trainRows + 240);
    expect(both.transfer_unlabeled).toBe(240);
    expect(both.transfer.examples).toBe(trainRows); // scored on the labelled rows only
    // the epoch lines' training accuracy is over the labelled rows too (a tiny net still gets some right)
    const epochs = readFileSync(path.join(out, 'student_both', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(epochs[1].train_accuracy).toBeGreaterThan(0);
    expect(epochs[1].train_accuracy).toBeLessThanOrEqual(1);
  }, 120_000);

  it('a second run is a cache hit and leaks no tensors', async () => {
    const r = await run();
    expect(r.stages.every((s) => s.status === 'skipped')).toBe(true);
    expect(tf.memory().numTensors).toBe(tensors);
  }, 60_000);
});

describe('unlabelled transfer set: configuration errors', () => {
  const stage = (extra: string) =>
    `name: x\nstages:\n  ingest: {dataset: {recipe: synthetic, options: {classes: 4, groups: 2, dim: 2, perClass: 5}}}\n  generalist: {hidden: [4], epochs: 1}\n  s:\n    type: distill\n${extra}`;
  it('rejects a hard-label student on unlabeled rows, and alpha < 1 with source unlabeled', () => {
    expect(() => parseConfig(stage('    loss: {type: hard}\n    transfer: {source: unlabeled}\n'), 'x.yaml', STAGES)).toThrow(/stages\.s\.transfer\.source.*need a teacher/);
    expect(() => parseConfig(stage('    teacher: generalist\n    loss: {type: soft, T: 2, alpha: 0.5}\n    transfer: {source: unlabeled}\n'), 'x.yaml', STAGES)).toThrow(/stages\.s\.loss\.alpha.*set alpha to 1/);
    expect(() => parseConfig(stage('    teacher: generalist\n    loss: {type: soft, T: 2, alpha: 1}\n    transfer: {source: unlabeled, omit_classes: [1]}\n'), 'x.yaml', STAGES)).toThrow(/select train rows/);
  });

  it('asking for unlabeled rows the dataset does not have is one clear error', async () => {
    const text = BASE.replace(', unlabeledPerClass: 20', '').replace('name: tiny-unlabeled', 'name: tiny-no-unlabeled');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'unl-missing-'));
    try {
      await expect(runPipeline(parseConfig(text, 'x.yaml', STAGES), { out: dir, cacheDir: cache, log: silentLogger })).rejects.toThrow(/covariance\.split is 'unlabeled' but the dataset of stage 'ingest' has no unlabeled rows/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('hard-label term with unlabeled rows (label -1)', () => {
  it('they add nothing: the term is the labelled rows\' cross-entropy summed, over the whole batch size', () => {
    const logits = tf.tensor2d([
      [1, 2, 0.5],
      [0.3, -1, 2],
      [2, 0, 0],
      [-0.5, 1.5, 1],
    ]);
    const teacher = new Float32Array([0, 1, 0, 1, 0, 0, 0.5, 0.5, 0, 0, 0, 1]);
    const batch = { x: tf.zeros([4, 1]) as tf.Tensor2D, y: tf.tensor1d([1, -1, 0, -1], 'int32'), targets: tf.tensor2d(teacher, [4, 3]) };
    const before = tf.memory().numTensors;
    const loss = distillationLoss({ T: 1, alpha: 0 })(logits, batch);
    // by hand: rows 0 and 2 have labels 1 and 0; CE = logsumexp(z) - z_y; divided by 4 rows
    const lse = (z: number[]) => Math.log(z.reduce((s, v) => s + Math.exp(v), 0));
    const expected = (lse([1, 2, 0.5]) - 2 + (lse([2, 0, 0]) - 2)) / 4;
    expect(loss.dataSync()[0]).toBeCloseTo(expected, 5);
    // and the gradient on the unlabeled rows is zero
    const g = tf.grad((z: tf.Tensor) => distillationLoss({ T: 1, alpha: 0 })(z as tf.Tensor2D, batch))(logits);
    const gv = g.arraySync() as number[][];
    expect(gv[1]!.map(Math.abs)).toEqual([0, 0, 0]);
    expect(gv[3]!.map(Math.abs)).toEqual([0, 0, 0]);
    tf.dispose([loss, g]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([logits, batch.x, batch.y, batch.targets]);
  });

  it('inspect shows the unlabeled rows of the ingest stage', async () => {
    const { describePath } = await import('../../src/cli/describe.ts');
    expect(await describePath(path.join(out, 'ingest'))).toMatch(/Classes: 12, features: 8.*unlabeled rows: 240 \(unlabeled\.arrow\)/);
  });

  it('the split file of unlabeled rows reads back with label -1', async () => {
    const u = await readSplit(path.join(out, 'ingest', 'unlabeled.arrow'));
    expect(u.n).toBe(240);
    expect(u.y.every((y) => y === -1)).toBe(true);
  });
});
