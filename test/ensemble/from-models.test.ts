/**
 * buildProblemFromModels with tiny hand-built specialists (one dense layer, known weights), so that
 * every specialist output is computable by hand: each (case, specialist) slot of the problem must
 * hold that specialist's cells on THAT case's row, for both heads.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/select.ts';
import { buildProblemFromModels, type ModelsProblem } from '../../src/ensemble/from-models.ts';
import { foldFullHead, specialistCells } from '../../src/ensemble/specialist-cells.ts';
import { solveEm } from '../../src/ensemble/solve-em.ts';
import type { LabeledSet } from '../../src/data/split-file.ts';
import { ArtifactError } from '../../src/util/errors.ts';
import { checkPredictionsAligned, readSpecialistsSummary } from '../../pipeline/stages/ensemble.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

beforeAll(async () => {
  await initBackend('cpu');
});

const C = 4;
const D = 4;
/**
 * Five cases; each row's features are the logs of a probability vector p, so a layer that copies
 * features to logits gives softmax = p (or a renormalised part of it). The generalist's logits are
 * the same ln p, so its top-1 classes are 3, 0, 1, 2, 3.
 */
const P = [
  [0.1, 0.2, 0.3, 0.4], // r0: top 3
  [0.4, 0.3, 0.2, 0.1], // r1: top 0
  [0.2, 0.5, 0.2, 0.1], // r2: top 1
  [0.1, 0.1, 0.7, 0.1], // r3: top 2
  [0.05, 0.15, 0.3, 0.5], // r4: top 3
];
const n = P.length;
const x = Float32Array.from(P.flat().map(Math.log));
const set: LabeledSet = { x, y: Int32Array.from([3, 0, 1, 2, 3]), n, dim: D };
/** S0 = {0, 1}, S1 = {1, 3}: active (top-1 in the subset) r0: S1; r1: S0; r2: S0, S1; r3: none; r4: S1. */
const subsets = [[0, 1], [1, 3]];

/** A one-layer model named `logits`: logits = x W + b, W[i][t] = 1 where t takes feature i. */
function linear(cols: number[], bias?: number[]): tf.LayersModel {
  const k = cols.length;
  const w = new Float32Array(D * k);
  cols.forEach((i, t) => (w[i * k + t] = 1));
  const weights = [tf.tensor2d(w, [D, k]), tf.tensor1d(bias ?? new Array<number>(k).fill(0))];
  const model = tf.sequential();
  model.add(tf.layers.dense({ inputShape: [D], units: k, name: 'logits', weights }));
  tf.dispose(weights); // the layer holds copies
  return model;
}

/** The slot of specialist m for case r: its |S|+1 probabilities, or undefined when m is not active there. */
function slot(built: ModelsProblem, r: number, m: number): number[] | undefined {
  const pr = built.problem;
  for (let s = pr.activeOffsets[r]!; s < pr.activeOffsets[r + 1]!; s++) {
    if (pr.activeIds[s] === m) return Array.from(pr.pm.subarray(pr.pmOffsets[s]!, pr.pmOffsets[s + 1]!));
  }
  return undefined;
}

function expectClose(got: number[] | undefined, want: number[]): void {
  expect(got).toBeDefined();
  expect(got).toHaveLength(want.length);
  got!.forEach((v, t) => expect(v).toBeCloseTo(want[t]!, 6));
}

/** Each model is built on load (buildProblemFromModels disposes it); records which rows it saw. */
function loader(make: (m: number) => tf.LayersModel, seen: number[][]) {
  return async (m: number): Promise<tf.LayersModel> => {
    const model = make(m);
    const predict = model.predict.bind(model);
    model.predict = ((input: tf.Tensor, cfg?: unknown) => {
      const rows = (input as tf.Tensor2D).arraySync() as number[][];
      for (const row of rows) seen[m]!.push(P.findIndex((p) => p.every((v, i) => Math.abs(Math.log(v) - row[i]!) < 1e-6)));
      return predict(input, cfg as never);
    }) as typeof model.predict;
    return model;
  };
}

