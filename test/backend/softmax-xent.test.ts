import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { disableBlasKernels, enableBlasKernels } from '../../src/backend/blas-kernels.ts';
import { loadNative } from '../../src/backend/native.ts';
import { fusedSoftmaxXent, fusedXentAvailable } from '../../src/backend/softmax-xent.ts';
import { distillationLoss } from '../../src/distill/losses.ts';
import { hardLoss } from '../../src/models/losses.ts';
import { buildMlp } from '../../src/models/mlp.ts';
import { trainModel } from '../../src/models/train.ts';
import { expectClose, seededArrays, useWasmBlas, valuesOn } from '../helpers/backend-compare.ts';

const native = loadNative();
const skip = !native.ok;
if (!native.ok) console.log(`skipping fused softmax cross-entropy tests: ${native.reason}`);

const { rng, randArray } = seededArrays(31337);

/** Value and gradient w.r.t. the logits of a loss, on the current backend. */
function valueAndGrad(loss: (z: tf.Tensor2D) => tf.Scalar, z: tf.Tensor2D): tf.Tensor[] {
  const { value, grad } = tf.valueAndGrad((v: tf.Tensor) => loss(v as tf.Tensor2D))(z);
  return [value, grad];
}

/** The same computation with the stock wasm kernels (so the loss takes its tfjs-ops path). */
async function stockWasm(fn: () => tf.Tensor[]): Promise<Float32Array[]> {
  disableBlasKernels();
  try {
    expect(fusedXentAvailable()).toBe(false);
    return await valuesOn('wasm', fn);
  } finally {
    expect(enableBlasKernels().ok).toBe(true);
  }
}

