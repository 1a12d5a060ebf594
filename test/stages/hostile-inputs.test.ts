/**
 * A sweep of hostile configs and data files through the real CLIs (child processes): each must
 * end with exactly one `error:` line that says what is wrong, where and how to fix it, exit 1,
 * print no stack trace (and no "unexpected error"), and leave no stage or temp folder behind.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Int32, Utf8 } from 'apache-arrow';
import { REPO_ROOT } from '../../pipeline/runner.ts';
import { batchOf, col, fslFlat, writeArrow } from '../fixtures/data/build.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Result {
  code: number | null;
  stderr: string;
  stdout: string;
}

/** Runs a CLI entry point (relative to the repo) in a child process. */
function cli(entry: string, args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, entry), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    // A case that hangs is a failure of its own, not a timeout of the whole sweep.
    const timer = setTimeout(() => {
      stderr += '\n(killed by the test: no exit within 240 s)';
      child.kill('SIGKILL');
    }, 240_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const file = (name: string, text: string | Uint8Array): string => {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
};

/** A tiny valid dataset section (synthetic recipe), so a case fails at the one thing it breaks. */
const INGEST = `  ingest:\n    dataset: {recipe: synthetic, options: {classes: 3, groups: 1, dim: 4, perClass: 12, seed: 3}}\n`;

interface Case {
  name: string;
  /** The pipeline config file (its path), or the inspect target with `inspect`. */
  target: () => string;
  inspect?: boolean;
  /** What the one `error:` line must say (what, where, fix). */
  error: RegExp;
  /** Stage folders that may legitimately be finished (upstream of the failing stage). */
  finished?: string[];
}

const CASES: Case[] = [
  { name: 'malformed YAML', target: () => file('malformed.yaml', 'stages:\n  ingest: {dataset: [a, : b\n'), error: /malformed\.yaml is not valid YAML/ },
  { name: 'empty config file', target: () => file('empty.yaml', ''), error: /empty\.yaml: expected a YAML mapping with 'stages:'/ },
  { name: 'binary garbage as config', target: () => file('garbage.yaml', Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)), error: /garbage\.yaml is a binary file .*not YAML; check that --config/ },
  { name: 'a folder as config', target: () => (mkdirSync(path.join(dir, 'folder.yaml'), { recursive: true }), path.join(dir, 'folder.yaml')), error: /config .*folder\.yaml is a folder, not a file; give a YAML file/ },
  { name: 'config over 1 MiB', target: () => file('huge.yaml', `# ${'x'.repeat(1100 * 1024)}\nstages:\n${INGEST}`), error: /huge\.yaml is \d+ bytes, over the 1048576-byte \(1 MiB\) limit/ },
  { name: 'YAML alias bomb', target: () => file('bomb.yaml', `a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nstages:\n${INGEST}`), error: /bomb\.yaml is not valid YAML: .*alias/i },
  { name: 'wrong type and an unknown top-level key', target: () => file('type.yaml', `seed: abc\nstagez: {}\nstages:\n${INGEST}`), error: /type\.yaml has errors: .*seed: .*expected number.*\(top level\): unknown key\(s\) 'stagez'; remove or fix the spelling/i },
  { name: 'zero and negative numbers', target: () => file('zero.yaml', `stages:\n${INGEST}  generalist: {epochs: 0, batch_size: -16}\n`), error: /stages\.generalist\.epochs: .*(>=? ?1|greater than 0|too small).*stages\.generalist\.batch_size: .*(greater than 0|too small)/i },
  { name: 'infinite learning rate', target: () => file('inf.yaml', `stages:\n${INGEST}  generalist: {optimizer: {name: sgd, lr: .inf}}\n`), error: /stages\.generalist\.optimizer\.lr: .*(finite|infinite|number)/i },
  { name: 'unknown stage type', target: () => file('unknown-stage.yaml', `stages:\n${INGEST}  teacher: {type: teachr}\n`), error: /stages\.teacher\.type: unknown stage type 'teachr'; expected one of .*ingest/ },
  { name: 'reads a stage not in the config', target: () => file('missing-dep.yaml', `stages:\n${INGEST}  covariance: {}\n`), error: /stage 'covariance' reads stage 'generalist', which is not in the config; add it or fix the name/ },
  {
    name: 'hidden widths whose weights cannot fit in memory',
    target: () => file('giant.yaml', `backend: cpu\nstages:\n${INGEST}  generalist: {hidden: [100000, 100000]}\n`),
    error: /stages\.generalist\.hidden\[1\]: 100000 x 100000 weights need about \d+ GiB to train but this machine has \d+ GiB of memory; use narrower layers/,
  },
  {
    name: 'a feature dimension whose first layer cannot fit in memory',
    target: () => file('wide-data.yaml', `backend: cpu\nstages:\n  ingest: {dataset: {path: ${path.join(dir, 'wide.arrow')}}}\n  generalist: {hidden: [100000], epochs: 1}\n`),
    error: /stage 'generalist': the model's .* weights need about \d+\.\d GiB to train .* the largest layer is hidden\[0\] = 100000 units x 200000 inputs \(the data's 200000 features, column 'features'\): lower hidden\[0\] or use fewer input features/,
    finished: ['ingest'],
  },
  { name: 'data file of binary garbage', target: () => file('garbage-data.yaml', `backend: cpu\nstages:\n  ingest: {dataset: {path: ${path.join(dir, 'garbage.arrow')}}}\n`), error: /garbage\.arrow: not an Arrow IPC file .*Fix:/ },
  { name: 'empty data file', target: () => file('empty-data.yaml', `backend: cpu\nstages:\n  ingest: {dataset: {path: ${path.join(dir, 'empty.arrow')}}}\n`), error: /empty\.arrow: the file is empty \(0 bytes\)/ },
  { name: 'truncated Arrow file', target: () => file('truncated-data.yaml', `backend: cpu\nstages:\n  ingest: {dataset: {path: ${path.join(dir, 'truncated.arrow')}}}\n`), error: /truncated\.arrow: the Arrow IPC file is truncated or incomplete/ },
  { name: 'a folder as the data file', target: () => file('folder-data.yaml', `backend: cpu\nstages:\n  ingest: {dataset: {path: ${dir}}}\n`), error: /stage 'ingest': input file .*hostile-\w+ is a folder, not a file; give the path of the Arrow file in .*folder-data\.yaml/ },
  {
    name: 'a split column without test rows (empty test split)',
    target: () => file('no-test.yaml', `backend: cpu\nstages:\n  ingest: {dataset: {path: ${path.join(dir, 'no-test.arrow')}}}\n`),
    error: /no-test\.arrow: the test split would be empty \(0 rows\): the split column has no 'test' rows; add some/,
  },
  { name: 'inspect: binary garbage', inspect: true, target: () => path.join(dir, 'garbage.bin'), error: /garbage\.bin is not a run folder, a stage folder or an Arrow\/Parquet file \(it is a binary file of .*\); give a run folder/ },
  { name: 'inspect: garbage named .arrow', inspect: true, target: () => path.join(dir, 'garbage.arrow'), error: /garbage\.arrow: not an Arrow IPC file/ },
  { name: 'inspect: truncated Arrow', inspect: true, target: () => path.join(dir, 'truncated.arrow'), error: /truncated\.arrow: the Arrow IPC file is truncated/ },
  { name: 'inspect: empty file', inspect: true, target: () => path.join(dir, 'empty.bin'), error: /empty\.bin is not a run folder, a stage folder or an Arrow\/Parquet file \(it is empty, 0 bytes\)/ },
  { name: 'inspect: broken JSON', inspect: true, target: () => file('broken.json', '{"a": '), error: /broken\.json is not valid JSON/ },
  { name: 'inspect: a path that does not exist', inspect: true, target: () => path.join(dir, 'nope'), error: /nope does not exist; give a run folder/ },
];

