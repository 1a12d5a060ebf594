/**
 * The package as a user gets it: `npm pack` (which builds dist/ through `prepare`), the tarball
 * installed into a fresh project with no network (`npm ci --offline`: every dependency comes from
 * the npm cache that the repository's own `npm ci` filled, pinned by a lockfile made from the
 * repository's), then used from plain `node` (no tsx), type-checked from a consumer `.ts` file under
 * `strict`, the README's `<!-- run -->` example run against it, and the `distill-kit` command run.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readmeRunBlocks } from './readme-blocks.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  license: string;
  dependencies: Record<string, string>;
  bin: Record<string, string>;
  engines: Record<string, string>;
  exports: Record<string, unknown>;
};
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const TSX_LOADER = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

let tmp: string;
let consumer: string;
let packed: { filename: string; files: { path: string }[] };
let installLog: string;

interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command without blocking the test worker's event loop (installs take a while). */
function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

async function ok(p: Promise<Ran>, what: string): Promise<string> {
  const r = await p;
  if (r.status !== 0) throw new Error(`${what} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/**
 * A consumer project depending on the tarball only, with a lockfile: the tarball's entry plus the
 * repository lockfile's non-dev entries (the same versions, resolved URLs and integrities `npm ci`
 * put into the cache), so `npm ci --offline` needs no registry metadata and no network.
 */
function writeConsumer(dir: string, tarball: string): void {
  const spec = `file:${path.basename(tarball)}`;
  const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
  const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  const manifest = { name: 'consumer', version: '1.0.0', private: true, type: 'module', dependencies: { [pkg.name]: spec }, allowScripts: { [pkg.name]: true } };
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', version: '1.0.0', dependencies: { [pkg.name]: spec } },
    [`node_modules/${pkg.name}`]: { version: pkg.version, resolved: spec, integrity, hasInstallScript: true, license: pkg.license, dependencies: pkg.dependencies, bin: pkg.bin, engines: pkg.engines },
  };
  for (const [k, v] of Object.entries(lock.packages)) if (k !== '' && !v.dev) packages[k] = v;
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
  writeFileSync(path.join(dir, 'package-lock.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2));
}

beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'distill-kit-pack-'));
  consumer = path.join(tmp, 'consumer');
  mkdirSync(consumer, { recursive: true });
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// The steps run in order, each its own test (a single hook over a minute upsets vitest's worker RPC).
describe('the packed package', () => {
  it('npm pack builds dist/ (prepare) and packs it', async () => {
    const out = await ok(run(NPM, ['pack', '--json', '--pack-destination', tmp, '--foreground-scripts=false'], ROOT), 'npm pack');
    packed = (JSON.parse(out) as (typeof packed)[])[0]!;
    expect(packed.filename).toBe(`${pkg.name}-${pkg.version}.tgz`);
  }, 600_000);

  it('installs into a fresh project offline, from the tarball and the npm cache', async () => {
    const tarball = path.join(consumer, packed.filename);
    writeFileSync(tarball, readFileSync(path.join(tmp, packed.filename)));
    writeConsumer(consumer, tarball);
    const r = await run(NPM, ['ci', '--offline', '--no-audit', '--no-fund', '--foreground-scripts'], consumer);
    installLog = (await ok(Promise.resolve(r), 'npm ci --offline in the consumer project')) + r.stderr;
    expect(existsSync(path.join(consumer, 'node_modules', pkg.name, 'dist', 'src', 'index.js'))).toBe(true);
    expect(existsSync(path.join(consumer, 'node_modules', '.bin', 'distill-kit'))).toBe(true);
  }, 600_000);

  it('holds the build, the command, the native sources and configs, and no tests, benchmarks or CI files', () => {
    const files = packed.files.map((f) => f.path);
    for (const f of ['package.json', 'README.md', 'LICENSE', 'bin/distill-kit.mjs', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/pipeline/cli.js', 'dist/src/specialists/worker-entry.js', 'native/binding.gyp', 'native/src/addon.c', 'native/src/gemm.c', 'native/src/gemm.h', 'scripts/build-native.mjs', 'pipeline/configs/mnist.yaml']) {
      expect(files, f).toContain(f);
    }
    const stray = files.filter((f) => /^(test|bench|\.ci|artifacts|node_modules|native\/build)\//.test(f) || /\.test\.|\.ts$/.test(f.replace(/\.d\.ts$/, '')));
    expect(stray).toEqual([]);
  });

  it('builds the native addon at install, or says in one line why not', async () => {
    const addon = path.join(consumer, 'node_modules', pkg.name, 'native', 'build', 'Release', 'distill_blas.node');
    const line = installLog.split('\n').find((l) => l.includes('fast CPU path'));
    expect(line, installLog).toBeDefined();
    if (line!.includes('fast CPU path built')) {
      expect(existsSync(addon)).toBe(true);
      const loaded = await ok(run(process.execPath, ['--input-type=module', '-e', `import { loadNative } from '${pkg.name}'; console.log(loadNative().ok)`], consumer), 'loadNative');
      expect(loaded.trim()).toBe('true');
    } else {
      expect(line).toMatch(/fast CPU path unavailable: .*build-essential/);
    }
  });

  it('imports from plain node: the root and every subpath, each subpath name also on the root', async () => {
    const subpaths = Object.keys(pkg.exports).filter((k) => k.startsWith('./') && k !== './package.json');
    expect(subpaths.length).toBeGreaterThanOrEqual(4);
    const script = `
      import * as root from '${pkg.name}';
      const subs = {};
      for (const s of ${JSON.stringify(subpaths)}) subs[s] = await import('${pkg.name}/' + s.slice(2));
      const missing = [];
      for (const [s, m] of Object.entries(subs)) for (const [k, v] of Object.entries(m)) if (root[k] !== v) missing.push(s + ':' + k);
      const { Rng, temperedSoftmax, initBackend, solveEm, makeProblem } = root;
      await initBackend('cpu');
      const p = temperedSoftmax((await import('@tensorflow/tfjs')).tensor2d([[0, Math.log(3)]]), 1).arraySync()[0];
      console.log(JSON.stringify({ names: Object.keys(root).length, missing, rng: typeof new Rng(1).next(), p, solve: typeof solveEm, make: typeof makeProblem }));`;
    const out = JSON.parse((await ok(run(process.execPath, ['--input-type=module', '-e', script], consumer), 'node import')).trim().split('\n').pop()!) as { names: number; missing: string[]; rng: string; p: number[]; solve: string; make: string };
    expect(out.missing).toEqual([]);
    expect(out.names).toBeGreaterThan(100);
    expect(out.rng).toBe('number');
    expect(out.p[0]).toBeCloseTo(0.25, 6);
    expect(out.p[1]).toBeCloseTo(0.75, 6);
    expect([out.solve, out.make]).toEqual(['function', 'function']);
  });

  it("type-checks a consumer file and the README's examples under strict, against the .d.ts only", async () => {
    const blocks = readmeRunBlocks(readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
    expect(blocks.length).toBeGreaterThanOrEqual(1);
    blocks.forEach((b, i) => writeFileSync(path.join(consumer, `readme-${i}.ts`), b));
    writeFileSync(
      path.join(consumer, 'consumer.ts'),
      `import { distillationLoss, evaluate, type EvalResult, type LabeledSet } from '${pkg.name}';
import { solveEm } from '${pkg.name}/ensemble';
import { temperedSoftmax } from '${pkg.name}/distill';
import { clusterClasses } from '${pkg.name}/specialists';
import { readSplit } from '${pkg.name}/data';
import { buildMlp } from '${pkg.name}/models';
import { runPipeline } from '${pkg.name}/pipeline';
export const fns = [solveEm, temperedSoftmax, clusterClasses, readSplit, buildMlp, runPipeline];
export const loss = distillationLoss({ T: 2, alpha: 0.5 });
export function acc(m: Parameters<typeof evaluate>[0], s: LabeledSet): number {
  const r: EvalResult = evaluate(m, s);
  return r.accuracy;
}
// @ts-expect-error T must be a number: proves the declarations are real types, not any
distillationLoss({ T: 'hot', alpha: 0.5 });
`,
    );
    const files = ['consumer.ts', ...blocks.map((_, i) => `readme-${i}.ts`)];
    // skipLibCheck off, so distill-kit's own .d.ts are checked; @tensorflow's declarations have
    // errors of their own under strict (hence skipLibCheck in the repository), and only those are allowed.
    writeFileSync(
      path.join(consumer, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types: ['node'], typeRoots: [path.join(ROOT, 'node_modules', '@types')] }, files }),
    );
    const r = await run(process.execPath, [TSC, '-p', '.', '--pretty', 'false'], consumer);
    const errors = r.stdout.split('\n').filter((l) => /error TS\d+/.test(l));
    const ours = errors.filter((l) => !l.startsWith('node_modules/@tensorflow/'));
    expect(ours, r.stdout + r.stderr).toEqual([]);
    expect(r.status === 0 || errors.length > 0, r.stderr).toBe(true);
  }, 600_000);

  it("runs the README's library example against the installed package", async () => {
    const blocks = readmeRunBlocks(readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
    for (let i = 0; i < blocks.length; i++) {
      writeFileSync(path.join(consumer, `readme-${i}.ts`), blocks[i]!);
      const out = await ok(run(process.execPath, ['--import', TSX_LOADER, `readme-${i}.ts`], consumer, { TF_CPP_MIN_LOG_LEVEL: '2' }), `README block ${i}`);
      expect(out).toMatch(/student/);
    }
  }, 180_000);

  it('runs the distill-kit command: pipeline --help, a bad config, an unknown command', async () => {
    const dk = (...args: string[]): Promise<Ran> => run('npx', ['--no', '--', 'distill-kit', ...args], consumer);
    const help = await dk('pipeline', '--help');
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/--config/);
    expect(help.stdout).toMatch(/distill\s/);
    const list = await dk('--help');
    for (const c of ['pipeline', 'predict', 'inspect', 'dataset', 'report', 'export', 'worker', 'bench']) expect(list.stdout).toContain(c);
    const predict = await dk('predict', '--help');
    expect(predict.status, predict.stderr).toBe(0);
    expect(predict.stdout).toMatch(/--input/);
    const bad = await dk('pipeline', '--config', 'nope.yaml');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^error: config file nope\.yaml does not exist/m);
    const unknown = await dk('pipline');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'pipline'; the commands are pipeline, /);
    const bench = await dk('bench');
    expect(bench.status).toBe(1);
    expect(bench.stderr).toMatch(/clone of the distill-kit repository/);
  }, 600_000);
});
