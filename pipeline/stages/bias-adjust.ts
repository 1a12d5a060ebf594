/**
 * `bias-adjust`: the paper's omitted-class fix (section 3). Adds one offset `delta` to the
 * output bias of the listed classes of a trained model, choosing `delta` on the VALIDATION split
 * (lowest error over a grid), and reports test errors and per-class test accuracy before and
 * after. Writes the adjusted model, so later stages can use it.
 */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { writeJsonAtomic } from '../../src/artifacts/atomic.ts';
import { adjustBiases, chooseBiasOffset } from '../../src/distill/bias.ts';
import { loadModel, saveModel } from '../../src/models/io.ts';
import { evaluate, outputDim, predictLogits } from '../../src/models/predict.ts';
import type { LabeledSet } from '../../src/data/split-file.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { defineStage } from '../stage.ts';
import { readIngested, type SplitMetrics } from './common.ts';
import { modelDirsOf } from './teachers.ts';

const schema = z
  .strictObject({
    /** The `ingest` stage whose valid and test splits to use. */
    data: z.string().default('ingest'),
    /** The model stage to adjust (its `model/`). */
    model: z.string(),
    /** Classes whose output bias gets the offset (e.g. `[3]`, or `[7, 8]`). */
    classes: z.array(z.number().int().min(0)).min(1),
    /** Offsets tried: `from`, `from + step`, ..., up to `to`; include 0 to allow no change. */
    grid: z
      .strictObject({ from: z.number(), to: z.number(), step: z.number().positive() })
      .refine((g) => g.to >= g.from, { message: "'to' must be >= 'from'" })
      .refine((g) => (g.to - g.from) / g.step <= 10_000, { message: 'more than 10,000 grid points; use a larger step' })
      .default({ from: -10, to: 10, step: 0.25 }),
  });
/** Params of the `bias-adjust` stage. */
export type BiasAdjustParams = z.output<typeof schema>;

/** Accuracy, errors and examples of one class (rows whose true label is it). */
export type ClassMetrics = Omit<SplitMetrics, 'loss'>;

/** A model's results on one split, overall and on the adjusted classes. */
export interface AdjustedSplit {
  accuracy: number;
  errors: number;
  examples: number;
  /** Per adjusted class, keyed by the class index. */
  classes: Record<string, ClassMetrics>;
}

/** Content of the stage's `metrics.json`. */
export interface BiasAdjustMetrics {
  /** After the adjustment (so the folder reads like any model stage's). */
  test: SplitMetrics;
  valid: SplitMetrics;
  best_epoch: number | null;
  adjusted_classes: number[];
  /** The offset chosen on valid. */
  delta: number;
  before: { test: AdjustedSplit; valid: AdjustedSplit };
  after: { test: AdjustedSplit; valid: AdjustedSplit };
  /** Validation error of every grid point. */
  evaluations: { delta: number; error: number }[];
}

/** The grid points `from, from + step, ..., <= to` (computed by index, so no drift). */
export function gridPoints(g: { from: number; to: number; step: number }): number[] {
  const out: number[] = [];
  const count = Math.floor((g.to - g.from) / g.step + 1e-9);
  for (let i = 0; i <= count; i++) out.push(+(g.from + i * g.step).toFixed(10));
  return out;
}

/** Overall and per-class accuracy of `model` on `set` (dropout off). */
export function adjustedSplit(model: tf.LayersModel, set: LabeledSet, classes: number[]): AdjustedSplit {
  const C = outputDim(model);
  const z = predictLogits(model, set.x, set.n, set.dim);
  const per = new Map<number, { n: number; errors: number }>(classes.map((c) => [c, { n: 0, errors: 0 }]));
  let errors = 0;
  for (let i = 0; i < set.n; i++) {
    let best = 0;
    for (let c = 1; c < C; c++) if (z[i * C + c]! > z[i * C + best]!) best = c;
    const label = set.y[i]!;
    const wrong = best !== label;
    if (wrong) errors++;
    const pc = per.get(label);
    if (pc) {
      pc.n++;
      if (wrong) pc.errors++;
    }
  }
  const out: Record<string, ClassMetrics> = {};
  for (const [c, v] of per) out[String(c)] = { accuracy: v.n ? (v.n - v.errors) / v.n : NaN, errors: v.errors, examples: v.n };
  return { accuracy: set.n ? (set.n - errors) / set.n : NaN, errors, examples: set.n, classes: out };
}

/** `bias-adjust`: raise or lower the output bias of some classes by an offset chosen on valid. */
export const biasAdjustStage = defineStage({
  type: 'bias-adjust',
  description: 'add an offset (chosen on valid) to the output bias of some classes of a model; test errors before/after',
  schema,
  deps: (p) => [p.data, p.model],
  code: ['pipeline/stages/bias-adjust.ts'],
  async run(ctx) {
    const p = ctx.params;
    const data = await readIngested(ctx.input(p.data));
    const dirs = modelDirsOf(ctx.input(p.model), p.model);
    if (dirs.length !== 1) throw new ConfigError(`bias-adjust: stage '${p.model}' holds ${dirs.length} models; name a stage with one model`);
    const model = await loadModel(dirs[0]!);
    try {
      const C = outputDim(model);
      for (const c of p.classes) if (c >= C) throw new ConfigError(`bias-adjust.classes: class ${c} does not exist; the model has classes 0..${C - 1}`);
      const before = { test: adjustedSplit(model, data.test, p.classes), valid: adjustedSplit(model, data.valid, p.classes) };
      const choice = chooseBiasOffset({
        grid: gridPoints(p.grid),
        evaluate: (delta) => {
          const restore = adjustBiases(model, p.classes, delta);
          try {
            return evaluate(model, data.valid).errors / data.valid.n;
          } finally {
            restore();
          }
        },
      });
      adjustBiases(model, p.classes, choice.delta);
      const after = { test: adjustedSplit(model, data.test, p.classes), valid: adjustedSplit(model, data.valid, p.classes) };
      let bestEpoch: number | null = null;
      try {
        bestEpoch = (JSON.parse(readFileSync(path.join(ctx.input(p.model), 'metrics.json'), 'utf8')) as { best_epoch?: number }).best_epoch ?? null;
      } catch {
        bestEpoch = null;
      }
      const metrics: BiasAdjustMetrics = {
        test: evaluate(model, data.test),
        valid: evaluate(model, data.valid),
        best_epoch: bestEpoch,
        adjusted_classes: p.classes,
        delta: choice.delta,
        before,
        after,
        evaluations: choice.evaluations,
      };
      await saveModel(model, path.join(ctx.outDir, 'model'));
      await writeJsonAtomic(path.join(ctx.outDir, 'metrics.json'), metrics);
      const cls = (s: AdjustedSplit): string => Object.entries(s.classes).map(([c, m]) => `class ${c} ${(100 * m.accuracy).toFixed(1)}%`).join(', ');
      ctx.log.info(`offset ${choice.delta} on classes ${p.classes.join(', ')} (chosen on valid)`);
      ctx.log.info(`test errors ${before.test.errors} -> ${after.test.errors} of ${data.test.n}; ${cls(before.test)} -> ${cls(after.test)}`);
      return { delta: choice.delta, test_errors_before: before.test.errors, test_errors_after: after.test.errors };
    } finally {
      model.dispose();
    }
  },
});
