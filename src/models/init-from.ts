import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../util/errors.ts';

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
