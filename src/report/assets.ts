/**
 * The chart libraries the report inlines: the minified browser builds of vega, vega-lite and
 * vega-embed, read from node_modules (so the page needs no network).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArtifactError } from '../util/errors.ts';
import type { ReportAssets } from './html.ts';

const LIBS = [
  { name: 'vega', file: 'build/vega.min.js' },
  { name: 'vega-lite', file: 'build/vega-lite.min.js' },
  { name: 'vega-embed', file: 'build/vega-embed.min.js' },
] as const;

/** `node_modules/<name>/<file>` in the nearest folder above this module that has it. */
function findInNodeModules(name: string, file: string): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'node_modules', name, file);
    if (existsSync(candidate)) return candidate;
    const up = path.dirname(dir);
    if (up === dir) throw new ArtifactError(`the report needs the npm package '${name}' (${file}), which is not installed; run npm install`);
    dir = up;
  }
}

let cached: ReportAssets | undefined;

/**
 * Reads the three minified builds (cached after the first call).
 * @throws ArtifactError when a package is not installed
 */
export function loadVegaAssets(): ReportAssets {
  if (cached) return cached;
  const scripts = LIBS.map(({ name, file }) => ({ name, source: readFileSync(findInNodeModules(name, file), 'utf8') }));
  cached = { scripts };
  return cached;
}