beforeAll(() => {
  const garbage = Uint8Array.from({ length: 3000 }, (_, i) => (i * 2654435761) >>> 24);
  writeFileSync(path.join(dir, 'garbage.bin'), garbage);
  writeFileSync(path.join(dir, 'garbage.arrow'), garbage);
  writeFileSync(path.join(dir, 'empty.arrow'), '');
  writeFileSync(path.join(dir, 'empty.bin'), '');
  const n = 12;
  const labels = Array.from({ length: n }, (_, i) => i % 3);
  writeArrow(path.join(dir, 'good.arrow'), [batchOf({ label: col(labels, new Int32()), features: fslFlat(Float32Array.from({ length: n * 4 }, (_, i) => Math.sin(i)), 4) })]);
  const good = readFileSync(path.join(dir, 'good.arrow'));
  writeFileSync(path.join(dir, 'truncated.arrow'), good.subarray(0, Math.floor(good.length / 2)));
  const splits = Array.from({ length: n }, (_, i) => (i < 9 ? 'train' : 'valid'));
  writeArrow(path.join(dir, 'no-test.arrow'), [batchOf({ label: col(labels, new Int32()), split: col(splits, new Utf8()), features: fslFlat(Float32Array.from({ length: n * 4 }, (_, i) => Math.cos(i)), 4) })]);
  // 200,000 features per row: a first layer of 100,000 units would hold 2e10 weights.
  const wide = 9;
  const wideSplits = Array.from({ length: wide }, (_, i) => ['train', 'valid', 'test'][Math.floor(i / 3)]!);
  writeArrow(path.join(dir, 'wide.arrow'), [
    batchOf({ label: col(Array.from({ length: wide }, (_, i) => i % 3), new Int32()), split: col(wideSplits, new Utf8()), features: fslFlat(new Float32Array(wide * 200_000).fill(0.5), 200_000) }),
  ]);
});

