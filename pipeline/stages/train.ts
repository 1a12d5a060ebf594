import path from 'node:path';
import { z } from 'zod';
import { defineStage, type StageDef } from '../stage.ts';
import { modelKeys, resolveModelOrInit, trainingSchema, toDivergenceSpec, toOptimizerSpec } from '../schemas.ts';
import { trainModel } from '../../src/models/train.ts';
import { initialModel } from '../../src/models/init-from.ts';
import { concatSets } from '../../src/data/split-file.ts';
import { evaluateSplits, readIngested, writeModelOutputs } from './common.ts';

const schema = z.strictObject({
  /** The `ingest` stage whose splits to train on. */
  data: z.string().default('ingest'),
  /**
   * The rows to train on: `train` (default; checkpoint selection on valid), or `train+valid` for a
   * final model trained on every labelled row once a recipe (epochs, schedule) has been chosen on
   * valid by an earlier run: then `select` must be `last`, and the valid metrics written are on
   * rows the model saw (marked `trained_on: 'train+valid'` in metrics.json).
   */
  train_on: z.enum(['train', 'train+valid']).default('train'),
  /**
   * An earlier model stage (`train`, `generalist`, `distill`, `model`) whose model this one
   * starts from instead of a fresh initialisation (a continued run, e.g. a second cosine cycle on
   * a converged teacher, or fine-tuning your own model). With `model:` (or the MLP keys) given,
   * that architecture is built and must match the source's weights; without, the source's own
   * architecture is trained. The optimizer's state starts afresh.
   */
  init_from: z.string().optional(),
  /**
   * This stage's own seed (initialisation, shuffling, dropout, jitter) instead of the run's: the
   * same recipe trained again from other seeds, e.g. to see how much a result varies by seed.
   */
  seed: z.number().int().min(0).max(2 ** 31 - 1).optional(),
  ...modelKeys,
  ...trainingSchema,
}).refine((p) => p.train_on === 'train' || p.select === 'last', {
  message: "train_on 'train+valid' trains on the validation rows, so they cannot choose the checkpoint: set select: last (with the epochs fixed by an earlier run selected on valid), or use train_on: train",
  path: ['select'],
}).transform(resolveModelOrInit);
export type TrainParams = z.output<typeof schema>;

function makeTrainStage(type: string, description: string): StageDef<TrainParams> {
  return defineStage({
    type,
    description,
    schema,
    deps: (p) => [p.data, ...(p.init_from !== undefined ? [p.init_from] : [])],
    code: ['pipeline/stages/train.ts'],
    async run(ctx) {
      const p = ctx.params;
      const seed = p.seed ?? ctx.seed;
      const data = await readIngested(ctx.input(p.data));
      const trainSet = p.train_on === 'train+valid' ? concatSets(data.train, data.valid) : data.train;
      const C = data.classes.classes.length;
      const model = await initialModel(
        p.model,
        { inputDim: data.train.dim, shape: data.train.shape, outputs: C, seed },
        p.init_from !== undefined ? { dir: path.join(ctx.input(p.init_from), 'model'), where: `${ctx.name}.init_from '${p.init_from}'` } : undefined,
      );
      if (p.init_from !== undefined) ctx.log.info(`initialised from ${p.init_from}'s model${p.model ? '' : ' (its architecture and weights)'}`);
      try {
        const result = await trainModel({
          model,
          train: trainSet,
          ...(p.train_on === 'train' ? { valid: data.valid } : {}),
          epochs: p.epochs,
          batchSize: p.batch_size,
          optimizer: toOptimizerSpec(p.optimizer),
          jitter: p.jitter,
          seed,
          select: p.select,
          ...(p.divergence ? { divergence: toDivergenceSpec(p.divergence)! } : {}),
          checkpointDir: path.join(ctx.scratchDir, 'checkpoint'),
          // Each epoch's line (loss, accuracies, throughput) is the end of its progress indicator.
          log: ctx.log,
        });
        const { valid, test } = evaluateSplits(model, data);
        await writeModelOutputs(ctx.outDir, model, result.history, {
          test,
          valid,
          best_epoch: result.bestEpoch,
          classes: C,
          trained_on: p.train_on,
          train_examples: trainSet.n,
          seed,
        });
        ctx.log.info(
          `test accuracy ${(100 * test.accuracy).toFixed(2)}% (${test.errors} errors of ${test.examples}); ` +
            (p.train_on === 'train' ? `best epoch ${result.bestEpoch} on valid` : `last epoch ${result.bestEpoch}, trained on ${trainSet.n} rows of train + valid`),
        );
        return { test_accuracy: test.accuracy, test_errors: test.errors, valid_accuracy: valid.accuracy, best_epoch: result.bestEpoch };
      } finally {
        model.dispose();
      }
    },
  });
}

/** `generalist`: the model over all classes that the specialists start from. */
export const generalistStage = makeTrainStage('generalist', 'train a model (`model:`, default an MLP) over all classes on hard labels (model selection on valid)');
/** `train`: the same as `generalist`, for teachers and baselines in experiments. */
export const trainStage = makeTrainStage('train', 'train a model (`model:`, default an MLP) on hard labels (teachers, baselines); same params as generalist');
