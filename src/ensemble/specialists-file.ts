/**
 * The specialists stage's `specialists.json`, as the ensemble (and prediction on new data) read it:
 * the head (how each model's outputs map to its cells) and each specialist's folder and classes.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ArtifactError } from '../util/errors.ts';

/** Schema of the fields of `specialists.json` that are read back. */
export const specialistsFileSchema = z.looseObject({
  head: z.enum(['dustbin', 'full']).default('dustbin'),
  specialists: z
    .array(
      z.looseObject({
        id: z.string().regex(/^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/, 'a folder name inside the specialists stage'),
        classes: z.array(z.number().int().min(0)).min(1),
      }),
    )
    .min(1),
});

/**
 * The fields of the specialists stage's `specialists.json` the ensemble needs: the head (how each
 * model's outputs map to its cells) and each specialist's folder and classes.
 * @throws ArtifactError when the file is missing, not JSON, or not of that shape
 */
export function readSpecialistsSummary(specDir: string): z.output<typeof specialistsFileSchema> {
  const file = path.join(specDir, 'specialists.json');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ArtifactError(`cannot read ${file}: ${(e as Error).message}; rerun the specialists stage with --force`);
  }
  const r = specialistsFileSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ArtifactError(`${file}: ${issue.path.join('.') || '(top level)'}: ${issue.message}; rerun the specialists stage with --force`);
  }
  return r.data;
}
