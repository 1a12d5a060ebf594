import type * as tf from '@tensorflow/tfjs';
import type { z } from 'zod';

/** What a builder learns about the data: the flat feature width, the example shape, the classes. */
export interface ArchInput {
  /** Features per example (the model takes `[n, inputDim]` flat rows, as every data path delivers them). */
  inputDim: number;
  /** The example's shape from ingest (e.g. `[28, 28, 1]`), its product `inputDim`; absent for plain vectors. */
  shape?: number[] | undefined;
  /** Number of classes: the width of the head (the logits layer). */
  outputs: number;
  /** Seed of the initialisers and of the dropout layers' configs. */
  seed: number;
}

/**
 * One architecture of the registry (`src/models/arch/index.ts`). A file `src/models/arch/<type>.ts`
 * exports one of these; listing it in the registry makes `model: {type: <type>, ...}` work in
 * every training stage.
 *
 * Contract of `build`: a model taking flat rows `[n, inputDim]` (an architecture that needs another
 * input shape reshapes inside the model), whose LAST layer is its head, a Dense layer named
 * {@link head} with a linear activation and a bias (softmax belongs to the losses), and whose
 * Dropout layers are `Dropout` layers (the training loop reseeds them per step). Weight
 * constraints (max-norm) are attached as kernel constraints; the training loop applies them.
 */
export interface Architecture<C extends { type: string }> {
  /** The `type:` value in configs. */
  type: C['type'];
  /** One line for the docs. */
  description: string;
  /** Strict zod schema of the config (`type: <literal>` plus its keys, defaults filled). */
  schema: z.ZodType<C>;
  /** Builds a fresh model (seeded: the same config and input give the same weights). */
  build(config: C, input: ArchInput): tf.LayersModel;
  /** Name of the head (the logits layer) in the models `build` returns. */
  head: string;
  /** A short text for tables, e.g. `2x800` or `cnn 32-64 / 256`. */
  describe(config: C): string;
  /**
   * For a width sweep (`distill-sweep`): the config with each of its hidden widths set to `width`;
   * absent when the architecture has no such notion.
   */
  withWidth?(config: C, width: number): C;
}
