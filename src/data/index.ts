/**
 * `distill-kit/data`: Arrow ingestion (validated completely, seeded splits), split files and
 * streams, prediction files, and the built-in dataset recipes (`mnist`, `synthetic`).
 */
export { ingest, MAX_CLASS_INDEX, UNLABELED_FILE } from './ingest.ts';
export type { ClassesFile, IngestOptions } from './ingest.ts';
export { describeArrowFile, sniffArrowFormat } from './arrow-read.ts';
export { describeDataFile, isParquetInput } from './table-input.ts';
export type { ArrowFormat } from './arrow-read.ts';
export { concatSets, readSplit, subset, writeSplit } from './split-file.ts';
export type { LabeledSet } from './split-file.ts';
export { openSplitStream } from './split-stream.ts';
export type { SplitChunk, SplitStream } from './split-stream.ts';
export { readPredictions, writePredictions } from '../artifacts/predictions.ts';
export type { PredictionSet } from '../artifacts/predictions.ts';
export { ensureRecipe, makeRecipe, parseRecipeOptions, recipeFileName, recipeSchemas } from '../../datasets/recipes.ts';
export type { RecipeName } from '../../datasets/recipes.ts';
export { makeSynthetic, SYNTHETIC_DEFAULTS } from '../../datasets/synthetic.ts';
export type { SyntheticOptions } from '../../datasets/synthetic.ts';
export { makeMnist } from '../../datasets/mnist.ts';
export type { MnistOptions } from '../../datasets/mnist.ts';
