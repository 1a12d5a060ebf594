#!/usr/bin/env node
// Builds the optional OpenBLAS addon in native/ (node-gyp, N-API). Run by `npm ci` / `npm install`
// through the package's `install` script. It must never fail the install: when OpenBLAS, a C
// compiler or node-gyp is missing, or the build fails, it prints one line and exits 0. The full
// build log goes to native/build/build.log.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = path.join(root, 'native');
const HINT = 'fast CPU path unavailable: apt-get install libopenblas-dev, then npm rebuild / npm ci';

function unavailable(why) {
  console.log(`${HINT} (${why})`);
  process.exit(0);
}

if (process.env.DISTILL_SKIP_NATIVE === '1') unavailable('DISTILL_SKIP_NATIVE=1');

const cblasHeaders = ['/usr/include/x86_64-linux-gnu/cblas.h', '/usr/include/aarch64-linux-gnu/cblas.h', '/usr/include/openblas/cblas.h', '/usr/include/cblas.h'];
if (!cblasHeaders.some((p) => existsSync(p))) unavailable('cblas.h not found');

const cc = spawnSync('cc', ['--version'], { encoding: 'utf8' });
if (cc.status !== 0) unavailable('no C compiler (cc)');

/** Finds node-gyp: npm passes its own in npm_config_node_gyp; else next to npm; else a local one. */
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  const prefix = path.dirname(path.dirname(process.execPath));
  candidates.push(path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  if (process.env.npm_execpath) {
    candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  try {
    candidates.push(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    /* not installed locally */
  }
  return candidates.find((p) => existsSync(p));
}

const gyp = findNodeGyp();
if (!gyp) unavailable('node-gyp not found');

const args = [gyp, 'rebuild', '--directory', nativeDir];
// Use the headers that ship with this Node (no download: the build works offline).
const nodeDir = path.dirname(path.dirname(process.execPath));
if (existsSync(path.join(nodeDir, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${nodeDir}`);

const r = spawnSync(process.execPath, args, { cwd: nativeDir, encoding: 'utf8', env: { ...process.env, JOBS: '1' } });
const log = `$ node ${args.join(' ')}\n${r.stdout ?? ''}\n${r.stderr ?? ''}\nexit ${r.status}\n`;
try {
  mkdirSync(path.join(nativeDir, 'build'), { recursive: true });
  writeFileSync(path.join(nativeDir, 'build', 'build.log'), log);
} catch {
  /* read-only tree: ignore */
}
if (r.status !== 0) unavailable(`native build failed, see native/build/build.log`);

const addon = path.join(nativeDir, 'build', 'Release', 'distill_blas.node');
if (!existsSync(addon)) unavailable('native build produced no addon, see native/build/build.log');
console.log(`fast CPU path built: ${path.relative(root, addon)} (OpenBLAS)`);
