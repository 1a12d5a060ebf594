import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/select.ts';
import { buildMlp, LOGITS_LAYER } from '../../src/models/mlp.ts';
import { specialistLoss, streamTeacherCells, teacherCellCount, teacherCellLogits } from '../../src/specialists/specialist-loss.ts';

beforeAll(async () => {
  await initBackend('cpu');
});

const C = 6;
const classes = [4, 1]; // sorted: [1, 4]; cells: class1 -> 0, class4 -> 1, others -> 2 (dustbin)
// Two examples: generalist logits (n x C), student logits (n x 3), cell labels.
const gen = [
  [0.5, 2.0, -1.0, 0.3, 1.0, 0.0],
  [-0.2, 0.1, 3.0, 1.5, -2.0, 0.7],
];
const stu = [
  [1.0, 0.2, -0.5],
  [0.0, -1.0, 2.0],
];
const cellY = [0, 2];

const lse = (v: number[]): number => {
  const m = Math.max(...v);
  return m + Math.log(v.reduce((s, x) => s + Math.exp(x - m), 0));
};
const softmax = (v: number[]): number[] => {
  const l = lse(v);
  return v.map((x) => Math.exp(x - l));
};
/** Teacher cell logits by hand: [z1, z4, LSE(z0, z2, z3, z5)]. */
const teacherCells = (z: number[]): number[] => [z[1], z[4], lse([z[0], z[2], z[3], z[5]])];

function lossValue(fn: ReturnType<typeof specialistLoss>, studentRows: number[][], y: number[], targets?: number[][]): number {
  return tf.tidy(() => {
    const batch = { x: tf.zeros([y.length, 1]) as tf.Tensor2D, y: tf.tensor1d(y, 'int32'), targets: targets ? tf.tensor2d(targets) : undefined };
    return fn(tf.tensor2d(studentRows), batch).dataSync()[0];
  });
}

