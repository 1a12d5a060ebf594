/**
 * `npm run bench [-- --json] [--filter a,b] [--backends cpu,wasm,wasm-blas] [--quick]
 * [--seconds 3] [--no-peer] [--blas-threads N]`
 *
 * Runs every case of the registry (`bench/cases/*.ts`, each exporting `benchCase`) on each
 * available backend, with the cases' peers (PyTorch on the same CPU, when
 * `/usr/bin/python3 -c "import torch"` works; the MLP cases interleave peer runs with their own
 * timed windows so both see the same machine load), and prints a table, or with `--json` one JSON object
 * per line: `{bench, backend, value, unit[, peer, peer_value, ratio][, detail]}`.
 */
import * as tf from '@tensorflow/tfjs';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { disableBlasKernels } from '../src/backend/blas-kernels.ts';
import { setBlasThreads } from '../src/backend/native.ts';
import { BACKEND_NAMES, initBackend, type BackendName } from '../src/backend/select.ts';
import { createLogger } from '../src/util/log.ts';
import { torchAvailable, torchMissingMessage } from './peers/torch.ts';
import type { BenchCase, BenchMeasurement, BenchRow, PeerMeasurement } from './types.ts';

interface Options {
  json: boolean;
  filter: string[] | undefined;
  backends: BackendName[];
  quick: boolean;
  seconds: number;
  peer: boolean;
  blasThreads: number | undefined;
}

function usage(msg: string): never {
  process.stderr.write(`bench: ${msg}\nusage: npm run bench -- [--json] [--filter a,b] [--backends ${BACKEND_NAMES.join(',')}] [--quick] [--seconds N] [--no-peer] [--blas-threads N]\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): Options {
  const o: Options = { json: false, filter: undefined, backends: [...BACKEND_NAMES].reverse(), quick: false, seconds: 3, peer: true, blasThreads: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--json': o.json = true; break;
      case '--quick': o.quick = true; break;
      case '--no-peer': o.peer = false; break;
      case '--filter': o.filter = val().split(',').filter(Boolean); break;
      case '--seconds': {
        o.seconds = Number(val());
        if (!(o.seconds > 0)) usage('--seconds must be a positive number');
        break;
      }
      case '--blas-threads': {
        o.blasThreads = Number(val());
        if (!Number.isInteger(o.blasThreads) || o.blasThreads < 1) usage('--blas-threads must be a positive integer');
        break;
      }
      case '--backends': {
        const names = val().split(',').filter(Boolean);
        for (const n of names) if (!(BACKEND_NAMES as readonly string[]).includes(n)) usage(`unknown backend '${n}'`);
        o.backends = names as BackendName[];
        break;
      }
      default: usage(`unknown argument '${a}'`);
    }
  }
  return o;
}

function isBenchCase(x: unknown): x is BenchCase {
  const c = x as Partial<BenchCase> | undefined;
  return !!c && typeof c.name === 'string' && typeof c.run === 'function';
}

/** Loads every `bench/cases/*.ts` that exports `benchCase`, sorted by file name. */
async function loadCases(): Promise<BenchCase[]> {
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cases');
  const cases: BenchCase[] = [];
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.ts')).sort()) {
    const mod = (await import(pathToFileURL(path.join(dir, f)).href)) as { benchCase?: unknown };
    if (!isBenchCase(mod.benchCase)) throw new Error(`bench/cases/${f} does not export a valid benchCase`);
    cases.push(mod.benchCase);
  }
  return cases;
}

function fmt(v: number): string {
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toPrecision(3);
}

function printTable(rows: BenchRow[]): void {
  const head = ['bench', 'backend', 'value', 'unit', 'peer', 'peer value', 'ratio', 'detail'];
  const body = rows.map((r) => [r.bench, r.backend, fmt(r.value), r.unit, r.peer ?? '', r.peer_value !== undefined ? fmt(r.peer_value) : '', r.ratio !== undefined ? `${r.ratio.toFixed(2)}x` : '', r.detail ?? '']);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 2 || i === 5 || i === 6 ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ').trimEnd();
  console.log(line(head));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const b of body) console.log(line(b));
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const log = createLogger({ prefix: 'bench' });
  if (opts.peer && !torchAvailable()) log.warn(torchMissingMessage());
  let cases = await loadCases();
  if (opts.filter) {
    const f = opts.filter;
    cases = cases.filter((c) => f.some((x) => c.name.includes(x)));
    if (cases.length === 0) usage(`no bench case matches --filter ${f.join(',')}`);
  }
  if (opts.blasThreads !== undefined && !setBlasThreads(opts.blasThreads)) log.warn('--blas-threads ignored: the native addon is not loaded');
  tf.enableProdMode();

  const measured: { backend: string; m: BenchMeasurement }[] = [];
  for (const name of opts.backends) {
    let info;
    try {
      info = await initBackend(name);
    } catch (e) {
      log.info(`skipping backend ${name}: ${(e as Error).message}`);
      continue;
    }
    if (name === 'wasm') disableBlasKernels();
    log.info(`backend ${name}: ${info.detail}`);
    for (const c of cases) {
      if (c.backends && !c.backends.includes(name)) continue;
      log.info(`${c.name} on ${name}...`);
      for (const m of await c.run({ backend: info, quick: opts.quick, seconds: opts.seconds, peer: opts.peer, log })) measured.push({ backend: name, m });
    }
  }

  const peers = new Map<string, PeerMeasurement>();
  if (opts.peer) {
    for (const c of cases) {
      if (!c.peers) continue;
      log.info(`${c.name}: peer...`);
      for (const p of await c.peers({ quick: opts.quick, seconds: opts.seconds, peer: true, log })) peers.set(p.bench, p);
    }
  }

  const rows: BenchRow[] = measured.map(({ backend, m }) => {
    const row: BenchRow = { bench: m.bench, backend, value: Number(m.value.toFixed(3)), unit: m.unit };
    const p = m.peer ? { peer: m.peer.name, value: m.peer.value, unit: m.unit } : peers.get(m.bench);
    if (p && p.unit === m.unit && p.value > 0) {
      row.peer = p.peer;
      row.peer_value = p.value;
      row.ratio = Number((m.value / p.value).toFixed(3));
    }
    if (m.detail) row.detail = m.detail;
    return row;
  });
  for (const p of peers.values()) rows.push({ bench: p.bench, backend: p.peer, value: p.value, unit: p.unit });

  if (opts.json) for (const r of rows) console.log(JSON.stringify(r));
  else printTable(rows);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
