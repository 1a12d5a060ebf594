/**
 * `distill-sweep`: the paper's temperature experiment as one stage: a student of each hidden
 * width distilled at each temperature from one teacher (teacher logits computed once), plus an
 * optional hard-label student per width. Writes `sweep.json` and each student's training curves
 * as TensorBoard events in `<cell id>/tb/` (e.g. `w800-T4/tb/`); finished cells survive a crash.
 */
import { existsSync, readFileSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { writeJsonAtomic } from '../../src/artifacts/atomic.ts';
import { TB_DIR, TB_FILE, writeTrainingCurves } from '../../src/tensorboard/training-curves.ts';
import { defineStage, type StageContext } from '../stage.ts';
import { modelKeys, resolveModel, trainingSchema } from '../schemas.ts';
import { withWidth } from '../../src/models/arch/index.ts';
import type { SplitMetrics } from './common.ts';
import { checkTeacherParams, disposePrepared, distillDeps, distillSourceSchema, prepareDistillation, teacherRowsFor, type PreparedDistillation } from './distill.ts';
import { SOFT_LOSS_KEYS } from '../../src/distill/loss-registry.ts';
import { trainStudent, type LossConfig } from './student.ts';

const { hidden: _hidden, ...studentShape } = modelKeys;

const schema = z
  .strictObject({
    ...distillSourceSchema,
    ...studentShape,
    ...trainingSchema,
    /**
     * Units per hidden layer of the students, one student per width and temperature: each hidden
     * layer of the student's architecture gets this width (an MLP's `hidden`, a CNN's `dense`).
     */
    widths: z.array(z.number().int().positive().max(100_000)).min(1),
    /** Number of hidden layers of every student, with the stage-level MLP keys (default 2); with `model:`, its own layers count. */
    depth: z.number().int().min(1).max(16).optional(),
    /** Temperatures of the soft term. */
    temperatures: z.array(SOFT_LOSS_KEYS.T).min(1),
    /** Weight of the soft term (the hard-label term gets 1 - alpha). */
    alpha: SOFT_LOSS_KEYS.alpha,
    /** Also train each width on hard labels only (the row "hard" of the table). */
    hard_baseline: z.boolean().default(true),
  })
  .superRefine((p, ctx) => {
    checkTeacherParams(p, true, ctx);
    if (p.model !== undefined && p.depth !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['depth'], message: `depth is for the stage-level MLP keys; with 'model:' the student's own hidden layers count (e.g. model: {type: mlp, hidden: [${Array(p.depth).fill(800).join(', ')}]}: each width replaces them)` });
    }
    if (p.model !== undefined) {
      for (const [i, w] of p.widths.entries()) {
        try {
          withWidth(p.model, w);
        } catch (e) {
          ctx.addIssue({ code: 'custom', path: ['model'], message: `widths[${i}]: ${(e as Error).message}` });
          break;
        }
      }
    }
    if ((p.transfer.source ?? 'train') !== 'train' && p.hard_baseline) {
      ctx.addIssue({ code: 'custom', path: ['hard_baseline'], message: "hard-label students cannot learn from unlabeled transfer rows: set hard_baseline: false, or transfer.source: train" });
    }
  })
  .transform((p, ctx) => {
    const { depth, ...rest } = resolveModel(p, ctx);
    // The stage-level form: `depth` hidden layers (their widths set per cell).
    if (p.model === undefined && rest.model.type === 'mlp') rest.model = { ...rest.model, hidden: Array.from({ length: depth ?? 2 }, () => p.widths[0]!) };
    return { ...rest, depth: rest.model.type === 'mlp' ? rest.model.hidden.length : (depth ?? null) };
  });
/** Params of the `distill-sweep` stage. */
export type DistillSweepParams = z.output<typeof schema>;

/** One trained student of the sweep. */
export interface SweepCell {
  width: number;
  /** Temperature, or null for the hard-label baseline. */
  T: number | null;
  test: SplitMetrics;
  valid: SplitMetrics;
  best_epoch: number;
  /** Accuracy on the labelled transfer rows (null when all are unlabeled). */
  transfer_accuracy: number | null;
}

