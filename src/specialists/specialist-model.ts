/**
 * A specialist initialised from the generalist (paper section 5): the same architecture, the whole
 * body's weights copied (every layer but the head: dense, convolution, batch-norm statistics...),
 * and a head over the special classes plus one dustbin (or, for the section 6.1 variant, a full
 * softmax over all classes). Any generalist whose head (`findHead`: the Dense layer producing
 * the logits) is its output layer works: a model of any registered architecture, Sequential or
 * functional. The dustbin is fitted on the head's input, the penultimate features.
 *
 * ## Dustbin initialisation
 *
 * Before training the specialist should say what the generalist says: its logit for each special
 * class equals the generalist's (rows copied), and its dustbin logit should equal
 * `LSE_out(z) = log sum_{j outside} exp z_j` (then the dustbin probability is exactly the
 * generalist's mass outside the subset). A linear unit cannot represent a log-sum-exp, so two
 * approximations are offered:
 *
 * - `lstsq`: the dustbin weights and bias are the ridge least-squares fit of `LSE_out(z(x))` on
 *   the generalist's last hidden activations h(x) over a sample, i.e. the best linear unit in mean
 *   squared LOGIT error on that data. It spends its capacity equally on examples where the dustbin
 *   probability is saturated (where logit errors do not matter) and where it is not.
 * - `logistic` (the default of `trainSpecialist`): starting from `lstsq`, damped Newton (IRLS) on
 *   the soft-label cross-entropy between the generalist's outside mass p and the specialist's
 *   dustbin probability `sigmoid(w.h + b - LSE_S(z))` (the special logits are fixed copies), plus
 *   a small ridge. This is the best linear unit in the sense the specialist is trained in (KL of
 *   the dustbin-vs-special split), it is convex, and at its optimum the mean dustbin probability
 *   on the sample equals the generalist's mean outside mass exactly (stationarity in b).
 * - `mean` (data-free): with weights pi over the outside classes (the class prior among them,
 *   uniform by default), `w_d = sum_j pi_j w_j` and `b_d = sum_j pi_j b_j + H(pi)` (H the entropy).
 *   By Jensen, `LSE_out(z) = log sum_j pi_j exp(z_j - log pi_j) >= sum_j pi_j z_j + H(pi)`, and the
 *   gap is exactly `KL(pi || softmax_out(z))`: exact when the generalist's distribution over the
 *   outside classes equals pi, an underestimate otherwise. For uniform pi this is the textbook
 *   `mean outside logit + log(#outside)`.
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, DataError } from '../util/errors.ts';
import { findHead, LOGITS_LAYER } from '../models/arch/head.ts';
import { predictLogits } from '../models/predict.ts';

export { LOGITS_LAYER };

/** How the dustbin unit is initialised; see the module comment. */
export type DustbinInit =
  | {
      method: 'mean';
      /** Non-negative weights over ALL C classes (e.g. training class counts); only the outside ones are used. Default uniform. */
      prior?: ArrayLike<number>;
    }
  | {
      method: 'lstsq' | 'logistic';
      /** A sample of inputs, row-major n x inputDim (e.g. up to a few thousand training examples). */
      x: Float32Array;
      n: number;
      /** Ridge strength relative to the mean squared hidden activation. Default 1e-4. */
      ridge?: number;
      /** `logistic`: maximum Newton iterations. Default 20. */
      maxIter?: number;
    };

/** Options of {@link buildSpecialist}. */
export interface SpecialistModelOptions {
  /** `dustbin`: |S| + 1 outputs; `full`: a full softmax over all C classes (a copy of the generalist). */
  head: 'dustbin' | 'full';
  /** Dustbin initialisation (ignored for `full`). Default `{ method: 'mean' }`. */
  dustbinInit?: DustbinInit;
}

/**
 * Checks and sorts a specialist's classes.
 * @throws ConfigError for duplicates, ids outside [0, C), an empty subset, or (dustbin head) a subset covering every class.
 */
export function normaliseClasses(classes: readonly number[], C: number, head: 'dustbin' | 'full' = 'dustbin'): number[] {
  const sorted = [...classes].sort((a, b) => a - b);
  if (sorted.length === 0) throw new ConfigError('specialist: the class subset is empty');
  for (let i = 0; i < sorted.length; i++) {
    const c = sorted[i];
    if (!Number.isInteger(c) || c < 0 || c >= C) throw new ConfigError(`specialist: class id ${c} is not an integer in [0, ${C})`);
    if (i > 0 && sorted[i - 1] === c) throw new ConfigError(`specialist: class id ${c} is listed twice`);
  }
  if (head === 'dustbin' && sorted.length >= C) throw new ConfigError(`specialist: the subset covers all ${C} classes, so the dustbin would be empty`);
  return sorted;
}

