import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { UNLABELED_FILE } from '../data/ingest.ts';
import { formatTable, pct } from './table.ts';
import { formatClusterTable, type ClusterStat } from '../specialists/cluster-stats.ts';
import { describeEnsemble, describeOverlapAblation } from '../ensemble/describe.ts';
import type { CoverageRow, EnsembleMetrics } from '../ensemble/metrics.ts';

function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

interface LayerJson {
  class_name: string;
  config: { name: string; units?: number; filters?: number; activation?: string; rate?: number; batch_input_shape?: (number | null)[] };
}

/** Text sections for the known artifact files in a stage folder (metrics, model, classes, ...). */
export async function describeSections(dir: string): Promise<string> {
  const out: string[] = [];
  const f = (name: string): string => path.join(dir, name);
  if (existsSync(f('metrics.json'))) {
    const m = readJson<Record<string, unknown>>(f('metrics.json'));
    const splits = ['train', 'valid', 'test'].filter((s) => typeof m[s] === 'object' && m[s] !== null && 'accuracy' in (m[s] as object));
    if (splits.length) {
      out.push('Metrics:');
      out.push(indent(formatTable(['split', 'accuracy', 'errors', 'examples'], splits.map((s) => {
        const v = m[s] as { accuracy: number; errors?: number; examples?: number };
        return [s, pct(v.accuracy), v.errors ?? '', v.examples ?? ''];
      }))));
    }
  }
  if (existsSync(f('metrics.jsonl'))) {
    const lines = readFileSync(f('metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number>);
    if (lines.length) {
      out.push('', 'Training curve:');
      out.push(indent(formatTable(['epoch', 'train loss', 'train acc', 'valid loss', 'valid acc', 'ex/s'], lines.map((e) => [
        e.epoch ?? 0, e.train_loss ?? NaN, pct(e.train_accuracy), e.valid_loss ?? '', pct(e.valid_accuracy), Math.round(e.examples_per_s ?? 0),
      ]))));
    }
  }
  if (existsSync(f('model/model.json'))) out.push('', 'Model:', indent(describeModel(f('model/model.json'))));
  if (existsSync(f('classes.json'))) {
    const c = readJson<{ classes: { index: number; name: string; counts: { train: number; valid: number; test: number } }[]; dim: number; shape: number[] | null; rows?: { unlabeled?: number } }>(f('classes.json'));
    const unlabeled = c.rows?.unlabeled ? `; unlabeled rows: ${c.rows.unlabeled} (${UNLABELED_FILE})` : '';
    out.push('', `Classes: ${c.classes.length}, features: ${c.dim}${c.shape ? ` (shape [${c.shape.join(', ')}])` : ''}${unlabeled}`);
    const shown = c.classes.slice(0, 30);
    out.push(indent(formatTable(['index', 'name', 'train', 'valid', 'test'], shown.map((k) => [k.index, k.name, k.counts.train, k.counts.valid, k.counts.test]))));
    if (c.classes.length > shown.length) out.push(`  ... ${c.classes.length - shown.length} more classes`);
  }
  if (existsSync(f('clusters.json'))) {
    const c = readJson<{ k: number; generalist_valid_accuracy?: number | null; clusters: ClusterStat[] }>(f('clusters.json'));
    const overall = typeof c.generalist_valid_accuracy === 'number' ? `; generalist valid accuracy overall ${pct(c.generalist_valid_accuracy)}` : '';
    out.push('', `Clusters: ${c.k}${overall}`, indent(formatClusterTable(c.clusters)));
  }
  if (existsSync(f('specialists.json'))) {
    const sp = readJson<{ head?: string; correction?: string; specialists: SpecialistRow[] }>(f('specialists.json'));
    out.push('', `Specialists: ${sp.specialists.length}${sp.head ? `, head ${sp.head}` : ''}${sp.correction ? `, dustbin correction ${sp.correction}` : ''} (accuracy within each subset, on valid)`);
    out.push(indent(formatTable(
      ['specialist', 'classes', 'valid n', 'spec acc', 'gen acc', 'dustbin rate', 'natural rate', 'AUC spec', 'AUC gen'],
      sp.specialists.map((x) => [x.id, x.size, x.within_examples, pct(x.specialist_accuracy_within), pct(x.generalist_accuracy_within), pct(x.mean_dustbin_prob), pct(x.natural_rate), x.specialist_auc ?? '', x.generalist_auc ?? '']),
    )));
  }
  if (existsSync(f('metrics.json'))) {
    const m = readJson<Partial<EnsembleMetrics> & { weight?: number; overlap_ablation?: { by_membership?: CoverageRow[] } }>(f('metrics.json'));
    if (Array.isArray(m.by_coverage) && m.generalist && m.ensemble && m.conditional) {
      out.push('', 'Ensemble (test):', indent(describeEnsemble(m as EnsembleMetrics, m.weight ?? 1)));
      if (m.by_membership && m.overlap_ablation?.by_membership) out.push(indent(describeOverlapAblation(m.by_membership, m.overlap_ablation.by_membership)));
    }
  }
  if (existsSync(f('results.md'))) out.push('', 'Results:', indent(markdownAsText(readFileSync(f('results.md'), 'utf8'))));
  return out.join('\n');
}

interface SpecialistRow {
  id: string;
  size: number;
  within_examples: number;
  specialist_accuracy_within: number;
  generalist_accuracy_within: number;
  mean_dustbin_prob: number;
  natural_rate: number;
  specialist_auc?: number;
  generalist_auc?: number;
}

/**
 * Markdown as terminal text: pipe tables become aligned tables ({@link formatTable}; cells that
 * are plain numbers right-aligned), `#` headings lose their marks, other lines are kept.
 */
export function markdownAsText(md: string): string {
  const lines = md.replace(/\r\n?/g, '\n').trimEnd().split('\n');
  const out: string[] = [];
  const cells = (l: string): string[] => l.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim().replace(/\*\*|`/g, ''));
  for (let i = 0; i < lines.length; ) {
    if (lines[i]!.trim().startsWith('|')) {
      const rows: string[][] = [];
      while (i < lines.length && lines[i]!.trim().startsWith('|')) {
        const r = cells(lines[i++]!);
        if (!r.every((c) => /^:?-{3,}:?$/.test(c))) rows.push(r);
      }
      const [header, ...body] = rows;
      out.push(formatTable(header!, body.map((r) => header!.map((_, j) => {
        const c = r[j] ?? '';
        return /^-?\d+(\.\d+)?$/.test(c) ? Number(c) : c;
      }))));
    } else {
      out.push(lines[i++]!.replace(/^#+\s+/, '').replace(/\*\*|`/g, ''));
    }
  }
  return out.join('\n');
}

