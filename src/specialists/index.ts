/**
 * `distill-kit/specialists`: specialist models for large label sets (paper section 5): the
 * prediction covariance, class clustering, specialists with a dustbin class initialised from the
 * generalist, the half/half sampler, the specialist loss, dustbin corrections and the job pool.
 */
export { CovarianceAccumulator, readCovariance, writeCovariance } from './covariance.ts';
export type { CovarianceMeta, CovarianceOptions, CovarianceResult, CovarianceSource, StoredCovariance } from './covariance.ts';
export { clusterClasses, DEFAULT_CLUSTER_OPTIONS, resolveClusterOptions } from './clustering.ts';
export type { ClusterAlgorithm, ClusterOptions, ClusterResult } from './clustering.ts';
export { clusterStats, formatClusterTable } from './cluster-stats.ts';
export type { ClusterStat, ClusterStatsOptions } from './cluster-stats.ts';
export { adjustedRandIndex } from './cluster-metrics.ts';
export { buildSpecialist } from './specialist-model.ts';
export type { DustbinInit, SpecialistModelOptions } from './specialist-model.ts';
export { halfHalfSampler, naturalSpecialFraction, oversamplingFactor, splitBySpecial } from './sampling.ts';
export type { EpochSampler, HalfHalfOptions } from './sampling.ts';
export { specialistLoss } from './specialist-loss.ts';
export type { SpecialistLossFn, SpecialistLossOptions, TeacherTargets } from './specialist-loss.ts';
export { correctDustbin, dustbinLogOdds, fitDustbinOffset, naturalDustbinRate } from './dustbin.ts';
export type { DustbinCorrection, DustbinCorrectionOptions, DustbinCorrectionResult } from './dustbin.ts';
export { measureSpecialist, trainSpecialist } from './specialist-train.ts';
export type { SpecialistMetrics, SpecialVsRest, TrainSpecialistOptions } from './specialist-train.ts';
export { DONE_MARKER, runJobPool, threadsPerWorker } from './worker-pool.ts';
export type { Job, JobModule, JobPoolOptions, JobPoolResult } from './worker-pool.ts';