/**
 * The cell of each class in a specialist's output: for `dustbin`, the position of a special class
 * in the sorted subset, and |S| (the dustbin) for every other class; for `full`, the class itself.
 * @returns Int32Array of length C.
 */
export function specialistCells(classes: readonly number[], C: number, head: 'dustbin' | 'full'): Int32Array {
  const sorted = normaliseClasses(classes, C, head);
  const cells = new Int32Array(C);
  if (head === 'full') {
    for (let c = 0; c < C; c++) cells[c] = c;
    return cells;
  }
  cells.fill(sorted.length);
  sorted.forEach((c, k) => (cells[c] = k));
  return cells;
}

/** The classes NOT in the (sorted) subset, ascending. */
export function outsideClasses(classes: readonly number[], C: number): number[] {
  const inS = new Uint8Array(C);
  for (const c of classes) inS[c] = 1;
  const out: number[] = [];
  for (let c = 0; c < C; c++) if (!inS[c]) out.push(c);
  return out;
}

/**
 * The generalist's head (see `findHead`), checked to compute logits: a Dense layer with a linear
 * activation, so that its rows can be copied into a specialist's head.
 * @throws ConfigError naming the layer otherwise.
 */
export function specialistHead(model: tf.LayersModel): tf.layers.Layer {
  const head = findHead(model, 'specialist: the generalist');
  const activation = (head.getConfig() as { activation?: unknown }).activation;
  if (activation !== undefined && activation !== 'linear') {
    throw new ConfigError(
      `specialist: the generalist's head '${head.name}' has activation '${String(activation)}'; the specialists copy logits, so the head must be linear (a model ending in softmax: rebuild its last Dense layer with activation 'linear')`,
    );
  }
  return head;
}

/** The generalist's head kernel (h x C) and bias (C), copied to JS arrays. */
export function readHead(model: tf.LayersModel): { kernel: Float32Array; bias: Float32Array; hidden: number; C: number } {
  const w = specialistHead(model).getWeights();
  const [hidden, C] = w[0]!.shape as [number, number];
  return { kernel: w[0]!.dataSync() as Float32Array, bias: w[1]!.dataSync() as Float32Array, hidden, C };
}

/**
 * The generalist's penultimate features (the input of its head: the last hidden layer of an MLP,
 * the flattened or dense features of a CNN) for `x` (flat rows, row-major n x inputDim), inference
 * mode (dropout off, batch norm on its moving statistics), as float64 row-major n x h.
 */
export function hiddenActivations(model: tf.LayersModel, x: Float32Array, n: number, batchSize = 512): { h: Float64Array; dim: number } {
  const head = specialistHead(model);
  // A model over the same layers (shares their weights: not disposed) ending at the head's input.
  const feat = tf.model({ inputs: model.inputs, outputs: head.input as tf.SymbolicTensor });
  const inDim = x.length / n;
  if (!Number.isInteger(inDim)) throw new DataError(`specialist: sample length ${x.length} is not a multiple of n = ${n}`);
  const hDim = (head.input as tf.SymbolicTensor).shape[1] as number;
  return { h: Float64Array.from(predictLogits(feat, x, n, inDim, { batchSize })), dim: hDim };
}

/** A model's logits for `x` (row-major n x dim), inference mode, in batches (see `predictLogits`). */
export function modelLogits(model: tf.LayersModel, x: Float32Array, n: number, dim: number, batchSize = 1024): Float32Array {
  return predictLogits(model, x, n, dim, { batchSize });
}

/** log-sum-exp of `v` at the given indices (stable). */
function lse(v: ArrayLike<number>, idx: readonly number[], offset = 0): number {
  let m = -Infinity;
  for (const j of idx) m = Math.max(m, v[offset + j]);
  let s = 0;
  for (const j of idx) s += Math.exp(v[offset + j] - m);
  return m + Math.log(s);
}

/** Solves the symmetric positive definite system A x = b (A n x n row-major, float64) by Cholesky. */
export function solveSpd(A: Float64Array, b: Float64Array, n: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * n + j];
      for (let k = 0; k < j; k++) s -= L[i * n + k] * L[j * n + k];
      if (i === j) {
        if (!(s > 0)) throw new DataError('specialist: least-squares system is not positive definite (increase dustbinInit.ridge)');
        L[i * n + i] = Math.sqrt(s);
      } else L[i * n + j] = s / L[j * n + j];
    }
  }
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i];
    for (let k = 0; k < i; k++) s -= L[i * n + k] * y[k];
    y[i] = s / L[i * n + i];
  }
  const xo = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i];
    for (let k = i + 1; k < n; k++) s -= L[k * n + i] * xo[k];
    xo[i] = s / L[i * n + i];
  }
  return xo;
}

