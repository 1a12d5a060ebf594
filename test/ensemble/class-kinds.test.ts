/** `syntheticClassKinds`: bridge vs ordinary classes of the synthetic recipe, from the ingest stage's folder. */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { syntheticClassKinds } from '../../pipeline/stages/ensemble.ts';
import { syntheticCentres } from '../../datasets/synthetic.ts';
import { parseRecipeOptions } from '../../datasets/recipes.ts';

const C = 20;
const options = { classes: C, groups: 4, dim: 8, perClass: 5, seed: 3, bridges: { fraction: 0.25, groups: 2 } };

/** An ingest folder: a manifest with the given dataset params and classes.json with the given names. */
function ingestDir(dataset: unknown, names: string[]): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'class-kinds-'));
  const manifest = {
    stage: 'ingest', type: 'ingest', params: { dataset }, seed: 1, key: 'k', inputs: {}, code: { sha256: 'c', files: 1 }, outputs: {},
    backend: { name: 'cpu', tfBackend: 'cpu', detail: '' }, started_at: '', ended_at: '', seconds: 0, peak_rss_mb: 0, package_version: '0', node_version: 'v20',
  };
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  writeFileSync(path.join(dir, 'classes.json'), JSON.stringify({ classes: names.map((name, index) => ({ index, name })) }));
  return dir;
}

describe('syntheticClassKinds', () => {
  const bridges = syntheticCentres(parseRecipeOptions('synthetic', options) as never).bridges.map((b) => b.cls);

  it('marks the recipe\'s bridge classes', () => {
    expect(bridges).toHaveLength(5); // round(0.25 * 20)
    const kinds = syntheticClassKinds(ingestDir({ recipe: 'synthetic', options }, Array.from({ length: C }, (_, i) => String(i))), C)!;
    expect(kinds).toHaveLength(C);
    expect(kinds.flatMap((k, i) => (k === 'bridge' ? [i] : []))).toEqual(bridges);
    expect(kinds.filter((k) => k === 'ordinary')).toHaveLength(15);
  });

  it('follows the class names when the ingested order differs from the recipe\'s', () => {
    const names = Array.from({ length: C }, (_, i) => String(C - 1 - i));
    const kinds = syntheticClassKinds(ingestDir({ recipe: 'synthetic', options }, names), C)!;
    expect(kinds.flatMap((k, i) => (k === 'bridge' ? [C - 1 - i] : [])).sort((a, b) => a - b)).toEqual(bridges);
  });

  it('is null without bridges, for other data, for non-numeric names or a class count mismatch', () => {
    const names = Array.from({ length: C }, (_, i) => String(i));
    expect(syntheticClassKinds(ingestDir({ recipe: 'synthetic', options: { ...options, bridges: undefined } }, names), C)).toBeNull();
    expect(syntheticClassKinds(ingestDir({ recipe: 'mnist', options: {} }, names), C)).toBeNull();
    expect(syntheticClassKinds(ingestDir({ path: 'x.arrow' }, names), C)).toBeNull();
    expect(syntheticClassKinds(ingestDir({ recipe: 'synthetic', options }, names.map((n) => `c${n}`)), C)).toBeNull();
    expect(syntheticClassKinds(ingestDir({ recipe: 'synthetic', options }, names), C + 1)).toBeNull();
    expect(syntheticClassKinds(mkdtempSync(path.join(os.tmpdir(), 'class-kinds-')), C)).toBeNull();
  });
});
