import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { readManifest } from '../artifacts/manifest.ts';
import { listFiles } from '../artifacts/hash.ts';
import { describeDataFile } from '../data/table-input.ts';
import { formatBytes, formatTable, pct } from './table.ts';
import { describeSections } from './sections.ts';
import { UserError } from '../util/errors.ts';

/** A readable multi-line summary of a run folder, a stage folder, or an `.arrow` / `.parquet` file. */
export async function describePath(target: string): Promise<string> {
  const st = statSync(target);
  if (st.isFile()) {
    if (/\.(arrow|arrows|feather|parquet)$/i.test(target)) return describeDataFile(target);
    const bytes = readFileSync(target);
    const notOne = `${target} is not a run folder, a stage folder or an Arrow/Parquet file`;
    const give = 'give a run folder (artifacts/<run>), a stage folder (artifacts/<run>/<stage>) or an .arrow/.parquet file';
    if (bytes.subarray(0, 6).toString('latin1') === 'ARROW1' || (bytes.length >= 8 && bytes.readUInt32LE(0) === 0xffffffff)) return describeDataFile(target);
    if (bytes.length === 0) throw new UserError('io', `${notOne} (it is empty, 0 bytes); ${give}`);
    const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
    if (bytes.includes(0) || text.includes('\uFFFD')) throw new UserError('io', `${notOne} (it is a binary file of ${formatBytes(bytes.length)}); ${give}`);
    if (target.endsWith('.json')) {
      try {
        return JSON.stringify(JSON.parse(text), null, 2);
      } catch (e) {
        throw new UserError('io', `${target} is not valid JSON (${(e as Error).message}); ${give}`);
      }
    }
    return text;
  }
  if (!st.isDirectory()) throw new UserError('io', `${target} is not a run folder, a stage folder or an Arrow/Parquet file (not a regular file or folder); give a run folder (artifacts/<run>), a stage folder or an .arrow/.parquet file`);
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