/**
 * A one-line-per-layer summary of a tfjs layers `model.json`: each layer's width (a Dense layer's
 * units, a convolution's filters), activation or dropout rate, and parameter count, the counts read
 * from the weights manifest (so any architecture is counted right, batch-norm statistics included).
 */
export function describeModel(file: string): string {
  type Manifest = { weights: { name: string; shape: number[] }[] }[];
  const j = readJson<{ modelTopology: { model_config?: { config: { layers: LayerJson[] } }; config?: { layers: LayerJson[] } }; weightsManifest?: Manifest }>(file);
  const layers = j.modelTopology.model_config?.config.layers ?? j.modelTopology.config?.layers ?? [];
  const perLayer = new Map<string, number>();
  for (const group of j.weightsManifest ?? []) {
    for (const w of group.weights ?? []) {
      const layer = w.name.split('/')[0]!;
      perLayer.set(layer, (perLayer.get(layer) ?? 0) + w.shape.reduce((a, b) => a * b, 1));
    }
  }
  let total = 0;
  const rows = layers.map((l) => {
    const params = perLayer.get(l.config.name) ?? 0;
    total += params;
    const width = l.config.units ?? l.config.filters ?? '';
    return [l.config.name, l.class_name, width, l.config.activation ?? (l.config.rate !== undefined ? `rate ${l.config.rate}` : ''), params];
  });
  return formatTable(['layer', 'kind', 'units', 'activation', 'params'], rows) + `\ntotal parameters: ${total}`;
}

function indent(s: string): string {
  return s.split('\n').map((l) => '  ' + l).join('\n');
}
