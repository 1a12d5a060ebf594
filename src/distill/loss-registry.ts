/**
 * The loss registry: every loss a stage can train with (hard labels, the paper's soft targets with
 * the T^2 factor, logit matching, the specialists' loss), each with one config schema and one
 * builder. The distill and distill-sweep stages take `loss:` from {@link distillLossSchema} and
 * build it with {@link buildLoss}; the specialists stage takes its loss keys from the `specialist`
 * entry's schema and its jobs build it the same way. Adding a loss is an entry here (or in its own
 * module, like the specialists' one) plus its line in {@link LOSS_TYPES}.
 */
import { z } from 'zod';
import { SPECIALIST_LOSS } from '../specialists/specialist-loss.ts';
import { ConfigError } from '../util/errors.ts';
import { distillationLoss, hardLoss, logitMatchingLoss } from './losses.ts';
import type { LossContext, LossFn, LossType, TeacherRowKind } from './loss-types.ts';

/** The keys of the `soft` loss (also the distill-sweep stage's `alpha` and each of its `temperatures`). */
export const SOFT_LOSS_KEYS = {
  /** Temperature of teacher and student in the soft term. */
  T: z.number().positive().max(1000),
  /** Weight of the soft term (times T^2); the hard-label term gets 1 - alpha. Default 0.9. */
  alpha: z.number().min(0).max(1).default(0.9),
};
const softSchema = z.strictObject({ type: z.literal('soft'), ...SOFT_LOSS_KEYS });
const logitsSchema = z.strictObject({
  type: z.literal('logits'),
  /** Weight of the logit-matching term; the hard-label term gets 1 - alpha. Default 1. */
  alpha: z.number().min(0).max(1).default(1),
});
const hardSchema = z.strictObject({ type: z.literal('hard') });

/** Hard-label softmax cross-entropy. */
export const HARD_LOSS: LossType<z.output<typeof hardSchema>> = {
  type: 'hard',
  description: 'softmax cross-entropy on the hard labels',
  schema: hardSchema,
  needsTeacher: () => false,
  teacherKinds: [],
  teacherWeight: () => undefined,
  build: () => hardLoss(),
};

/** The paper's objective: `alpha T^2 CE(p_T, q_T) + (1 - alpha) CE(y, q_1)`. */
export const SOFT_LOSS: LossType<z.output<typeof softSchema>> = {
  type: 'soft',
  description: "soft targets at temperature T (times T^2) mixed with the hard labels (Hinton et al.'s distillation loss)",
  schema: softSchema,
  needsTeacher: () => true,
  teacherKinds: ['logits', 'probabilities'],
  teacherWeight: (p) => p.alpha,
  build: (p, ctx) => distillationLoss({ T: p.T, alpha: p.alpha, teacher: ctx.teacher ?? 'logits' }),
};

/** Squared error on zero-meaned logits, mixed with the hard labels. */
export const LOGITS_LOSS: LossType<z.output<typeof logitsSchema>> = {
  type: 'logits',
  description: "logit matching (squared error on per-case zero-meaned logits) mixed with the hard labels",
  schema: logitsSchema,
  needsTeacher: () => true,
  teacherKinds: ['logits'],
  teacherWeight: (p) => p.alpha,
  build: (p, ctx) => {
    if (ctx.teacher && ctx.teacher !== 'logits') throw new ConfigError(`loss 'logits' needs teacher logits, got ${ctx.teacher}`);
    return logitMatchingLoss({ alpha: p.alpha });
  },
};

/** Every registered loss type, by `type:`. */
export const LOSS_TYPES = {
  soft: SOFT_LOSS,
  logits: LOGITS_LOSS,
  hard: HARD_LOSS,
  specialist: SPECIALIST_LOSS,
} as const;

/** A registered loss type's name. */
export type LossTypeName = keyof typeof LOSS_TYPES;

/** The `loss:` of the distillation stages: `{type: soft, T, alpha}`, `{type: logits, alpha}` or `{type: hard}`. */
export const distillLossSchema = z.discriminatedUnion('type', [softSchema, logitsSchema, hardSchema]);
/** A parsed distillation `loss:`. */
export type DistillLossConfig = z.output<typeof distillLossSchema>;

/**
 * The registry entry of a loss type.
 * @throws ConfigError naming the registered types for an unknown one.
 */
export function lossType(type: string): LossType<{ type: string }> {
  const t = Object.hasOwn(LOSS_TYPES, type) ? (LOSS_TYPES as unknown as Record<string, LossType<{ type: string }>>)[type] : undefined;
  if (!t) throw new ConfigError(`loss.type must be one of ${Object.keys(LOSS_TYPES).map((k) => `'${k}'`).join(', ')}, got '${type}'`);
  return t;
}

/**
 * Builds the loss a config describes: checks it against its type's schema (defaults filled in) and
 * the teacher rows against the kinds the type accepts, then calls the type's builder.
 * @throws ConfigError for an unknown type, a bad key (named with its path), or teacher rows of a
 * kind the loss cannot use.
 */
export function buildLoss(config: { type: string } & Record<string, unknown>, ctx: LossContext = {}): LossFn {
  const t = lossType(config.type);
  const parsed = t.schema.safeParse(config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`loss ${config.type}: ${issue.path.length ? `${issue.path.join('.')}: ` : ''}${issue.message}`);
  }
  const p = parsed.data;
  if (t.needsTeacher(p) && ctx.teacher && !(t.teacherKinds as readonly TeacherRowKind[]).includes(ctx.teacher)) {
    throw new ConfigError(`loss '${t.type}' needs teacher ${t.teacherKinds.join(' or ')}, got ${ctx.teacher}`);
  }
  return t.build(p, ctx);
}