/**
 * Dustbin weights and bias by the prior-weighted Jensen bound (`mean`), by ridge least squares
 * on hidden activations (`lstsq`), or by soft-label logistic regression refined from it
 * (`logistic`); see the module comment.
 * @returns `{ w: length h, b }`.
 */
export function dustbinUnit(generalist: tf.LayersModel, sortedClasses: readonly number[], init: DustbinInit): { w: Float64Array; b: number } {
  const { kernel, bias, hidden, C } = readHead(generalist);
  const out = outsideClasses(sortedClasses, C);
  if (init.method === 'mean') {
    const pi = new Float64Array(out.length);
    let tot = 0;
    out.forEach((c, k) => {
      const v = init.prior ? Number(init.prior[c]) : 1;
      if (!(v >= 0) || !Number.isFinite(v)) throw new ConfigError(`specialist: dustbinInit.prior[${c}] must be a finite non-negative number, got ${v}`);
      pi[k] = v;
      tot += v;
    });
    if (!(tot > 0)) throw new ConfigError('specialist: dustbinInit.prior gives zero weight to every class outside the subset');
    const w = new Float64Array(hidden);
    let b = 0;
    out.forEach((c, k) => {
      const p = pi[k] / tot;
      if (p === 0) return;
      for (let i = 0; i < hidden; i++) w[i] += p * kernel[i * C + c];
      b += p * bias[c] - p * Math.log(p);
    });
    return { w, b };
  }
  const { n, x } = init;
  if (!(n >= 2)) throw new DataError(`specialist: dustbinInit ${init.method} needs at least 2 sample rows, got ${n}`);
  const { h, dim } = hiddenActivations(generalist, x, n);
  if (dim !== hidden) throw new ConfigError(`specialist: hidden width ${dim} does not match the logits kernel (${hidden})`);
  // Targets: LSE over outside classes of the generalist's own logits on the sample (its forward
  // pass: float32, in batches, BLAS where available), reduced in float64; and the LSE of the special
  // logits for the logistic refinement below. (Recomputing the logits from h in float64 in JS cost
  // 0.2 s per specialist at C = 1,000, a third of a synthetic-1k job.)
  const logits = modelLogits(generalist, x, n, x.length / n, 512);
  const t = new Float64Array(n);
  const sIn = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    t[r] = lse(logits, out, r * C);
    sIn[r] = lse(logits, sortedClasses, r * C);
  }
  // Centred ridge regression: w = (Cov + lambda I)^-1 cov(h, t), b = mean(t) - mean(h) . w.
  const mh = new Float64Array(hidden);
  let mt = 0;
  for (let r = 0; r < n; r++) {
    mt += t[r] / n;
    for (let i = 0; i < hidden; i++) mh[i] += h[r * hidden + i] / n;
  }
  const A = new Float64Array(hidden * hidden);
  const rhs = new Float64Array(hidden);
  const hc = new Float64Array(hidden);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < hidden; i++) hc[i] = h[r * hidden + i] - mh[i];
    const tc = t[r] - mt;
    for (let i = 0; i < hidden; i++) {
      const a = hc[i];
      if (a === 0) continue;
      rhs[i] += a * tc;
      for (let j = 0; j <= i; j++) A[i * hidden + j] += a * hc[j];
    }
  }
  let trace = 0;
  for (let i = 0; i < hidden; i++) trace += A[i * hidden + i];
  const lambda = (init.ridge ?? 1e-4) * (trace / hidden) + 1e-9 * n;
  for (let i = 0; i < hidden; i++) {
    A[i * hidden + i] += lambda;
    for (let j = 0; j < i; j++) A[j * hidden + i] = A[i * hidden + j];
  }
  const w = solveSpd(A, rhs, hidden);
  let b = mt;
  for (let i = 0; i < hidden; i++) b -= mh[i] * w[i];
  if (init.method === 'lstsq') return { w, b };
  // Logistic refinement: s = LSE of the special logits, target p = sigmoid(t - s) (the
  // generalist's outside mass), model p^ = sigmoid(w.h + b - s). Minimise the soft-label
  // cross-entropy sum_r CE(p_r, p^_r) + lambda/2 |w|^2 by damped Newton (IRLS) from the lstsq
  // solution. The objective is convex; at its optimum the bias's stationarity condition gives
  // sum_r (p^_r - p_r) = 0: the mean dustbin probability on the sample equals the generalist's.
  const m = hidden + 1;
  const p = new Float64Array(n);
  for (let r = 0; r < n; r++) p[r] = sigmoid(t[r] - sIn[r]);
  const theta = new Float64Array(m);
  theta.set(w);
  theta[hidden] = b;
  let hTrace = 0;
  for (let k = 0; k < n * hidden; k++) hTrace += h[k] * h[k];
  const lam = (init.ridge ?? 1e-4) * 0.25 * (hTrace / hidden) + 1e-9 * n;
  const logitOf = (th: Float64Array, r: number): number => {
    let u = th[hidden] - sIn[r];
    for (let i = 0; i < hidden; i++) u += th[i] * h[r * hidden + i];
    return u;
  };
  const objective = (th: Float64Array): number => {
    let f = 0;
    for (let r = 0; r < n; r++) {
      const u = logitOf(th, r);
      f += softplus(u) - p[r] * u;
    }
    for (let i = 0; i < hidden; i++) f += 0.5 * lam * th[i] * th[i];
    return f;
  };
  let f0 = objective(theta);
  const maxIter = init.maxIter ?? 20;
  for (let it = 0; it < maxIter; it++) {
    const g = new Float64Array(m);
    const H = new Float64Array(m * m);
    const phi = new Float64Array(m);
    phi[hidden] = 1;
    for (let r = 0; r < n; r++) {
      for (let i = 0; i < hidden; i++) phi[i] = h[r * hidden + i];
      const q = sigmoid(logitOf(theta, r));
      const e = q - p[r];
      const wt = q * (1 - q);
      for (let i = 0; i < m; i++) {
        const a = phi[i];
        if (a === 0) continue;
        g[i] += e * a;
        const wa = wt * a;
        for (let j = 0; j <= i; j++) H[i * m + j] += wa * phi[j];
      }
    }
    for (let i = 0; i < m; i++) {
      if (i < hidden) {
        g[i] += lam * theta[i];
        H[i * m + i] += lam;
      } else H[i * m + i] += 1e-9 * n;
      for (let j = 0; j < i; j++) H[j * m + i] = H[i * m + j];
    }
    const delta = solveSpd(H, g, m);
    let dec = 0;
    for (let i = 0; i < m; i++) dec += g[i] * delta[i];
    if (dec / 2 <= 1e-10 * n) break;
    let step = 1;
    const next = new Float64Array(m);
    let f1 = Infinity;
    for (let k = 0; k < 30; k++) {
      for (let i = 0; i < m; i++) next[i] = theta[i] - step * delta[i];
      f1 = objective(next);
      if (f1 <= f0 - 1e-4 * step * dec) break;
      step /= 2;
    }
    if (!(f1 < f0)) break;
    theta.set(next);
    f0 = f1;
  }
  return { w: theta.subarray(0, hidden), b: theta[hidden] };
}

