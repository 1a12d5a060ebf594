/**
 * The ensemble in blocks of cases: the metrics accumulated over blocks equal the whole split's,
 * the weight choice from accumulated accuracies equals the whole-split search, the predictions
 * file reads back in chunks, and the stage gives the same files whatever its block size.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { Rng } from '../../src/util/rng.ts';
import { silentLogger } from '../../src/util/log.ts';
import { ArtifactError } from '../../src/util/errors.ts';
import { ensembleMetrics, MetricsAccumulator } from '../../src/ensemble/metrics.ts';
import { chooseSpecialistWeight, extensionWeights, finishWeightChoice } from '../../src/ensemble/weight.ts';
import { solveEm } from '../../src/ensemble/solve-em.ts';
import { countCorrect } from '../../src/ensemble/metrics.ts';
import { readPredictions, writePredictions } from '../../src/artifacts/predictions.ts';
import { openPredictionsStream } from '../../src/data/predictions-stream.ts';
import { ensembleBlocks } from '../../src/ensemble/stream.ts';
import { initBackend } from '../../src/backend/select.ts';
import { randomDist, randomProblem } from './random-problem.ts';

const dirs: string[] = [];
const tmp = (p: string): string => {
  const d = mkdtempSync(path.join(os.tmpdir(), p));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('MetricsAccumulator', () => {
  it('over blocks of any sizes gives exactly the whole-split metrics', () => {
    const rng = new Rng(4);
    const n = 97;
    const C = 13;
    const pg = new Float32Array(n * C);
    const q = new Float32Array(n * C);
    for (let r = 0; r < n; r++) {
      pg.set(randomDist(rng, C), r * C);
      q.set(randomDist(rng, C), r * C);
    }
    const labels = Int32Array.from({ length: n }, () => rng.int(C));
    const coverage = Int32Array.from({ length: n }, () => rng.int(13));
    const membership = Int32Array.from({ length: n }, () => rng.int(12));
    const active = Array.from({ length: n }, () => rng.int(3) > 0);
    const classKinds = Array.from({ length: C }, (_, i) => (i % 4 === 0 ? 'bridge' : 'ordinary'));
    const whole = ensembleMetrics({ labels, pg, q, C, coverage, active, membership, classKinds });
    for (const cuts of [[97], [1, 96], [10, 10, 10, 67], [50, 0, 47]]) {
      const acc = new MetricsAccumulator(C, { membership: true, classKinds });
      let at = 0;
      for (const k of cuts) {
        acc.add({ labels: labels.subarray(at, at + k), pg: pg.subarray(at * C, (at + k) * C), q: q.subarray(at * C, (at + k) * C), C, coverage: coverage.subarray(at, at + k), active: active.slice(at, at + k), membership: membership.subarray(at, at + k) });
        at += k;
      }
      expect(acc.result()).toEqual(whole);
    }
    // The whole-split reference, counted here independently of the accumulator.
    const correct = (x: Float32Array, r: number): number => (countCorrect(x.subarray(r * C, (r + 1) * C), [labels[r]!], C));
    let ge = 0;
    let en = 0;
    let ce = 0;
    const bucket = new Array<number>(11).fill(0);
    for (let r = 0; r < n; r++) {
      ge += correct(pg, r);
      en += correct(q, r);
      if (active[r]) ce += correct(q, r);
      bucket[Math.min(coverage[r]!, 10)]! += correct(q, r);
    }
    expect([whole.generalist.correct, whole.ensemble.correct, whole.conditional.ensemble_accuracy! * whole.conditional.examples]).toEqual([ge, en, expect.closeTo(ce, 9)]);
    expect(whole.by_coverage.map((r) => r.ensemble_correct)).toEqual(bucket);
    // Sanity: the tables are not trivial.
    expect(whole.by_coverage.filter((r) => r.examples > 0).length).toBeGreaterThan(5);
    expect(whole.conditional.examples).toBeLessThan(n);
  });
});

describe('weight choice from accumulated accuracies', () => {
  it('equals chooseSpecialistWeight, with and without the extension', () => {
    for (const [seed, grid] of [[1, [0, 0.5, 1, 2]], [2, [0, 0.1]], [3, [0]], [5, [0, 3, 0.2]]] as const) {
      const problem = randomProblem(seed, 12, 6, 4, 80, 2, 1.5);
      const labels = Int32Array.from({ length: 80 }, (_, r) => {
        // Labels the specialists favour at large weights (so the extension triggers for some seeds).
        const s = problem.activeOffsets[r]!;
        const m = problem.activeIds[s]!;
        const cls = problem.specialists[m]!.classes;
        return seed % 2 ? cls[r % cls.length]! : r % 12;
      });
      const acc = (w: number): number => countCorrect(solveEm(problem, { weight: w }).q, labels, 12) / 80;
      const want = chooseSpecialistWeight({ problem, labels, grid, extend: 3 });
      const gridTable = grid.map((w) => ({ weight: w, accuracy: acc(w) }));
      const more = extensionWeights(gridTable, 3);
      const got = finishWeightChoice(gridTable, more.map((w) => ({ weight: w, accuracy: acc(w) })));
      expect(got).toEqual(want);
    }
  });

  it('drops the doublings after the first one that loses accuracy', () => {
    const grid = [{ weight: 0, accuracy: 0.5 }, { weight: 1, accuracy: 0.6 }];
    expect(extensionWeights(grid, 3)).toEqual([2, 4, 8]);
    const got = finishWeightChoice(grid, [{ weight: 2, accuracy: 0.7 }, { weight: 4, accuracy: 0.65 }, { weight: 8, accuracy: 0.9 }]);
    expect(got.weight).toBe(2);
    expect(got.table.map((t) => t.weight)).toEqual([0, 1, 2, 4]);
    expect(got.atTop).toBe(false);
    expect(extensionWeights([{ weight: 0, accuracy: 0.5 }, { weight: 1, accuracy: 0.4 }], 3)).toEqual([]);
  });
});

describe('openPredictionsStream', () => {
  it('reads the rows of writePredictions in chunks that cut across record batches', async () => {
    const dir = tmp('pred-stream-');
    const n = 9000; // 3 record batches of 4,096 rows
    const C = 3;
    const labels = Int32Array.from({ length: n }, (_, i) => i % 7);
    const values = Float32Array.from({ length: n * C }, (_, i) => i * 0.5);
    const file = path.join(dir, 'p.arrow');
    await writePredictions(file, { labels, values, n, C }, 'logits', { split: 'x' });
    const s = await openPredictionsStream(file);
    expect(s.C).toBe(C);
    expect(s.metadata.get('split')).toBe('x');
    const gotL: number[] = [];
    const gotV: number[] = [];
    const starts: number[] = [];
    for await (const c of s.chunks(1000)) {
      starts.push(c.start);
      gotL.push(...c.labels.subarray(0, c.n));
      gotV.push(...c.values.subarray(0, c.n * C));
    }
    await s.close();
    expect(starts).toEqual([0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000]);
    expect(Int32Array.from(gotL)).toEqual(readPredictions(file).labels);
    expect(Float32Array.from(gotV)).toEqual(values);
  });

  it('names the file when it is not a predictions file', async () => {
    const dir = tmp('pred-stream-bad-');
    const file = path.join(dir, 'p.arrow');
    writeFileSync(file, 'not arrow');
    await expect(openPredictionsStream(file)).rejects.toThrow(ArtifactError);
    await expect(openPredictionsStream(file)).rejects.toThrow(file);
  });
});

const CONFIG = (ensemble: string): string => `
name: tiny-stream
seed: 5
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 12, groups: 3, dim: 8, perClass: 40, seed: 3, classSpread: 0.5, bridges: {fraction: 0.25, groups: 2}}}
  generalist: {hidden: [8], epochs: 4, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  covariance: {}
  clusters: {k: 3, overlap: 1}
  specialists: {epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.005}}
  ensemble: {top_n: 1, overlap_ablation: true, weight: auto, weight_grid: [0, 0.5, 1], weight_extend: 2, train_targets: true, ${ensemble}}
`;

describe('ensemble stage in blocks', () => {
  let out: string;
  beforeAll(async () => {
    await initBackend('cpu');
    out = tmp('ens-stream-');
  }, 60_000);

  it('writes the same metrics, predictions and soft targets with blocks of 7 rows as with one block', async () => {
    const cacheDir = tmp('ens-stream-cache-');
    const files = ['metrics.json', 'predictions-test.arrow', 'soft-targets-train.arrow'];
    await runPipeline(parseConfig(CONFIG('block_rows: 100000'), 'tiny-stream.yaml', STAGES), { out, cacheDir, log: silentLogger });
    const saved = files.map((f) => readFileSync(path.join(out, 'ensemble', f)));
    const m1 = JSON.parse(saved[0]!.toString()) as { examples: number; valid: { ensemble: { correct: number } }; solve: { seconds: number } };
    // Blocks of 7 rows, specialists not kept loaded (each block loads its own): the same files.
    await runPipeline(parseConfig(CONFIG('block_rows: 7, specialist_cache_mb: 0'), 'tiny-stream.yaml', STAGES), { out, cacheDir, log: silentLogger, only: 'ensemble' });
    const again = files.map((f) => readFileSync(path.join(out, 'ensemble', f)));
    const m2 = JSON.parse(again[0]!.toString()) as typeof m1;
    expect(m1.examples).toBeGreaterThan(7 * 5);
    delete (m1 as { solve?: unknown }).solve;
    delete (m2 as { solve?: unknown }).solve;
    expect(m2).toEqual(m1);
    expect(again[1]!.equals(saved[1]!)).toBe(true);
    expect(again[2]!.equals(saved[2]!)).toBe(true);
  }, 120_000);

  it('fails with the file names when the cached logits are not of the split rows', async () => {
    const pred = readPredictions(path.join(out, 'covariance', 'predictions-valid.arrow'));
    const bad = path.join(out, 'bad-predictions.arrow');
    await writePredictions(bad, { labels: pred.labels.subarray(0, pred.n - 1), values: pred.values.subarray(0, (pred.n - 1) * pred.C), n: pred.n - 1, C: pred.C });
    const blocks = ensembleBlocks({ splitFile: path.join(out, 'ingest', 'valid.arrow'), predictionsFile: bad, C: pred.C, subsets: [], loadSpecialist: () => Promise.reject(new Error('not needed')), topN: 1, blockRows: 5 });
    await expect((async () => {
      for await (const b of blocks) void b;
    })()).rejects.toThrow(/bad-predictions\.arrow does not hold the rows of .*valid\.arrow/);
  });
});
