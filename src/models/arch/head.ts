import type * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../../util/errors.ts';

/** Name every built-in architecture gives its head (the logits layer). */
export const LOGITS_LAYER = 'logits';

/**
 * The head of a model: the Dense layer that computes its logits. It is the layer named `logits`
 * (every architecture of the registry names its head so), or else, for a model from elsewhere, the
 * layer that produces the model's output when that is a Dense layer. The head must produce the
 * model's (single) output and have a 2-D kernel and a bias.
 * @param where names the model in errors, e.g. `specialist: the generalist`.
 * @throws ConfigError naming the layer and what is wrong with it.
 */
export function findHead(model: tf.LayersModel, where = 'model'): tf.layers.Layer {
  if (model.outputs.length !== 1) throw new ConfigError(`${where} has ${model.outputs.length} outputs; a classifier here needs exactly one (its logits)`);
  const outLayer = model.outputs[0]!.sourceLayer as tf.layers.Layer;
  const named = model.layers.find((l) => l.name === LOGITS_LAYER);
  const head = named ?? outLayer;
  if (head !== outLayer) {
    throw new ConfigError(`${where}: its layer '${LOGITS_LAYER}' is not the layer producing the model's output ('${outLayer.name}'); the head must be the last layer`);
  }
  if (head.getClassName() !== 'Dense') {
    throw new ConfigError(`${where}: its output layer '${head.name}' is a ${head.getClassName()} layer; the head must be a Dense layer computing the logits`);
  }
  const w = head.weights;
  if (w.length !== 2 || w[0]!.shape.length !== 2 || w[1]!.shape.length !== 1) {
    throw new ConfigError(`${where}: its head '${head.name}' must have a 2-D kernel and a bias (found weights ${w.map((v) => `[${v.shape.join(', ')}]`).join(' ')}); build it with useBias: true`);
  }
  return head;
}
