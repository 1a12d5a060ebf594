/**
 * Test helper: turns a full experiment config into a small one (a subset of MNIST, few epochs,
 * narrow layers), keeping its stages and their wiring, so the test runs the real config's shape.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { parseConfig, type PipelineConfig } from '../../pipeline/config.ts';
import { REPO_ROOT } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';

/** How to shrink a config. */
export interface ShrinkOptions {
  /** MNIST rows: `train` training rows and `train / 4` validation rows (drawn from the first `1.3 train` training images), `test` test rows. */
  train?: number;
  test?: number;
  /** Upper bound on every stage's `epochs`. */
  epochs?: number;
  /** Upper bound on every hidden width (`hidden`, `widths`). */
  width?: number;
  /** Upper bound on `members` of a train-ensemble stage. */
  members?: number;
  /** Per-stage param overrides applied last (`{stage: {key: value}}`). */
  override?: Record<string, Record<string, unknown>>;
}

/** Reads `pipeline/configs/<name>.yaml`, shrinks it, and parses it with the real registry. */
export function shrunkConfig(name: string, o: ShrinkOptions = {}): PipelineConfig {
  const file = path.join(REPO_ROOT, 'pipeline', 'configs', `${name}.yaml`);
  const raw = YAML.parse(readFileSync(file, 'utf8')) as { stages: Record<string, Record<string, unknown>>; backend?: string };
  raw.backend = 'cpu';
  const train = o.train ?? 2000;
  const test = o.test ?? 1000;
  for (const [stage, imported] of Object.entries(raw.stages)) {
    // An import of another run's stage (`from: artifacts/<config>/<stage>`) is replaced by that
    // stage's own definition, so the small run trains it itself.
    let params = imported;
    if (imported.type === 'import' && typeof imported.from === 'string') {
      const [, config, source] = imported.from.split('/');
      const other = YAML.parse(readFileSync(path.join(REPO_ROOT, 'pipeline', 'configs', `${config}.yaml`), 'utf8')) as { stages: Record<string, Record<string, unknown>> };
      params = { ...other.stages[source!]! };
      raw.stages[stage] = params;
    }
    const type = (params.type as string | undefined) ?? stage;
    if (type === 'ingest') {
      params.dataset = { recipe: 'mnist', options: { limitTrain: Math.ceil(1.3 * train), limitTest: test } };
      params.valid_fraction = 0.2;
      params.limit = { train, valid: Math.floor(train / 4), test };
    }
    if (typeof params.epochs === 'number' && o.epochs) params.epochs = Math.min(params.epochs, o.epochs);
    if (o.width) {
      const w = o.width;
      if (Array.isArray(params.hidden)) params.hidden = (params.hidden as number[]).map((h) => Math.min(h, w));
      // model: {type: mlp, hidden} / {type: cnn, conv: [{filters}], dense}
      const model = params.model as { hidden?: number[]; dense?: number[]; conv?: { filters: number }[] } | undefined;
      if (model && typeof model === 'object') {
        const m = { ...model };
        if (Array.isArray(m.hidden)) m.hidden = m.hidden.map((h) => Math.min(h, w));
        if (Array.isArray(m.dense)) m.dense = m.dense.map((h) => Math.min(h, w));
        if (Array.isArray(m.conv)) m.conv = m.conv.map((b) => ({ ...b, filters: Math.min(b.filters, Math.max(4, Math.floor(w / 4))) }));
        params.model = m;
      }
      if (Array.isArray(params.widths)) params.widths = [...new Set((params.widths as number[]).map((h) => Math.min(h, w)))];
    }
    if (typeof params.members === 'number' && o.members) params.members = Math.min(params.members, o.members);
    Object.assign(params, o.override?.[stage] ?? {});
  }
  return parseConfig(YAML.stringify(raw), file, STAGES);
}

/** A dataset cache folder shared by the experiment tests (the MNIST subset is made once). */
export function sharedCacheDir(): string {
  const dir = path.join(os.tmpdir(), 'distill-kit-test-datasets');
  mkdirSync(dir, { recursive: true });
  return dir;
}
