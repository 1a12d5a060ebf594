/**
 * Renders {@link ReportData} as one self-contained HTML page: inline CSS, the chart library
 * scripts passed in, chart specs and data as JSON. Each section appears only when its artifacts
 * exist. All text from the run folder is escaped.
 */
import type { ClustersInfo, EnsembleInfo, ModelRow, ReportData, SpecialistsInfo } from './collect.ts';
import { coverageSpec, covarianceHeatmapSpec, clusterSizeSpec, ensembleErrorSpec, specialistAccuracySpec, sweepSpec, trainingCurveSpec, type ChartDef } from './charts.ts';
import { heatmapGrid, orderByClusters, quantise } from './heatmap.ts';
import { markdownToHtml } from './markdown.ts';
import { escapeHtml as esc, inlineScript, jsonForScript } from './escape.ts';
import { BOOTSTRAP_JS } from './bootstrap.ts';
import { generatorMeta, GENERATOR } from '../artifacts/output-file.ts';

/** Scripts inlined before the page's own (vega, vega-lite, vega-embed, in that order). */
export interface ReportAssets {
  scripts: { name: string; source: string }[];
}

/** Options of {@link renderReport}. */
export interface RenderOptions {
  /** Full covariance matrix up to this many classes, blocks above (default 200). */
  heatmapFullLimit?: number;
  /** Blocks per side of a downsampled heatmap (default 100). */
  heatmapMaxSide?: number;
}

/** Section ids, in page order (the unit tests check which are present). */
export const SECTION_IDS = ['summary', 'models', 'curves', 'covariance', 'clusters', 'specialists', 'ensemble', 'distillation'] as const;

const pct = (v: number | null | undefined, digits = 2): string => (v === null || v === undefined || !Number.isFinite(v) ? '–' : `${(100 * v).toFixed(digits)}%`);
const num = (v: number | null | undefined, digits = 4): string => (v === null || v === undefined || !Number.isFinite(v) ? '–' : Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(1) : String(+v.toFixed(digits)));
const seconds = (s: number): string => (s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`);

/** A table cell: numbers right-aligned, text escaped; `{html}` is trusted markup built here. */
type Cell = string | number | { html: string; num?: boolean; title?: string };

function table(header: string[], rows: Cell[][], cls = ''): string {
  const td = (c: Cell): string => {
    if (typeof c === 'number') return `<td class="num">${esc(num(c))}</td>`;
    if (typeof c === 'string') return `<td${/^[-+–]?[\d.,]+(%| s| min| h| MiB)?$/.test(c) || c === '–' ? ' class="num"' : ''}>${esc(c)}</td>`;
    return `<td${c.num ? ' class="num"' : ''}${c.title ? ` title="${esc(c.title)}"` : ''}>${c.html}</td>`;
  };
  return `<div class="table-wrap"><table${cls ? ` class="${cls}"` : ''}><thead><tr>${header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map(td).join('')}</tr>`).join('')}</tbody></table></div>`;
}

function names(list: string[], max = 12): Cell {
  const shown = list.slice(0, max).map(esc).join(', ');
  return { html: list.length > max ? `${shown}, <span class="more">+${list.length - max} more</span>` : shown, title: list.join(', ') };
}

function section(id: string, title: string, body: string): string {
  return `<section id="${id}"><h2>${esc(title)}</h2>${body}</section>`;
}

function chartBox(c: ChartDef, charts: ChartDef[], caption = ''): string {
  charts.push(c);
  return `<figure class="chart"><div id="${esc(c.id)}" class="vega-chart" data-chart="${esc(c.id)}"></div>${caption ? `<figcaption>${caption}</figcaption>` : ''}</figure>`;
}

