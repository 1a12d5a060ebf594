import { z } from 'zod';
import { SELECT_RULES } from '../src/models/types.ts';
import { mlpConfigSchema } from '../src/models/arch/mlp.ts';
import { modelConfigSchema, type ModelConfig } from '../src/models/arch/index.ts';

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

/**
 * The stage-level MLP keys (`hidden`, `activation`, `dropout`, `input_dropout`, `max_norm`): the form
 * configs used before `model:` existed, still accepted as `model: {type: mlp, ...}` with the same
 * keys (see {@link resolveModel}).
 */
export const LEGACY_MLP_KEYS = ['hidden', 'activation', 'dropout', 'input_dropout', 'max_norm'] as const;
type LegacyMlpKey = (typeof LEGACY_MLP_KEYS)[number];
const mlpShape = mlpConfigSchema.shape;

/**
 * The architecture keys of a training stage: `model:` (any registered architecture) and, for
 * configs written before it, the MLP keys at the stage level. Pair with {@link resolveModel}.
 */
export const modelKeys = {
  /**
   * The architecture: `{type: mlp, hidden, activation, dropout, input_dropout, max_norm}` or
   * `{type: cnn, conv, dense, activation, conv_dropout, dropout, max_norm}` (see "Architectures"
   * below). Default: an MLP from the stage-level keys `hidden`, `activation`, ... (2x800 when none is given);
   * with `init_from` (train, generalist, distill) and none of these keys, the `init_from` stage's own architecture.
   */
  model: modelConfigSchema.optional(),
  /** Stage-level MLP key (older form of `model: {type: mlp, hidden}`): hidden layer widths, e.g. [1200, 1200]. */
  hidden: mlpShape.hidden.unwrap().optional(),
  /** Stage-level MLP key (older form of `model: {type: mlp, activation}`): hidden activation. */
  activation: mlpShape.activation.unwrap().optional(),
  /** Stage-level MLP key (older form of `model: {type: mlp, dropout}`): dropout rate after each hidden layer (training only). */
  dropout: mlpShape.dropout.unwrap().optional(),
  /** Stage-level MLP key (older form of `model: {type: mlp, input_dropout}`): dropout rate on the inputs (training only). */
  input_dropout: mlpShape.input_dropout.unwrap().optional(),
  /** Stage-level MLP key (older form of `model: {type: mlp, max_norm}`): max-norm bound on each hidden unit's incoming weights (null = none). */
  max_norm: mlpShape.max_norm.unwrap().optional(),
};

/** Params holding {@link modelKeys} (or some of them) before {@link resolveModel}. */
type WithModelKeys = { model?: ModelConfig | undefined } & { [K in LegacyMlpKey]?: unknown };

/**
 * Resolves a stage's architecture (use as the schema's `.transform`): `model` when given, else an
 * MLP from the stage-level keys (defaults filled); the stage-level keys are dropped from the
 * result, so a stage reads only `params.model`.
 * Giving both `model` and a stage-level key is an error naming the keys and how to write them.
 */
export function resolveModel<T extends WithModelKeys>(p: T, ctx: z.RefinementCtx): Omit<T, LegacyMlpKey | 'model'> & { model: ModelConfig } {
  const { model, hidden, activation, dropout, input_dropout, max_norm, ...rest } = p;
  const legacy: Record<string, unknown> = { hidden, activation, dropout, input_dropout, max_norm };
  const given = LEGACY_MLP_KEYS.filter((k) => legacy[k] !== undefined);
  if (model !== undefined && given.length > 0) {
    ctx.addIssue({
      code: 'custom',
      path: [given[0]!],
      message:
        `give the architecture either as 'model:' or with the stage-level MLP keys, not both: ` +
        (model.type === 'mlp' ? `move ${given.join(', ')} into model: {type: mlp, ...}` : `remove ${given.join(', ')} (model type '${model.type}' does not read them)`),
    });
    return z.NEVER;
  }
  for (const k of LEGACY_MLP_KEYS) if (legacy[k] === undefined) delete legacy[k];
  return { ...rest, model: model ?? mlpConfigSchema.parse({ type: 'mlp', ...legacy }) };
}

/**
 * {@link resolveModel} for a stage with `init_from`: when the stage gives neither `model:` nor a
 * stage-level MLP key, `model` is null, meaning "the architecture of the `init_from` stage's
 * model" (e.g. a user's own model from a `model` stage, which no `model:` config describes);
 * otherwise as {@link resolveModel} (the stage builds `model` and copies the weights into it).
 */
export function resolveModelOrInit<T extends WithModelKeys & { init_from?: string | undefined }>(
  p: T,
  ctx: z.RefinementCtx,
): Omit<T, LegacyMlpKey | 'model'> & { model: ModelConfig | null } {
  const given = p.model !== undefined || LEGACY_MLP_KEYS.some((k) => p[k] !== undefined);
  const r = resolveModel(p, ctx);
  return p.init_from !== undefined && !given ? { ...r, model: null } : r;
}

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
  select: z.enum(SELECT_RULES).default('valid_accuracy'),
  /**
   * When a finite run counts as diverged (the stage then fails instead of saving the model):
   * training loss above `factor` x its first-epoch value for `epochs` epochs in a row, or a weight
   * above `max_weight` in absolute value. Defaults factor 10, epochs 3, max_weight 1e5; `off: true`
   * disables it (non-finite losses always stop the run).
   */
  divergence: z
    .strictObject({
      factor: z.number().gt(1).optional(),
      epochs: z.number().int().positive().optional(),
      max_weight: z.number().positive().optional(),
      off: z.boolean().optional(),
    })
    .optional(),
};

/** Converts the config's `divergence:` to the trainer's spec (undefined: the defaults). */
export function toDivergenceSpec(d: { factor?: number | undefined; epochs?: number | undefined; max_weight?: number | undefined; off?: boolean | undefined } | undefined) {
  if (!d) return undefined;
  return {
    ...(d.factor !== undefined ? { factor: d.factor } : {}),
    ...(d.epochs !== undefined ? { epochs: d.epochs } : {}),
    ...(d.max_weight !== undefined ? { maxWeight: d.max_weight } : {}),
    ...(d.off !== undefined ? { off: d.off } : {}),
  };
}

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
