/**
 * The architecture registry: `model: {type: <name>, ...}` in a training stage selects one of these.
 *
 * Adding an architecture is one file plus its registration: write `src/models/arch/<name>.ts`
 * exporting an {@link Architecture} (its zod config schema with `type: z.literal('<name>')`, a
 * builder, and the name of its head), then add it to {@link ARCHITECTURES} and its schema to
 * {@link modelConfigSchema} below (two lines). Every training stage then accepts
 * `model: {type: <name>, ...}`, the specialists copy its body, and `docs/CONFIG.md` lists its keys
 * (`npm run config-docs`).
 */
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { ConfigError } from '../../util/errors.ts';
import { cnnArchitecture, cnnConfigSchema } from './cnn.ts';
import { mlpArchitecture, mlpConfigSchema } from './mlp.ts';
import type { ArchInput, Architecture } from './types.ts';

export type { ArchInput, Architecture } from './types.ts';
export { findHead, LOGITS_LAYER } from './head.ts';
export type { CnnConfig, ConvBlock } from './cnn.ts';
export type { MlpConfig } from './mlp.ts';

/** Every registered architecture, by its `type`. */
export const ARCHITECTURES = {
  mlp: mlpArchitecture,
  cnn: cnnArchitecture,
} as const;

/** Config schema of `model:`: one of the registered architectures, chosen by `type`. */
export const modelConfigSchema = z.discriminatedUnion('type', [mlpConfigSchema, cnnConfigSchema]);

/** A parsed `model:` config (one of the registered architectures' configs). */
export type ModelConfig = z.output<typeof modelConfigSchema>;

/** The registered architecture of `type`. @throws ConfigError for an unknown type, listing the known ones. */
export function architectureOf(type: string): Architecture<ModelConfig> {
  const a = Object.hasOwn(ARCHITECTURES, type) ? (ARCHITECTURES as unknown as Record<string, Architecture<ModelConfig>>)[type] : undefined;
  if (!a) throw new ConfigError(`unknown model type '${type}': use one of ${Object.keys(ARCHITECTURES).join(', ')}`);
  return a;
}

/**
 * Builds a fresh model of the architecture `config.type` for the given data (flat input rows of
 * `input.inputDim`, `input.outputs` classes), seeded by `input.seed`.
 * @throws ConfigError for an unknown type or a config that does not fit the data.
 */
export function buildModel(config: ModelConfig, input: ArchInput): tf.LayersModel {
  return architectureOf(config.type).build(config, input);
}

/** A short text for tables (`2x800`, `cnn 32-64, dense 256`). */
export function describeModel(config: ModelConfig): string {
  return architectureOf(config.type).describe(config);
}

/**
 * The config with every hidden width set to `width` (a width sweep's student).
 * @throws ConfigError when the architecture has no hidden widths to set.
 */
export function withWidth(config: ModelConfig, width: number): ModelConfig {
  const a = architectureOf(config.type);
  if (!a.withWidth) throw new ConfigError(`model type '${config.type}' has no hidden widths a width sweep could set`);
  return a.withWidth(config, width);
}

/**
 * The architecture a stage's params (as recorded in its `manifest.json`) describe: their `model`
 * when it is a registered config, else an MLP from the stage-level keys `hidden`, `activation`,
 * `dropout`, `input_dropout`, `max_norm` of manifests written before `model:` existed; null when
 * neither parses (e.g. an imported model).
 */
export function modelOfParams(params: Record<string, unknown>): ModelConfig | null {
  if (params.model !== undefined && typeof params.model === 'object') {
    const r = modelConfigSchema.safeParse(params.model);
    return r.success ? r.data : null;
  }
  if (!Array.isArray(params.hidden)) return null;
  const legacy: Record<string, unknown> = { type: 'mlp' };
  for (const k of ['hidden', 'activation', 'dropout', 'input_dropout', 'max_norm']) if (params[k] !== undefined) legacy[k] = params[k];
  const r = mlpConfigSchema.safeParse(legacy);
  return r.success ? r.data : null;
}