describe('teacherCellLogits', () => {
  it('aggregates the outside logits by log-sum-exp BEFORE any tempering', () => {
    const before = tf.memory().numTensors;
    const t = tf.tidy(() => teacherCellLogits(tf.tensor2d(gen), classes, C, 'dustbin'));
    const got = t.arraySync();
    t.dispose();
    for (let i = 0; i < 2; i++) {
      const want = teacherCells(gen[i]);
      for (let j = 0; j < 3; j++) expect(got[i][j]).toBeCloseTo(want[j], 5);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('the dustbin soft target is the generalist mass outside at temperature T of the aggregated logit (not the tempered sum)', () => {
    // 980 outside classes with logit 0, one special class with logit 6: at T = 4 the aggregated
    // dustbin logit is log(980) = 6.89, so the dustbin target is 1 / (1 + e^((6 - 6.89)/4)) = 0.555; tempering first and
    // summing would give 980 e^0 / (980 + e^1.5) = 0.995 (the measured pitfall).
    const CC = 981;
    const z = new Array(CC).fill(0);
    z[0] = 6;
    const T = 4;
    const p = tf.tidy(() => tf.softmax(tf.div(teacherCellLogits(tf.tensor2d([z]), [0], CC, 'dustbin'), T)).arraySync() as number[][]);
    const dustbin = p[0][1];
    const aggregateThenTemper = 1 / (1 + Math.exp((6 - Math.log(980)) / T));
    const temperThenSum = 980 / (980 + Math.exp(6 / T));
    expect(dustbin).toBeCloseTo(aggregateThenTemper, 5);
    expect(dustbin).toBeCloseTo(0.5552, 3);
    expect(temperThenSum).toBeGreaterThan(0.99);
  });
});

describe('specialistLoss', () => {
  it('hard term = mean cross-entropy on the cell labels', () => {
    const fn = specialistLoss({ classes, C, head: 'dustbin', softWeight: 0, T: 3 });
    const want = (-Math.log(softmax(stu[0])[0]) - Math.log(softmax(stu[1])[2])) / 2;
    expect(lossValue(fn, stu, cellY)).toBeCloseTo(want, 5);
  });

  it('soft term = softWeight * T^2 * CE(teacher_T, student_T) with aggregated-then-tempered teacher', () => {
    const T = 2.5;
    const w = 0.7;
    const fn = specialistLoss({ classes, C, head: 'dustbin', softWeight: w, T, hardWeight: 0 });
    let want = 0;
    for (let i = 0; i < 2; i++) {
      const p = softmax(teacherCells(gen[i]).map((v) => v / T));
      const q = softmax(stu[i].map((v) => v / T));
      want += -p.reduce((s, pj, j) => s + pj * Math.log(q[j]), 0) / 2;
    }
    expect(lossValue(fn, stu, cellY, gen)).toBeCloseTo(w * T * T * want, 4);
    // hard + soft add up
    const both = specialistLoss({ classes, C, head: 'dustbin', softWeight: w, T });
    const hard = lossValue(specialistLoss({ classes, C, head: 'dustbin', softWeight: 0, T }), stu, cellY);
    expect(lossValue(both, stu, cellY, gen)).toBeCloseTo(hard + w * T * T * want, 4);
  });

  it('gradient of the T^2-scaled soft term w.r.t. student logits is T (q_T - p_T) / n', () => {
    const T = 3;
    const fn = specialistLoss({ classes, C, head: 'dustbin', softWeight: 1, T, hardWeight: 0 });
    const before = tf.memory().numTensors;
    const g = tf.tidy(() => {
      const batch = { x: tf.zeros([2, 1]) as tf.Tensor2D, y: tf.tensor1d(cellY, 'int32'), targets: tf.tensor2d(gen) };
      return tf.grad((z: tf.Tensor) => fn(z as tf.Tensor2D, batch))(tf.tensor2d(stu)).arraySync() as number[][];
    });
    expect(tf.memory().numTensors).toBe(before);
    for (let i = 0; i < 2; i++) {
      const p = softmax(teacherCells(gen[i]).map((v) => v / T));
      const q = softmax(stu[i].map((v) => v / T));
      for (let j = 0; j < 3; j++) expect(g[i][j]).toBeCloseTo((T * (q[j] - p[j])) / 2, 5);
    }
  });

  it('full head: soft targets are the generalist distribution over all classes at T', () => {
    const T = 2;
    const fn = specialistLoss({ classes, C, head: 'full', softWeight: 1, T, hardWeight: 0 });
    const s = [
      [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
      [1, -1, 0, 2, 0, -2],
    ];
    let want = 0;
    for (let i = 0; i < 2; i++) {
      const p = softmax(gen[i].map((v) => v / T));
      const q = softmax(s[i].map((v) => v / T));
      want += -p.reduce((acc, pj, j) => acc + pj * Math.log(q[j]), 0) / 2;
    }
    expect(lossValue(fn, s, [1, 2], gen)).toBeCloseTo(T * T * want, 4);
  });

  it('checks its inputs and leaks no tensors', () => {
    expect(() => specialistLoss({ classes, C, head: 'dustbin', softWeight: 1, T: 0 })).toThrow(/T must be/);
    expect(() => specialistLoss({ classes: [1, 1], C, head: 'dustbin', softWeight: 1, T: 1 })).toThrow(/twice/);
    const fn = specialistLoss({ classes, C, head: 'dustbin', softWeight: 1, T: 2 });
    expect(() => lossValue(fn, stu, cellY)).toThrow(/batch.targets/);
    const before = tf.memory().numTensors;
    lossValue(fn, stu, cellY, gen);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("specialistLoss with targets: 'cells' (pre-aggregated teacher cell logits)", () => {
  const cellRows = gen.map(teacherCells);

  it('equals the full-logits loss when given the cells by hand', () => {
    const T = 2.5;
    const w = 0.7;
    const full = specialistLoss({ classes, C, head: 'dustbin', softWeight: w, T });
    const cells = specialistLoss({ classes, C, head: 'dustbin', softWeight: w, T, targets: 'cells' });
    let soft = 0;
    for (let i = 0; i < 2; i++) {
      const p = softmax(cellRows[i].map((v) => v / T));
      const q = softmax(stu[i].map((v) => v / T));
      soft += -p.reduce((a, pj, j) => a + pj * Math.log(q[j]), 0) / 2;
    }
    const hard = (-Math.log(softmax(stu[0])[0]) - Math.log(softmax(stu[1])[2])) / 2;
    expect(lossValue(cells, stu, cellY, cellRows)).toBeCloseTo(hard + w * T * T * soft, 4);
    expect(lossValue(cells, stu, cellY, cellRows)).toBeCloseTo(lossValue(full, stu, cellY, gen), 5);
  });

  it('rejects targets of the wrong width, and full-width targets are the cells of the full head', () => {
    const cells = specialistLoss({ classes, C, head: 'dustbin', softWeight: 1, T: 2, targets: 'cells' });
    expect(() => lossValue(cells, stu, cellY, gen)).toThrow(/3 \(the teacher's cell logits\)/);
    const full = specialistLoss({ classes, C, head: 'dustbin', softWeight: 1, T: 2 });
    expect(() => lossValue(full, stu, cellY, cellRows)).toThrow(/expected 6/);
    const s = [
      [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
      [1, -1, 0, 2, 0, -2],
    ];
    const a = specialistLoss({ classes, C, head: 'full', softWeight: 1, T: 2, targets: 'cells' });
    const b = specialistLoss({ classes, C, head: 'full', softWeight: 1, T: 2 });
    expect(lossValue(a, s, [1, 2], gen)).toBeCloseTo(lossValue(b, s, [1, 2], gen), 6);
    expect(teacherCellCount(classes, C, 'dustbin')).toBe(3);
    expect(teacherCellCount(classes, C, 'full')).toBe(C);
  });
});

describe('streamTeacherCells', () => {
  // A linear generalist (no hidden layer) with known weights: z = x W + b, 2 inputs, C = 6.
  const W = [
    [1, 0, -1, 0.5, 2, -0.5],
    [0, 1, 0.5, -1, 0, 1.5],
  ];
  const b = [0, 0.1, -0.2, 0.3, 0, 0.05];
  const xs = [
    [1, 2],
    [-1, 0.5],
    [0.3, -2],
    [2, 2],
    [0, 0],
  ];
  const zOf = (x: number[]): number[] => b.map((bj, j) => bj + x[0] * W[0][j] + x[1] * W[1][j]);

  function linearModel(): tf.LayersModel {
    const m = buildMlp({ inputDim: 2, hidden: [], outputs: C, activation: 'relu', inputDropout: 0, dropout: 0, maxNorm: null, seed: 1 });
    const k = tf.tensor2d(W);
    const bt = tf.tensor1d(b);
    m.getLayer(LOGITS_LAYER).setWeights([k, bt]);
    k.dispose();
    bt.dispose();
    return m;
  }

  it('gives [z_S, LSE(z_outside)] and the argmax over all classes, per row, for a row subset in batches', () => {
    const m = linearModel();
    const before = tf.memory().numTensors;
    const x = Float32Array.from(xs.flat());
    const rows = Int32Array.from([4, 0, 3, 1]);
    const r = streamTeacherCells(m, x, xs.length, 2, classes, { rows, batchSize: 3 });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.n).toBe(4);
    expect(r.k).toBe(3);
    rows.forEach((i, row) => {
      const z = zOf(xs[i]);
      const want = teacherCells(z);
      for (let j = 0; j < 3; j++) expect(r.cells[row * 3 + j]).toBeCloseTo(want[j], 5);
      expect(r.argmax[row]).toBe(z.indexOf(Math.max(...z)));
    });
    // all rows by default
    const all = streamTeacherCells(m, x, xs.length, 2, [4, 1], { batchSize: 2 });
    expect(all.n).toBe(5);
    expect(all.cells.slice(0, 3)).toEqual(r.cells.slice(3, 6)); // row 0 is position 1 of the subset
    expect(() => streamTeacherCells(m, x, xs.length, 2, classes, { rows: Int32Array.from([5]) })).toThrow(/row index 5/);
    expect(() => streamTeacherCells(m, x, 4, 2, classes)).toThrow(/expected n x dim/);
    m.dispose();
  });
});
