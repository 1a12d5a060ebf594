/**
 * One dispatch point for the fused native operations that are not tfjs kernels of their own: the
 * softmax cross-entropy with its gradient, and the optimizer's in-place parameter updates. A
 * backend that has them registers them here (`enableBlasKernels` does, for the wasm backend); the
 * losses and the optimizer ask {@link fusedOps} and fall back to their tfjs ops when an operation is
 * missing or declines (returns null / false). No caller tests the backend's name.
 *
 * code-key: ./blas-kernels.ts
 * (the implementations registered here are installed by that module, which also replaces
 * the tfjs kernels every model runs on the wasm-blas backend: the stages' cache keys include it)
 */
import * as tf from '@tensorflow/tfjs';

/** What the teacher rows of the soft term hold. */
export type FusedTeacherKind = 'logits' | 'probabilities';

/** Scalars of one Adam step, computed by the caller exactly as for its tfjs ops. */
export interface AdamScalars {
  b1: number;
  /** `1 - b1` */
  omb1: number;
  b2: number;
  /** `1 - b2` */
  omb2: number;
  /** `lr / (1 - b1^t)` */
  lrc1: number;
  /** `1 / (1 - b2^t)` */
  c2: number;
  eps: number;
}

/**
 * The fused operations a backend may provide. Each returns null / false (having done nothing) when
 * it does not apply to these tensors; the caller then runs its tfjs ops, which give the same numbers
 * up to float32 rounding.
 */
export interface FusedOps {
  /**
   * `mean_b [alpha T^2 CE(pT, softmax(z/T)) + (1 - alpha) CE(y, softmax(z))]` with its gradient
   * w.r.t. `z` (see `softmax-xent.ts`); `t` may be null when alpha = 0, `y` when alpha = 1.
   */
  softmaxXent?(z: tf.Tensor2D, t: tf.Tensor | null | undefined, y: tf.Tensor | null | undefined, T: number, alpha: number, kind: FusedTeacherKind): tf.Scalar | null;
  /** Adam in place: `m = m*b1 + g*omb1; v = v*b2 + (g*g)*omb2; w = w - (m*lrc1) / (sqrt(v*c2) + eps)`. */
  adamStep?(w: tf.Variable, m: tf.Variable, v: tf.Variable, g: tf.Tensor, k: AdamScalars): boolean;
  /** SGD in place: `w = w - g*lr`, or with `vel`: `vel = vel*mu - g*lr; w = w + vel` (nesterov: `w = (w + vel*mu) - g*lr`). */
  sgdStep?(w: tf.Variable, vel: tf.Variable | undefined, g: tf.Tensor, lr: number, mu: number, nesterov: boolean): boolean;
  /** Max-norm on the columns of a 2-D weight in place (columns above `maxValue` scaled to it). */
  maxNormCols?(w: tf.Variable, maxValue: number): boolean;
  /**
   * A whole gradient step of a plain MLP (dense layers, ReLU or linear, logits out) with the loss
   * `spec` in one native pass per batch, bypassing the tfjs engine; null when it does not apply
   * (then the caller runs `model.apply` + `tf.variableGrads`). See {@link FusedMlpStep}.
   */
  mlpGradStep?(layers: FusedDenseLayer[], loss: FusedLossSpec, maxRows: number): FusedMlpStep | null;
}

/** One dense layer of an MLP for {@link FusedOps.mlpGradStep}: `a = act(x W + b)`. */
export interface FusedDenseLayer {
  /** `[in, out]` kernel. */
  kernel: tf.Variable;
  /** `[out]` bias, or null without one. */
  bias: tf.Variable | null;
  /** ReLU after the bias (else linear). */
  relu: boolean;
}

/**
 * The loss of a fused step: `scale * mean_b [alpha T^2 CE(pT, softmax(z/T)) + (1 - alpha) CE(y, softmax(z))]`
 * (teacher rows of `kind`, as in {@link FusedOps.softmaxXent}).
 */
export interface FusedLossSpec {
  T: number;
  alpha: number;
  kind: FusedTeacherKind;
  /** Factor on the loss and its gradient; default 1. */
  scale?: number;
}

/** A prepared fused MLP gradient step (scratch memory held until {@link dispose}). */
export interface FusedMlpStep {
  /**
   * Forward, loss and backward on `rows` (<= maxRows) examples: `x` row-major `rows x in`, `y`
   * labels (-1: none), `t` teacher rows `rows x C` (only when alpha > 0). Leaves the gradients in
   * {@link grads} and returns the batch-mean loss and the number of rows whose argmax equals `y`.
   */
  run(rows: number, x: Float32Array, y: Int32Array, t: Float32Array | null): { loss: number; correct: number };
  /** Gradients of the last {@link run}, one per weight in `[kernel, bias]` layer order (no bias: skipped). */
  readonly grads: tf.Tensor[];
  dispose(): void;
}

const lossSpecs = new WeakMap<object, FusedLossSpec>();

/**
 * Declares that the loss function `fn` equals the fused softmax cross-entropy `spec` (so a fused
 * training step may replace it). Only for losses that are exactly that formula.
 */
export function describeFusedLoss<F extends object>(fn: F, spec: FusedLossSpec): F {
  lossSpecs.set(fn, Object.freeze({ ...spec }));
  return fn;
}

/** The fused description of a loss function given to {@link describeFusedLoss}, if any. */
export function fusedLossOf(fn: object): FusedLossSpec | undefined {
  return lossSpecs.get(fn);
}

const registry = new Map<string, FusedOps>();
const NONE: FusedOps = Object.freeze({});

/** Registers the fused operations of the tfjs backend named `backendName` (replacing any earlier ones). */
export function registerFusedOps(backendName: string, ops: FusedOps): void {
  registry.set(backendName, ops);
}

/** Removes the fused operations of a backend. */
export function unregisterFusedOps(backendName: string): void {
  registry.delete(backendName);
}

/** The fused operations of the active tfjs backend (an empty set when it has none). */
export function fusedOps(): FusedOps {
  return registry.get(tf.getBackend()) ?? NONE;
}