function summarySection(d: ReportData): string {
  const uniq = <T>(xs: T[]): T[] => [...new Set(xs)];
  const backends = uniq(d.stages.map((s) => `${s.manifest.backend.name} (${s.manifest.backend.detail})`));
  const seeds = uniq(d.stages.map((s) => s.manifest.seed));
  const total = d.stages.reduce((a, s) => a + s.manifest.seconds, 0);
  const facts: [string, string][] = [
    ['config', d.title],
    ['backend', backends.join(', ') || '–'],
    ['seed', seeds.join(', ') || '–'],
    ['stages', `${d.stages.length} finished, ${seconds(total)} in total`],
    ['package', uniq(d.stages.map((s) => s.manifest.package_version)).join(', ')],
    ['node', uniq(d.stages.map((s) => s.manifest.node_version)).join(', ')],
  ];
  let body = `<dl class="facts">${facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>`;
  const summary = (s: Record<string, unknown> | undefined): string =>
    s
      ? Object.entries(s)
          .filter(([, v]) => typeof v === 'number' || typeof v === 'string')
          .slice(0, 4)
          .map(([k, v]) => `${k}=${typeof v === 'number' ? (k.includes('accuracy') ? pct(v) : num(v)) : String(v)}`)
          .join(' ')
      : '';
  body += '<h3>Stages</h3>';
  body += table(
    ['stage', 'type', 'started', 'time', 'peak RSS', 'summary'],
    d.stages.map((s) => [s.name, s.type, s.manifest.started_at.replace('T', ' ').slice(0, 19), seconds(s.manifest.seconds), `${s.manifest.peak_rss_mb} MiB`, { html: `<span class="small">${esc(summary(s.manifest.summary))}</span>` }]),
  );
  if (d.classes) {
    const c = d.classes;
    const totals = c.counts.reduce((a, k) => ({ train: a.train + k.train, valid: a.valid + k.valid, test: a.test + k.test }), { train: 0, valid: 0, test: 0 });
    body += `<h3>Dataset</h3><p>${c.names.length} classes, ${c.dim} features${c.shape ? ` (shape [${esc(c.shape.join(', '))}])` : ''}; ${totals.train} train, ${totals.valid} valid, ${totals.test} test examples (from <code>${esc(c.stage)}/classes.json</code>).</p>`;
    const rows: Cell[][] = c.names.map((n, i) => [i, n, c.counts[i]!.train, c.counts[i]!.valid, c.counts[i]!.test]);
    body += `<details${c.names.length <= 20 ? ' open' : ''}><summary>Examples per class</summary>${table(['index', 'class', 'train', 'valid', 'test'], rows, 'compact')}</details>`;
  }
  return section('summary', 'Run summary', body);
}

function modelsSection(models: ModelRow[]): string {
  const rows: Cell[][] = models.map((m) => [
    m.stage,
    m.type,
    m.arch ?? '–',
    pct(m.test.accuracy),
    m.test.errors !== undefined ? `${m.test.errors} / ${m.test.examples ?? '?'}` : '–',
    pct(m.valid?.accuracy),
    m.best_epoch ?? '–',
    m.type === 'distill' || m.loss !== undefined ? [m.loss ?? '', m.T != null ? `T=${num(m.T)}` : '', m.alpha != null ? `α=${num(m.alpha)}` : ''].filter(Boolean).join(', ') : m.members ? `ensemble of ${m.members}` : '',
  ]);
  return section('models', 'Models', table(['stage', 'type', 'model', 'test accuracy', 'test errors', 'valid accuracy', 'best epoch', 'notes'], rows));
}

function clustersSection(c: ClustersInfo, charts: ChartDef[]): string {
  const coverage = Object.entries(c.classes_per_coverage)
    .map(([k, v]) => `${v} class${v === 1 ? '' : 'es'} in ${k} cluster${k === '1' ? '' : 's'}`)
    .join(', ');
  let body = `<p>${c.k} clusters from <code>${esc(c.stage)}/clusters.json</code>${coverage ? `; ${esc(coverage)}` : ''}${c.generalist_valid_accuracy !== null ? `; generalist validation accuracy overall ${pct(c.generalist_valid_accuracy)}` : ''}. A good cluster holds the generalist's confusions: its accuracy within the cluster is lower than overall.</p>`;
  body += table(
    ['cluster', 'size', 'classes', 'within mass', 'between mass', 'within / between', 'generalist acc. within', 'valid examples'],
    c.clusters.map((k) => [k.id, k.size, names(k.names), k.within_mass, k.between_mass, k.between_mass > 0 ? k.within_mass / k.between_mass : '–', pct(k.generalist_accuracy_within), k.valid_examples]),
  );
  if (c.clusters.length > 10) body += chartBox({ id: 'chart-cluster-sizes', spec: clusterSizeSpec(c), renderer: 'svg' }, charts);
  return section('clusters', 'Clusters', body);
}

