import path from 'node:path';
import { promises as fs, existsSync } from 'node:fs';
import { z } from 'zod';
import { defineStage } from '../stage.ts';
import { readManifest } from '../../src/artifacts/manifest.ts';
import { listFiles } from '../../src/artifacts/hash.ts';
import { hashOutputFile } from '../../src/artifacts/output-hash.ts';
import { ArtifactError } from '../../src/util/errors.ts';

const schema = z.strictObject({
  /** A finished stage folder of another run (e.g. `artifacts/mnist-paper/teacher`), copied as this stage's output. */
  from: z.string().min(1),
});

/** The files of a finished stage folder that the import copies (and whose content keys its cache). */
function importedFiles(from: string): string[] {
  const m = readManifest(from);
  if (!m) return [path.join(from, 'manifest.json')];
  return [path.join(from, 'manifest.json'), ...Object.keys(m.outputs).map((f) => path.join(from, f))];
}

/**
 * `import`: reuses a finished stage of another run (a teacher trained once, shared by several
 * experiments), after checking it against its manifest. Its content keys this stage's cache, so
 * retraining the source reruns whatever reads the import.
 */
export const importStage = defineStage({
  type: 'import',
  description: 'reuse a finished stage folder of another run (e.g. a shared teacher), checked against its manifest',
  schema,
  deps: () => [],
  externalInputs: (p) => importedFiles(p.from),
  code: ['pipeline/stages/import.ts'],
  async run(ctx) {
    const from = path.resolve(ctx.params.from);
    if (!existsSync(path.join(from, 'manifest.json'))) {
      throw new ArtifactError(`import: ${ctx.params.from} is not a finished stage folder (no manifest.json); run the config that makes it first`);
    }
    const m = readManifest(from)!;
    const files = await listFiles(from);
    for (const [f, h] of Object.entries(m.outputs)) {
      if (!files.includes(f) || (await hashOutputFile(path.join(from, f))) !== h) {
        throw new ArtifactError(`import: ${path.join(ctx.params.from, f)} is missing or differs from its manifest; rerun the run that made it`);
      }
    }
    for (const f of Object.keys(m.outputs)) {
      await fs.mkdir(path.dirname(path.join(ctx.outDir, f)), { recursive: true });
      await fs.copyFile(path.join(from, f), path.join(ctx.outDir, f));
    }
    ctx.log.info(`imported ${Object.keys(m.outputs).length} files of stage '${m.stage}' (${m.type}, finished ${m.ended_at}) from ${ctx.params.from}`);
    return { from: ctx.params.from, source_stage: m.stage, source_type: m.type, source_key: m.key };
  },
});
