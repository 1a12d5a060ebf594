/**
 * The report's HTML generation without a browser: the heatmap ordering and downsampling by hand,
 * escaping, the markdown subset, and which sections appear for which artifacts.
 */
import { describe, it, expect, beforeEach } from 'vitest';
import { mkdirSync, mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { heatmapGrid, orderByClusters, quantise } from '../../src/report/heatmap.ts';
import { escapeHtml, inlineScript, jsonForScript } from '../../src/report/escape.ts';
import { markdownToHtml } from '../../src/report/markdown.ts';
import { collectRun } from '../../src/report/collect.ts';
import { renderReport, SECTION_IDS } from '../../src/report/html.ts';
import { writeReport } from '../../src/report/write.ts';
import type { ChartDef } from '../../src/report/charts.ts';

describe('heatmap data', () => {
  it('orders classes by cluster, first cluster wins for overlapping classes', () => {
    const o = orderByClusters(6, [[4, 1], [1, 3, 0]]);
    expect(o.order).toEqual([4, 1, 3, 0, 2, 5]);
    expect(o.blocks).toEqual([
      { cluster: 0, start: 0, end: 2 },
      { cluster: 1, start: 2, end: 4 },
    ]);
    expect(o.unclustered).toBe(2);
  });

  it('keeps the full matrix, permuted, and the off-diagonal colour maximum', () => {
    // cov[i][j] = 10 i + j, diagonal made large.
    const C = 3;
    const cov = new Float32Array(C * C).map((_, k) => 10 * Math.floor(k / C) + (k % C));
    cov[0] = 100;
    const g = heatmapGrid(cov, C, [2, 0, 1]);
    expect(g.kind).toBe('covariance');
    expect(g.side).toBe(3);
    expect(Array.from(g.values)).toEqual([22, 20, 21, 2, 100, 1, 12, 10, 11]);
    expect(g.colorMax).toBe(21); // largest off-diagonal entry, not the 100 on the diagonal
  });

  it('downsamples to blocks of mean |cov| above the limit', () => {
    // C = 5, at most 2 blocks per side: blocks of 3 classes, the last holding 2.
    const C = 5;
    const cov = new Float32Array(C * C).map((_, k) => (k % 2 === 0 ? 1 : -3) * (1 + Math.floor(k / C)));
    const g = heatmapGrid(cov, C, [0, 1, 2, 3, 4], { fullLimit: 4, maxSide: 2 });
    expect(g).toMatchObject({ kind: 'mean-abs', side: 2, blockSize: 3 });
    // |cov[i][j]| = (1 or 3) x (i + 1), with 1 where i*5+j is even.
    const abs = (i: number, j: number): number => ((i * C + j) % 2 === 0 ? 1 : 3) * (i + 1);
    const mean = (rows: number[], cols: number[]): number => rows.reduce((a, i) => a + cols.reduce((b, j) => b + abs(i, j), 0), 0) / (rows.length * cols.length);
    const expected = [mean([0, 1, 2], [0, 1, 2]), mean([0, 1, 2], [3, 4]), mean([3, 4], [0, 1, 2]), mean([3, 4], [3, 4])];
    expect(Array.from(g.values).map((v) => +v.toFixed(5))).toEqual(expected.map((v) => +v.toFixed(5)));
    expect(g.colorMax).toBeCloseTo(Math.max(expected[1]!, expected[2]!), 5);
  });

  it('quantises relative to the largest |value|', () => {
    expect(quantise([0.5, -1, 0.25, 0], 100)).toEqual({ scale: 1, levels: 100, q: [50, -100, 25, 0] });
    expect(quantise([0, 0]).q).toEqual([0, 0]);
  });
});

describe('escaping and markdown', () => {
  it('escapes text, JSON in script elements and inlined scripts', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    const v = { s: '</script><!-- & \u2028' };
    const j = jsonForScript(v);
    expect(j).not.toMatch(/<|>|&|\u2028/);
    expect(JSON.parse(j)).toEqual(v);
    expect(inlineScript('var a = "</script>", b = "<!--";')).toBe('var a = "<\\/script>", b = "<\\x21--";');
    // The rewritten source means the same thing.
    // eslint-disable-next-line no-new-func
    expect(new Function(`${inlineScript('var a = "</SCRIPT><!--";')} return a;`)()).toBe('</SCRIPT><!--');
  });

  it('renders headings, tables, lists, inline code; escapes everything', () => {
    const html = markdownToHtml('# Title <x>\n\nIntro with `code` and **bold**.\n\n| a | b |\n| --- | --- |\n| <img src=x onerror=alert(1)> | 12.5% |\n\n- one\n- two & three\n');
    expect(html).toContain('<h3>Title &lt;x&gt;</h3>');
    expect(html).toContain('<p>Intro with <code>code</code> and <strong>bold</strong>.</p>');
    expect(html).toContain('<thead><tr><th>a</th><th>b</th></tr></thead>');
    expect(html).toContain('<td>&lt;img src=x onerror=alert(1)&gt;</td><td class="num">12.5%</td>');
    expect(html).toContain('<ul><li>one</li><li>two &amp; three</li></ul>');
    expect(html).not.toContain('<img');
  });
});

