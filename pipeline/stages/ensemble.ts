import path from 'node:path';
import { readFileSync } from 'node:fs';
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { defineStage } from '../stage.ts';
import type { LabeledSet } from '../../src/data/split-file.ts';
import { loadModel } from '../../src/models/io.ts';
import { PredictionsWriter, openPredictionsStream } from '../../src/data/predictions-stream.ts';
import { writeJsonAtomic } from '../../src/artifacts/atomic.ts';
import type { EnsembleProblem } from '../../src/ensemble/problem.ts';
import { solveEm, type SolveResult } from '../../src/ensemble/solve-em.ts';
import { solveGradient } from '../../src/ensemble/solve-gradient.ts';
import { MetricsAccumulator, type EnsembleMetrics } from '../../src/ensemble/metrics.ts';
import { describeEnsemble, describeOverlapAblation } from '../../src/ensemble/describe.ts';
import { readSpecialistsSummary } from '../../src/ensemble/specialists-file.ts';
import { foldIntoDustbin, overlapDrops } from '../../src/ensemble/fold.ts';
import { DEFAULT_WEIGHT_GRID, extensionWeights, finishWeightChoice } from '../../src/ensemble/weight.ts';
import { ensembleBlocks, type EnsembleBlock } from '../../src/ensemble/stream.ts';
import { SpecialistCache } from '../../src/ensemble/specialist-cache.ts';
import { pct } from '../../src/cli/table.ts';
import { failpoint } from '../../src/util/failpoint.ts';
import { ArtifactError } from '../../src/util/errors.ts';
import { readManifest } from '../../src/artifacts/manifest.ts';
import { parseRecipeOptions } from '../../datasets/recipes.ts';
import { syntheticCentres, type SyntheticOptions } from '../../datasets/synthetic.ts';
import { SOFT_TARGETS_FILE, SOFT_TARGETS_UNLABELED_FILE } from './teachers.ts';
import { unlabeledFile, warnIfTrainedOnValid } from './common.ts';
import { describeTransfer, selectTransfer, transferSchema, type TransferSpec } from './transfer.ts';
import { openSplitStream } from '../../src/data/split-stream.ts';
import { stableStringify } from '../../src/artifacts/hash.ts';

/** Moved to `src/ensemble/describe.ts`; re-exported for existing importers. */
export { describeEnsemble } from '../../src/ensemble/describe.ts';

const schema = z.strictObject({
  /** The `ingest` stage. */
  data: z.string().default('ingest'),
  /** The generalist model stage. */
  model: z.string().default('generalist'),
  /** The covariance stage (its predictions-valid/test.arrow hold the generalist's logits). */
  covariance: z.string().default('covariance'),
  /** The `specialists` stage. */
  specialists: z.string().default('specialists'),
  /** Generalist top-n classes whose specialists are active for a case (paper: 1). */
  top_n: z.number().int().positive().default(1),
  /** `em`: exact monotone fixed point; `gradient`: the paper's gradient descent on logits (Adam). */
  solver: z.enum(['em', 'gradient']).default('em'),
  /** Weight w of the specialist terms; `auto` chooses it from `weight_grid` on the validation split. */
  weight: z.union([z.number().min(0), z.literal('auto')]).default('auto'),
  /** Weights tried when `weight: auto`. */
  weight_grid: z.array(z.number().min(0)).min(1).default([...DEFAULT_WEIGHT_GRID]),
  /**
   * When the best weight on valid is the grid's largest (the optimum may lie above the grid), double
   * it up to this many times while the validation accuracy does not drop (0: the grid only).
   */
  weight_extend: z.number().int().min(0).default(4),
  /** Solver stops a case when no q_i changes by more than this. */
  tolerance: z.number().positive().default(1e-7),
  /** Solver step limit per case. */
  max_iterations: z.number().int().positive().default(2000),
  /** Also combine on the train split and write soft-targets-train.arrow (teacher for a distill stage). */
  train_targets: z.boolean().default(false),
  /**
   * With `train_targets`: combine only these train rows, the students' transfer set (the same
   * `fraction` / `omit_classes` / `only_classes` / `seed` as their `transfer:` select the same
   * rows), and write soft targets for them alone. At 3,755 classes the targets of every train row
   * are n x 3,755 x 4 bytes (5.6 GB for 100 per class) that no student may read, and the solve
   * on train is most of the stage's time. A distill stage whose transfer set asks for a row not
   * written stops with an error naming this option. Default: every train row.
   */
  train_transfer: transferSchema,
  /**
   * Also combine on the dataset's unlabeled rows and write soft-targets-unlabeled.arrow: the
   * ensemble labels an unlabelled transfer set for a distill stage (`transfer.source: unlabeled`).
   */
  unlabeled_targets: z.boolean().default(false),
  /**
   * Also solve valid and test again with each class covered by several specialists kept in one of
   * them (drawn with the run's seed) and merged into the others' dustbins (src/ensemble/fold.ts),
   * at the same weight: `overlap_ablation` in metrics.json compares the coverage tables with and
   * without the extra specialists on the same cases (a causal check of the paper's Table 4).
   */
  overlap_ablation: z.boolean().default(false),
  /**
   * Cases per block: the splits are read, combined, scored and written block by block, so the
   * stage's memory is a few block_rows x C float arrays whatever the number of cases.
   */
  block_rows: z.number().int().positive().default(2048),
  /** Specialist weights (MiB) kept loaded across blocks; beyond it a specialist is reloaded for each block that needs it. */
  specialist_cache_mb: z.number().min(0).default(1024),
}).superRefine((p, ctx) => {
  const t = p.train_transfer;
  if (t.source !== undefined && t.source !== 'train') ctx.addIssue({ code: 'custom', path: ['train_transfer', 'source'], message: `train_transfer selects train rows for train_targets; source '${t.source}' does not apply (the unlabeled rows are combined by unlabeled_targets: true)` });
  if (!p.train_targets && selectsRows(t)) ctx.addIssue({ code: 'custom', path: ['train_transfer'], message: 'train_transfer selects the rows of train_targets, which is off: set train_targets: true, or drop train_transfer' });
});

