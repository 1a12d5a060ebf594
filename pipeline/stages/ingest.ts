import path from 'node:path';
import { z } from 'zod';
import { defineStage } from '../stage.ts';
import { ingest } from '../../src/data/ingest.ts';
import { ensureRecipe, recipeSchemas, type RecipeName } from '../../datasets/recipes.ts';
import { findFonts } from '../../datasets/glyphs.ts';

const datasetSchema = z.union([
  z.strictObject({
    /** A built-in recipe (`datasets/`): `mnist`, `synthetic` or `glyphs`. */
    recipe: z.enum(Object.keys(recipeSchemas) as [RecipeName, ...RecipeName[]]),
    /** The recipe's options (see datasets/README.md). */
    options: z.record(z.string(), z.unknown()).default({}),
  }),
  z.strictObject({
    /** A user's table: Apache Arrow IPC (file or stream format, e.g. a Hugging Face `datasets` cache file) or Parquet; the format is detected from the bytes. */
    path: z.string().min(1),
  }),
]);

const schema = z.strictObject({
  /** `{recipe: mnist | synthetic | glyphs, options}` (datasets/README.md) or `{path: file.arrow | file.parquet}` (a user's Arrow IPC or Parquet file). */
  dataset: datasetSchema.default({ recipe: 'mnist', options: {} }),
  /** Fraction of the data held out for validation when the file has no `valid` split. */
  valid_fraction: z.number().min(0.001).max(0.5).default(0.1),
  /** Fraction held out for test when the file has no `split` column. */
  test_fraction: z.number().min(0.001).max(0.5).default(0.1),
  /** Keep a seeded random subset of each split (quick runs, tests). */
  limit: z
    .strictObject({
      train: z.number().int().positive().optional(),
      valid: z.number().int().positive().optional(),
      test: z.number().int().positive().optional(),
    })
    .default({}),
});

/** `ingest`: reads an Arrow or Parquet dataset, checks it, writes train/valid/test splits and classes.json. */
export const ingestStage = defineStage({
  type: 'ingest',
  description: 'read an Arrow or Parquet dataset (or a built-in recipe), validate it, write train/valid/test splits',
  schema,
  deps: () => [],
  // A user's file keys the cache by its content; so do the font files a glyphs recipe renders with.
  externalInputs: (p) => {
    if ('path' in p.dataset) return [p.dataset.path];
    if (p.dataset.recipe !== 'glyphs') return [];
    const only = p.dataset.options.fonts;
    return findFonts(Array.isArray(only) ? only.map(String) : undefined).map((f) => f.path);
  },
  // datasets/: the recipes (some are loaded by name at run time)
  code: ['pipeline/stages/ingest.ts', 'datasets'],
  async run(ctx) {
    const p = ctx.params;
    const input =
      'path' in p.dataset ? path.resolve(p.dataset.path) : await ensureRecipe(p.dataset.recipe, p.dataset.options, ctx.cacheDir, ctx.log);
    const classes = await ingest({
      input,
      outDir: ctx.outDir,
      seed: ctx.seed,
      validFraction: p.valid_fraction,
      testFraction: p.test_fraction,
      limit: p.limit,
      requireSplits: true,
      log: ctx.log,
    });
    // ingest() has logged the summary (classes, dim, rows per split).
    return { classes: classes.classes.length, dim: classes.dim, rows: classes.rows };
  },
});
