/**
 * Where the package's own files are, both when run from the TypeScript sources (tsx, a clone of
 * the repository) and when run compiled from `dist/` (an installed package): the package root
 * (package.json, `native/`, `pipeline/configs/`) and the files that key each stage's cache.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'distill-kit';

/** Whether this module runs compiled (`dist/**\/*.js`) rather than from its `.ts` source. */
export const COMPILED = !import.meta.url.endsWith('.ts');

/**
 * The nearest folder at or above `start` holding the `package.json` of distill-kit.
 * @throws Error when there is none (a broken install)
 */
export function findPackageRoot(start: string): string {
  let dir = start;
  for (;;) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) {
      try {
        if ((JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown }).name === PACKAGE_NAME) return dir;
      } catch {
        /* not a readable package.json: keep looking */
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json of ${PACKAGE_NAME} above ${start}: the installation is broken; reinstall ${PACKAGE_NAME}`);
    dir = up;
  }
}

/** The package root: the repository root in a clone, `node_modules/distill-kit/` when installed. */
export const PACKAGE_ROOT = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

/** The package's version, from its package.json. */
export const PACKAGE_VERSION = (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** Where the compiled JavaScript lives below the package root. */
export const DIST_DIR = 'dist';

/**
 * The compiled counterpart of a source path relative to the package root, e.g. `src/models` ->
 * `dist/src/models`, `pipeline/stages/train.ts` -> `dist/pipeline/stages/train.js`.
 */
export function compiledPath(rel: string): string {
  return path.posix.join(DIST_DIR, rel.split(path.sep).join('/').replace(/\.ts$/, '.js'));
}

/**
 * The source path relative to the package root that a path below `dist/` was compiled from
 * (`dist/src/x.js` -> `src/x.ts`), or undefined for a path outside `dist/`.
 */
export function sourcePathOf(rel: string): string | undefined {
  const parts = rel.split(path.sep).join('/').split('/');
  if (parts[0] !== DIST_DIR || parts.length < 2) return undefined;
  return parts.slice(1).join('/').replace(/\.js$/, '.ts');
}

/** The extension of the running code's module files (`.ts` from source, `.js` compiled). */
export const CODE_EXT = COMPILED ? '.js' : '.ts';
