/**
 * Built-in dataset recipes, cached by their options: `ensureRecipe('synthetic', {...}, dir)`
 * returns `dir/synthetic-<hash>.arrow`, making it first if needed.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { sha256, stableStringify } from '../src/artifacts/hash.ts';
import { ConfigError } from '../src/util/errors.ts';
import { silentLogger, type Logger } from '../src/util/log.ts';
import { makeMnist } from './mnist.ts';
import { makeSynthetic, SYNTHETIC_DEFAULTS, syntheticSeparation } from './synthetic.ts';

/** Names of the built-in recipes. */
export type RecipeName = 'mnist' | 'synthetic';

/** Bumped when a recipe's output changes for the same options (invalidates cached files). */
export const RECIPE_VERSION = 1;

const posInt = z.number().int().positive();

/** Options of the `mnist` recipe. */
export const mnistOptionsSchema = z.strictObject({
  /** Keep the first N of the 60,000 training images. */
  limitTrain: posInt.max(60_000).optional(),
  /** Keep the first N of the 10,000 test images. */
  limitTest: posInt.max(10_000).optional(),
});

/** Options of the `synthetic` recipe (see datasets/synthetic.ts for the model). */
export const syntheticOptionsSchema = z
  .strictObject({
    classes: z.number().int().min(2).max(1_000_000).default(100),
    groups: posInt.default(10),
    dim: posInt.max(100_000).default(64),
    perClass: posInt.default(50),
    seed: z.number().int().default(1),
    groupSpread: z.number().nonnegative().default(SYNTHETIC_DEFAULTS.groupSpread),
    classSpread: z.number().nonnegative().default(SYNTHETIC_DEFAULTS.classSpread),
    noise: z.number().nonnegative().default(SYNTHETIC_DEFAULTS.noise),
    testPerClass: z.number().int().nonnegative().optional(),
    validPerClass: z.number().int().nonnegative().optional(),
    /** Extra rows per class with split = 'unlabeled' (an unlabelled transfer set; off when absent). */
    unlabeledPerClass: z.number().int().nonnegative().optional(),
    /** Bridge classes confusable with several groups (off when absent; see datasets/synthetic.ts). */
    bridges: z
      .strictObject({
        fraction: z.number().min(0).max(1),
        groups: z.number().int().min(2),
        mode: z.enum(['between', 'mixture']).default('between'),
      })
      .optional(),
  })
  .refine((o) => o.groups <= o.classes, { message: 'groups must be <= classes', path: ['groups'] })
  .refine((o) => !o.bridges || o.bridges.fraction === 0 || o.groups >= 2, { message: 'bridges need at least 2 groups', path: ['bridges'] });

/** The zod schema of each recipe's options. */
export const recipeSchemas = { mnist: mnistOptionsSchema, synthetic: syntheticOptionsSchema } as const;

/** Formats zod issues as `path: message` lines, with unknown keys named. */
function formatIssues(issues: readonly z.core.$ZodIssue[], prefix: string): string {
  return issues
    .map((i) => {
      const at = [prefix, ...i.path.map(String)].join('.');
      if (i.code === 'unrecognized_keys') return i.keys.map((k) => `${at}.${k}: unknown key`).join('; ');
      return `${at}: ${i.message}`;
    })
    .join('; ');
}

/**
 * Validates a recipe's options (unknown keys are errors) and applies defaults.
 *
 * @throws ConfigError naming the option path, e.g. `dataset.options.clases: unknown key`.
 */
export function parseRecipeOptions(name: RecipeName, options: Record<string, unknown>): Record<string, unknown> {
  const schema = recipeSchemas[name];
  if (!schema) throw new ConfigError(`dataset.recipe: unknown recipe ${JSON.stringify(name)}; choose one of ${Object.keys(recipeSchemas).join(', ')}`);
  const r = schema.safeParse(options);
  if (!r.success) throw new ConfigError(`invalid options for dataset recipe '${name}': ${formatIssues(r.error.issues, 'dataset.options')}. See datasets/README.md`);
  return r.data as Record<string, unknown>;
}

/** The cache file name for a recipe and its (validated, defaulted) options. */
export function recipeFileName(name: RecipeName, parsed: Record<string, unknown>): string {
  return `${name}-${sha256(stableStringify({ name, v: RECIPE_VERSION, options: parsed })).slice(0, 12)}.arrow`;
}

/**
 * Makes the recipe's Arrow file at `outFile` (atomically) from already validated options.
 */
export async function makeRecipe(name: RecipeName, parsed: Record<string, unknown>, outFile: string): Promise<void> {
  if (name === 'mnist') {
    const o = parsed as z.infer<typeof mnistOptionsSchema>;
    await makeMnist(outFile, o);
  } else {
    const o = parsed as z.infer<typeof syntheticOptionsSchema>;
    await makeSynthetic(outFile, o);
  }
}

/**
 * Returns the path of the recipe's Arrow file `cacheDir/<name>-<short hash of options>.arrow`,
 * making it (atomically) if it is not there yet.
 *
 * @throws ConfigError for unknown recipes, unknown option keys or bad option values.
 */
export async function ensureRecipe(name: RecipeName, options: Record<string, unknown>, cacheDir: string, log: Logger = silentLogger): Promise<string> {
  const parsed = parseRecipeOptions(name, options);
  const file = path.join(cacheDir, recipeFileName(name, parsed));
  if (existsSync(file)) {
    log.info(`dataset ${name}: using cached ${file}`);
    return file;
  }
  const t = Date.now();
  log.info(`dataset ${name}: making ${file} ${stableStringify(parsed)}`);
  if (name === 'synthetic') {
    const o = parsed as z.infer<typeof syntheticOptionsSchema>;
    const s = syntheticSeparation(o);
    log.info(`dataset synthetic: pairwise Bayes confusion within a group ${(100 * s.withinPairError).toFixed(2)}%, across groups ${(100 * s.acrossPairError).toExponential(1)}%`);
  }
  await makeRecipe(name, parsed, file);
  log.info(`dataset ${name}: wrote ${file} in ${((Date.now() - t) / 1000).toFixed(1)}s`);
  return file;
}
