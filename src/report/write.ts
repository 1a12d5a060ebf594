/** Generates a run's HTML report and writes it atomically. */
import path from 'node:path';
import { writeFileAtomic } from '../artifacts/atomic.ts';
import { checkOutputFile, GENERATOR, htmlHasGenerator } from '../artifacts/output-file.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { collectRun, type CollectOptions } from './collect.ts';
import { renderReport, type RenderOptions } from './html.ts';
import { loadVegaAssets } from './assets.ts';

/** Options of {@link writeReport}. */
export interface WriteReportOptions extends CollectOptions, RenderOptions {
  log?: Logger;
  /**
   * The path to print for the page, when `file` is not where it will stay (the report stage
   * writes into a temporary folder that then replaces `report/`). Default `file`.
   */
  shownAs?: string;
  /**
   * Replace an existing `file` that distill-kit did not write (an earlier report page is replaced
   * anyway). Without it such a file is an error and nothing is written.
   */
  force?: boolean;
}

/** What {@link writeReport} wrote. */
export interface WrittenReport {
  file: string;
  bytes: number;
  /** Number of charts on the page. */
  charts: number;
  /** Artifacts that could not be read (also listed on the page). */
  warnings: string[];
}

/**
 * Reads the run folder `runDir`, renders the self-contained report page and writes it to `file`
 * (temp file + rename).
 * @throws UserError('io') when `file` is a folder, or a file that is not a distill-kit report and
 * `opts.force` is not set (checked before anything is read or written)
 */
export async function writeReport(runDir: string, file: string, opts: WriteReportOptions = {}): Promise<WrittenReport> {
  const log = opts.log ?? silentLogger;
  await checkOutputFile(file, { flag: '--out', force: opts.force ?? false, ours: (f) => htmlHasGenerator(f, GENERATOR.report) });
  const data = await collectRun(runDir, opts);
  const html = renderReport(data, loadVegaAssets(), opts);
  await writeFileAtomic(file, html);
  const bytes = Buffer.byteLength(html);
  const charts = (html.match(/class="vega-chart"/g) ?? []).length;
  for (const w of data.warnings) log.warn(w);
  log.info(`report: ${path.resolve(opts.shownAs ?? file)} (${(bytes / 1024).toFixed(0)} KiB, ${data.stages.length} stages, ${charts} charts)`);
  return { file, bytes, charts, warnings: data.warnings };
}
