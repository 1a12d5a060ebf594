/**
 * Bias offsets for the paper's omitted-class experiments (section 3): a student that never saw
 * a class in its transfer set under-predicts it; adding `delta` to that class's output bias
 * (found afterwards, on VALIDATION data, never on the test set) recovers most of it.
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, DataError } from '../util/errors.ts';

/** The bias variable of the model's last layer that has one (its output logits' bias). */
function finalBias(model: tf.LayersModel): { variable: tf.LayerVariable; C: number } {
  for (let li = model.layers.length - 1; li >= 0; li--) {
    const layer = model.layers[li]!;
    const weights = layer.weights;
    if (weights.length === 0) continue;
    const bias = weights.find((w) => /(^|\/)bias/.test(w.originalName));
    if (bias === undefined || bias.shape.length !== 1) {
      throw new ConfigError(
        `adjustBiases: the last layer with weights ('${layer.name}') has no 1-D bias; build the model's output layer with useBias: true`,
      );
    }
    return { variable: bias, C: bias.shape[0]! };
  }
  throw new ConfigError('adjustBiases: the model has no layer with weights');
}

/**
 * Adds `delta` to the final layer's bias for each class in `classes` (in place, on the
 * model's variables) and returns a function that restores the biases as they were before
 * this call. A class listed twice gets `delta` once.
 * @throws ConfigError when the model's last weighted layer has no 1-D bias; DataError for a
 *   class index outside `0..C-1` or a non-finite delta.
 */
export function adjustBiases(model: tf.LayersModel, classes: number[], delta: number): () => void {
  const { variable, C } = finalBias(model);
  if (!Number.isFinite(delta)) throw new DataError(`adjustBiases: delta must be a finite number, got ${String(delta)}`);
  const unique = [...new Set(classes)];
  for (const c of unique) {
    if (!Number.isInteger(c) || c < 0 || c >= C) {
      throw new DataError(`adjustBiases: class ${String(c)} is outside 0..${C - 1} (the model has ${C} outputs)`);
    }
  }
  const original = Float32Array.from(variable.read().dataSync() as Float32Array);
  const next = Float32Array.from(original);
  for (const c of unique) next[c] = next[c]! + delta;
  const write = (values: Float32Array): void => {
    const t = tf.tensor1d(values, 'float32');
    try {
      variable.write(t);
    } finally {
      t.dispose();
    }
  };
  write(next);
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    write(original);
  };
}

/** Options of {@link chooseBiasOffset}. */
export interface ChooseBiasOffsetOptions {
  /** Error (lower is better) of the model with the bias offset `delta`, on VALIDATION data. */
  evaluate: (delta: number) => number;
  /** Offsets to try, e.g. 0, 0.5, ..., 10 (include 0 to allow "no change"). */
  grid: number[];
}

/** Result of {@link chooseBiasOffset}: the best offset, its error, and every evaluation. */
export interface BiasOffsetChoice {
  delta: number;
  error: number;
  /** `{ delta, error }` for each grid point, in grid order. */
  evaluations: { delta: number; error: number }[];
}

/**
 * Grid search for the bias offset with the lowest validation error. Ties go to the offset of
 * smallest magnitude (the least change to the model), then to the earlier grid point.
 * `evaluate` must measure on a validation split: picking the offset on the test set is a known
 * mistake (the test error would then be optimistic).
 * @throws ConfigError for an empty grid or a non-finite grid point; DataError when `evaluate`
 *   returns a non-finite error.
 */
export function chooseBiasOffset(options: ChooseBiasOffsetOptions): BiasOffsetChoice {
  const { evaluate, grid } = options;
  if (grid.length === 0) throw new ConfigError('chooseBiasOffset: the grid of bias offsets is empty; give at least one offset');
  const evaluations: { delta: number; error: number }[] = [];
  let best: { delta: number; error: number } | undefined;
  for (const delta of grid) {
    if (!Number.isFinite(delta)) throw new ConfigError(`chooseBiasOffset: grid point ${String(delta)} is not a finite number`);
    const error = evaluate(delta);
    if (!Number.isFinite(error)) throw new DataError(`chooseBiasOffset: evaluate(${delta}) returned ${String(error)}, expected a finite error`);
    evaluations.push({ delta, error });
    if (best === undefined || error < best.error || (error === best.error && Math.abs(delta) < Math.abs(best.delta))) {
      best = { delta, error };
    }
  }
  return { delta: best!.delta, error: best!.error, evaluations };
}
