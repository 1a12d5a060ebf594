import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { formatTable, pct } from './table.ts';

function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

interface LayerJson {
  class_name: string;
  config: { name: string; units?: number; activation?: string; rate?: number; batch_input_shape?: (number | null)[] };
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
    const c = readJson<{ classes: { index: number; name: string; counts: { train: number; valid: number; test: number } }[]; dim: number; shape: number[] | null }>(f('classes.json'));
    out.push('', `Classes: ${c.classes.length}, features: ${c.dim}${c.shape ? ` (shape [${c.shape.join(', ')}])` : ''}`);
    const shown = c.classes.slice(0, 30);
    out.push(indent(formatTable(['index', 'name', 'train', 'valid', 'test'], shown.map((k) => [k.index, k.name, k.counts.train, k.counts.valid, k.counts.test]))));
    if (c.classes.length > shown.length) out.push(`  ... ${c.classes.length - shown.length} more classes`);
  }
  return out.join('\n');
}

/** A one-line-per-layer summary of a tfjs layers `model.json`. */
export function describeModel(file: string): string {
  const j = readJson<{ modelTopology: { model_config?: { config: { layers: LayerJson[] } }; config?: { layers: LayerJson[] } } }>(file);
  const layers = j.modelTopology.model_config?.config.layers ?? j.modelTopology.config?.layers ?? [];
  let inputs = layers[0]?.config.batch_input_shape?.[1] ?? 0;
  let total = 0;
  const rows = layers.map((l) => {
    let params = 0;
    let units: number | string = '';
    if (l.class_name === 'Dense' && l.config.units !== undefined) {
      params = (inputs + 1) * l.config.units;
      inputs = l.config.units;
      units = l.config.units;
    }
    total += params;
    return [l.config.name, l.class_name, units, l.config.activation ?? (l.config.rate !== undefined ? `rate ${l.config.rate}` : ''), params];
  });
  return formatTable(['layer', 'kind', 'units', 'activation', 'params'], rows) + `\ntotal parameters: ${total}`;
}

function indent(s: string): string {
  return s.split('\n').map((l) => '  ' + l).join('\n');
}
