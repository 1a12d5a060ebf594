/**
 * `model: {type: mlp}`: the multilayer perceptron of the paper (dense hidden layers, dropout on the
 * inputs and after each hidden layer, max-norm on the hidden units' incoming weights).
 */
import os from 'node:os';
import { z } from 'zod';
import { TRAINING_COPIES } from '../weights-fit.ts';
import { ConfigError } from '../../util/errors.ts';
import { buildMlp } from '../mlp.ts';
import { LOGITS_LAYER } from './head.ts';
import type { Architecture } from './types.ts';

/** Config of an MLP (`model: {type: mlp, ...}`); the same keys a stage took before `model:` existed. */
export const mlpConfigSchema = z.strictObject({
  /** Selects this architecture. */
  type: z.literal('mlp'),
  /** Hidden layer widths, input side first, e.g. [1200, 1200]; [] is a linear softmax model. */
  hidden: z
    .array(z.number().int().positive().max(100_000))
    .min(0)
    .max(16)
    .superRefine((h, ctx) => {
      // Hidden-to-hidden weights alone must fit (the input side is checked when the data is known).
      for (let i = 1; i < h.length; i++) {
        const bytes = (h[i - 1]! + 1) * h[i]! * 4 * TRAINING_COPIES;
        if (bytes > os.totalmem()) {
          ctx.addIssue({
            code: 'custom',
            path: [i],
            message: `${h[i - 1]} x ${h[i]} weights need about ${(bytes / 2 ** 30).toFixed(0)} GiB to train but this machine has ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB of memory; use narrower layers`,
          });
        }
      }
    })
    .default([800, 800]),
  /** Hidden activation. */
  activation: z.enum(['relu', 'tanh', 'sigmoid', 'elu']).default('relu'),
  /** Dropout rate after each hidden layer (training only). */
  dropout: z.number().min(0).max(0.95).default(0),
  /** Dropout rate on the inputs (training only). */
  input_dropout: z.number().min(0).max(0.95).default(0),
  /** Max-norm constraint on each hidden unit's incoming weight vector (null = none). */
  max_norm: z.number().positive().nullable().default(null),
});
/** A parsed MLP config. */
export type MlpConfig = z.output<typeof mlpConfigSchema>;

/** The MLP architecture (see {@link buildMlp}). */
export const mlpArchitecture: Architecture<MlpConfig> = {
  type: 'mlp',
  description: 'dense hidden layers with dropout and max-norm (the paper\'s nets)',
  schema: mlpConfigSchema,
  head: LOGITS_LAYER,
  build: (c, input) =>
    buildMlp({
      inputDim: input.inputDim,
      hidden: c.hidden,
      outputs: input.outputs,
      activation: c.activation,
      inputDropout: c.input_dropout,
      dropout: c.dropout,
      maxNorm: c.max_norm,
      seed: input.seed,
    }),
  describe: (c) => {
    const h = c.hidden;
    if (h.length === 0) return 'linear';
    return h.every((v) => v === h[0]) ? `${h.length}x${h[0]}` : h.join('-');
  },
  withWidth: (c, width) => {
    if (c.hidden.length === 0) throw new ConfigError(`an mlp with hidden: [] has no hidden layer whose width a sweep could set: give it hidden: [${width}, ${width}] (one entry per layer; the sweep replaces each width)`);
    return { ...c, hidden: c.hidden.map(() => width) };
  },
};