function specialistsSection(s: SpecialistsInfo, classNames: string[] | undefined, charts: ChartDef[]): string {
  let body = `<p>${s.specialists.length} specialists (<code>${esc(s.stage)}/specialists.json</code>${s.head ? `; head ${esc(s.head)}` : ''}${s.correction ? `; dustbin correction ${esc(s.correction)}` : ''}). Accuracies are on validation examples of each specialist's classes, among those classes; the dustbin rate is the mean probability the specialist gives its dustbin class on all validation examples, against the fraction of examples outside its classes (the natural rate).</p>`;
  body += table(
    ['specialist', 'classes', 'valid examples', 'specialist acc.', 'generalist acc.', 'change', 'dustbin rate', 'natural rate', 'AUC specialist', 'AUC generalist'],
    s.specialists.map((x) => [
      x.id,
      classNames ? names(x.classes.map((i) => classNames[i] ?? String(i)), 8) : x.size,
      x.within_examples,
      pct(x.specialist_accuracy_within),
      pct(x.generalist_accuracy_within),
      `${x.specialist_accuracy_within >= x.generalist_accuracy_within ? '+' : ''}${(100 * (x.specialist_accuracy_within - x.generalist_accuracy_within)).toFixed(2)}`,
      pct(x.mean_dustbin_prob, 1),
      pct(x.natural_rate, 1),
      x.specialist_auc ?? '–',
      x.generalist_auc ?? '–',
    ]),
  );
  body += chartBox({ id: 'chart-specialists', spec: specialistAccuracySpec(s), renderer: 'svg' }, charts);
  return section('specialists', 'Specialists', body);
}

function ensembleSection(ensembles: EnsembleInfo[], distilled: ModelRow[], charts: ChartDef[]): string {
  let body = '';
  ensembles.forEach((e, i) => {
    const m = e.metrics;
    if (ensembles.length > 1) body += `<h3>${esc(e.stage)}</h3>`;
    const how = [m.solver ? `solver ${m.solver}` : '', m.top_n !== undefined ? `top ${m.top_n} generalist classes activate specialists` : '', m.weight !== undefined ? `specialist weight ${num(m.weight)}` : ''].filter(Boolean).join('; ');
    body += `<p>From <code>${esc(e.stage)}/metrics.json</code>${how ? ` (${esc(how)})` : ''}. The conditional accuracy counts only the ${m.conditional.examples} test cases where at least one specialist was active (the paper's Table 3).</p>`;
    const rows: Cell[][] = [
      ['generalist', pct(m.generalist.accuracy), pct(m.conditional.generalist_accuracy)],
      ['specialist ensemble', pct(m.ensemble.accuracy), pct(m.conditional.ensemble_accuracy)],
      ...distilled.map((d): Cell[] => [`${d.loss === 'hard' ? 'hard labels, no teacher' : 'distilled student'}: ${d.stage}${d.arch ? ` (${d.arch})` : ''}`, pct(d.test.accuracy), '–']),
    ];
    body += table(['model', 'test accuracy', 'conditional test accuracy'], rows);
    const header = ['test examples', 'generalist correct', 'ensemble correct', 'relative change'];
    body += '<h3>By number of active specialists covering the true class</h3>';
    body += '<p class="small"><code>by_coverage</code>: for each test case, the specialists active for it (their subset meets the generalist\'s top classes) whose subset holds the true class.</p>';
    body += table(['specialists covering', ...header], coverageRows(m.by_coverage));
    if (m.by_membership) {
      body += '<h3>By number of clusters holding the true class (Table 4)</h3>';
      body += '<p class="small"><code>by_membership</code>: the paper\'s grouping, every cluster that holds the true class, whether its specialist was active for the case or not.</p>';
      body += table(['clusters holding', ...header], coverageRows(m.by_membership));
      for (const [kind, rows] of Object.entries(m.by_membership_kind ?? {})) {
        body += `<p class="small">${esc(kind)} classes only:</p>`;
        body += table(['clusters holding', ...header], coverageRows(rows));
      }
    }
    const ab = m.overlap_ablation;
    if (ab?.by_membership && m.by_membership) {
      body += '<h3>Overlap ablation: one specialist per class</h3>';
      body += `<p class="small">The same test cases solved again with each class covered several times kept by one of its specialists and merged into the others' dustbins (${ab.memberships_removed} memberships withheld): test accuracy ${pct(ab.ensemble.accuracy)} against ${pct(m.ensemble.accuracy)} with every specialist. If the extra coverage caused the gain in the rows above 1, it would shrink here.</p>`;
      // Same buckets, same cases: each row of the full table beside its ablated twin.
      const rows = m.by_membership.filter((x) => x.examples > 0).map((full): Cell[] => {
        const [cells] = coverageRows([full]);
        const a = ab.by_membership!.find((x) => x.specialists === full.specialists);
        const [aCells] = a ? coverageRows([a]) : [];
        return [...cells!.slice(0, 4), a ? a.ensemble_correct : '–', cells![4]!, aCells ? aCells[4]! : '–'];
      });
      body += table(['clusters holding', 'test examples', 'generalist correct', 'ensemble correct', 'one specialist per class', 'relative change', 'one per class'], rows);
    }
    if (m.weight_table && m.weight_table.length) {
      body += `<p class="small">Specialist weight chosen on validation: ${m.weight_table.map((w) => `${esc(num(w.weight))} → ${pct(w.accuracy)}`).join(', ')}.</p>`;
    }
    body += '<div class="chart-row">';
    body += chartBox({ id: `chart-ensemble-${i}`, spec: ensembleErrorSpec(e, distilled), renderer: 'svg' }, charts);
    body += chartBox({ id: `chart-coverage-${i}`, spec: coverageSpec(e), renderer: 'svg' }, charts);
    if (m.by_membership) body += chartBox({ id: `chart-membership-${i}`, spec: coverageSpec(e, 'by_membership'), renderer: 'svg' }, charts);
    body += '</div>';
  });
  return section('ensemble', 'Generalist vs specialist ensemble vs distilled', body);
}