/** Runs the cases, a few child processes at a time. */
async function runAll(cases: Case[], parallel = 3): Promise<Map<string, { r: Result; out: string }>> {
  const results = new Map<string, { r: Result; out: string }>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < cases.length) {
      const c = cases[next++]!;
      const out = path.join(dir, 'runs', c.name.replace(/[^a-z0-9]+/gi, '-'));
      const t0 = Date.now();
      const r = c.inspect ? await cli('src/cli/inspect.ts', [c.target()]) : await cli('pipeline/cli.ts', ['--config', c.target(), '--out', out]);
      results.set(c.name, { r, out });
      if (process.env.HOSTILE_TIMES) console.log(`${c.name}: ${Date.now() - t0} ms`);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return results;
}

describe('hostile configs and data files through the real CLIs', () => {
  let results: Map<string, { r: Result; out: string }>;
  beforeAll(async () => {
    // HOSTILE_ONLY=<substring> runs just the matching cases (when working on one of them).
    const only = process.env.HOSTILE_ONLY;
    results = await runAll(only ? CASES.filter((c) => c.name.includes(only)) : CASES);
  }, 900_000);

  for (const c of CASES) {
    it(c.name, (t) => {
      if (!results.has(c.name)) return t.skip();
      const { r, out } = results.get(c.name)!;
      const all = `${r.stdout}\n${r.stderr}`;
      expect(r.code, all).toBe(1);
      const errors = r.stderr.split('\n').filter((l) => l.startsWith('error:'));
      expect(errors, all).toHaveLength(1);
      // The message may continue over indented lines (a list of config issues).
      expect(r.stderr.slice(r.stderr.indexOf('error: ')).replace(/\n/g, ' '), all).toMatch(c.error);
      expect(all).not.toMatch(/^\s+at .*:\d+:\d+\)?$/m); // no stack trace
      expect(all).not.toMatch(/unexpected error|RangeError|TypeError|ENOMEM|Array buffer allocation/);
      // Nothing half-written: no stage folder except finished upstream ones, no temp or scratch folder.
      const left = existsSync(out) ? readdirSync(out).filter((f) => !/^\.(lock|distill-kit-run)/.test(f)) : [];
      expect(left.sort()).toEqual((c.finished ?? []).sort());
    });
  }
});
