import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { silentLogger } from '../../src/util/log.ts';
import { readCovariance } from '../../src/specialists/covariance.ts';
import { readPredictions } from '../../src/artifacts/predictions.ts';
import { loadModel } from '../../src/models/io.ts';
import { describePath } from '../../src/cli/describe.ts';

/** A tiny synthetic run through every stage of the specialist pipeline. */
const CONFIG = `
name: tiny
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
`;

let out: string;
let cache: string;
let numTensors: number;
beforeAll(async () => {
  out = mkdtempSync(path.join(os.tmpdir(), 'tiny-'));
  cache = mkdtempSync(path.join(os.tmpdir(), 'cache-'));
});

const run = () => runPipeline(parseConfig(CONFIG, 'tiny.yaml', STAGES), { out, cacheDir: cache, log: silentLogger });

describe('tiny pipeline, every stage', () => {
  it('runs every stage and writes the documented artifacts', async () => {
    const r = await run();
    numTensors = tf.memory().numTensors;
    expect(r.stages.map((s) => s.status)).toEqual(r.stages.map(() => 'ran'));
    for (const f of ['train.arrow', 'valid.arrow', 'test.arrow', 'classes.json', 'manifest.json']) expect(existsSync(path.join(out, 'ingest', f))).toBe(true);
    const metrics = JSON.parse(readFileSync(path.join(out, 'generalist', 'metrics.json'), 'utf8'));
    expect(metrics.test).toEqual({ accuracy: expect.any(Number), errors: expect.any(Number), examples: 12 * 6, loss: expect.any(Number) });
    expect(readFileSync(path.join(out, 'generalist', 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(3);
    const model = await loadModel(path.join(out, 'generalist', 'model'));
    expect(model.outputs[0]!.shape).toEqual([null, 12]);
    model.dispose();
    const cov = await readCovariance(path.join(out, 'covariance'));
    expect(cov.classes).toBe(12);
    expect(cov.split).toBe('valid');
    const pred = readPredictions(path.join(out, 'covariance', 'predictions-test.arrow'));
    expect(pred.C).toBe(12);
    expect(pred.n).toBe(72);
    const clusters = JSON.parse(readFileSync(path.join(out, 'clusters', 'clusters.json'), 'utf8'));
    expect(clusters.k).toBe(3);
    const covered = clusters.clusters.flatMap((c: { classes: number[] }) => c.classes).sort((a: number, b: number) => a - b);
    expect(covered).toEqual(Array.from({ length: 12 }, (_, i) => i));
  });

  it('a second run is a cache hit for every stage and leaks no tensors', async () => {
    const r = await run();
    expect(r.stages.map((s) => s.status)).toEqual(r.stages.map(() => 'skipped'));
    expect(tf.memory().numTensors).toBe(numTensors);
  });

  it('inspect describes the run and each stage', async () => {
    const runText = await describePath(out);
    expect(runText).toMatch(/generalist\s+generalist/);
    const gen = await describePath(path.join(out, 'generalist'));
    expect(gen).toMatch(/Metrics:/);
    expect(gen).toMatch(/total parameters: /);
    const ing = await describePath(path.join(out, 'ingest'));
    expect(ing).toMatch(/Classes: 12, features: 8/);
  });
});
