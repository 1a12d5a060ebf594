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
import { findFonts, GLYPHS_DEFAULTS, KNOWN_FONTS, makeGlyphs } from './glyphs.ts';
import { GB2312_ALL } from './gb2312.ts';

/** Names of the built-in recipes. */
export type RecipeName = 'mnist' | 'synthetic' | 'glyphs';

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

const fraction = z.number().min(0).max(1);
/** One of the recipe's known CJK font names. */
const fontName = z.enum(KNOWN_FONTS.map((f) => f.name) as [string, ...string[]]);

/** Options of the `glyphs` recipe (see datasets/glyphs.ts): printed GB2312 characters. */
export const glyphsOptionsSchema = z
  .strictObject({
    /** The first N characters in GB2312 order after `offset` (level 1: 3,755; levels 1+2: 6,763). */
    classes: z.number().int().min(2).max(GB2312_ALL).default(GLYPHS_DEFAULTS.classes),
    offset: z.number().int().min(0).max(GB2312_ALL - 2).default(0),
    perClass: posInt.max(100_000).default(GLYPHS_DEFAULTS.perClass),
    validPerClass: z.number().int().nonnegative().max(100_000).default(GLYPHS_DEFAULTS.validPerClass),
    testPerClass: z.number().int().nonnegative().max(100_000).default(GLYPHS_DEFAULTS.testPerClass),
    /** Extra rows per class with split = 'unlabeled' (an unlabelled transfer set; off when absent). */
    unlabeledPerClass: z.number().int().nonnegative().max(100_000).optional(),
    size: z.number().int().min(8).max(128).default(GLYPHS_DEFAULTS.size),
    split: z.enum(['iid', 'font']).default('iid'),
    testFont: fontName.optional(),
    // One name on the command line (`--fonts wqy-zenhei`) arrives as a string: a list of one.
    fonts: z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(fontName).min(1)).optional(),
    seed: z.number().int().default(1),
    scale: z.tuple([z.number().positive().max(2), z.number().positive().max(2)]).default(GLYPHS_DEFAULTS.scale),
    shift: fraction.default(GLYPHS_DEFAULTS.shift),
    rotation: z.number().min(0).max(180).default(GLYPHS_DEFAULTS.rotation),
    stroke: z.number().min(0).max(10).default(GLYPHS_DEFAULTS.stroke),
    blur: z.number().min(0).max(10).default(GLYPHS_DEFAULTS.blur),
    noise: z.number().min(0).max(255).default(GLYPHS_DEFAULTS.noise),
  })
  .refine((o) => o.offset + o.classes <= GB2312_ALL, { message: `offset + classes must be <= ${GB2312_ALL} (the GB2312 characters)`, path: ['classes'] })
  .refine((o) => o.scale[0] <= o.scale[1], { message: 'scale is [min, max] with min <= max', path: ['scale'] });

/** The zod schema of each recipe's options. */
export const recipeSchemas = { mnist: mnistOptionsSchema, synthetic: syntheticOptionsSchema, glyphs: glyphsOptionsSchema } as const;

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
export async function makeRecipe(name: RecipeName, parsed: Record<string, unknown>, outFile: string, log: Logger = silentLogger): Promise<void> {
  if (name === 'mnist') {
    const o = parsed as z.infer<typeof mnistOptionsSchema>;
    await makeMnist(outFile, o);
  } else if (name === 'glyphs') {
    const o = parsed as z.infer<typeof glyphsOptionsSchema>;
    await makeGlyphs(outFile, o, log);
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
  let parsed = parseRecipeOptions(name, options);
  // The glyphs drawn depend on the fonts installed: name them in the options so the cached file
  // is keyed by them (installing another font makes a new file instead of reusing a stale one).
  if (name === 'glyphs' && parsed.fonts === undefined) parsed = { ...parsed, fonts: findFonts().map((f) => f.name) };
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
  await makeRecipe(name, parsed, file, log);
  log.info(`dataset ${name}: wrote ${file} in ${((Date.now() - t) / 1000).toFixed(1)}s`);
  return file;
}