/** Table cells of a by-coverage / by-membership table, empty buckets left out. */
function coverageRows(rows: readonly { label: string; examples: number; generalist_correct: number; ensemble_correct: number; relative_change: number | null }[]): Cell[][] {
  return rows.filter((r) => r.examples > 0).map((r) => [r.label, r.examples, r.generalist_correct, r.ensemble_correct, r.relative_change === null ? '–' : `${r.relative_change >= 0 ? '+' : ''}${(100 * r.relative_change).toFixed(1)}%`]);
}

function covarianceSection(d: ReportData, opts: RenderOptions, charts: ChartDef[]): string {
  const cov = d.covariance!;
  const C = cov.classes;
  const clusters = d.clusters && d.clusters.clusters.every((k) => k.classes.every((c) => c < C)) ? d.clusters : undefined;
  const order = orderByClusters(C, clusters ? clusters.clusters.map((k) => k.classes) : []);
  const grid = heatmapGrid(cov.cov, C, order.order, {
    ...(opts.heatmapFullLimit !== undefined ? { fullLimit: opts.heatmapFullLimit } : {}),
    ...(opts.heatmapMaxSide !== undefined ? { maxSide: opts.heatmapMaxSide } : {}),
  });
  const classNames = d.classes && d.classes.names.length === C ? d.classes.names : Array.from({ length: C }, (_, i) => String(i));
  const what = grid.kind === 'covariance' ? `covariance of the generalist's predicted ${cov.source}` : `mean |covariance| of the generalist's ${cov.source} over blocks of ${grid.blockSize} classes`;
  const def = covarianceHeatmapSpec(
    {
      grid,
      order,
      classNames,
      title: `Prediction covariance (${C} x ${C})`,
      subtitle: `${what}, ${cov.examples} ${cov.split} examples${clusters ? '; classes ordered by cluster' : ''}`,
    },
    quantise(grid.values),
    'chart-covariance',
  );
  const overlap = clusters ? clusters.clusters.reduce((a, k) => a + k.classes.length, 0) > C : false;
  const caption = [
    `From <code>${esc(cov.stage)}/covariance.bin</code>.`,
    clusters ? `Outlined: the ${order.blocks.length} clusters of <code>${esc(clusters.stage)}</code>${overlap ? ' (clusters overlap: each class is drawn in the first cluster that lists it)' : ''}.` : 'No clusters stage: classes in index order.',
    grid.kind === 'covariance' ? `Colour clipped at the largest off-diagonal |covariance| (${esc(grid.colorMax.toExponential(2))}); the diagonal holds the variances.` : `Downsampled from ${C} classes to ${grid.side} x ${grid.side} blocks.`,
  ].join(' ');
  return section('covariance', 'Prediction covariance', chartBox(def, charts, caption));
}

function distillationSection(d: ReportData, charts: ChartDef[]): string {
  let body = '';
  for (const r of d.results) {
    body += `<div class="results"><p class="small">From <code>${esc(r.stage)}/results.md</code></p>`;
    if (r.markdown) body += markdownToHtml(r.markdown);
    if (r.json !== undefined) body += `<details><summary>results.json</summary><pre>${esc(JSON.stringify(r.json, null, 2))}</pre></details>`;
    body += '</div>';
  }
  d.sweeps.forEach((s, i) => {
    body += chartBox({ id: `chart-sweep-${i}`, spec: sweepSpec(s), renderer: 'svg' }, charts);
  });
  return section('distillation', 'Distillation experiments', body);
}

