import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ArtifactError } from '../util/errors.ts';

/** `manifest.json` of a finished stage: what ran, on what, and what it wrote. */
export const manifestSchema = z.object({
  stage: z.string(),
  type: z.string(),
  params: z.record(z.string(), z.unknown()),
  seed: z.number(),
  /** sha256 over params, input hashes, code hash and seed: equal key = skip. */
  key: z.string(),
  inputs: z.record(z.string(), z.string()),
  code: z.object({ sha256: z.string(), files: z.number() }),
  outputs: z.record(z.string(), z.string()),
  backend: z.object({ name: z.string(), tfBackend: z.string(), detail: z.string() }),
  started_at: z.string(),
  ended_at: z.string(),
  seconds: z.number(),
  /** Peak resident memory of the pipeline process so far (it includes earlier stages of the same run). */
  peak_rss_mb: z.number(),
  /** Peak resident memory sampled during this stage (main process; worker processes report their own). */
  stage_peak_rss_mb: z.number().optional(),
  package_version: z.string(),
  node_version: z.string(),
  summary: z.record(z.string(), z.unknown()).optional(),
});
export type Manifest = z.infer<typeof manifestSchema>;

/** The manifest file name inside every stage folder. */
export const MANIFEST = 'manifest.json';

/**
 * Reads a stage folder's manifest. Returns undefined when there is none.
 * @throws ArtifactError when it exists but is not a valid manifest.
 */
export function readManifest(stageDir: string): Manifest | undefined {
  const file = path.join(stageDir, MANIFEST);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ArtifactError(`${file} is corrupted (not JSON); rebuild the stage with the pipeline's --only ${path.basename(path.resolve(stageDir))} --force`);
  }
  const m = manifestSchema.safeParse(raw);
  if (!m.success) {
    throw new ArtifactError(`${file} is not a valid manifest (${m.error.issues[0]?.path.join('.')}: ${m.error.issues[0]?.message}); rebuild the stage with the pipeline's --only ${path.basename(path.resolve(stageDir))} --force`);
  }
  return m.data;
}
