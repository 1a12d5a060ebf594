import type { StageDef } from '../stage.ts';
import { ingestStage } from './ingest.ts';
import { generalistStage, trainStage } from './train.ts';

/** Every stage type a config can use, by type name. */
export const STAGES: Record<string, StageDef<unknown>> = Object.fromEntries(
  ([ingestStage, generalistStage, trainStage] as StageDef<never>[]).map((s) => [s.type, s as unknown as StageDef<unknown>]),
);
