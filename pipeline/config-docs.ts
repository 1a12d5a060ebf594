import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { StageDef } from './stage.ts';
import { REPO_ROOT } from './runner.ts';
import { stageCodeFiles } from './code-files.ts';
import { ARCHITECTURES } from '../src/models/arch/index.ts';

type JsonSchema = {
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  default?: unknown;
  description?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
};

/** A compact type for a JSON schema node: `integer >= 1`, `'em' | 'gradient'`, `number[]`, ... */
function typeOf(s: JsonSchema): string {
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' \\| ');
  const alts = s.anyOf ?? s.oneOf;
  if (alts) {
    const named = alts.every((a) => a.properties?.name?.const !== undefined);
    if (named) return alts.map((a) => `{name: ${JSON.stringify(a.properties!.name!.const)}, ...}`).join(' \\| ');
    const type = alts.every((a) => a.properties?.type?.const !== undefined);
    if (type) return alts.map((a) => `{type: ${JSON.stringify(a.properties!.type!.const)}${Object.keys(a.properties!).filter((k) => k !== 'type').map((k) => `, ${k}`).join('')}}`).join(' \\| ');
    return alts.map(typeOf).join(' \\| ');
  }
  if (s.type === 'array') return `${s.items ? typeOf(s.items) : 'any'}[]`;
  if (s.type === 'object' && s.properties) return `{${Object.keys(s.properties).join(', ')}}`;
  let t = Array.isArray(s.type) ? s.type.join(' \\| ') : (s.type ?? 'any');
  const bounds: string[] = [];
  if (s.minimum !== undefined && s.minimum > -9007199254740991) bounds.push(`>= ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) bounds.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined && s.maximum < 9007199254740991) bounds.push(`<= ${s.maximum}`);
  if (s.exclusiveMaximum !== undefined) bounds.push(`< ${s.exclusiveMaximum}`);
  if (bounds.length) t += ` ${bounds.join(', ')}`;
  return t;
}

/** Doc comments (`/** ... *\/` right above `key:`) in a source file, by key. */
function docComments(file: string): Map<string, string> {
  const out = new Map<string, string>();
  let text: string;
  try {
    text = readFileSync(path.join(REPO_ROOT, file), 'utf8');
  } catch {
    return out;
  }
  const re = /\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*\n\s*([A-Za-z_][A-Za-z0-9_]*)\s*:/g;
  for (const m of text.matchAll(re)) {
    const doc = m[1]!.split('\n').map((l) => l.replace(/^\s*\*\s?/, '').trim()).join(' ').replace(/\s+/g, ' ').trim();
    if (!out.has(m[2]!)) out.set(m[2]!, doc);
  }
  return out;
}

/** Markdown reference of every stage type's params: key, type, default, meaning. */
export function configDocs(registry: Record<string, StageDef<unknown>>): string {
  const shared = docComments('pipeline/schemas.ts');
  const lines: string[] = [
    '# Configuration reference',
    '',
    'Generated from the schemas by `npm run config-docs` (a test checks it is current). A config is YAML:',
    '',
    '```yaml',
    'name: my-run        # optional; default: the file name. Output: artifacts/<name>/',
    'seed: 1             # integer >= 0; every random choice derives from it (--seed overrides)',
    'backend: auto       # auto | tensorflow | wasm-blas | wasm | cpu (--backend overrides)',
    'description: ...    # optional free text',
    'stages:             # run in this order; the key is the stage name (its folder)',
    '  generalist:       # type defaults to the key; set `type:` to use another name',
    '    hidden: [800, 800]',
    '```',
    '',
    'Unknown keys, wrong types and out-of-range values are errors naming the key path.',
    'Optimizer: `{name: sgd, lr, momentum = 0.9, nesterov = false, final_momentum?, momentum_ramp_epochs?, schedule}` or',
    '`{name: adam, lr, beta1 = 0.9, beta2 = 0.999, schedule}`; schedule: `{type: constant}` (default),',
    '`{type: step, every, factor}`, `{type: exponential, decay}` (per epoch) or `{type: cosine, min_lr}`.',
    '',
  ];
  for (const def of Object.values(registry)) {
    const schema = z.toJSONSchema(def.schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
    const docs = new Map<string, string>();
    for (const file of def.code) for (const [key, doc] of docComments(file)) if (!docs.has(key)) docs.set(key, doc);
    for (const [key, doc] of shared) if (!docs.has(key)) docs.set(key, doc);
    // then the other pipeline files the stage imports (shared schema pieces, e.g. distill.ts's teacher
    // keys); not the job modules (pipeline/jobs/), whose params are no config keys
    const imported = stageCodeFiles(def.code, REPO_ROOT).filter((f) => f.startsWith('pipeline/') && !f.startsWith('pipeline/jobs/') && !def.code.includes(f));
    for (const file of imported) for (const [key, doc] of docComments(file)) if (!docs.has(key)) docs.set(key, doc);
    lines.push(`## \`${def.type}\``, '', def.description + '.', '');
    // A stage whose params are a union on `kind` (e.g. results): one table per kind.
    const kinds = (schema.oneOf ?? schema.anyOf ?? []).filter((a) => a.properties?.kind?.const !== undefined);
    if (kinds.length > 0) {
      for (const alt of kinds) lines.push(`With \`kind: ${String(alt.properties!.kind!.const)}\`:`, '', ...keyTable(alt, docs), '');
    } else {
      lines.push(...keyTable(schema, docs), '');
    }
  }
  lines.push(...architectureDocs());
  return lines.join('\n');
}

/** The "Architectures" section: the keys of every registered `model:` type. */
function architectureDocs(): string[] {
  const lines = [
    '## Architectures (`model:`)',
    '',
    'The `model:` key of `generalist`, `train`, `distill`, `distill-sweep` and `train-ensemble` selects one of these',
    '(`src/models/arch/`; adding one is a file there plus its line in `src/models/arch/index.ts`). Without `model:`,',
    'a stage builds an MLP from its stage-level keys `hidden`, `activation`, `dropout`, `input_dropout`, `max_norm`',
    '(the older form; giving both is an error). A `specialists` stage copies its generalist\'s architecture.',
    '',
  ];
  for (const arch of Object.values(ARCHITECTURES)) {
    const schema = z.toJSONSchema(arch.schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
    const docs = docComments(`src/models/arch/${arch.type}.ts`);
    lines.push(`### \`type: ${arch.type}\``, '', arch.description + '.', '', ...keyTable(schema, docs), '');
    const items = schema.properties?.conv?.items;
    if (items?.properties) lines.push('Each entry of `conv`:', '', ...keyTable(items, docs), '');
  }
  return lines;
}

/** The `| key | type | default | meaning |` table of an object schema's properties. */
function keyTable(schema: JsonSchema, docs: Map<string, string>): string[] {
  const required = new Set(schema.required ?? []);
  const rows = ['| key | type | default | meaning |', '|---|---|---|---|'];
  for (const [key, prop] of Object.entries(schema.properties ?? {})) {
    const doc = (prop.description ?? docs.get(key) ?? '').replace(/\|/g, '\\|');
    const dflt = prop.default !== undefined ? `\`${JSON.stringify(prop.default)}\`` : required.has(key) ? 'required' : '(optional)';
    rows.push(`| \`${key}\` | ${typeOf(prop)} | ${dflt} | ${doc} |`);
  }
  return rows;
}