describe('buildProblemFromModels: specialist outputs land on the right cases and cells', () => {
  it('dustbin head: each active (case, specialist) slot holds that specialist on that row', async () => {
    const before = tf.memory().numTensors;
    const seen: number[][] = [[], []];
    // S0's logits = (x0, x1, x2): cells (p0, p1, p2) / (p0 + p1 + p2). S1's = (x1, x3, x0): (p1, p3, p0) / (p1 + p3 + p0).
    const make = (m: number) => (m === 0 ? linear([0, 1, 2]) : linear([1, 3, 0]));
    const built = await buildProblemFromModels({ set, generalistLogits: x, C, subsets, loadSpecialist: loader(make, seen), topN: 1 });
    expect(tf.memory().numTensors).toBe(before);
    // Each specialist ran once, on exactly its active rows, in row order.
    expect(seen).toEqual([[1, 2], [0, 2, 4]]);
    expect(Array.from(built.problem.activeOffsets)).toEqual([0, 1, 2, 4, 4, 5]);
    expect(Array.from(built.problem.activeIds)).toEqual([1, 0, 0, 1, 1]);
    expect(built.active).toEqual([true, true, true, false, true]);
    // Hand-computed cells (special classes ascending, dustbin last).
    expectClose(slot(built, 1, 0), [4 / 9, 3 / 9, 2 / 9]); // (0.4, 0.3, 0.2) / 0.9
    expectClose(slot(built, 2, 0), [2 / 9, 5 / 9, 2 / 9]); // (0.2, 0.5, 0.2) / 0.9
    expectClose(slot(built, 0, 1), [2 / 7, 4 / 7, 1 / 7]); // (0.2, 0.4, 0.1) / 0.7
    expectClose(slot(built, 2, 1), [5 / 8, 1 / 8, 2 / 8]); // (0.5, 0.1, 0.2) / 0.8
    expectClose(slot(built, 4, 1), [3 / 14, 10 / 14, 1 / 14]); // (0.15, 0.5, 0.05) / 0.7
    expect(slot(built, 0, 0)).toBeUndefined();
    expect(slot(built, 3, 0)).toBeUndefined();
    expect(slot(built, 3, 1)).toBeUndefined();
    // The generalist's probabilities are the rows' p; coverage counts active subsets holding the label.
    for (let r = 0; r < n; r++) for (let i = 0; i < C; i++) expect(built.pg[r * C + i]).toBeCloseTo(P[r]![i]!, 6);
    expect(Array.from(built.coverage)).toEqual([1, 1, 2, 0, 1]);
    expect(Array.from(built.membership)).toEqual([1, 1, 2, 0, 1]);
  });

  it('full head: the C probabilities are folded into special classes + dustbin (the sum of the rest)', async () => {
    const before = tf.memory().numTensors;
    const seen: number[][] = [[], []];
    // S0: logits = x, softmax = p; cells (p0, p1, p2 + p3).
    // S1: logits = x + (ln 2, 0, 0, 0): p' = (2 p0, p1, p2, p3) / (1 + p0); cells (p'1, p'3, p'0 + p'2).
    const make = (m: number) => (m === 0 ? linear([0, 1, 2, 3]) : linear([0, 1, 2, 3], [Math.log(2), 0, 0, 0]));
    const built = await buildProblemFromModels({ set, generalistLogits: x, C, subsets, loadSpecialist: loader(make, seen), head: 'full', topN: 1 });
    expect(tf.memory().numTensors).toBe(before);
    expect(seen).toEqual([[1, 2], [0, 2, 4]]);
    expectClose(slot(built, 1, 0), [0.4, 0.3, 0.3]);
    expectClose(slot(built, 2, 0), [0.2, 0.5, 0.3]);
    expectClose(slot(built, 0, 1), [2 / 11, 4 / 11, 5 / 11]); // (0.2, 0.4, 0.2 + 0.3) / 1.1
    expectClose(slot(built, 2, 1), [5 / 12, 1 / 12, 6 / 12]); // (0.5, 0.1, 0.4 + 0.2) / 1.2
    expectClose(slot(built, 4, 1), [1 / 7, 10 / 21, 8 / 21]); // (0.15, 0.5, 0.1 + 0.3) / 1.05
    // Every slot is a distribution, and the solver accepts the problem.
    const pm = built.problem.pm;
    for (let s = 0; s + 1 < built.problem.pmOffsets.length; s++) {
      let t = 0;
      for (let v = built.problem.pmOffsets[s]!; v < built.problem.pmOffsets[s + 1]!; v++) t += pm[v]!;
      expect(t).toBeCloseTo(1, 6);
    }
    const q = solveEm(built.problem, { weight: 1 }).q;
    for (let r = 0; r < n; r++) expect(q.subarray(r * C, (r + 1) * C).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });

  it('a head that does not match the models is refused with a message naming the specialist', async () => {
    const seen: number[][] = [[], []];
    const fullModels = loader(() => linear([0, 1, 2, 3]), seen);
    const dustbin = buildProblemFromModels({ set, generalistLogits: x, C, subsets, loadSpecialist: fullModels, topN: 1, specialistLabel: (m) => `specialist-0${m}` });
    await expect(dustbin).rejects.toThrow(ArtifactError);
    await expect(buildProblemFromModels({ set, generalistLogits: x, C, subsets, loadSpecialist: fullModels, topN: 1, specialistLabel: (m) => `specialist-0${m}` })).rejects.toThrow(
      /specialist-00 has 4 outputs, but a 'dustbin' head over its 2 special classes \(of 4\) has 3 \(it looks like a 'full' head\).*rerun the specialists stage with --force/,
    );
    const dustbinModels = loader(() => linear([0, 1, 2]), seen);
    await expect(buildProblemFromModels({ set, generalistLogits: x, C, subsets, loadSpecialist: dustbinModels, head: 'full', topN: 1 })).rejects.toThrow(/specialist 0 has 3 outputs, but a 'full' head .* has 4 \(it looks like a 'dustbin' head\)/);
  });
});

describe('foldFullHead', () => {
  it('matches a hand-computed case (probability space)', () => {
    // p = (0.1, 0.2, 0.3, 0.4), S = {0, 2}: cells (0.1, 0.3, 0.2 + 0.4).
    const z = Float32Array.from([0.1, 0.2, 0.3, 0.4].map((v) => Math.log(v) + 5)); // a shift changes nothing
    expect(Array.from(foldFullHead(z, 1, 4, [0, 2])).map((v) => +v.toFixed(6))).toEqual([0.1, 0.3, 0.6]);
  });

  it('is stable in log space: huge logits, and a dustbin made of many tiny probabilities', () => {
    const big = Float32Array.from([1000, 1001, -1000, 1000]); // p = (1, e, 0, 1) / (2 + e): exp(1000) alone would overflow
    const [p1, rest] = Array.from(foldFullHead(big, 1, 4, [1]));
    expect(p1).toBeCloseTo(Math.E / (2 + Math.E), 6);
    expect(rest).toBeCloseTo(2 / (2 + Math.E), 6);
    // C = 1000: the special class at logit 0, 999 others at -30: dustbin = 999 e^-30 / (1 + 999 e^-30).
    const Cb = 1000;
    const z = new Float32Array(Cb).fill(-30);
    z[7] = 0;
    const [special, dust] = Array.from(foldFullHead(z, 1, Cb, [7]));
    const e = 999 * Math.exp(-30);
    expect(dust! / (e / (1 + e))).toBeCloseTo(1, 5);
    expect(special! / (1 / (1 + e))).toBeCloseTo(1, 6);
  });

  it('a subset covering every class has an empty dustbin (0); several rows are independent', () => {
    const z = Float32Array.from([0, 0, Math.log(2), Math.log(3), 0, 0]); // rows (0.5, 0.5), (0.4, 0.6)
    expect(Array.from(foldFullHead(z, 3, 2, [0, 1])).map((v) => +v.toFixed(6))).toEqual([0.5, 0.5, 0, 0.4, 0.6, 0, 0.5, 0.5, 0]);
    expect(() => foldFullHead(z, 3, 2, [1, 0])).toThrow(/sorted/);
    expect(() => foldFullHead(z, 2, 2, [0])).toThrow(/expected 2 x 2/);
  });

  it('specialistCells on a model: dustbin head is its softmax, full head is folded', () => {
    const before = tf.memory().numTensors;
    const full = linear([0, 1, 2, 3]);
    const cells = specialistCells(full, x, n, D, [3], C, 'full', 'test');
    expect(Array.from(cells.subarray(0, 2)).map((v) => +v.toFixed(6))).toEqual([0.4, 0.6]); // r0: (p3, p0 + p1 + p2)
    full.dispose();
    const dust = linear([3, 0]);
    const d = specialistCells(dust, x, n, D, [3], C, 'dustbin', 'test');
    expect(Array.from(d.subarray(0, 2)).map((v) => +v.toFixed(6))).toEqual([0.8, 0.2]); // r0: (0.4, 0.1) / 0.5
    dust.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('ensemble stage inputs', () => {
  it("refuses generalist predictions that are not the split's rows", () => {
    const pred = (labels: number[]) => ({ labels: Int32Array.from(labels), n: labels.length });
    expect(() => checkPredictionsAligned(set, pred([3, 0, 1, 2, 3]), 'p.arrow', 's.arrow')).not.toThrow();
    expect(() => checkPredictionsAligned(set, pred([3, 0, 2, 1, 3]), 'p.arrow', 's.arrow')).toThrow(/p.arrow \(5 rows\) does not hold the rows of s.arrow \(5 rows\): they differ at row 2; rerun the covariance stage with --force/);
    expect(() => checkPredictionsAligned(set, pred([3, 0, 1]), 'p.arrow', 's.arrow')).toThrow(ArtifactError);
  });

  it('reads the head from specialists.json and refuses a malformed one', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'spec-json-'));
    try {
      const file = path.join(dir, 'specialists.json');
      writeFileSync(file, JSON.stringify({ head: 'full', correction: 'fitted', specialists: [{ id: 'specialist-00', classes: [2, 0], size: 2 }] }));
      expect(readSpecialistsSummary(dir)).toMatchObject({ head: 'full', specialists: [{ id: 'specialist-00', classes: [2, 0] }] });
      writeFileSync(file, JSON.stringify({ specialists: [{ id: 'specialist-00', classes: [1] }] }));
      expect(readSpecialistsSummary(dir).head).toBe('dustbin');
      writeFileSync(file, JSON.stringify({ head: 'wide', specialists: [{ id: 'specialist-00', classes: [1] }] }));
      expect(() => readSpecialistsSummary(dir)).toThrow(/specialists.json: head: .*rerun the specialists stage with --force/);
      writeFileSync(file, JSON.stringify({ head: 'full', specialists: [{ id: '../../etc', classes: [1] }] }));
      expect(() => readSpecialistsSummary(dir)).toThrow(/specialists.0.id: a folder name inside the specialists stage/);
      writeFileSync(file, '{"head": ');
      expect(() => readSpecialistsSummary(dir)).toThrow(ArtifactError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
