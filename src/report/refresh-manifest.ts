/**
 * Keeps a `report` stage's manifest true after `npm run report` rewrites its `index.html`: the
 * runner checks a finished stage's files against the hashes in its manifest, so the new file's
 * hash is recorded there (the stage's cache key is left alone).
 */
import path from 'node:path';
import { writeJsonAtomic } from '../artifacts/atomic.ts';
import { sha256File } from '../artifacts/hash.ts';
import { MANIFEST, readManifest } from '../artifacts/manifest.ts';

/**
 * When `stageDir` holds a finished stage's manifest listing `file` (a path relative to it),
 * records the file's current sha256 there. Returns whether the manifest was updated.
 */
export async function refreshManifestOutput(stageDir: string, file: string): Promise<boolean> {
  const m = readManifest(stageDir);
  if (!m || m.outputs[file] === undefined) return false;
  const hash = await sha256File(path.join(stageDir, file));
  if (m.outputs[file] === hash) return false;
  await writeJsonAtomic(path.join(stageDir, MANIFEST), { ...m, outputs: { ...m.outputs, [file]: hash } });
  return true;
}
