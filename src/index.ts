/**
 * distill-kit: knowledge distillation and specialist ensembles (Hinton, Vinyals & Dean 2015) on
 * TensorFlow.js. Every public export of the package, by name; the subpaths `distill-kit/distill`,
 * `/models`, `/specialists`, `/ensemble`, `/data` and `/pipeline` export the same names by area
 * (a name added to a subpath's index.ts is added here too: test/package/pack.test.ts checks).
 */

// Distillation (distill-kit/distill)
export {
  adjustBiases,
  assertTemperature,
  buildLoss,
  chooseBiasOffset,
  combineTeachers,
  computeTeacherLogits,
  distillationLoss,
  distillLossSchema,
  HARD_LOSS,
  hardLoss,
  logitMatchingLoss,
  LOGITS_LOSS,
  LOSS_TYPES,
  lossType,
  makeLoss,
  onlineTeacherLoss,
  readLogits,
  SOFT_LOSS,
  softTargetLoss,
  stopGradient,
  teacherLogitsOfBatch,
  temperedLogSoftmax,
  temperedSoftmax,
  writeLogits,
} from './distill/index.ts';
export type {
  BiasOffsetChoice,
  CachedLogits,
  ChooseBiasOffsetOptions,
  DistillationOptions,
  DistillLossConfig,
  DistillLossSpec,
  EnsembleMode,
  LogitMatchingOptions,
  LossContext,
  LossType,
  LossTypeName,
  SoftTargetOptions,
  TeacherTargetKind,
} from './distill/index.ts';

// Models: architectures, training, prediction, export (distill-kit/models)
export {
  architectureOf,
  ARCHITECTURES,
  buildMlp,
  buildModel,
  checkOptimizerSpec,
  copyWeightsFrom,
  DEFAULT_PREDICT_BATCH,
  describeModel,
  evaluate,
  evaluateWithLoss,
  exportOnnx,
  hiddenLayerName,
  imageShape,
  IMPORTABLE_LAYERS,
  importLayersModel,
  initialModel,
  jitterBatch,
  learningRateAt,
  loadModel,
  loadPredictor,
  LOGITS_LAYER,
  MODEL_JSON,
  modelConfigSchema,
  modelFilesOf,
  modelToOnnx,
  momentumAt,
  outputDim,
  predictFile,
  predictLogits,
  restoreWeights,
  saveModel,
  shiftedAccuracy,
  shiftImage,
  snapshotWeights,
  trainModel,
  WEIGHTS_BIN,
} from './models/index.ts';
export type {
  ArchInput,
  Architecture,
  CnnConfig,
  ConvBlock,
  EpochMetrics,
  EvalResult,
  ImageShape,
  ImportOptions,
  ImportReport,
  ImportTarget,
  InitFrom,
  LossFn,
  LrSchedule,
  MlpActivation,
  MlpConfig,
  MlpSpec,
  ModelConfig,
  OnnxExportResult,
  OptimizerSpec,
  OutputsKind,
  PredictFileOptions,
  PredictFileResult,
  PredictOptions,
  Predictor,
  SelectRule,
  ShiftedAccuracy,
  ShiftedAccuracyResult,
  TrainBatch,
  TrainOptions,
  TrainResult,
  TrainSet,
} from './models/index.ts';

// Specialists (distill-kit/specialists)
export {
  adjustedRandIndex,
  buildSpecialist,
  clusterClasses,
  clusterStats,
  correctDustbin,
  CovarianceAccumulator,
  DEFAULT_CLUSTER_OPTIONS,
  DONE_MARKER,
  dustbinLogOdds,
  fitDustbinOffset,
  formatClusterTable,
  halfHalfSampler,
  measureSpecialist,
  naturalDustbinRate,
  naturalSpecialFraction,
  oversamplingFactor,
  readCovariance,
  resolveClusterOptions,
  runJobPool,
  specialistLoss,
  splitBySpecial,
  threadsPerWorker,
  trainSpecialist,
  writeCovariance,
} from './specialists/index.ts';
export type {
  ClusterAlgorithm,
  ClusterOptions,
  ClusterResult,
  ClusterStat,
  ClusterStatsOptions,
  CovarianceMeta,
  CovarianceOptions,
  CovarianceResult,
  CovarianceSource,
  DustbinCorrection,
  DustbinCorrectionOptions,
  DustbinCorrectionResult,
  DustbinInit,
  EpochSampler,
  HalfHalfOptions,
  Job,
  JobModule,
  JobPoolOptions,
  JobPoolResult,
  SpecialistLossFn,
  SpecialistLossOptions,
  SpecialistMetrics,
  SpecialistModelOptions,
  SpecialVsRest,
  StoredCovariance,
  TeacherTargets,
  TrainSpecialistOptions,
} from './specialists/index.ts';

