/** The loss types of the training loop, re-exported for the distillation modules. */
export type { LossFn, TrainBatch } from '../models/types.ts';