/**
 * `ensemble`: KL-minimising combination of the generalist and the active specialists per case
 * (the paper's inference), on valid (to choose the weight) and test (reported).
 *
 * `metrics.json` holds two coverage tables (test at the top level, valid under `valid`), rows
 * `{specialists: k, label, examples, generalist_correct, ensemble_correct, relative_change}`:
 * - `by_coverage`: cases by the number of specialists ACTIVE for the case (their subset meets the
 *   generalist's top-n classes) whose subset holds the true class; a case whose true class is in a
 *   cluster but outside the generalist's top-n lands in a lower bucket.
 * - `by_membership`: cases by the number of clusters holding the true class, active or not: a
 *   property of the class, the grouping of the paper's Table 4.
 * For the synthetic recipe with `bridges`, `by_membership_kind` splits `by_membership` into
 * `ordinary` and `bridge` classes ({@link syntheticClassKinds}).
 */
export const ensembleStage = defineStage({
  type: 'ensemble',
  description: 'combine generalist + active specialists by minimising the KL objective (EM or gradient)',
  schema,
  deps: (p) => [p.data, p.model, p.covariance, p.specialists],
  code: ['pipeline/stages/ensemble.ts'],
  async run(ctx) {
    const p = ctx.params;
    const specDir = ctx.input(p.specialists);
    const summary = readSpecialistsSummary(specDir);
    const subsets = summary.specialists.map((s) => [...s.classes].sort((a, b) => a - b));
    const modelDir = (m: number): string => path.join(specDir, summary.specialists[m]!.id, 'model');
    // Specialists stay loaded across blocks up to specialist_cache_mb of weights (each block needs the ones active in it).
    const cache = new SpecialistCache((m) => loadModel(modelDir(m)), p.specialist_cache_mb * 2 ** 20);
    const solve = (problem: EnsembleProblem, weight: number): SolveResult =>
      p.solver === 'em'
        ? solveEm(problem, { weight, tolerance: p.tolerance, maxIterations: p.max_iterations })
        : solveGradient(problem, { weight, tolerance: p.tolerance, maxIterations: p.max_iterations });
    const dataDir = ctx.input(p.data);
    const covDir = ctx.input(p.covariance);
    const C = (await openPredictionsHeader(path.join(covDir, 'predictions-test.arrow'))).C;
    if (summary.head === 'full') ctx.log.info(`the specialists have full heads: each one's ${C} class probabilities are folded into its special classes + one dustbin (the sum of the rest)`);
    const classKinds = syntheticClassKinds(dataDir, C);
    if (classKinds) ctx.log.info(`class kinds from the synthetic recipe: ${classKinds.filter((k) => k === 'bridge').length} bridge, ${classKinds.filter((k) => k === 'ordinary').length} ordinary (by_membership_kind)`);
    // Both heads reach the solver as |S|+1 cells per specialist (a full head's C outputs folded: src/ensemble/specialist-cells.ts).
    const blockInputs = {
      C,
      subsets,
      head: summary.head,
      specialistLabel: (m: number) => `specialist ${summary.specialists[m]!.id} (${modelDir(m)})`,
      loadSpecialist: (m: number) => cache.get(m),
      releaseSpecialist: (m: number, model: tf.LayersModel) => cache.release(m, model),
      topN: p.top_n,
      blockRows: p.block_rows,
    };
    const cached = (split: 'valid' | 'test') => ({ splitFile: path.join(dataDir, `${split}.arrow`), predictionsFile: path.join(covDir, `predictions-${split}.arrow`) });
    const newMetrics = () => new MetricsAccumulator(C, { membership: true, ...(classKinds ? { classKinds } : {}) });
    const addBlock = (acc: MetricsAccumulator, b: EnsembleBlock, q: Float32Array): void =>
      acc.add({ labels: b.set.y, pg: b.built.pg, q, C, coverage: b.built.coverage, active: b.built.active, membership: b.built.membership });
    const drops = p.overlap_ablation ? overlapDrops(subsets, C, ctx.seed) : null;
    /** One pass over the valid blocks: metrics at each weight (and the ablation at one). */
    const validPass = async (weights: number[], ablationWeight: number | null): Promise<{ accs: MetricsAccumulator[]; ablation: MetricsAccumulator | null }> => {
      const started = Date.now();
      const accs = weights.map(() => newMetrics());
      const ablation = ablationWeight !== null && drops ? newMetrics() : null;
      for await (const b of ensembleBlocks({ ...blockInputs, ...cached('valid') })) {
        weights.forEach((w, i) => addBlock(accs[i]!, b, solve(b.built.problem, w).q));
        if (ablation) addBlock(ablation, b, solve(foldIntoDustbin(b.built.problem, drops!), ablationWeight!).q);
      }
      ctx.log.info(`valid: ${accs[0]?.examples ?? ablation?.examples ?? 0} cases in blocks of ${p.block_rows}, ${weights.length} weight(s)${ablation ? ' + the overlap ablation' : ''}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return { accs, ablation };
    };

    try {
      // Weight: fixed, or chosen on the validation split (never on test).
      warnIfTrainedOnValid(ctx.input(p.model), p.model, `the specialist weight${p.weight === 'auto' ? ' chosen' : ''} and the metrics on valid`, ctx.log);
      let weight: number;
      let weightTable: { weight: number; accuracy: number }[] = [];
      let weightAtTop = false;
      let validMetrics: EnsembleMetrics;
      let validAblation: EnsembleMetrics | null = null;
      if (p.weight === 'auto') {
        // Every grid weight is solved on each block and its metrics accumulated (memory: one block).
        const grid = await validPass(p.weight_grid, p.overlap_ablation && p.weight_grid.length === 1 ? p.weight_grid[0]! : null);
        const accs = new Map<number, MetricsAccumulator>();
        const tableOf = (ws: number[], as: MetricsAccumulator[]) => ws.map((w, i) => { accs.set(w, as[i]!); return { weight: w, accuracy: as[i]!.result().ensemble.accuracy }; });
        const gridTable = tableOf(p.weight_grid, grid.accs);
        const more = extensionWeights(gridTable, p.weight_extend);
        const choice = finishWeightChoice(gridTable, more.length ? tableOf(more, (await validPass(more, null)).accs) : []);
        weight = choice.weight;
        weightTable = choice.table;
        weightAtTop = choice.atTop;
        validMetrics = accs.get(weight)!.result();
        if (p.overlap_ablation) validAblation = grid.ablation && weight === p.weight_grid[0] ? grid.ablation.result() : (await validPass([], weight)).ablation!.result();
        ctx.log.info(`specialist weight chosen on valid: ${weight} (${weightTable.map((t) => `${t.weight}: ${pct(t.accuracy)}`).join(', ')})`);
        if (weightAtTop) ctx.log.warn(`the chosen weight ${weight} is the largest tried: the optimum may lie above it (raise ensemble.weight_extend or extend ensemble.weight_grid)`);
      } else {
        weight = p.weight;
        const pass = await validPass([weight], p.overlap_ablation ? weight : null);
        validMetrics = pass.accs[0]!.result();
        validAblation = pass.ablation?.result() ?? null;
      }
      failpoint('ensemble-valid-solved'); // crash tests (src/util/failpoint.ts): killed here, after the valid cases are solved

      // Test: solved at the chosen weight (and at 1, for the record: the paper's unweighted objective), written as it goes.
      const testAcc = newMetrics();
      const unweightedAcc = weight === 1 ? testAcc : newMetrics();
      const testAblation = drops ? newMetrics() : null;
      let solveSeconds = 0;
      let iterations = 0;
      let unconverged = 0;
      const writer = new PredictionsWriter(path.join(ctx.outDir, 'predictions-test.arrow'), C, 'probabilities', { split: 'test', weight: String(weight) });
      try {
        for await (const b of ensembleBlocks({ ...blockInputs, ...cached('test') })) {
          const started = Date.now();
          const res = solve(b.built.problem, weight);
          solveSeconds += (Date.now() - started) / 1000;
          for (const it of res.iterations) iterations += it;
          unconverged += res.unconverged;
          addBlock(testAcc, b, res.q);
          writer.add(b.set.y, res.q, b.set.n);
          if (unweightedAcc !== testAcc) addBlock(unweightedAcc, b, solve(b.built.problem, 1).q);
          if (testAblation) addBlock(testAblation, b, solve(foldIntoDustbin(b.built.problem, drops!), weight).q);
        }
        writer.finish();
      } catch (e) {
        writer.abort();
        throw e;
      }
      const metrics = testAcc.result();
      const unweighted = unweightedAcc.result();

      /** The ensemble's q on a split without cached generalist logits, written as soft targets. */
      const writeTargets = async (split: 'train' | 'unlabeled'): Promise<void> => {
        const file = split === 'train' ? path.join(dataDir, 'train.arrow') : unlabeledFile(dataDir, p.data, 'ensemble.unlabeled_targets is set', 'drop the option');
        const rows = split === 'train' && selectsRows(p.train_transfer) ? selectTransfer(await splitLabels(file), C, p.train_transfer, ctx.seed) : undefined;
        const meta: Record<string, string> = rows ? { transfer: stableStringify(p.train_transfer), transfer_seed: String(ctx.seed), transfer_rows: String(rows.length) } : {};
        const gen = await loadModel(path.join(ctx.input(p.model), 'model'));
        const out = new PredictionsWriter(path.join(ctx.outDir, split === 'train' ? SOFT_TARGETS_FILE : SOFT_TARGETS_UNLABELED_FILE), C, 'probabilities', { split, weight: String(weight), ...meta });
        try {
          if (rows) ctx.log.info(`soft targets on train: the transfer set ${describeTransfer(p.train_transfer, rows.length)} only (train_transfer)`);
          for await (const b of ensembleBlocks({ ...blockInputs, splitFile: file, generalist: gen, ...(rows ? { rows } : {}) })) out.add(b.set.y, solve(b.built.problem, weight).q, b.set.n);
          out.finish();
        } catch (e) {
          out.abort();
          throw e;
        } finally {
          gen.dispose();
        }
        ctx.log.info(`soft targets on ${split}: ${out.rows} rows`);
      };
      /** The same cases with the overlap withheld (see `overlap_ablation`), at the chosen weight. */
      let ablation: Record<string, unknown> | undefined;
      if (drops && testAblation && validAblation) {
        const folded = drops.reduce((a, d) => a + d.size, 0);
        const a = testAblation.result();
        const av = validAblation;
        ablation = {
          seed: ctx.seed,
          memberships_removed: folded,
          ensemble: a.ensemble,
          by_membership: a.by_membership,
          ...(a.by_membership_kind ? { by_membership_kind: a.by_membership_kind } : {}),
          valid: { ensemble: av.ensemble, by_membership: av.by_membership, ...(av.by_membership_kind ? { by_membership_kind: av.by_membership_kind } : {}) },
        };
        ctx.log.info(`overlap ablation (${folded} class memberships merged into dustbins): test ensemble ${pct(a.ensemble.accuracy)} vs ${pct(metrics.ensemble.accuracy)} with every specialist`);
        ctx.log.info(describeOverlapAblation(metrics.by_membership ?? [], a.by_membership ?? []));
      }
      if (p.train_targets) await writeTargets('train');
      if (p.unlabeled_targets) await writeTargets('unlabeled');
      ctx.log.info(`specialists loaded ${cache.loads} time(s) for ${subsets.length}; ${(cache.keptBytes / 2 ** 20).toFixed(1)} MiB of them kept loaded across blocks`);
      const out = {
        ...metrics,
        solver: p.solver,
        top_n: p.top_n,
        weight,
        weight_table: weightTable,
        weight_at_top: weightAtTop,
        // by_coverage / by_membership on valid too: what a coverage option (e.g. clusters.overlap_threshold) may be tuned on.
        valid: {
          generalist: validMetrics.generalist,
          ensemble: validMetrics.ensemble,
          conditional: validMetrics.conditional,
          by_coverage: validMetrics.by_coverage,
          by_membership: validMetrics.by_membership,
          ...(validMetrics.by_membership_kind ? { by_membership_kind: validMetrics.by_membership_kind } : {}),
        },
        unweighted: { ensemble: unweighted.ensemble, conditional: unweighted.conditional },
        solve: { seconds: solveSeconds, mean_iterations: metrics.examples ? iterations / metrics.examples : 0, unconverged },
        ...(ablation ? { overlap_ablation: ablation } : {}),
      };
      await writeJsonAtomic(path.join(ctx.outDir, 'metrics.json'), out);
      ctx.log.info(describeEnsemble(metrics, weight));
      return { generalist_accuracy: metrics.generalist.accuracy, ensemble_accuracy: metrics.ensemble.accuracy, weight };
    } finally {
      cache.dispose();
    }
  },
});

/** Whether a transfer spec selects a part of the train split (not every row). */
function selectsRows(t: TransferSpec): boolean {
  return (t.fraction !== undefined && t.fraction < 1) || t.omit_classes !== undefined || t.only_classes !== undefined;
}

/** The labels of a split file, streamed. */
async function splitLabels(file: string): Promise<Int32Array> {
  const s = await openSplitStream(file);
  const parts: Int32Array[] = [];
  try {
    for await (const c of s.chunks(8192)) parts.push(c.y.slice(0, c.n));
  } finally {
    await s.close();
  }
  const out = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The class count of a predictions file, from its schema (no rows read). */
async function openPredictionsHeader(file: string): Promise<{ C: number }> {
  const s = await openPredictionsStream(file);
  await s.close();
  return { C: s.C };
}

/**
 * The kind of each ingested class, `bridge` or `ordinary`, when the `data` stage made the synthetic
 * recipe with `bridges` (read from its manifest's params; the bridge classes are recomputed with
 * `syntheticCentres`, deterministic in the recipe's options). Null for any other data, or when a
 * class name is not the recipe's class number (then the mapping is unknown).
 * @param ingestDir the ingest stage's folder (`manifest.json`, `classes.json`)
 * @param C number of classes the predictions have
 */
export function syntheticClassKinds(ingestDir: string, C: number): string[] | null {
  const dataset = (readManifest(ingestDir)?.params as { dataset?: { recipe?: string; options?: Record<string, unknown> } } | undefined)?.dataset;
  if (dataset?.recipe !== 'synthetic' || !dataset.options?.bridges) return null;
  const opts = parseRecipeOptions('synthetic', dataset.options) as unknown as SyntheticOptions;
  const bridges = new Set(syntheticCentres(opts).bridges.map((b) => b.cls));
  const classes = (JSON.parse(readFileSync(path.join(ingestDir, 'classes.json'), 'utf8')) as { classes: { index: number; name: string }[] }).classes;
  if (classes.length !== C) return null;
  const kinds = new Array<string>(C).fill('ordinary');
  for (const c of classes) {
    if (!/^\d+$/.test(c.name) || !(c.index >= 0 && c.index < C)) return null;
    if (bridges.has(Number(c.name))) kinds[c.index] = 'bridge';
  }
  return kinds;
}

/** Moved to `src/ensemble/specialists-file.ts`; re-exported for existing importers. */
export { readSpecialistsSummary } from '../../src/ensemble/specialists-file.ts';

/**
 * The generalist's cached predictions must be of the same rows as the split they are combined on
 * (same count, same labels in the same order): else every case would get another row's generalist.
 * @throws ArtifactError naming both files and the first row that differs
 */
export function checkPredictionsAligned(set: LabeledSet, pred: { labels: Int32Array; n: number }, predFile: string, splitFile: string): void {
  let bad = pred.n === set.n ? -1 : Math.min(pred.n, set.n);
  for (let r = 0; bad < 0 && r < set.n; r++) if (pred.labels[r] !== set.y[r]) bad = r;
  if (bad >= 0) {
    throw new ArtifactError(
      `${predFile} (${pred.n} rows) does not hold the rows of ${splitFile} (${set.n} rows): they differ at row ${bad}; rerun the covariance stage with --force`,
    );
  }
}
