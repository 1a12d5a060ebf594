import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { readManifest } from '../artifacts/manifest.ts';
import { listFiles } from '../artifacts/hash.ts';
import { describeDataFile } from '../data/table-input.ts';
import { formatBytes, formatTable, pct } from './table.ts';
import { describeSections } from './sections.ts';

function readJson(file: string): unknown {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** A readable multi-line summary of a run folder, a stage folder, or an `.arrow` / `.parquet` file. */
export async function describePath(target: string): Promise<string> {
  if (statSync(target).isFile()) {
    if (/\.(arrow|arrows|feather|parquet)$/i.test(target)) return describeDataFile(target);
    if (target.endsWith('.json')) return JSON.stringify(readJson(target), null, 2);
    return readFileSync(target, 'utf8');
  }
  if (existsSync(path.join(target, 'manifest.json'))) return describeStage(target);
  const stages = readdirSync(target, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(path.join(target, e.name, 'manifest.json')))
    .map((e) => ({ name: e.name, m: readManifest(path.join(target, e.name))! }))
    .sort((a, b) => a.m.started_at.localeCompare(b.m.started_at));
  if (stages.length === 0) return `${target}: no finished stages here (no */manifest.json); run the pipeline first`;
  const out = [`Run ${path.resolve(target)}`, ''];
  out.push(
    formatTable(
      ['stage', 'type', 'finished', 'seconds', 'backend', 'summary'],
      stages.map(({ name, m }) => [name, m.type, m.ended_at.replace('T', ' ').slice(0, 19), Math.round(m.seconds), m.backend.name, summarise(m.summary)]),
    ),
  );
  const results = path.join(target, 'results', 'results.md');
  if (existsSync(results)) out.push('', readFileSync(results, 'utf8').trimEnd());
  return out.join('\n');
}

function summarise(s: Record<string, unknown> | undefined): string {
  if (!s) return '';
  return Object.entries(s)
    .filter(([, v]) => typeof v === 'number' || typeof v === 'string')
    .slice(0, 4)
    .map(([k, v]) => `${k}=${typeof v === 'number' && k.includes('accuracy') ? pct(v) : String(v)}`)
    .join(' ');
}

/** Summary of one stage folder: manifest, files, and each known artifact. */
export async function describeStage(dir: string): Promise<string> {
  const m = readManifest(dir)!;
  const out: string[] = [];
  out.push(`Stage '${m.stage}' (type ${m.type}) in ${path.resolve(dir)}`);
  out.push(`  ran ${m.started_at} -> ${m.ended_at} (${m.seconds.toFixed(1)} s), peak RSS ${m.peak_rss_mb} MiB`);
  out.push(`  backend ${m.backend.name} (${m.backend.detail}); seed ${m.seed}; package ${m.package_version}; node ${m.node_version}`);
  // An optional input that had not run is keyed 'absent' (pipeline/runner.ts).
  const inputs = Object.entries(m.inputs).map(([k, h]) => (h === 'absent' ? `${k} (had not run)` : k));
  out.push(`  inputs: ${inputs.join(', ') || '(none)'}; code sha256 ${m.code.sha256.slice(0, 12)} over ${m.code.files} files`);
  out.push('', 'Params:', ...JSON.stringify(m.params, null, 2).split('\n').map((l) => '  ' + l));
  const files = await listFiles(dir);
  out.push('', 'Files:');
  out.push(formatTable(['file', 'size'], files.map((f) => [f, formatBytes(statSync(path.join(dir, f)).size)])).split('\n').map((l) => '  ' + l).join('\n'));
  const sections = await describeSections(dir);
  if (sections) out.push('', sections);
  return out.join('\n');
}
