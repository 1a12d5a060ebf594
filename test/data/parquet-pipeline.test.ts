import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Field, Float32, List, Utf8 } from 'apache-arrow';
import { REPO_ROOT } from '../../pipeline/runner.ts';
import { batchOf, cleanRows, cleanup, col, filesIn, tmpDir } from '../fixtures/data/build.ts';
import { writeParquet } from './parquet-fixtures.ts';

let dir: string;
beforeAll(() => {
  dir = tmpDir('parquet-pipeline-');
});
afterAll(() => cleanup(dir));

/** Runs a CLI entry point (`pipeline/cli.ts`, `src/cli/inspect.ts`) the way `npm run` does. */
function cli(entry: string, ...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, entry), ...args], { cwd: REPO_ROOT, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('a Parquet file as the dataset of a pipeline', () => {
  it('`ingest: {dataset: {path: x.parquet}}` runs, and `inspect` summarises the file', () => {
    const { labels, x, n } = cleanRows(3, 12, 4);
    const rows = Array.from({ length: n }, (_, i) => Array.from(x.subarray(i * 4, (i + 1) * 4)));
    const data = writeParquet(path.join(dir, 'mine.parquet'), [batchOf({ label: col(labels.map((c) => `k${c}`), new Utf8()), features: col(rows, new List(new Field('item', new Float32(), true))) })], { rowGroupSize: 10, arrowSchema: false });
    const config = path.join(dir, 'p.yaml');
    writeFileSync(config, `backend: cpu\nstages:\n  ingest: {dataset: {path: ${JSON.stringify(data)}}, valid_fraction: 0.2, test_fraction: 0.2}\n`);
    const out = path.join(dir, 'run');
    const r = cli('pipeline/cli.ts', '--config', config, '--out', out);
    expect(r.code, r.stderr).toBe(0);
    expect(filesIn(path.join(out, 'ingest'))).toEqual(expect.arrayContaining(['classes.json', 'manifest.json', 'test.arrow', 'train.arrow', 'valid.arrow']));
    const cls = JSON.parse(readFileSync(path.join(out, 'ingest', 'classes.json'), 'utf8')) as { classes: { name: string }[]; dim: number; rows: Record<string, number> };
    expect(cls.classes.map((c) => c.name)).toEqual(['k0', 'k1', 'k2']);
    expect(cls.dim).toBe(4);
    expect(cls.rows.train + cls.rows.valid + cls.rows.test).toBe(n);

    const i = cli('src/cli/inspect.ts', data);
    expect(i.code, i.stderr).toBe(0);
    expect(i.stdout).toContain('format: Parquet');
    expect(i.stdout).toContain('features: List<Float32>');
    expect(i.stdout).toContain('row groups: 4');
  });
});
