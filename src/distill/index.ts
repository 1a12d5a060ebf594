/**
 * `distill-kit/distill`: the paper's distillation (section 2): tempered softmax, the soft + hard
 * loss with the T² factor, logit matching, ensemble teachers, the logit cache and bias shifts.
 */
export { assertTemperature, stopGradient, temperedLogSoftmax, temperedSoftmax } from './softmax.ts';
export { distillationLoss, hardLoss, logitMatchingLoss, makeLoss, softTargetLoss } from './losses.ts';
export type { DistillLossSpec, DistillationOptions, LogitMatchingOptions, SoftTargetOptions, TeacherTargetKind } from './losses.ts';
export { combineTeachers, computeTeacherLogits, onlineTeacherLoss, teacherLogitsOfBatch } from './teacher.ts';
export type { EnsembleMode } from './teacher.ts';
export { readLogits, writeLogits } from './logit-cache.ts';
export type { CachedLogits } from './logit-cache.ts';
export { adjustBiases, chooseBiasOffset } from './bias.ts';
export type { BiasOffsetChoice, ChooseBiasOffsetOptions } from './bias.ts';
export { buildLoss, distillLossSchema, HARD_LOSS, LOGITS_LOSS, LOSS_TYPES, lossType, SOFT_LOSS } from './loss-registry.ts';
export type { DistillLossConfig, LossTypeName } from './loss-registry.ts';
export type { LossContext, LossType } from './loss-types.ts';