// ---------------------------------------------------------------- fixture run folders

let run: string;
let stamp = 0;
function stage(name: string, type: string, files: Record<string, string | Uint8Array>, params: Record<string, unknown> = {}): void {
  const dir = path.join(run, name);
  for (const [f, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    writeFileSync(path.join(dir, f), content);
  }
  const t = new Date(Date.UTC(2025, 0, 1, 0, 0, stamp++)).toISOString();
  const manifest = {
    stage: name,
    type,
    params,
    seed: 3,
    key: 'k',
    inputs: {},
    code: { sha256: 'c', files: 1 },
    outputs: Object.fromEntries(Object.keys(files).map((f) => [f, 'h'])),
    backend: { name: 'cpu', tfBackend: 'cpu', detail: 'cpu backend' },
    started_at: t,
    ended_at: t,
    seconds: 1.5,
    peak_rss_mb: 100,
    package_version: '0.1.0',
    node_version: 'v20',
  };
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
}
const json = (v: unknown): string => JSON.stringify(v);
const EVIL = '<script>alert("x")</script>';

function ingestAndGeneralist(C: number): void {
  stage('ingest', 'ingest', {
    'classes.json': json({ classes: Array.from({ length: C }, (_, i) => ({ index: i, name: i === 1 ? EVIL : `class ${i}`, counts: { train: 10, valid: 2, test: 3 } })), dim: 4, shape: null, source: 'x', rows: { train: 10 * C, valid: 2 * C, test: 3 * C } }),
  });
  stage(
    'generalist',
    'generalist',
    {
      'metrics.jsonl': [1, 2].map((e) => json({ epoch: e, train_loss: 1 / e, train_accuracy: 0.5 + e / 10, valid_loss: 1.1 / e, valid_accuracy: 0.45 + e / 10 })).join('\n') + '\n',
      'metrics.json': json({ test: { accuracy: 0.75, errors: 25, examples: 100 }, valid: { accuracy: 0.7, errors: 6, examples: 20 }, best_epoch: 2 }),
    },
    { hidden: [8, 8] },
  );
}

function covarianceStage(C: number): void {
  const cov = new Float32Array(C * C).map((_, k) => (Math.floor(k / C) === k % C ? 0.1 : -0.01 * ((k * 7) % 5)));
  stage('covariance', 'covariance', { 'covariance.bin': new Uint8Array(cov.buffer), 'covariance.json': json({ classes: C, source: 'probabilities', split: 'valid', examples: 20, mean: Array.from({ length: C }, () => 1 / C) }) });
}

function chartsOf(html: string): ChartDef[] {
  const m = /<script type="application\/json" id="report-charts">([\s\S]*?)<\/script>/.exec(html);
  return JSON.parse(m![1]!) as ChartDef[];
}
function sectionsOf(html: string): string[] {
  return [...html.matchAll(/<section id="([a-z-]+)">/g)].map((m) => m[1]!);
}
const NO_ASSETS = { scripts: [] };

beforeEach(() => {
  run = mkdtempSync(path.join(os.tmpdir(), 'report-html-'));
  stamp = 0;
});

describe('sections follow the artifacts', () => {
  it('only summary, models and curves for a run with just a trained model', async () => {
    ingestAndGeneralist(4);
    const html = renderReport(await collectRun(run), NO_ASSETS);
    expect(sectionsOf(html)).toEqual(['summary', 'models', 'curves']);
    expect(chartsOf(html).map((c) => c.id)).toEqual(['chart-curves-0']);
    expect(html).toContain('<td>2x8</td>');
    expect(html).toContain('75.00%');
    expect(html).toContain(`<title>${path.basename(run)}: run report</title>`);
  });

  it('every section for a full run; class names and markdown are escaped', async () => {
    const C = 6;
    ingestAndGeneralist(C);
    covarianceStage(C);
    const clusters = [[0, 2, 4], [1, 3, 5]];
    stage('clusters', 'clusters', {
      'clusters.json': json({
        k: 2,
        classes: C,
        options: { covariance: 'covariance' },
        generalist_valid_accuracy: 0.7,
        classes_per_coverage: { 1: 6 },
        clusters: clusters.map((cl, id) => ({ id, size: 3, classes: cl, names: cl.map((i) => (i === 1 ? EVIL : `class ${i}`)), within_mass: 0.1, between_mass: 0.2, generalist_accuracy_within: 0.6, valid_examples: 6 })),
      }),
    });
    const spec = (id: string, acc: number) => ({ id, size: 3, classes: [0, 1, 2], within_examples: 6, specialist_accuracy_within: acc, generalist_accuracy_within: 0.5, generalist_accuracy_within_full: 0.5, natural_rate: 0.5, mean_dustbin_prob: 0.48, dustbin_offset: 0.1, log_oversampling: 0, specialist_auc: 0.9, generalist_auc: 0.8 });
    const history = [{ epoch: 1, train_loss: 2, train_accuracy: 0.5, valid_loss: 2.1, valid_accuracy: 0.4 }];
    stage('specialists', 'specialists', {
      'specialists.json': json({ head: 'dustbin', correction: 'fitted', specialists: [spec('specialist-00', 0.6), spec('specialist-01', 0.7)] }),
      'specialist-00/metrics.json': json({ id: 'specialist-00', history }),
      'specialist-01/metrics.json': json({ id: 'specialist-01', history }),
    });
    const row = (k: number, examples: number, g: number, e: number) => ({ specialists: k, label: String(k), examples, generalist_correct: g, ensemble_correct: e, relative_change: g ? (e - g) / g : null });
    stage('ensemble', 'ensemble', {
      'metrics.json': json({
        examples: 100,
        generalist: { accuracy: 0.75, correct: 75 },
        ensemble: { accuracy: 0.8, correct: 80 },
        conditional: { examples: 60, generalist_accuracy: 0.7, ensemble_accuracy: 0.78 },
        by_coverage: [row(0, 40, 33, 33), row(1, 60, 42, 47), row(2, 0, 0, 0)],
        by_membership: [row(0, 0, 0, 0), row(1, 70, 50, 55), row(2, 30, 25, 25)],
        by_membership_kind: { bridge: [row(2, 30, 25, 25)] },
        weight: 0.5,
        weight_table: [{ weight: 0.5, accuracy: 0.8 }],
      }),
    });
    stage('student', 'distill', { 'metrics.json': json({ test: { accuracy: 0.78, errors: 22, examples: 100 }, loss: 'soft', T: 4, alpha: 0.9 }) }, { hidden: [4] });
    stage('hard_twin', 'distill', { 'metrics.json': json({ test: { accuracy: 0.77, errors: 23, examples: 100 }, loss: 'hard', T: null, alpha: null }) }, { hidden: [4] });
    stage('sweep', 'distill-sweep', {
      'sweep.json': json({
        widths: [4],
        temperatures: [1, 2],
        depth: 1,
        alpha: 0.9,
        teacher: null,
        transfer_examples: 10,
        cells: [null, 1, 2].map((T) => ({ width: 4, T, test: { accuracy: 0.9, errors: 10, examples: 100, loss: 1 }, valid: { accuracy: 0.9, errors: 2, examples: 20, loss: 1 }, best_epoch: 1, transfer_accuracy: 1 })),
      }),
    });
    stage('results', 'results', { 'results.md': `# Sweep\n\n| T | errors |\n| --- | --- |\n| 2 | 10 |\n\n- note ${EVIL}\n`, 'results.json': json({ experiment: EVIL }) });
    const data = await collectRun(run);
    expect(data.warnings).toEqual([]);
    const html = renderReport(data, NO_ASSETS);
    expect(sectionsOf(html)).toEqual([...SECTION_IDS]);
    expect(html).not.toContain(EVIL);
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    const charts = chartsOf(html);
    expect(charts.map((c) => c.id)).toEqual(['chart-curves-0', 'chart-curves-1', 'chart-covariance', 'chart-specialists', 'chart-ensemble-0', 'chart-coverage-0', 'chart-membership-0', 'chart-sweep-0']);
    // The heatmap: full 6 x 6 in cluster order [0,2,4,1,3,5], two outlined blocks of 3.
    const heat = charts.find((c) => c.id === 'chart-covariance')!;
    expect(heat.matrix!.side).toBe(6);
    expect(heat.matrix!.q).toHaveLength(36);
    expect(heat.matrix!.labels).toEqual(['class 0', 'class 2', 'class 4', EVIL, 'class 3', 'class 5']);
    const outlines = ((heat.spec.layer as Record<string, unknown>[])[1]!.data as { values: unknown[] }).values;
    expect(outlines).toEqual([
      { cluster: 0, start: 0, end: 3, classes: 3 },
      { cluster: 1, start: 3, end: 6, classes: 3 },
    ]);
    // Tables 3 and 4: accuracy, conditional accuracy, relative change; empty coverage buckets left out.
    expect(html).toContain('<td>specialist ensemble</td><td class="num">80.00%</td><td class="num">78.00%</td>');
    expect(html).toContain('<td>distilled student: student (1x4)</td><td class="num">78.00%</td>');
    expect(html).toContain('<td>hard labels, no teacher: hard_twin (1x4)</td><td class="num">77.00%</td>');
    expect(html).toContain('<td class="num">1</td><td class="num">60</td><td class="num">42</td><td class="num">47</td><td class="num">+11.9%</td>');
    expect(html).not.toMatch(/<td class="num">2<\/td><td class="num">0<\/td>/);
    // Table 4 by cluster membership of the true class, and its bridge-class split.
    expect(html).toContain('<h3>By number of clusters holding the true class (Table 4)</h3>');
    expect(html).toContain('<td class="num">1</td><td class="num">70</td><td class="num">50</td><td class="num">55</td><td class="num">+10.0%</td>');
    expect(html).toContain('bridge classes only');
    expect(html).toContain('<td class="num">2</td><td class="num">30</td><td class="num">25</td><td class="num">25</td><td class="num">+0.0%</td>');
    // Specialists: accuracy change in points and the dustbin rate.
    expect(html).toContain('<td class="num">+20.00</td><td class="num">48.0%</td><td class="num">50.0%</td>');
    // The results table from results.md.
    expect(html).toContain('<h3>Sweep</h3>');
    expect(html).toContain('<td class="num">2</td><td class="num">10</td>');
  });

  it('downsamples the covariance of many classes into blocks', async () => {
    const C = 250;
    ingestAndGeneralist(C);
    covarianceStage(C);
    const html = renderReport(await collectRun(run), NO_ASSETS);
    const heat = chartsOf(html).find((c) => c.id === 'chart-covariance')!;
    // ceil(250 / 100) = 3 classes per block, ceil(250 / 3) = 84 blocks per side.
    expect(heat.matrix!.side).toBe(84);
    expect(heat.matrix!.q).toHaveLength(84 * 84);
    expect(heat.matrix!.labels[83]).toBe('class 249');
    expect(heat.matrix!.labels[0]).toBe("class 0 ... class 2 (3 classes)");
    expect(html).not.toContain(EVIL);
    expect(html.length).toBeLessThan(120_000);
  });

  it('an unreadable artifact becomes a warning and its section is left out', async () => {
    ingestAndGeneralist(4);
    stage('clusters', 'clusters', { 'clusters.json': '{"k": 2, "clusters": "nope"' });
    const data = await collectRun(run);
    expect(data.warnings).toHaveLength(1);
    expect(data.warnings[0]).toMatch(/^clusters\/clusters\.json: /);
    const html = renderReport(data, NO_ASSETS);
    expect(sectionsOf(html)).not.toContain('clusters');
    expect(html).toContain('Some artifacts could not be read');
  });

  it('stages: only the listed stages are read', async () => {
    ingestAndGeneralist(4);
    const data = await collectRun(run, { stages: ['ingest'] });
    expect(data.stages.map((s) => s.name)).toEqual(['ingest']);
    expect(data.models).toEqual([]);
  });
});

describe('writing the report', () => {
  it('writes a self-contained page with the libraries inlined', async () => {
    ingestAndGeneralist(4);
    const file = path.join(run, 'report', 'index.html');
    stage('report', 'report', { 'index.html': 'old' });
    // A page the report did not write is replaced only with force (what the CLI does for its default path).
    await expect(writeReport(run, file)).rejects.toThrow(/already exists and was not written by distill-kit; choose another --out path, or add --force/);
    expect(readFileSync(file, 'utf8')).toBe('old');
    const w = await writeReport(run, file, { force: true });
    const html = readFileSync(file, 'utf8');
    expect(w.charts).toBe(1);
    expect(html).toMatch(/<script data-lib="vega">!function/);
    expect(html).not.toMatch(/<script[^>]*\bsrc=/);
    // An earlier report page is replaced without force; a user's file at --out is not.
    await writeReport(run, file, { title: 'again' });
    expect(readFileSync(file, 'utf8')).toContain('again');
    const mine = path.join(run, 'notes.html');
    writeFileSync(mine, '<html>my notes</html>');
    await expect(writeReport(run, mine)).rejects.toThrow(/notes\.html already exists/);
    expect(readFileSync(mine, 'utf8')).toBe('<html>my notes</html>');
  });
});
