/**
 * `distill-kit/pipeline`: the stage pipeline as a library: load a config, run it (caching,
 * atomic stage folders, crash recovery, locking), the built-in stage types, and `defineStage`.
 */
export { runPipeline } from './runner.ts';
export type { RunOptions, RunResult, StageOutcome } from './runner.ts';
export { loadConfig, parseConfig } from './config.ts';
export type { PipelineConfig, StageConfig } from './config.ts';
export { STAGES } from './stages/index.ts';
export { defineStage } from './stage.ts';
export type { StageContext, StageDef } from './stage.ts';
