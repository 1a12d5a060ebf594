import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../src/util/errors.ts';
import { BACKEND_NAMES } from '../src/backend/select.ts';
import type { StageDef } from './stage.ts';
import { parseQueueUrl } from '../src/jobs/queue-url.ts';

/** One stage of a validated config. */
export interface StageConfig {
  name: string;
  type: string;
  params: Record<string, unknown>;
  def: StageDef<unknown>;
}

/** A validated pipeline config. */
export interface PipelineConfig {
  /** Run name: `name:` in the file, else the file's base name. Default output `artifacts/<name>/`. */
  name: string;
  /** Seed for everything random in the run. */
  seed: number;
  /** Tensor backend (`auto` picks the fastest available). */
  backend: string;
  /** Job queue for the stages' independent jobs (`queue: redis://HOST:PORT[/db]`); `--queue` overrides it. */
  queue?: string;
  /** Stages in run order (the file's order). */
  stages: StageConfig[];
  /** The config file it came from. */
  file: string;
}

const topSchema = z.strictObject({
  // The run folder's name: no '.', '..', path separators or leading dot.
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "a folder name: a letter or digit first, then letters, digits, '.', '-' or '_' (not '.', '..' or a path)").optional(),
  seed: z.number().int().min(0).max(2 ** 31 - 1).default(1),
  backend: z.enum(['auto', ...BACKEND_NAMES]).default('auto'),
  description: z.string().optional(),
  /** `redis://[user:pass@]HOST:PORT[/db]`: independent jobs (specialists, train-ensemble members, distill-sweep students) go to this BullMQ queue. */
  queue: z.string().optional(),
  stages: z.record(z.string(), z.unknown()),
});

/** Formats zod issues as `path: message` lines, paths prefixed by `prefix`. */
export function formatIssues(error: z.ZodError, prefix: string[] = []): string {
  return error.issues
    .map((iss) => {
      const p = [...prefix, ...iss.path.map(String)];
      const where = p.length ? p.reduce((acc, k) => (/^\d+$/.test(k) ? `${acc}[${k}]` : acc ? `${acc}.${k}` : k), '') : '(top level)';
      let msg = iss.message;
      if (iss.code === 'unrecognized_keys') msg = `unknown key(s) ${iss.keys.map((k) => `'${k}'`).join(', ')}; remove or fix the spelling`;
      return `  ${where}: ${msg}`;
    })
    .join('\n');
}

/**
 * Parses and validates a config given as text.
 * @param registry stage types by name.
 * @throws ConfigError naming the file, the key path and the expected value.
 */
export function parseConfig(text: string, file: string, registry: Record<string, StageDef<unknown>>): PipelineConfig {
  let raw: unknown;
  try {
    raw = YAML.parse(text, { prettyErrors: true, uniqueKeys: true });
  } catch (e) {
    throw new ConfigError(`${file} is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`${file}: expected a YAML mapping with 'stages:' at the top level`);
  }
  const top = topSchema.safeParse(raw);
  if (!top.success) throw new ConfigError(`${file} has errors:\n${formatIssues(top.error)}`);
  if (top.data.queue !== undefined) parseQueueUrl(top.data.queue, `${file}: queue`);
  const stages: StageConfig[] = [];
  const errors: string[] = [];
  for (const [name, value] of Object.entries(top.data.stages)) {
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(name)) {
      errors.push(`  stages.${name}: stage names must be lower-case letters, digits, '-' or '_'`);
      continue;
    }
    const obj = value ?? {};
    if (typeof obj !== 'object' || Array.isArray(obj)) {
      errors.push(`  stages.${name}: expected a mapping of params`);
      continue;
    }
    const { type: typeField, ...rest } = obj as Record<string, unknown>;
    const type = typeof typeField === 'string' ? typeField : name;
    const def = registry[type];
    if (!def) {
      errors.push(`  stages.${name}${typeField === undefined ? '' : '.type'}: unknown stage type '${type}'; expected one of ${Object.keys(registry).join(', ')}${typeField === undefined ? ` (set 'type:' when the stage name is not a type)` : ''}`);
      continue;
    }
    const parsed = def.schema.safeParse(rest);
    if (!parsed.success) {
      errors.push(formatIssues(parsed.error, ['stages', name]));
      continue;
    }
    stages.push({ name, type, params: parsed.data as Record<string, unknown>, def });
  }
  if (errors.length) throw new ConfigError(`${file} has errors:\n${errors.join('\n')}`);
  if (stages.length === 0) throw new ConfigError(`${file}: 'stages' is empty; list at least one stage`);
  const seen = new Set<string>();
  for (const s of stages) {
    for (const d of [...s.def.deps(s.params, [...seen]), ...(s.def.optionalDeps?.(s.params, [...seen]) ?? [])]) {
      if (!seen.has(d)) {
        const exists = stages.some((o) => o.name === d);
        if (d === s.name) {
          throw new ConfigError(`${file}: stage '${s.name}' reads its own outputs ('${d}'); a stage can only read stages above it: point it at an earlier stage`);
        }
        throw new ConfigError(
          exists
            ? `${file}: stage '${s.name}' reads '${d}', which comes after it; move '${d}' above '${s.name}'`
            : `${file}: stage '${s.name}' reads stage '${d}', which is not in the config; add it or fix the name`,
        );
      }
    }
    seen.add(s.name);
  }
  const name = top.data.name ?? path.basename(file).replace(/\.ya?ml$/, '');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new ConfigError(`${file}: the run name '${name}' (taken from the file name) is not a plain folder name; set 'name:' in the config (a letter or digit first, then letters, digits, '.', '-' or '_')`);
  }
  return {
    name,
    seed: top.data.seed,
    backend: top.data.backend,
    ...(top.data.queue !== undefined ? { queue: top.data.queue } : {}),
    stages,
    file,
  };
}

/** Largest config file accepted (a config is a few KiB; anything this big is not one). */
export const MAX_CONFIG_BYTES = 1 << 20;

/** Reads and validates a config file. @throws ConfigError */
export function loadConfig(file: string, registry: Record<string, StageDef<unknown>>): PipelineConfig {
  let text: string;
  try {
    const st = statSync(file);
    if (st.isDirectory()) throw new ConfigError(`config ${file} is a folder, not a file; give a YAML file (e.g. pipeline/configs/mnist.yaml)`);
    if (st.size > MAX_CONFIG_BYTES) {
      throw new ConfigError(`config ${file} is ${st.size} bytes, over the ${MAX_CONFIG_BYTES}-byte (1 MiB) limit; a config is a short YAML file (see pipeline/configs/), so check that --config names the right file`);
    }
    const bytes = readFileSync(file);
    if (bytes.includes(0)) throw new ConfigError(`config ${file} is a binary file (it contains NUL bytes), not YAML; check that --config names the right file`);
    text = bytes.toString('utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(code === 'ENOENT' ? `config file ${file} does not exist; configs live in pipeline/configs/` : `cannot read config ${file}: ${(e as Error).message}`);
  }
  return parseConfig(text, file, registry);
}
