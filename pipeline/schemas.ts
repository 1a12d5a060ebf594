import { z } from 'zod';

/** Learning-rate schedule of a training run. */
export const scheduleSchema = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('constant') }),
    z.strictObject({ type: z.literal('step'), every: z.number().int().positive(), factor: z.number().positive().max(1) }),
    z.strictObject({ type: z.literal('exponential'), decay: z.number().positive().max(1) }),
    z.strictObject({ type: z.literal('cosine'), min_lr: z.number().nonnegative() }),
  ])
  .default({ type: 'constant' });

/** Optimizer of a training run (SGD with momentum, or Adam). */
export const optimizerSchema = z.discriminatedUnion('name', [
  z.strictObject({
    name: z.literal('sgd'),
    lr: z.number().positive(),
    momentum: z.number().min(0).max(0.999).default(0.9),
    nesterov: z.boolean().default(false),
    /** Momentum ramps linearly from `momentum` to `final_momentum` over `momentum_ramp_epochs` (Hinton-style). */
    final_momentum: z.number().min(0).max(0.999).optional(),
    momentum_ramp_epochs: z.number().int().positive().optional(),
    schedule: scheduleSchema,
  }),
  z.strictObject({
    name: z.literal('adam'),
    lr: z.number().positive(),
    beta1: z.number().min(0).max(0.9999).default(0.9),
    beta2: z.number().min(0).max(0.99999).default(0.999),
    schedule: scheduleSchema,
  }),
]);
export type OptimizerConfig = z.output<typeof optimizerSchema>;

/** An MLP's architecture and regularisation. */
export const mlpSchema = {
  /** Hidden layer widths, e.g. [1200, 1200]. */
  hidden: z.array(z.number().int().positive().max(100_000)).min(0).max(16).default([800, 800]),
  /** Hidden activation. */
  activation: z.enum(['relu', 'tanh', 'sigmoid', 'elu']).default('relu'),
  /** Dropout rate after each hidden layer (training only). */
  dropout: z.number().min(0).max(0.95).default(0),
  /** Dropout rate on the inputs (training only). */
  input_dropout: z.number().min(0).max(0.95).default(0),
  /** Max-norm constraint on each hidden unit's incoming weight vector (null = none). */
  max_norm: z.number().positive().nullable().default(null),
};

/** How a model is trained. */
export const trainingSchema = {
  /** Passes over the training data. */
  epochs: z.number().int().positive().max(10_000).default(20),
  /** Examples per gradient step. */
  batch_size: z.number().int().positive().max(65_536).default(128),
  /** SGD with momentum (the paper's) or Adam, with a learning-rate schedule. */
  optimizer: optimizerSchema.default({ name: 'sgd', lr: 0.05, momentum: 0.9, nesterov: false, schedule: { type: 'constant' } }),
  /** Random shifts of up to this many pixels for image-shaped inputs (0 = off). */
  jitter: z.number().int().min(0).max(8).default(0),
  /** Checkpoint selection on the validation split (never the test split). */
  select: z.enum(['valid_accuracy', 'valid_loss', 'last']).default('valid_accuracy'),
};

/** Converts the config's snake_case optimizer to the trainer's spec. */
export function toOptimizerSpec(o: OptimizerConfig) {
  const schedule =
    o.schedule.type === 'cosine' ? { type: 'cosine' as const, minLr: o.schedule.min_lr } : o.schedule;
  if (o.name === 'adam') return { name: 'adam' as const, lr: o.lr, beta1: o.beta1, beta2: o.beta2, schedule };
  return {
    name: 'sgd' as const,
    lr: o.lr,
    momentum: o.momentum,
    nesterov: o.nesterov,
    schedule,
    ...(o.final_momentum !== undefined ? { finalMomentum: o.final_momentum } : {}),
    ...(o.momentum_ramp_epochs !== undefined ? { momentumRampEpochs: o.momentum_ramp_epochs } : {}),
  };
}
