#!/usr/bin/env node
// The `distill-kit` command: runs the compiled dispatcher (dist/, built by `npm run build`, which
// `npm ci` / `npm pack` run through `prepare`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('error: distill-kit is not built (dist/ is missing): run npm run build in the package folder\n');
  process.exit(1);
}
const { main } = await import(entry.href);
await main();
