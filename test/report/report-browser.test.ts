/**
 * The report in a real browser: a tiny synthetic pipeline (specialists, ensemble, a distilled
 * student, a temperature sweep and its results table, then the `report` stage) is rendered by
 * headless Chromium with the network refused; every chart must draw marks and the console must
 * stay free of errors. A screenshot `report.png` is saved next to the report.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { readManifest } from '../../src/artifacts/manifest.ts';
import { silentLogger } from '../../src/util/log.ts';
import { checkReportInBrowser, chromiumAvailable, CHROMIUM, type BrowserCheck } from './browser-check.ts';

const CONFIG = `
name: tiny-report
seed: 5
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 12, groups: 3, dim: 8, perClass: 30, seed: 3, classSpread: 0.5}}
  generalist:
    hidden: [16]
    epochs: 3
    batch_size: 32
    optimizer: {name: adam, lr: 0.01}
  covariance: {}
  clusters: {k: 3}
  specialists: {epochs: 2, batch_size: 32}
  ensemble: {top_n: 1}
  student: {type: distill, teacher: generalist, loss: {type: soft, T: 2}, hidden: [8], epochs: 2, batch_size: 32}
  sweep: {type: distill-sweep, teacher: generalist, widths: [4, 8], depth: 1, temperatures: [1, 2, 4], epochs: 2, batch_size: 32}
  results: {kind: temperature, sweep: sweep}
  report: {}
`;

const skip = !chromiumAvailable();
if (skip) console.log(`report-browser.test: skipped, ${CHROMIUM} is missing (apt-get install -y chromium)`);

describe.skipIf(skip)('HTML report in headless Chromium', () => {
  let out: string;
  let html: string;
  let check: BrowserCheck;

  beforeAll(async () => {
    out = mkdtempSync(path.join(os.tmpdir(), 'report-run-'));
    const cache = mkdtempSync(path.join(os.tmpdir(), 'report-cache-'));
    await runPipeline(parseConfig(CONFIG, 'tiny-report.yaml', STAGES), { out, cacheDir: cache, log: silentLogger });
    html = path.join(out, 'report', 'index.html');
    check = await checkReportInBrowser(html, path.join(out, 'report', 'report.png'));
  }, 120_000);

  it('the report stage wrote one self-contained page with its manifest', () => {
    expect(readManifest(path.join(out, 'report'))?.type).toBe('report');
    const text = readFileSync(html, 'utf8');
    // No external resource: every <script> is inline, no src/href to anything but in-page anchors.
    expect(text).not.toMatch(/<script[^>]*\bsrc=/i);
    expect(text).not.toMatch(/<link\b/i);
    expect(text.match(/href="([^"#][^"]*)"/g) ?? []).toEqual([]);
    for (const lib of ['vega', 'vega-lite', 'vega-embed']) expect(text).toContain(`data-lib="${lib}"`);
    // Libraries are ~0.8 MB; the run's own content must stay small.
    expect(statSync(html).size).toBeLessThan(1_200_000);
  });

  it('every chart rendered marks, with a title', () => {
    // curves: generalist, specialists, student; covariance; specialists; ensemble x3 (errors,
    // by_coverage, by_membership); sweep.
    expect(check.containers).toBe(9);
    expect(check.chartErrors).toBe(0);
    expect(check.charts).toHaveLength(check.containers);
    for (const c of check.charts) {
      expect(c.hasGraphic, c.id).toBe(true);
      expect(c.marks, c.id).toBeGreaterThan(0);
      expect(c.title.length, c.id).toBeGreaterThan(0);
    }
    const byId = new Map(check.charts.map((c) => [c.id, c]));
    // 12 x 12 covariance cells + one outline per cluster.
    expect(byId.get('chart-covariance')!.marks).toBe(144 + 3);
    expect(byId.has('chart-membership-0')).toBe(true);
    // 2 widths x 3 temperatures: 6 line vertices (a vega line has one item per point) + 6 points,
    // and 2 hard-label rules.
    expect(byId.get('chart-sweep-0')!.marks).toBe(6 + 6 + 2);
  });

  it('no console errors and no network requests', () => {
    expect(check.consoleErrors).toEqual([]);
    expect(check.networkRequests).toEqual([]);
  });

  it('saved a screenshot next to the report', () => {
    const png = path.join(out, 'report', 'report.png');
    expect(existsSync(png)).toBe(true);
    expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
    console.log(`report screenshot: ${png}`);
  });
});
