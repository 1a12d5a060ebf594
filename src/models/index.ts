/**
 * `distill-kit/models`: the MLP, its training loop (any loss, dropout, max-norm, jitter, SGD with
 * momentum and schedules, Adam, selection on valid), prediction, evaluation and model files.
 */
export { buildMlp, hiddenLayerName, LOGITS_LAYER } from './mlp.ts';
export type { MlpActivation, MlpSpec } from './mlp.ts';
export { loadModel, MODEL_JSON, saveModel, WEIGHTS_BIN } from './io.ts';
export { restoreWeights, snapshotWeights, trainModel } from './train.ts';
export type { SelectRule, TrainOptions, TrainResult } from './train.ts';
export { DEFAULT_PREDICT_BATCH, evaluate, evaluateWithLoss, outputDim, predictLogits } from './predict.ts';
export type { EvalResult, PredictOptions } from './predict.ts';
export { checkOptimizerSpec, learningRateAt, momentumAt } from './optimizer.ts';
export type { LrSchedule, OptimizerSpec } from './optimizer.ts';
export type { EpochMetrics, LossFn, TrainBatch, TrainSet } from './types.ts';
export { imageShape, jitterBatch, shiftImage } from './jitter.ts';
export type { ImageShape } from './jitter.ts';
export { copyWeightsFrom, initialModel } from './init-from.ts';
export type { InitFrom } from './init-from.ts';
export { IMPORTABLE_LAYERS, importLayersModel, modelFilesOf } from './import-model.ts';
export type { ImportOptions, ImportReport, ImportTarget, OutputsKind } from './import-model.ts';
export { shiftedAccuracy } from './shifted-accuracy.ts';
export type { ShiftedAccuracy, ShiftedAccuracyResult } from './shifted-accuracy.ts';
export { ARCHITECTURES, architectureOf, buildModel, describeModel, modelConfigSchema } from './arch/index.ts';
export type { ArchInput, Architecture, CnnConfig, ConvBlock, MlpConfig, ModelConfig } from './arch/index.ts';
export { exportOnnx, modelToOnnx } from '../export/export-model.ts';
export type { OnnxExportResult } from '../export/export-model.ts';
export { loadPredictor } from '../predict/predictor.ts';
export type { Predictor } from '../predict/predictor.ts';
export { predictFile } from '../predict/predict-file.ts';
export type { PredictFileOptions, PredictFileResult } from '../predict/predict-file.ts';