describe.skipIf(skip)('fused softmax cross-entropy (wasm-blas)', () => {
  useWasmBlas(/softmax cross-entropy/);

  const cases: { B: number; C: number; T: number; alpha: number; kind: 'logits' | 'probabilities'; scale: number }[] = [
    { B: 7, C: 5, T: 1, alpha: 0, kind: 'logits', scale: 1 },
    { B: 7, C: 5, T: 2, alpha: 0.7, kind: 'probabilities', scale: 1 },
    { B: 16, C: 1000, T: 2, alpha: 0.7, kind: 'probabilities', scale: 3 },
    { B: 9, C: 33, T: 20, alpha: 1, kind: 'logits', scale: 5 },
    { B: 9, C: 33, T: 1, alpha: 1, kind: 'probabilities', scale: 1 },
    { B: 4, C: 10, T: 4, alpha: 0.5, kind: 'logits', scale: 300 },
    { B: 1, C: 2, T: 20, alpha: 0.5, kind: 'logits', scale: 1 },
  ];
  for (const c of cases) {
    it(`equals the tfjs-ops loss, value and gradient: B ${c.B}, C ${c.C}, T ${c.T}, alpha ${c.alpha}, ${c.kind} teacher, logits x${c.scale}`, async () => {
      const z = randArray(c.B * c.C, c.scale);
      const raw = randArray(c.B * c.C, 2);
      let t = raw;
      if (c.kind === 'probabilities') {
        t = new Float32Array(raw.length);
        for (let r = 0; r < c.B; r++) {
          let s = 0;
          for (let j = 0; j < c.C; j++) s += (t[r * c.C + j] = Math.exp(raw[r * c.C + j]!));
          for (let j = 0; j < c.C; j++) t[r * c.C + j]! /= s;
        }
      }
      // labels, some rows unlabeled (-1: no hard term there)
      const y = Int32Array.from({ length: c.B }, (_, i) => (i % 3 === 2 ? -1 : rng.int(c.C)));
      const run = () => {
        const zt = tf.tensor2d(z, [c.B, c.C]);
        const batch = { x: tf.zeros([c.B, 1]) as tf.Tensor2D, y: tf.tensor1d(y, 'int32'), targets: tf.tensor2d(t, [c.B, c.C]) };
        const loss = distillationLoss({ T: c.T, alpha: c.alpha, teacher: c.kind });
        return valueAndGrad((v) => loss(v, batch), zt);
      };
      const fused = await valuesOn('wasm', run);
      const stock = await stockWasm(run);
      expectClose(fused, stock, 2e-5);
      // unlabeled rows get no hard-term gradient: with alpha = 0 their gradient rows are zero
      if (c.alpha === 0) for (let r = 2; r < c.B; r += 3) for (let j = 0; j < c.C; j++) expect(Math.abs(fused[1]![r * c.C + j]!)).toBe(0);
    });
  }

  it('the native kernel matches a float64 reference on extreme rows (underflowing exps, tiny teacher probabilities, inf and NaN)', () => {
    if (!native.ok) return;
    const C = 37;
    const rows = 6;
    const z = new Float32Array(rows * C);
    const t = new Float32Array(rows * C);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let j = 0; j < C; j++) {
        z[r * C + j] = (r === 1 ? 90 : r === 2 ? 0.01 : 6) * rng.normal(); // row 1: exps from e^0 down to below 1e-38
        s += t[r * C + j] = r === 3 ? (j < 3 ? 1 : 1e-36) : Math.exp(4 * rng.normal()); // row 3: probabilities under the 1e-30 clamp
      }
      for (let j = 0; j < C; j++) t[r * C + j]! /= s;
    }
    const yl = Int32Array.from({ length: rows }, (_, r) => (r * 5) % C);
    /** float64 reference of one row: alpha T^2 CE(pT, qT) + (1 - alpha) CE(y, q1), gradient / B. */
    const reference = (r: number, T: number, alpha: number): { loss: number; g: number[] } => {
      const zr = Array.from(z.subarray(r * C, (r + 1) * C));
      const u = Array.from(t.subarray(r * C, (r + 1) * C), (p) => Math.log(Math.max(p, 1e-30)) / T);
      const sm = (v: number[]): number[] => {
        const m = Math.max(...v);
        const e = v.map((x) => Math.exp(x - m));
        const s = e.reduce((a, b) => a + b, 0);
        return e.map((x) => x / s);
      };
      const qT = sm(zr.map((v) => v / T));
      const q1 = sm(zr);
      const pT = T === 1 ? Array.from(t.subarray(r * C, (r + 1) * C)) : sm(u);
      let loss = 0;
      for (let j = 0; j < C; j++) if (pT[j]! > 0) loss -= alpha * T * T * pT[j]! * Math.log(qT[j]!);
      loss -= (1 - alpha) * Math.log(q1[yl[r]!]!);
      const g = zr.map((_, j) => (alpha * T * (qT[j]! - pT[j]!) + (1 - alpha) * (q1[j]! - (j === yl[r] ? 1 : 0))) / rows);
      return { loss, g };
    };
    for (const [T, alpha] of [[2, 0.7], [3, 1], [1, 0.5], [1, 0]] as const) {
      const H = new Float32Array(3 * rows * C + rows);
      H.set(z, 0);
      H.set(t, rows * C);
      new Int32Array(H.buffer, 3 * rows * C * 4, rows).set(yl);
      const got = native.addon.softmaxXent(H, 0, rows * C, 3 * rows * C, rows, C, T, alpha, 1, 2 * rows * C);
      let want = 0;
      for (let r = 0; r < rows; r++) {
        const ref = reference(r, T, alpha);
        want += ref.loss / rows;
        const scale = Math.max(...ref.g.map(Math.abs));
        for (let j = 0; j < C; j++) expect(Math.abs(H[2 * rows * C + r * C + j]! - ref.g[j]!), `T ${T} alpha ${alpha} row ${r} col ${j}`).toBeLessThan(2e-6 * scale + 1e-12);
      }
      expect(Math.abs(got - want) / Math.abs(want), `T ${T} alpha ${alpha}`).toBeLessThan(2e-6);
    }
    // An infinite or NaN logit gives a NaN loss, as the tfjs ops do.
    const H = new Float32Array(2 * C + 1);
    H.set(z.subarray(0, C));
    H[4] = NaN;
    expect(native.addon.softmaxXent(H, 0, -1, 2 * C, 1, C, 1, 0, 0, C)).toBeNaN();
  });

  it("the native kernel's exp and log are float32-accurate element by element (two-class rows over the whole range)", () => {
    if (!native.ok) return;
    // Hard term, rows [0, a]: gradient of class 1 = sigmoid(a) / B, a from -80 to 87 (below, the
    // gradient itself is a float32 denormal).
    const as = Array.from({ length: 400 }, (_, i) => -80 + (167 * i) / 399 + 0.013 * Math.sin(i));
    const B = as.length;
    const H = new Float32Array(4 * B * 2 + B);
    as.forEach((a, r) => (H[r * 2 + 1] = a));
    const yOff = 4 * B * 2;
    native.addon.softmaxXent(H, 0, -1, yOff, B, 2, 1, 0, 0, 2 * B * 2);
    as.forEach((a, r) => {
      const a32 = Math.fround(a);
      const want = 1 / (1 + Math.exp(-a32)) / B;
      expect(Math.abs(H[2 * B * 2 + r * 2 + 1]! - want) / want, `a ${a32}`).toBeLessThan(1e-6);
    });
    // Soft term with probability teachers [p, 1 - p] at T = 2 and logits [-1000, 0] (qT_0 = 0):
    // gradient of class 0 = -alpha T pT_0 / B, pT_0 = sqrt(p) / (sqrt(p) + sqrt(1 - p)); p from 1e-29 to 1/2.
    const ps = Array.from({ length: B }, (_, i) => Math.exp(-66.7 * (1 - i / (B - 1))) / 2);
    const G = new Float32Array(3 * B * 2 + B);
    ps.forEach((p, r) => {
      G[r * 2] = -1000;
      G[B * 2 + r * 2] = p;
      G[B * 2 + r * 2 + 1] = 1 - p;
    });
    native.addon.softmaxXent(G, 0, B * 2, 3 * B * 2, B, 2, 2, 1, 1, 2 * B * 2);
    ps.forEach((p, r) => {
      const p0 = Math.fround(p);
      const p1 = Math.fround(1 - p);
      const pT0 = Math.sqrt(p0) / (Math.sqrt(p0) + Math.sqrt(p1));
      const got = -(G[2 * B * 2 + r * 2]! * B) / 2;
      expect(Math.abs(got - pT0) / pT0, `p ${p0}`).toBeLessThan(2e-6);
    });
  });

  it('hardLoss takes the fused path and matches the tfjs ops', async () => {
    const B = 12;
    const C = 40;
    const z = randArray(B * C, 2);
    const y = Int32Array.from({ length: B }, () => rng.int(C));
    const run = () => {
      const batch = { x: tf.zeros([B, 1]) as tf.Tensor2D, y: tf.tensor1d(y, 'int32') };
      return valueAndGrad((v) => hardLoss(v, batch), tf.tensor2d(z, [B, C]));
    };
    expectClose(await valuesOn('wasm', run), await stockWasm(run), 2e-5);
    // by hand on one row: CE = logsumexp(z) - z_y
    const row = Array.from(z.subarray(0, C));
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    const one = tf.tidy(() => hardLoss(tf.tensor2d(row, [1, C]), { x: tf.zeros([1, 1]) as tf.Tensor2D, y: tf.tensor1d([y[0]!], 'int32') }).dataSync()[0]!);
    expect(one).toBeCloseTo(lse - row[y[0]!]!, 4);
  });

  it('no gradient flows into the teacher rows or the labels', () => {
    const z = tf.tensor2d(randArray(12, 1), [3, 4]);
    const t = tf.tensor2d(randArray(12, 1), [3, 4]);
    const y = tf.tensor1d([0, 3, -1], 'int32');
    // `+ 0 * sum(t)` connects t to the loss, so tfjs can differentiate w.r.t. it: the op adds nothing
    const [gz, gt] = tf.grads((zz: tf.Tensor, tt: tf.Tensor) => tf.add(fusedSoftmaxXent(zz as tf.Tensor2D, tt, y, 2, 0.5, 'logits')!, tf.mul(tf.sum(tt), 0)))([z, t]);
    expect(Array.from(gt!.dataSync()).every((v) => v === 0)).toBe(true);
    expect(Array.from(gz!.dataSync()).some((v) => v !== 0)).toBe(true);
    tf.dispose([z, t, y, gz!, gt!]);
  });

  it('a training run on wasm-blas with the fused loss leaks no tensors and matches the stock kernels', async () => {
    const n = 96;
    const dim = 6;
    const C = 20;
    const x = randArray(n * dim, 1);
    const y = Int32Array.from({ length: n }, () => rng.int(C));
    const targets = new Float32Array(n * C);
    for (let i = 0; i < targets.length; i++) targets[i] = rng.normal();
    const train = async (): Promise<Float32Array> => {
      const model = buildMlp({ inputDim: dim, hidden: [8], outputs: C, activation: 'relu', inputDropout: 0, dropout: 0, maxNorm: null, seed: 3 });
      try {
        const before = tf.memory().numTensors;
        await trainModel({ model, train: { x, y, n, dim, targets, targetDim: C }, loss: distillationLoss({ T: 3, alpha: 0.6 }), epochs: 2, batchSize: 32, optimizer: { name: 'adam', lr: 0.01 }, seed: 1, select: 'last' });
        expect(tf.memory().numTensors).toBe(before);
        return Float32Array.from(tf.tidy(() => (model.predict(tf.tensor2d(x.subarray(0, 5 * dim), [5, dim])) as tf.Tensor).dataSync()));
      } finally {
        model.dispose();
      }
    };
    const fused = await train();
    disableBlasKernels();
    let stock: Float32Array;
    try {
      stock = await train();
    } finally {
      expect(enableBlasKernels().ok).toBe(true);
    }
    expectClose([fused], [stock], 1e-4);
  });
});
