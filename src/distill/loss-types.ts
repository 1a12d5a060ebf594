/**
 * The loss types of the training loop, and the shape of one entry of the loss registry
 * (`loss-registry.ts`): a config schema, what teacher rows it needs, and how to build its
 * {@link LossFn}. The registry is what the distill, distill-sweep and specialists stages use.
 */
import type { z } from 'zod';
import type { LossFn } from '../models/types.ts';

export type { LossFn, TrainBatch } from '../models/types.ts';

/** What teacher rows hold in `batch.targets`. */
export type TeacherRowKind = 'logits' | 'probabilities';

/** What a loss is built for (beyond its own params). */
export interface LossContext {
  /** What the teacher rows in `batch.targets` hold; null or absent: there are none. */
  teacher?: TeacherRowKind | null;
  /**
   * For the specialists' loss: the specialist's classes (generalist class ids), the generalist's
   * number of classes, the head, and the form of `batch.targets` (`full` logits or aggregated `cells`).
   */
  specialist?: { classes: readonly number[]; C: number; head: 'dustbin' | 'full'; targets: 'full' | 'cells' };
}

/** One registered loss type. `P` is its parsed config (`{type, ...}`). */
export interface LossType<P extends { type: string } = { type: string }> {
  /** The config's `type:`. */
  type: P['type'];
  /** One line for docs and errors. */
  description: string;
  /** The config schema: a strict object with `type: <literal>` and the type's own keys. */
  schema: z.ZodType<P, { type: string }>;
  /** Whether the loss reads teacher rows (`batch.targets`) with these params. */
  needsTeacher(p: P): boolean;
  /** The teacher row kinds it accepts (empty: none). */
  teacherKinds: readonly TeacherRowKind[];
  /** Weight of the teacher term (so the hard-label term gets `1 - weight`), or undefined when it has none. */
  teacherWeight(p: P): number | undefined;
  /**
   * Builds the loss.
   * @throws ConfigError for params or a context it cannot work with.
   */
  build(p: P, ctx: LossContext): LossFn;
}
