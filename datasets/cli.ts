/**
 * `npm run dataset -- NAME [--out FILE] [--cache DIR] [--key value ...]`
 *
 * Makes a built-in dataset recipe's Arrow file, prints where it is and a summary. Without
 * `--out` the file goes to the recipe cache (`artifacts/datasets/<name>-<hash>.arrow`, the one
 * pipeline runs use). Options are the recipe's (datasets/README.md), e.g.
 * `npm run dataset -- synthetic --classes 1000 --groups 100 --out data/s.arrow`.
 * Bad arguments print one line and exit with status 2.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describeArrowFile } from '../src/data/arrow-read.ts';
import { ConfigError, UserError } from '../src/util/errors.ts';
import { createLogger } from '../src/util/log.ts';
import { ensureRecipe, makeRecipe, parseRecipeOptions, recipeSchemas, type RecipeName } from './recipes.ts';
import { checkOutputFile } from '../src/artifacts/output-file.ts';

const USAGE = `usage: npm run dataset -- <${Object.keys(recipeSchemas).join('|')}> [--out FILE [--force]] [--cache DIR] [--key value ...]
  mnist      options: --limitTrain N --limitTest N
  synthetic  options: --classes C --groups G --dim D --perClass N --seed S
                      --groupSpread F --classSpread F --noise F --testPerClass N --validPerClass N
                      --bridges.fraction F --bridges.groups K --bridges.mode between|mixture
  glyphs     options: --classes N (<= 6763; level 1 = 3755) --offset K --per-class N
                      --valid-per-class N --test-per-class N --size PX --split iid|font
                      --test-font NAME --fonts A,B --seed S --scale MIN,MAX --shift F
                      --rotation DEG --stroke PX --blur PX --noise SD --unlabeled-per-class N
  an existing --out file is replaced only with --force
  see datasets/README.md`;

/** Parsed command line of the dataset CLI. */
export interface DatasetArgs {
  name: RecipeName;
  out: string | null;
  cache: string;
  options: Record<string, unknown>;
  /** Replace an existing `--out` file. */
  force: boolean;
  help: boolean;
}

/**
 * Converts a command-line value: numbers and true/false become JSON values, a comma-separated
 * list (`0.7,0.95`, `wqy-microhei,droid-fallback`) an array of such values, the rest strings.
 */
function convert(v: string): unknown {
  if (v.includes(',')) return v.split(',').map((x) => convert(x.trim()));
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) return Number(v);
  if (v === 'true' || v === 'false') return v === 'true';
  return v;
}

/** Sets `options[key] = value`; a dotted key (`bridges.fraction`) sets a nested object's field. */
function setOption(options: Record<string, unknown>, key: string, value: unknown): void {
  // --per-class and --perClass are the same option.
  const parts = key.split('.').map((p) => p.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()));
  let o = options;
  for (const p of parts.slice(0, -1)) {
    const next = o[p];
    if (next !== undefined && (next === null || typeof next !== 'object')) throw new ConfigError(`option --${key}: --${p} was already given a plain value`);
    o = (o[p] ??= {}) as Record<string, unknown>;
  }
  o[parts[parts.length - 1]] = value;
}

/**
 * Parses `NAME [--out FILE] [--force] [--cache DIR] [--key value | --key=value ...]`; a dotted key
 * (`--bridges.fraction 0.2`) sets a field of a nested option.
 *
 * @throws ConfigError for a missing/unknown recipe name or a flag without a value.
 */
export function parseDatasetArgs(argv: readonly string[]): DatasetArgs {
  if (argv.includes('--help') || argv.includes('-h')) return { name: 'mnist', out: null, cache: '', options: {}, force: false, help: true };
  const rest = [...argv];
  const name = rest.shift();
  if (!name || name.startsWith('-')) throw new ConfigError(`missing dataset name (one of ${Object.keys(recipeSchemas).join(', ')}); run with --help`);
  if (!(name in recipeSchemas)) throw new ConfigError(`unknown dataset ${JSON.stringify(name)}; choose one of ${Object.keys(recipeSchemas).join(', ')}`);
  let out: string | null = null;
  let cache = path.join('artifacts', 'datasets');
  const options: Record<string, unknown> = {};
  let force = false;
  while (rest.length > 0) {
    const a = rest.shift() as string;
    if (a === '--force') {
      force = true;
      continue;
    }
    if (!a.startsWith('--') || a.length < 3) throw new ConfigError(`unexpected argument ${JSON.stringify(a)}; options look like --key value`);
    let key = a.slice(2);
    let value: string | undefined;
    const eq = key.indexOf('=');
    if (eq >= 0) {
      value = key.slice(eq + 1);
      key = key.slice(0, eq);
    } else {
      value = rest.shift();
      if (value === undefined || value.startsWith('--')) throw new ConfigError(`option --${key} needs a value`);
    }
    if (key === 'out') out = value;
    else if (key === 'cache') cache = value;
    else setOption(options, key, convert(value));
  }
  return { name: name as RecipeName, out, cache, options, force, help: false };
}

/** Runs the CLI; returns the exit status (0 ok, 2 bad arguments or data, 1 unexpected error). */
export async function main(argv: readonly string[]): Promise<number> {
  const log = createLogger({ prefix: 'dataset' });
  try {
    const args = parseDatasetArgs(argv);
    if (args.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    let file: string;
    if (args.out) {
      const parsed = parseRecipeOptions(args.name, args.options);
      // A dataset file carries no mark of its maker: any existing file is the user's to replace.
      await checkOutputFile(args.out, { flag: '--out', force: args.force, ours: () => false });
      const t = Date.now();
      await makeRecipe(args.name, parsed, args.out, log);
      log.info(`made ${args.name} in ${((Date.now() - t) / 1000).toFixed(1)}s`);
      file = args.out;
    } else {
      file = await ensureRecipe(args.name, args.options, args.cache, log);
    }
    process.stdout.write(`wrote ${file}\n${await describeArrowFile(file)}\n`);
    return 0;
  } catch (e) {
    if (e instanceof UserError) {
      process.stderr.write(`error: ${e.message.split('\n')[0]}\n`);
      return 2;
    }
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