// Ensemble combination (distill-kit/ensemble)
export {
  activeSpecialists,
  argmaxRows,
  buildProblemFromModels,
  checkProblem,
  chooseSpecialistWeight,
  classToSpecialists,
  countCorrect,
  COVERAGE_BUCKETS,
  coverageCounts,
  DEFAULT_WEIGHT_GRID,
  ensembleMetrics,
  foldIntoDustbin,
  makeProblem,
  numerator,
  objective,
  overlapDrops,
  problemFromPredictions,
  solveEm,
  solveGradient,
  topN,
  validateSpecialists,
} from './ensemble/index.ts';
export type {
  ChooseWeightOptions,
  ChooseWeightResult,
  ClassToSpecialists,
  CoverageRow,
  EmOptions,
  EnsembleMetrics,
  EnsembleMetricsInput,
  EnsembleProblem,
  GradientOptions,
  ModelsProblem,
  ModelsProblemInput,
  NestedEnsembleProblem,
  ProblemFromPredictions,
  SolveResult,
  SpecialistCells,
} from './ensemble/index.ts';

// Data (distill-kit/data)
export {
  concatSets,
  describeArrowFile,
  describeDataFile,
  ensureRecipe,
  ingest,
  isParquetInput,
  makeMnist,
  makeRecipe,
  makeSynthetic,
  MAX_CLASS_INDEX,
  openSplitStream,
  parseRecipeOptions,
  readPredictions,
  readSplit,
  recipeFileName,
  recipeSchemas,
  sniffArrowFormat,
  subset,
  SYNTHETIC_DEFAULTS,
  UNLABELED_FILE,
  writePredictions,
  writeSplit,
} from './data/index.ts';
export type {
  ArrowFormat,
  ClassesFile,
  IngestOptions,
  LabeledSet,
  MnistOptions,
  PredictionSet,
  RecipeName,
  SplitChunk,
  SplitStream,
  SyntheticOptions,
} from './data/index.ts';

// Pipeline (distill-kit/pipeline)
export {
  defineStage,
  loadConfig,
  parseConfig,
  runPipeline,
  STAGES,
} from '../pipeline/index.ts';
export type {
  PipelineConfig,
  RunOptions,
  RunResult,
  StageConfig,
  StageContext,
  StageDef,
  StageOutcome,
} from '../pipeline/index.ts';

// Backends
export { BACKEND_NAMES, currentBackend, initBackend } from './backend/select.ts';
export type { BackendInfo, BackendName } from './backend/select.ts';
export { blasKernelsEnabled, disableBlasKernels, enableBlasKernels } from './backend/blas-kernels.ts';
export type { BlasEnableResult } from './backend/blas-kernels.ts';
export { getBlasThreads, loadNative, nativeAddonPath, setBlasThreads } from './backend/native.ts';
export type { NativeBlas, NativeLoad } from './backend/native.ts';

// Report
export { writeReport } from './report/write.ts';
export type { WriteReportOptions, WrittenReport } from './report/write.ts';

// Utilities: seeded randomness, logging, the error classes
export { Rng } from './util/rng.ts';
export { createLogger, silentLogger } from './util/log.ts';
export type { Logger, LoggerOptions, Progress } from './util/log.ts';
export { ArtifactError, BackendError, ConfigError, DataError, UserError } from './util/errors.ts';
