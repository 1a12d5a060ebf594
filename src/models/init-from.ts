import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../util/errors.ts';
import { buildModel, type ArchInput, type ModelConfig } from './arch/index.ts';
import { loadModel, MODEL_JSON } from './io.ts';

/**
 * Copies every weight of `source` into `target`, which must have the same architecture (the same
 * number of weights, in the same order, with the same shapes): used to continue training an
 * earlier stage's model (e.g. a second cosine cycle, a "warm restart", on a converged teacher).
 * Dropout rates and the max-norm bound are not weights: they come from the target's own spec.
 * The weights are copied exactly (no constraint re-applied); no tensors are left behind.
 * @param where names the source in errors, e.g. `init_from 'teacher'`.
 * @throws ConfigError naming both shapes when the architectures differ.
 */
export function copyWeightsFrom(target: tf.LayersModel, source: tf.LayersModel, where: string): void {
  const from = source.getWeights();
  const to = target.getWeights();
  const shapes = (ws: tf.Tensor[]): string => ws.map((w) => `[${w.shape.join(', ')}]`).join(' ');
  const same = from.length === to.length && from.every((w, i) => tf.util.arraysEqual(w.shape, to[i]!.shape));
  if (!same) {
    throw new ConfigError(
      `${where}: its model's weights ${shapes(from)} do not match the model this stage builds ${shapes(to)}; ` +
        `give this stage the same model: (architecture and widths) as that stage, and the same data, or remove init_from`,
    );
  }
  // assign the variables directly: `setWeights` would re-apply the max-norm constraint, whose
  // rescaling by norm / (norm + 1e-7) changes the weights in their last bits
  target.weights.forEach((w, i) => (w.read() as tf.Variable).assign(from[i]));
}

/** Where a stage's starting weights come from (`init_from`). */
export interface InitFrom {
  /** The `init_from` stage's model folder (`<stage>/model`). */
  dir: string;
  /** Names it in errors, e.g. `cont.init_from 'teacher'`. */
  where: string;
}

/**
 * The model a training stage starts from: a fresh `config` model (seeded), with `init`'s weights
 * copied into it when given ({@link copyWeightsFrom}); or, with `config` null, the `init_from`
 * model itself, loaded (its own architecture, dropout rates and weights: for a model no `model:`
 * config describes, such as a user's own from a `model` stage). The caller owns the result.
 * @throws ConfigError when `init` names no model, its architecture differs from `config`, or
 * (config null) it does not take `input.inputDim` features or give `input.outputs` classes.
 */
export async function initialModel(config: ModelConfig | null, input: ArchInput, init?: InitFrom): Promise<tf.LayersModel> {
  if (!init) {
    if (!config) throw new ConfigError('a stage without init_from needs a model: config');
    return buildModel(config, input);
  }
  if (!existsSync(path.join(init.dir, MODEL_JSON))) {
    throw new ConfigError(`${init.where}: that stage wrote no model (${init.dir} has no ${MODEL_JSON}); name a train, generalist, distill or model stage`);
  }
  const source = await loadModel(init.dir);
  if (!config) {
    const inW = source.inputs[0]!.shape[source.inputs[0]!.shape.length - 1];
    const outW = source.outputs[0]!.shape[source.outputs[0]!.shape.length - 1];
    if (inW !== input.inputDim || outW !== input.outputs) {
      source.dispose();
      throw new ConfigError(`${init.where}: its model takes ${String(inW)} features and gives ${String(outW)} classes, but this stage's data has ${input.inputDim} features and ${input.outputs} classes; train on the same data stage`);
    }
    return source;
  }
  const model = buildModel(config, input);
  try {
    copyWeightsFrom(model, source, init.where);
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    source.dispose();
  }
  return model;
}
