import type { StageDef } from '../stage.ts';
import { ingestStage } from './ingest.ts';
import { generalistStage, trainStage } from './train.ts';
import { covarianceStage } from './covariance.ts';
import { clustersStage } from './clusters.ts';
import { specialistsStage } from './specialists.ts';
import { ensembleStage } from './ensemble.ts';
import { importStage } from './import.ts';
import { modelStage } from './model.ts';
import { distillStage } from './distill.ts';
import { distillSweepStage } from './distill-sweep.ts';
import { trainEnsembleStage } from './train-ensemble.ts';
import { biasAdjustStage } from './bias-adjust.ts';
import { resultsStage } from './results.ts';
import { reportStage } from './report.ts';

/**
 * Marks a stage type whose independent jobs run in `--workers` processes ({@link StageDef.fansOut}).
 * Set here rather than in the stage's file, whose content keys the stage's cache.
 */
const fansOut = <P>(s: StageDef<P>): StageDef<P> => ({ ...s, fansOut: true });

/** Every stage type a config can use, by type name. */
export const STAGES: Record<string, StageDef<unknown>> = Object.fromEntries(
  ([ingestStage, importStage, modelStage, generalistStage, trainStage, covarianceStage, clustersStage, fansOut(specialistsStage), ensembleStage, distillStage, fansOut(distillSweepStage), fansOut(trainEnsembleStage), biasAdjustStage, resultsStage, reportStage] as StageDef<never>[]).map((s) => [s.type, s as unknown as StageDef<unknown>]),
);
