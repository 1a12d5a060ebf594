import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { checkWeightsFit } from './weights-fit.ts';

/** Hidden-unit non-linearities supported by {@link buildMlp}. */
export type MlpActivation = 'relu' | 'tanh' | 'sigmoid' | 'elu';

/** Architecture and regularisation of a multilayer perceptron. */
export interface MlpSpec {
  /** Number of input features. */
  inputDim: number;
  /** Units of each hidden layer, input side first (may be empty: a linear softmax model). */
  hidden: number[];
  /** Number of classes (width of the logits layer). */
  outputs: number;
  /** Non-linearity of the hidden layers. */
  activation: MlpActivation;
  /** Dropout rate on the inputs, in [0, 1); 0 = no input dropout layer. */
  inputDropout: number;
  /** Dropout rate after each hidden layer, in [0, 1); 0 = no hidden dropout layers. */
  dropout: number;
  /**
   * Upper bound on the L2 norm of each hidden unit's incoming weight vector (kernel column), or
   * null for none. Enforced by the training loop after every step (see `train.ts`).
   */
  maxNorm: number | null;
  /** Also bound the logits layer's incoming weight vectors by `maxNorm`. Default false. */
  maxNormOutput?: boolean;
  /** Seed of the initialisers and of the dropout layers' configs. */
  seed: number;
}

/** Name of the `i`-th hidden dense layer (0-based). */
export function hiddenLayerName(i: number): string {
  return `hidden_${i}`;
}

/** Name of the output dense layer. */
export const LOGITS_LAYER = 'logits';

function checkSpec(spec: MlpSpec): void {
  const bad = (key: string, why: string): never => {
    throw new ConfigError(`model spec: ${key} ${why}`);
  };
  if (!Number.isInteger(spec.inputDim) || spec.inputDim < 1) bad('inputDim', `must be a positive integer, got ${spec.inputDim}`);
  if (!Number.isInteger(spec.outputs) || spec.outputs < 2) bad('outputs', `must be an integer >= 2, got ${spec.outputs}`);
  spec.hidden.forEach((h, i) => {
    if (!Number.isInteger(h) || h < 1) bad(`hidden[${i}]`, `must be a positive integer, got ${h}`);
  });
  for (const key of ['inputDropout', 'dropout'] as const) {
    const r = spec[key];
    if (!(r >= 0 && r < 1)) bad(key, `must be in [0, 1), got ${r}`);
  }
  if (spec.maxNorm !== null && !(spec.maxNorm > 0)) bad('maxNorm', `must be a positive number or null, got ${spec.maxNorm}`);
  if (!['relu', 'tanh', 'sigmoid', 'elu'].includes(spec.activation)) {
    bad('activation', `must be one of relu, tanh, sigmoid, elu, got '${String(spec.activation)}'`);
  }
  const widths = [spec.inputDim, ...spec.hidden, spec.outputs];
  checkWeightsFit(
    widths.slice(1).map((units, i) => ({ key: i < spec.hidden.length ? `hidden[${i}]` : `the logits layer (${spec.outputs} classes)`, inputs: widths[i]!, units })),
    spec.inputDim,
  );
}

/**
 * Builds a `tf.Sequential` MLP: `[input_dropout] -> (hidden_i -> [dropout_i])* -> logits`.
 * Dense kernels use seeded Glorot-uniform initialisers (biases zero), each layer with its own
 * seed derived from `spec.seed`; the logits layer is LINEAR (softmax belongs to the losses).
 * Dropout layers carry a seed in their config too, but note that a tfjs Dropout layer with a
 * fixed seed draws the SAME mask on every call: the training loop (`trainModel`) reseeds them per
 * step. The max-norm bound is attached as a `maxNorm` kernel constraint (axis 0: per unit).
 * @throws ConfigError for an invalid spec.
 */
export function buildMlp(spec: MlpSpec): tf.LayersModel {
  checkSpec(spec);
  const model = tf.sequential({ name: 'mlp' });
  const constraint = (): ReturnType<typeof tf.constraints.maxNorm> | undefined =>
    spec.maxNorm === null ? undefined : tf.constraints.maxNorm({ maxValue: spec.maxNorm, axis: 0 });
  const layerSeed = (name: string): number => Rng.derive(spec.seed, name).seed();
  let first = true;
  const inputShape = (): { inputShape?: number[] } => {
    if (!first) return {};
    first = false;
    return { inputShape: [spec.inputDim] };
  };
  if (spec.inputDropout > 0) {
    model.add(tf.layers.dropout({ rate: spec.inputDropout, seed: layerSeed('input_dropout'), name: 'input_dropout', ...inputShape() }));
  }
  spec.hidden.forEach((units, i) => {
    const name = hiddenLayerName(i);
    model.add(
      tf.layers.dense({
        units,
        activation: spec.activation,
        kernelInitializer: tf.initializers.glorotUniform({ seed: layerSeed(name) }),
        biasInitializer: 'zeros',
        kernelConstraint: constraint(),
        name,
        ...inputShape(),
      }),
    );
    if (spec.dropout > 0) {
      model.add(tf.layers.dropout({ rate: spec.dropout, seed: layerSeed(`dropout_${i}`), name: `dropout_${i}` }));
    }
  });
  model.add(
    tf.layers.dense({
      units: spec.outputs,
      activation: 'linear',
      kernelInitializer: tf.initializers.glorotUniform({ seed: layerSeed(LOGITS_LAYER) }),
      biasInitializer: 'zeros',
      kernelConstraint: spec.maxNormOutput ? constraint() : undefined,
      name: LOGITS_LAYER,
      ...inputShape(),
    }),
  );
  return model;
}