/** Content of `sweep.json`. */
export interface SweepFile {
  widths: number[];
  temperatures: number[];
  /** Hidden layers of an MLP student; null for another architecture. */
  depth: number | null;
  alpha: number;
  teacher: string[] | null;
  transfer_examples: number;
  cells: SweepCell[];
}

/** `distill-sweep`: students of several widths distilled at several temperatures from one teacher. */
export const distillSweepStage = defineStage({
  type: 'distill-sweep',
  description: 'distil one teacher into students of several hidden widths at several temperatures (table of test errors)',
  schema,
  deps: distillDeps,
  code: ['pipeline/stages/distill-sweep.ts'],
  async run(ctx) {
    const p = ctx.params;
    const prep = await prepareDistillation(ctx as StageContext<unknown>, p, true);
    try {
      return await sweep(ctx, p, prep);
    } finally {
      disposePrepared(prep);
    }
  },
});

/** The folder name of one sweep cell, e.g. `w800-T4` or `w800-hard`. */
function cellId(width: number, T: number | null): string {
  return `w${width}-${T === null ? 'hard' : `T${T}`}`;
}

async function sweep(ctx: StageContext<DistillSweepParams>, p: DistillSweepParams, prep: PreparedDistillation): Promise<Record<string, number>> {
    const cellsDir = path.join(ctx.scratchDir, 'cells');
    await fs.mkdir(cellsDir, { recursive: true });
    const plan: { width: number; T: number | null }[] = [];
    for (const width of p.widths) {
      if (p.hard_baseline) plan.push({ width, T: null });
      for (const T of p.temperatures) plan.push({ width, T });
    }
    const cells: SweepCell[] = [];
    for (const [i, { width, T }] of plan.entries()) {
      const id = cellId(width, T);
      const done = path.join(cellsDir, `${id}.json`);
      if (existsSync(done)) {
        cells.push(JSON.parse(readFileSync(done, 'utf8')) as SweepCell);
        ctx.log.info(`[${i + 1}/${plan.length}] ${id}: finished before, reused`);
        continue;
      }
      const loss: LossConfig = T === null ? { type: 'hard' } : { type: 'soft', T, alpha: p.alpha };
      ctx.log.info(`[${i + 1}/${plan.length}] ${id}: training`);
      const r = await trainStudent({
        transfer: prep.transfer,
        teacher: teacherRowsFor(prep, loss),
        online: prep.online,
        valid: prep.data.valid,
        test: prep.data.test,
        classes: prep.classes,
        model: withWidth(p.model, width),
        training: p,
        loss,
        seed: ctx.seed,
        checkpointDir: path.join(ctx.scratchDir, `checkpoint-${id}`),
        log: ctx.log,
      });
      r.model.dispose();
      // Curves first, then the cell's done marker: a reused cell always has its curves.
      await writeTrainingCurves(path.join(cellsDir, id), r.history);
      const cell: SweepCell = { width, T, test: r.test, valid: r.valid, best_epoch: r.bestEpoch, transfer_accuracy: r.transfer?.accuracy ?? null };
      await writeJsonAtomic(done, cell);
      await fs.rm(path.join(ctx.scratchDir, `checkpoint-${id}`), { recursive: true, force: true });
      ctx.log.info(`[${i + 1}/${plan.length}] ${id}: ${r.test.errors} test errors of ${r.test.examples}`);
      cells.push(cell);
    }
    for (const { width, T } of plan) {
      const id = cellId(width, T);
      await fs.mkdir(path.join(ctx.outDir, id, TB_DIR), { recursive: true });
      await fs.copyFile(path.join(cellsDir, id, TB_DIR, TB_FILE), path.join(ctx.outDir, id, TB_DIR, TB_FILE));
    }
    const out: SweepFile = {
      widths: p.widths,
      temperatures: p.temperatures,
      depth: p.depth,
      alpha: p.alpha,
      teacher: prep.teacherLabel,
      transfer_examples: prep.transfer.n,
      cells,
    };
    await writeJsonAtomic(path.join(ctx.outDir, 'sweep.json'), out);
    return { cells: cells.length };
}
