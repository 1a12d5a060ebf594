#!/usr/bin/env node
// Builds the native addon in native/ (node-gyp, N-API). Run by `npm ci` / `npm install` through the
// package's `install` script. Its GEMM is OpenBLAS's when cblas.h is installed, else the addon's
// own (native/src/gemm.c: cache-blocked, AVX-512/AVX2 chosen at run time, pthreads), so the fast
// path needs no system package; DISTILL_GEMM=own forces the own GEMM, DISTILL_GEMM=openblas
// requires OpenBLAS. It prints one line saying which GEMM it built. It must never fail the
// install: when a C compiler or node-gyp is missing, or the build fails, it prints one line and
// exits 0. The full build log goes to native/build/build.log. DISTILL_NATIVE_OUT=<dir> builds a
// copy of native/ in <dir> instead (<dir>/build/Release/distill_blas.node, loaded with
// DISTILL_NATIVE_ADDON=<that file>), e.g. the own GEMM beside the OpenBLAS build for tests and
// benches.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sourceDir = path.join(root, 'native');
let nativeDir = sourceDir;
if (process.env.DISTILL_NATIVE_OUT) {
  nativeDir = path.resolve(process.env.DISTILL_NATIVE_OUT);
  mkdirSync(nativeDir, { recursive: true });
  cpSync(path.join(sourceDir, 'binding.gyp'), path.join(nativeDir, 'binding.gyp'));
  cpSync(path.join(sourceDir, 'src'), path.join(nativeDir, 'src'), { recursive: true });
}
const HINT = 'fast CPU path unavailable: install a C compiler (apt-get install build-essential), then npm rebuild / npm ci';

function unavailable(why) {
  console.log(`${HINT} (${why})`);
  process.exit(0);
}

if (process.env.DISTILL_SKIP_NATIVE === '1') unavailable('DISTILL_SKIP_NATIVE=1');

const cblasHeaders = ['/usr/include/x86_64-linux-gnu/cblas.h', '/usr/include/aarch64-linux-gnu/cblas.h', '/usr/include/openblas/cblas.h', '/usr/include/cblas.h'];
const wanted = process.env.DISTILL_GEMM ?? '';
if (!['', 'own', 'openblas'].includes(wanted)) unavailable(`DISTILL_GEMM=${wanted} is not one of own, openblas`);
const haveOpenblas = cblasHeaders.some((p) => existsSync(p));
if (wanted === 'openblas' && !haveOpenblas) {
  console.log('fast CPU path unavailable: DISTILL_GEMM=openblas but cblas.h is not installed (apt-get install libopenblas-dev, or unset DISTILL_GEMM)');
  process.exit(0);
}
const gemm = wanted === 'own' || !haveOpenblas ? 'own' : 'openblas';

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

const args = [gyp, 'rebuild', '--directory', nativeDir, `--gemm=${gemm}`];
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
if (r.status !== 0) unavailable(`native build failed, see ${path.relative(root, path.join(nativeDir, 'build', 'build.log'))}`);

const addon = path.join(nativeDir, 'build', 'Release', 'distill_blas.node');
if (!existsSync(addon)) unavailable(`native build produced no addon, see ${path.relative(root, path.join(nativeDir, 'build', 'build.log'))}`);
const why = gemm === 'openblas' ? 'OpenBLAS' : wanted === 'own' ? 'own GEMM, DISTILL_GEMM=own' : 'own GEMM, OpenBLAS not installed';
const shown = nativeDir === sourceDir ? path.relative(root, addon) : addon;
console.log(`fast CPU path built: ${shown} (${why})`);
