/**
 * The source files that key a stage's cache, derived from the code itself: a stage's `code:` list
 * names its entry points (usually just its own file), and every file those import, transitively,
 * is hashed with them. So a file a stage runs cannot be forgotten in a hand-written list (as
 * `softmax-xent.ts` once was from the distillation stages': editing it did not rerun them).
 *
 * What is followed, from each TypeScript file inside the repository:
 * - static `import ... from '<rel>'`, `import '<rel>'` and `export ... from '<rel>'` statements
 *   (at the start of a line, so examples in comments are not taken), except `import type` /
 *   `export type` (erased at run time);
 * - dynamic `import('<rel>')` with a literal relative specifier;
 * - `code-key: <rel>` directives in a comment line, for files loaded by other means (a worker's
 *   entry started by path, the native addon's C source): `// code-key: ./worker-entry.ts`.
 * Package imports (`@tensorflow/tfjs`, `node:fs`) are not followed: their versions are pinned by
 * package-lock.json. Folder entries stand for every `.ts` file below them (each followed too).
 *
 * The same works on the compiled package (`dist/**\/*.js`, see src/util/package-root.ts): its
 * files are parsed alike, a `.ts` specifier also finds the compiled `.js`, and a `code-key:` that
 * points outside `dist/` (the native addon's sources) is resolved from the file's source location.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { sha256 } from '../src/artifacts/hash.ts';
import { PACKAGE_ROOT, sourcePathOf } from '../src/util/package-root.ts';

const STATIC_IMPORT = /^[ \t]*(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s*)?['"]([^'"\n]+)['"]/gm;
const DYNAMIC_IMPORT = /\bimport\(\s*['"]([^'"\n]+)['"]\s*\)/g;
const DIRECTIVE = /^[ \t]*(?:\/\/|\/?\*+)[ \t]*code-key:[ \t]*(\S+)/gm;

function isRelative(spec: string): boolean {
  return spec.startsWith('./') || spec.startsWith('../');
}

/**
 * The file a relative specifier names (as written, or with `.ts` / `/index.ts`; in compiled code
 * also `.ts` read as `.js`, and from the source location of a file below `dist/`), or undefined.
 */
function resolveSpecifier(fromAbs: string, spec: string): string | undefined {
  const base = path.resolve(path.dirname(fromAbs), spec);
  const candidates = [base, `${base}.ts`, path.join(base, 'index.ts'), base.replace(/\.ts$/, '.js')];
  const src = sourcePathOf(path.relative(PACKAGE_ROOT, fromAbs));
  if (src !== undefined) candidates.push(path.resolve(path.dirname(path.join(PACKAGE_ROOT, src)), spec));
  for (const c of candidates) {
    if (existsSync(c) && statSync(c).isFile()) return c;
  }
  return undefined;
}

/** A module file the walk parses: TypeScript source, or compiled JavaScript (not a declaration file). */
function isModuleFile(name: string): boolean {
  return (name.endsWith('.ts') && !name.endsWith('.d.ts')) || name.endsWith('.js');
}

/** Every `.ts` file below `dir` (absolute paths), skipping dot-folders and node_modules. */
function tsFilesBelow(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.') || e.name === 'node_modules') continue;
    const abs = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFilesBelow(abs));
    else if (e.isFile() && isModuleFile(e.name)) out.push(abs);
  }
  return out;
}

/**
 * The files `source` (the text of the file at `fileAbs`) depends on at run time: its relative
 * imports and `code-key:` directives, resolved to absolute paths.
 * @throws Error for a static import or directive naming a file that does not exist.
 */
export function directDependencies(fileAbs: string, source: string): string[] {
  const deps: string[] = [];
  const need = (spec: string, what: string): void => {
    const r = resolveSpecifier(fileAbs, spec);
    if (!r) throw new Error(`${fileAbs}: ${what} '${spec}' names no file (fix the path)`);
    deps.push(r);
  };
  for (const m of source.matchAll(STATIC_IMPORT)) {
    if (m[1] || !isRelative(m[2]!)) continue;
    need(m[2]!, 'import');
  }
  for (const m of source.matchAll(DYNAMIC_IMPORT)) {
    if (!isRelative(m[1]!)) continue;
    const r = resolveSpecifier(fileAbs, m[1]!);
    if (r) deps.push(r); // a dynamic import of a missing file fails only when it runs
  }
  for (const m of source.matchAll(DIRECTIVE)) need(m[1]!, 'code-key directive');
  return deps;
}

/**
 * Every file the entries run: the entries themselves (files, or folders = their `.ts` files) and
 * everything they import transitively inside `root`, as sorted root-relative `/`-separated paths.
 * Only TypeScript files are parsed for imports; other files (named by `code-key:`) are taken as they are.
 * @throws Error when an entry or an imported file does not exist (a bug in the stage or the import).
 */
export function stageCodeFiles(entries: readonly string[], root: string): string[] {
  const rootAbs = path.resolve(root);
  const seen = new Set<string>();
  const queue: string[] = [];
  for (const rel of entries) {
    const abs = path.resolve(rootAbs, rel);
    if (!existsSync(abs)) throw new Error(`stage code path ${rel} does not exist (a bug in the stage definition)`);
    queue.push(...(statSync(abs).isDirectory() ? tsFilesBelow(abs) : [abs]));
  }
  while (queue.length > 0) {
    const abs = queue.pop()!;
    if (seen.has(abs)) continue;
    const rel = path.relative(rootAbs, abs);
    if (rel.startsWith('..') || path.isAbsolute(rel) || rel.split(path.sep).includes('node_modules')) continue; // outside the repository
    seen.add(abs);
    if (!isModuleFile(abs)) continue;
    for (const d of directDependencies(abs, readFileSync(abs, 'utf8'))) if (!seen.has(d)) queue.push(d);
  }
  return [...seen].map((a) => path.relative(rootAbs, a).split(path.sep).join('/')).sort();
}

/**
 * sha256 over the files of {@link stageCodeFiles} (each path with the hash of its content): the
 * `code` part of a stage's cache key. Read synchronously, at one moment, so that a file edited
 * later while a long run goes on does not change what was recorded.
 */
export function stageCodeHash(entries: readonly string[], root: string): { sha256: string; files: number } {
  const files = stageCodeFiles(entries, root);
  const parts = files.map((rel) => `${rel}:${sha256(readFileSync(path.join(root, rel)))}`);
  return { sha256: sha256(parts.join('\n')), files: files.length };
}