const CSS = `
:root { --fg: #1f2328; --muted: #59636e; --line: #d8dee4; --bg: #fff; --panel: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 20px 32px 12px; border-bottom: 1px solid var(--line); background: var(--panel); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .meta { color: var(--muted); font-size: 12px; word-break: break-all; }
nav { margin-top: 10px; display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; }
main { max-width: 1180px; padding: 8px 32px 40px; }
section { margin-top: 26px; padding-top: 6px; border-top: 1px solid var(--line); }
h2 { font-size: 18px; margin: 6px 0 10px; }
h3 { font-size: 15px; margin: 18px 0 8px; }
h4 { font-size: 14px; margin: 14px 0 6px; }
p { margin: 6px 0 10px; max-width: 900px; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; background: var(--panel); padding: 1px 4px; border-radius: 4px; }
pre { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; background: var(--panel); padding: 10px; overflow: auto; max-height: 320px; }
.small { font-size: 12px; color: var(--muted); }
.more { color: var(--muted); }
.table-wrap { overflow-x: auto; margin: 6px 0 12px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--panel); font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
td:first-child { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.compact td, table.compact th { padding: 2px 8px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 4px 0 10px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
details { margin: 6px 0 12px; }
summary { cursor: pointer; color: var(--accent); }
figure.chart { margin: 10px 0 18px; }
figcaption { font-size: 12px; color: var(--muted); max-width: 760px; margin-top: 4px; }
.chart-row { display: flex; flex-wrap: wrap; gap: 8px 40px; align-items: flex-start; }
.warnings { background: #fff8c5; border: 1px solid #d4a72c; padding: 8px 14px; margin-top: 16px; border-radius: 6px; }
.vega-embed { max-width: 100%; }
#vg-tooltip-element { font: 12px system-ui, sans-serif; }
`;

/**
 * The report page for a run. `assets` holds the chart library scripts to inline (empty: the page
 * still shows every table, and says where charts would be).
 */
export function renderReport(d: ReportData, assets: ReportAssets, opts: RenderOptions = {}): string {
  const charts: ChartDef[] = [];
  const parts: { id: string; title: string; html: string }[] = [];
  const add = (id: (typeof SECTION_IDS)[number], title: string, html: string): void => void parts.push({ id, title, html });
  add('summary', 'Summary', summarySection(d));
  if (d.models.length) add('models', 'Models', modelsSection(d.models));
  if (d.curves.length) {
    add('curves', 'Training curves', section('curves', 'Training curves', d.curves.map((g, i) => chartBox({ id: `chart-curves-${i}`, spec: trainingCurveSpec(g), renderer: 'svg' }, charts)).join('')));
  }
  if (d.covariance) add('covariance', 'Covariance', covarianceSection(d, opts, charts));
  if (d.clusters) add('clusters', 'Clusters', clustersSection(d.clusters, charts));
  if (d.specialists) add('specialists', 'Specialists', specialistsSection(d.specialists, d.classes?.names, charts));
  const distilled = d.models.filter((m) => m.type === 'distill');
  if (d.ensembles.length) add('ensemble', 'Ensemble', ensembleSection(d.ensembles, distilled, charts));
  if (d.results.length || d.sweeps.length) add('distillation', 'Distillation', distillationSection(d, charts));

  const warnings = d.warnings.length ? `<div class="warnings"><strong>Some artifacts could not be read:</strong><ul>${d.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul></div>` : '';
  const scripts = assets.scripts.map((s) => `<script data-lib="${esc(s.name)}">${inlineScript(s.source)}</script>`).join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${generatorMeta(GENERATOR.report)}
<title>${esc(d.title)}: run report</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>${esc(d.title)}</h1>
<div class="meta">Run folder ${esc(d.runDir)} · report generated ${esc(d.generatedAt.replace('T', ' ').slice(0, 19))} UTC</div>
<nav>${parts.map((p) => `<a href="#${p.id}">${esc(p.title)}</a>`).join('')}</nav>
</header>
<main>
${warnings}
${parts.map((p) => p.html).join('\n')}
</main>
<script type="application/json" id="report-charts">${jsonForScript(charts)}</script>
${scripts}
<script>${inlineScript(BOOTSTRAP_JS)}</script>
</body>
</html>
`;
}