/** Stable logistic function. */
function sigmoid(a: number): number {
  if (a >= 0) return 1 / (1 + Math.exp(-a));
  const e = Math.exp(a);
  return e / (1 + e);
}

/** Stable log(1 + e^u). */
function softplus(u: number): number {
  return u > 0 ? u + Math.log1p(Math.exp(-u)) : Math.log1p(Math.exp(u));
}

/**
 * A fresh model with the generalist's topology (every layer rebuilt from its config: Sequential or
 * functional alike) but `units` outputs in the head, named `name`; weights freshly initialised.
 */
function rebuildWithHead(generalist: tf.LayersModel, headName: string, units: number, name: string): tf.LayersModel {
  const className = generalist.getClassName();
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  if (!entry) throw new ConfigError(`specialist: cannot rebuild a generalist of unregistered model class ${className}`);
  type LayerEntry = { className: string; config: Record<string, unknown> };
  const config = generalist.getConfig() as unknown as { name?: string; layers: LayerEntry[] } & Record<string, unknown>;
  let found = 0;
  const layers = config.layers.map((l) => {
    if (l.config.name !== headName) return l;
    found++;
    return { ...l, config: { ...l.config, units } };
  });
  if (found !== 1) throw new ConfigError(`specialist: the generalist's configuration holds ${found} layers named '${headName}', expected one`);
  const [cls, fromConfig] = entry;
  return fromConfig(cls, { ...config, name, layers } as unknown as tf.serialization.ConfigDict) as tf.LayersModel;
}

