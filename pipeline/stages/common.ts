import path from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import type * as tf from '@tensorflow/tfjs';
import { readSplit, type LabeledSet } from '../../src/data/split-file.ts';
import type { ClassesFile } from '../../src/data/ingest.ts';
import { saveModel } from '../../src/models/io.ts';
import { evaluate } from '../../src/models/predict.ts';
import type { EpochMetrics } from '../../src/models/train.ts';
import { writeFileAtomic, writeJsonAtomic } from '../../src/artifacts/atomic.ts';
import { ArtifactError, ConfigError } from '../../src/util/errors.ts';
import { UNLABELED_FILE } from '../../src/data/ingest.ts';
import { TB_DIR, writeTrainingCurves } from '../../src/tensorboard/training-curves.ts';

/** The three splits and class table written by an `ingest` stage. */
export interface IngestedData {
  train: LabeledSet;
  valid: LabeledSet;
  test: LabeledSet;
  classes: ClassesFile;
}

/** Reads the `classes.json` an `ingest` stage wrote in `dir`. */
export function readClasses(dir: string): ClassesFile {
  const file = path.join(dir, 'classes.json');
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ClassesFile;
  } catch (e) {
    throw new ArtifactError(`cannot read ${file}: ${(e as Error).message}; rerun the ingest stage with --force`);
  }
}

/** Reads what an `ingest` stage wrote in `dir`. */
export async function readIngested(dir: string): Promise<IngestedData> {
  const classes = readClasses(dir);
  const [train, valid, test] = await Promise.all(['train', 'valid', 'test'].map((s) => readSplit(path.join(dir, `${s}.arrow`))));
  return { train: train!, valid: valid!, test: test!, classes };
}

/**
 * Path of the `unlabeled.arrow` an ingest stage wrote, for an option that needs unlabeled rows.
 * @param asking what asks for them, opening the error (e.g. `covariance.split is 'unlabeled'`)
 * @param fix the other way out, closing the error (e.g. `use split: valid or train`)
 * @throws ConfigError when the dataset had no rows with split = 'unlabeled'.
 */
export function unlabeledFile(ingestDir: string, stage: string, asking: string, fix: string): string {
  const file = path.join(ingestDir, UNLABELED_FILE);
  if (!existsSync(file)) {
    throw new ConfigError(`${asking} but the dataset of stage '${stage}' has no unlabeled rows; give the input rows with split = 'unlabeled' (synthetic recipe: unlabeledPerClass), or ${fix}`);
  }
  return file;
}

/** Accuracy, errors and examples of a model on one split. */
export interface SplitMetrics {
  accuracy: number;
  errors: number;
  examples: number;
  loss: number;
}

/** What {@link writeModelOutputs} writes into its folder (files and folders), for copying them elsewhere. */
export const MODEL_OUTPUTS = ['model', 'metrics.jsonl', TB_DIR, 'metrics.json'] as const;

/**
 * Writes a trained model's artifacts: `model/`, `metrics.jsonl` (one line per epoch), the same
 * epochs as a TensorBoard event file in `tb/`, and `metrics.json`
 * (`{ test: { accuracy, errors, examples }, valid: {...}, best_epoch, ...extra }`).
 */
export async function writeModelOutputs(
  outDir: string,
  model: tf.LayersModel,
  history: EpochMetrics[],
  metrics: { test: SplitMetrics; valid: SplitMetrics; best_epoch: number } & Record<string, unknown>,
): Promise<void> {
  await saveModel(model, path.join(outDir, 'model'));
  await writeFileAtomic(path.join(outDir, 'metrics.jsonl'), history.map((h) => JSON.stringify(h)).join('\n') + (history.length ? '\n' : ''));
  await writeTrainingCurves(outDir, history);
  await writeJsonAtomic(path.join(outDir, 'metrics.json'), metrics);
}

/** Evaluates on valid and test, in the shape `metrics.json` uses. */
export function evaluateSplits(model: tf.LayersModel, data: { valid: LabeledSet; test: LabeledSet }): { valid: SplitMetrics; test: SplitMetrics } {
  return { valid: evaluate(model, data.valid), test: evaluate(model, data.test) };
}

/**
 * Whether the model a stage wrote in `stageDir` was trained on the validation rows
 * (`trained_on: 'train+valid'` in its metrics.json); false when there is no readable metrics.json
 * (e.g. an imported model without one).
 */
export function trainedOnValid(stageDir: string): boolean {
  try {
    return (JSON.parse(readFileSync(path.join(stageDir, 'metrics.json'), 'utf8')) as { trained_on?: string }).trained_on === 'train+valid';
  } catch {
    return false;
  }
}

/**
 * Logs a warning when the model of stage directory `modelDir` was trained on the validation rows
 * ({@link trainedOnValid}): then whatever `uses` chooses or measures on valid is biased towards that model.
 * @param uses what relies on valid in the calling stage, e.g. `the covariance (split: valid)`
 */
export function warnIfTrainedOnValid(modelDir: string, modelStage: string, uses: string, log: { warn: (m: string) => void }): void {
  if (trainedOnValid(modelDir)) {
    log.warn(`'${modelStage}' was trained on train + valid (train_on: train+valid), so ${uses} sees rows it was trained on and is biased; train it with train_on: train for a pipeline that uses valid`);
  }
}
