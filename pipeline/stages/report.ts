/**
 * `report`: the last stage of a config. Writes `index.html`, one self-contained page (charts
 * and data inlined, no network) summarising the run folder's finished stages.
 */
import path from 'node:path';
import { z } from 'zod';
import { defineStage } from '../stage.ts';
import { writeReport } from '../../src/report/write.ts';
import { failpoint } from '../../src/util/failpoint.ts';

const schema = z.strictObject({
  /**
   * Stages to report on. Default `[]`: every stage above it in the config. They are its
   * dependencies, so the report is regenerated whenever one of them reruns.
   */
  stages: z.array(z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'a stage name')).default([]),
  /** Page title; default the config's `name`. */
  title: z.string().min(1).optional(),
  /** Full covariance heatmap up to this many classes; blocks of mean |cov| above. */
  heatmap_full_limit: z.number().int().positive().max(400).default(200),
  /** Blocks per side of a downsampled heatmap. */
  heatmap_blocks: z.number().int().positive().max(200).default(100),
});
/** Params of the `report` stage. */
export type ReportParams = z.output<typeof schema>;

/** `report`: the run's HTML report, `report/index.html`. */
export const reportStage = defineStage({
  type: 'report',
  description: 'write a self-contained HTML report of the run (tables, training curves, covariance, ensemble)',
  schema,
  // The listed stages must have run; without a list, every stage above that has run is shown
  // (`--only results,report` on a folder where some rows were never trained still gets its page).
  deps: (p) => p.stages,
  optionalDeps: (p, earlier) => (p.stages.length ? [] : earlier),
  code: ['pipeline/stages/report.ts'],
  // The page shows run times: it differs between otherwise identical runs, and `npm run report`
  // rewrites it in place.
  volatile: ['index.html'],
  async run(ctx) {
    const p = ctx.params;
    const written = await writeReport(ctx.runDir, path.join(ctx.outDir, 'index.html'), {
      ...(p.stages.length ? { stages: p.stages } : {}),
      ...(p.title !== undefined ? { title: p.title } : ctx.configName !== undefined ? { title: ctx.configName } : {}),
      // Printed where the page will be once this stage's folder is in place, not the temporary one.
      shownAs: path.join(ctx.runDir, ctx.name, 'index.html'),
      heatmapFullLimit: p.heatmap_full_limit,
      heatmapMaxSide: p.heatmap_blocks,
      log: ctx.log,
    });
    failpoint('report-written');
    return { bytes: written.bytes, charts: written.charts, warnings: written.warnings.length };
  },
});
