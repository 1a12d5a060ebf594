/**
 * `zero_diagonal` decides what the clustered columns hold, and a fixture where it decides the
 * clusters: with it, classes with the same pattern of correlations with the OTHER classes group
 * together; without it, strongly correlated pairs do.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CovarianceColumns } from '../../src/specialists/cluster-columns.ts';
import { clusterClasses, type ClusterOptions } from '../../src/specialists/clustering.ts';
import { writeCovariance } from '../../src/specialists/covariance.ts';
import { writePredictions } from '../../src/artifacts/predictions.ts';
import { clustersStage } from '../../pipeline/stages/clusters.ts';
import { silentLogger } from '../../src/util/log.ts';

const col = (p: CovarianceColumns, j: number): number[] => {
  const x = new Float64Array(p.C);
  p.column(j, x);
  return Array.from(x, (v) => +v.toFixed(6));
};

describe('CovarianceColumns: the diagonal entry', () => {
  // Variances 4, 1, 9; cov(0,1) = 1, cov(0,2) = -3, cov(1,2) = 0.
  const cov = Float32Array.from([4, 1, -3, 1, 1, 0, -3, 0, 9]);
  it('none: the raw column, its own entry zeroed or kept', () => {
    expect(col(new CovarianceColumns(cov, 3, 'none', true), 0)).toEqual([0, 1, -3]);
    expect(col(new CovarianceColumns(cov, 3, 'none', false), 0)).toEqual([4, 1, -3]);
  });
  it('correlation: cov_ij / sqrt(cov_ii cov_jj); the diagonal 0 or 1', () => {
    expect(col(new CovarianceColumns(cov, 3, 'correlation', true), 0)).toEqual([0, 0.5, -0.5]);
    expect(col(new CovarianceColumns(cov, 3, 'correlation', false), 0)).toEqual([1, 0.5, -0.5]);
    expect(col(new CovarianceColumns(cov, 3, 'correlation', false), 2)).toEqual([-0.5, 0, 1]);
  });
  it('unit: unit length, after zeroing the diagonal when asked', () => {
    const s = 1 / Math.sqrt(10);
    expect(col(new CovarianceColumns(cov, 3, 'unit', true), 0)).toEqual([0, s, -3 * s].map((v) => +v.toFixed(6)));
    const t = 1 / Math.sqrt(26);
    expect(col(new CovarianceColumns(cov, 3, 'unit', false), 0)).toEqual([4 * t, t, -3 * t].map((v) => +v.toFixed(6)));
  });
});

/**
 * Two uncorrelated copies of a 4-class block with correlations
 *
 *        0    1    2    3
 *   0    1   .6   .3    0
 *   1   .6    1    0   .3
 *   2   .3    0    1   .6
 *   3    0   .3   .6    1
 *
 * (a correlation matrix: eigenvalues 1.9, 1.3, 0.7, 0.1; variances 1, 2, 3, 4 within a copy, so
 * `none` sees unequal scales). Correlation columns, zeroed
 * diagonal: x0 = (0, .6, .3, 0), x3 = (0, .3, .6, 0): |x0 - x3|^2 = 0.18, |x0 - x1|^2 = |x0 - x2|^2 =
 * 0.9, so {0, 3} and {1, 2}. Diagonal kept: x0 = (1, .6, .3, 0), x1 = (.6, 1, 0, .3): |x0 - x1|^2 =
 * 0.5, |x0 - x2|^2 = 1.7, |x0 - x3|^2 = 2.18, so {0, 1} and {2, 3}.
 */
const C = 8;
const R = [
  [1, 0.6, 0.3, 0],
  [0.6, 1, 0, 0.3],
  [0.3, 0, 1, 0.6],
  [0, 0.3, 0.6, 1],
];
const cov = new Float32Array(C * C);
for (let i = 0; i < C; i++) for (let j = 0; j < C; j++) cov[i * C + j] = Math.floor(i / 4) === Math.floor(j / 4) ? R[i % 4]![j % 4]! * Math.sqrt((1 + (i % 4)) * (1 + (j % 4))) : 0;
const ZEROED = ['0,3', '1,2', '4,7', '5,6'];
const KEPT = ['0,1', '2,3', '4,5', '6,7'];
const groups = (clusters: number[][]): string[] => clusters.map((c) => c.join(',')).sort();

describe('zeroDiagonal decides the clusters', () => {
  const cases: ClusterOptions[] = [
    { algorithm: 'online' },
    { algorithm: 'minibatch', batchSize: 4 },
    { algorithm: 'batch' },
    { algorithm: 'online', balance: false },
    { algorithm: 'online', normalise: 'unit' },
    { algorithm: 'online', normalise: 'none' },
  ];
  for (const o of cases) {
    it(`${JSON.stringify(o)}: pairs with the same profile when zeroed, the strongly correlated pairs when kept`, () => {
      expect(groups(clusterClasses(cov, C, { k: 4, seed: 1, ...o, zeroDiagonal: true }).clusters)).toEqual(ZEROED);
      expect(groups(clusterClasses(cov, C, { k: 4, seed: 1, ...o, zeroDiagonal: false }).clusters)).toEqual(KEPT);
    });
  }
  it('the default zeroes the diagonal', () => {
    expect(groups(clusterClasses(cov, C, { k: 4, seed: 1 }).clusters)).toEqual(ZEROED);
  });
});

describe('clusters stage: zero_diagonal reaches the clustering', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'zero-diag-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const runStage = async (zero: boolean): Promise<string[]> => {
    const covDir = path.join(root, 'covariance');
    const dataDir = path.join(root, 'ingest');
    mkdirSync(covDir, { recursive: true });
    mkdirSync(dataDir, { recursive: true });
    await writeCovariance(covDir, { cov, mean: new Float64Array(C), examples: 100 }, { split: 'valid', source: 'probabilities' });
    const labels = Int32Array.from({ length: C }, (_, i) => i);
    const values = new Float32Array(C * C);
    for (let i = 0; i < C; i++) values[i * C + i] = 1;
    await writePredictions(path.join(covDir, 'predictions-valid.arrow'), { labels, values, n: C, C }, 'logits', { split: 'valid' });
    writeFileSync(path.join(dataDir, 'classes.json'), JSON.stringify({ classes: Array.from({ length: C }, (_, i) => ({ index: i, name: `c${i}` })) }));
    const outDir = path.join(root, `out-${zero}`);
    mkdirSync(outDir);
    await clustersStage.run({
      name: 'clusters',
      params: clustersStage.schema.parse({ k: 4, zero_diagonal: zero }),
      seed: 1,
      outDir,
      scratchDir: path.join(root, 'scratch'),
      runDir: root,
      cacheDir: root,
      input: (name) => path.join(root, name),
      has: () => true,
      backend: { name: 'cpu', tfBackend: 'cpu', detail: 'test' },
      workers: 1,
      log: silentLogger,
    });
    const out = JSON.parse(readFileSync(path.join(outDir, 'clusters.json'), 'utf8')) as { clusters: { classes: number[] }[] };
    return groups(out.clusters.map((c) => c.classes));
  };
  it('zero_diagonal: true and false give the two groupings', async () => {
    expect(await runStage(true)).toEqual(ZEROED);
    expect(await runStage(false)).toEqual(KEPT);
  });
});