/**
 * Builds a specialist from the generalist: the same topology, the weights of every layer but the
 * head copied exactly (no constraint re-applied, so the body computes bit for bit what the
 * generalist's does; batch-norm moving statistics included), and a head with, for
 * `head: 'dustbin'`, |S| + 1 units (the special classes in ascending order, then the dustbin) whose
 * special rows are copied from the generalist's head and whose dustbin unit is initialised by
 * `dustbinInit` on the penultimate features; for `head: 'full'`, a copy of the generalist's head
 * over all C classes. The generalist is not modified and shares no variables with the result.
 * @throws ConfigError for an invalid subset or a generalist without a linear Dense head as its output layer.
 */
export function buildSpecialist(generalist: tf.LayersModel, classes: readonly number[], opts: SpecialistModelOptions): tf.LayersModel {
  const headLayer = specialistHead(generalist);
  const { kernel, bias, hidden, C } = readHead(generalist);
  const sorted = normaliseClasses(classes, C, opts.head);
  const units = opts.head === 'full' ? C : sorted.length + 1;
  const unit = opts.head === 'dustbin' ? dustbinUnit(generalist, sorted, opts.dustbinInit ?? { method: 'mean' }) : undefined;
  const model = rebuildWithHead(generalist, headLayer.name, units, `specialist_${sorted.length}`);
  try {
    for (const layer of model.layers) {
      if (layer.name === headLayer.name) continue;
      const source = generalist.getLayer(layer.name).weights;
      const target = layer.weights;
      if (source.length !== target.length) throw new ConfigError(`specialist: layer '${layer.name}' rebuilt with ${target.length} weights, the generalist's has ${source.length}`);
      target.forEach((w, i) => (w.read() as tf.Variable).assign(source[i]!.read()));
    }
    const k = new Float32Array(hidden * units);
    const bOut = new Float32Array(units);
    if (opts.head === 'full') {
      k.set(kernel);
      bOut.set(bias);
    } else {
      for (let i = 0; i < hidden; i++) {
        sorted.forEach((c, j) => (k[i * units + j] = kernel[i * C + c]));
        k[i * units + units - 1] = unit!.w[i];
      }
      sorted.forEach((c, j) => (bOut[j] = bias[c]));
      bOut[units - 1] = unit!.b;
    }
    const [kw, bw] = model.getLayer(headLayer.name).weights as [tf.LayerVariable, tf.LayerVariable];
    tf.tidy(() => {
      (kw.read() as tf.Variable).assign(tf.tensor2d(k, [hidden, units]));
      (bw.read() as tf.Variable).assign(tf.tensor1d(bOut));
    });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** The choices of which specialist layers keep the generalist's values while it trains (see {@link freezeSpecialistLayers}). */
export const SPECIALIST_FREEZE = ['none', 'conv', 'body'] as const;

/** Which of a specialist's layers keep the generalist's values while it trains (see {@link freezeSpecialistLayers}). */
export type SpecialistFreeze = (typeof SPECIALIST_FREEZE)[number];

/** Layer classes frozen by `freeze: 'conv'`: the convolutional feature extractor. */
const CONV_LAYER_CLASSES = new Set(['Conv1D', 'Conv2D', 'DepthwiseConv2D', 'SeparableConv2D', 'BatchNormalization']);

/**
 * Marks layers of a freshly built specialist as not trainable, so training leaves them at the
 * generalist's values: `conv` freezes its convolution and batch-norm layers (the dense layers and
 * the head learn), `body` every layer but the head (only the head learns; the paper's specialists
 * trained the whole copy, which is `none`). Returns the names of the layers frozen.
 * @throws ConfigError when `conv` is asked of a model without convolution layers, or when nothing
 *   would be left to train.
 */
export function freezeSpecialistLayers(model: tf.LayersModel, freeze: SpecialistFreeze): string[] {
  if (freeze === 'none') return [];
  const head = findHead(model, 'specialist');
  const frozen: string[] = [];
  for (const layer of model.layers) {
    if (layer === head || layer.weights.length === 0) continue;
    if (freeze === 'body' || CONV_LAYER_CLASSES.has(layer.getClassName())) {
      layer.trainable = false;
      frozen.push(layer.name);
    }
  }
  if (freeze === 'conv' && frozen.length === 0) {
    throw new ConfigError("specialists.freeze 'conv': the generalist has no convolution layers (an MLP); use 'body' to train only the head, or 'none'");
  }
  if (model.trainableWeights.length === 0) throw new ConfigError(`specialists.freeze '${freeze}' leaves no trainable weights`);
  return frozen;
}
