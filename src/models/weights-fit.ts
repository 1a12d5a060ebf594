/**
 * Refuses a model whose weights cannot fit in this machine's memory, before any tensor is
 * allocated: a width or feature count typed with a few zeros too many would otherwise end in an
 * out-of-memory kill or a "RangeError: Array buffer allocation failed" deep inside tfjs.
 */
import os from 'node:os';
import { ConfigError } from '../util/errors.ts';

/**
 * Float32 copies of every weight that training holds at once: the weights, their gradients, two
 * Adam slots, the best epoch's snapshot and the checkpoint's copy.
 */
export const TRAINING_COPIES = 6;

const gib = (b: number): string => `${(b / 2 ** 30).toFixed(1)} GiB`;

/** One dense layer: where its width comes from (a config key or the data), inputs and units. */
export interface DenseShape {
  /** What sets this layer's size, e.g. `hidden[1]` or `the logits layer (classes)`. */
  key: string;
  inputs: number;
  units: number;
}

/**
 * Checks that `layers`' weights (kernel + bias, float32, {@link TRAINING_COPIES} copies) fit in
 * `memoryBytes` (default: the machine's total memory).
 * @param inputDim the number of input features (from the data).
 * @throws ConfigError naming the largest layer's key, its shape and the bytes needed.
 */
export function checkWeightsFit(layers: readonly DenseShape[], inputDim: number, memoryBytes = os.totalmem()): void {
  let params = 0;
  let largest: DenseShape | undefined;
  for (const l of layers) {
    const p = (l.inputs + 1) * l.units;
    params += p;
    if (!largest || p > (largest.inputs + 1) * largest.units) largest = l;
  }
  const bytes = params * 4 * TRAINING_COPIES;
  if (bytes <= memoryBytes || !largest) return;
  const fromData = largest.inputs === inputDim && largest === layers[0];
  throw new ConfigError(
    `the model's ${params.toExponential(2)} weights need about ${gib(bytes)} to train (${TRAINING_COPIES} float32 copies) but this machine has ${gib(memoryBytes)}; ` +
      `the largest layer is ${largest.key} = ${largest.units} units x ${largest.inputs} inputs${fromData ? ` (the data's ${inputDim} features, column 'features')` : ''}: lower ${largest.key}${fromData ? ' or use fewer input features' : ''}`,
  );
}
