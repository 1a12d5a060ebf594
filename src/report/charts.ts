/**
 * Vega-Lite specifications of the report's charts, built from {@link ReportData} pieces. Each
 * chart carries its data inline, except the covariance heatmap whose cells are sent compactly
 * (quantised) and expanded in the page.
 */
import type { ClustersInfo, CurveGroup, EnsembleInfo, ModelRow, SpecialistsInfo, SweepInfo } from './collect.ts';
import type { ClassOrder, HeatmapGrid, Quantised } from './heatmap.ts';

/** A Vega-Lite specification (JSON). */
export type VegaLiteSpec = Record<string, unknown>;

/** The compact matrix of a heatmap, expanded in the browser into rows `{r, c, v, rl, cl}`. */
export interface MatrixData extends Quantised {
  /** Name of the top-level dataset the rows go into. */
  dataset: string;
  side: number;
  /** Label of each row/column position (class name or a block's class range). */
  labels: string[];
}

/** One chart of the page. */
export interface ChartDef {
  /** Element id of the chart's container. */
  id: string;
  spec: VegaLiteSpec;
  renderer: 'svg' | 'canvas';
  matrix?: MatrixData;
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

/** Shared look: font sizes, titles left-aligned, no chart border. */
const CONFIG = {
  font: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
  title: { fontSize: 14, anchor: 'start', offset: 10, subtitleColor: '#555' },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#e6e6e6' },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  view: { stroke: null },
};

function top(spec: VegaLiteSpec): VegaLiteSpec {
  return { $schema: SCHEMA, config: CONFIG, ...spec };
}

/** Loss and accuracy per epoch, train and valid, for the models of one stage. */
export function trainingCurveSpec(group: CurveGroup): VegaLiteSpec {
  const multi = group.series.length > 1;
  const values: Record<string, unknown>[] = [];
  for (const s of group.series) {
    for (const e of s.epochs) {
      values.push({ model: s.model, epoch: e.epoch, split: 'train', loss: e.train_loss ?? null, accuracy: e.train_accuracy ?? null });
      if (e.valid_loss !== undefined || e.valid_accuracy !== undefined) values.push({ model: s.model, epoch: e.epoch, split: 'valid', loss: e.valid_loss ?? null, accuracy: e.valid_accuracy ?? null });
    }
  }
  const maxEpoch = Math.max(1, ...values.map((v) => v.epoch as number));
  const panel = (field: 'loss' | 'accuracy', title: string, only?: { split: 'train' | 'valid'; yTitle: string; subtitle: string }): VegaLiteSpec => ({
    title: { text: title, fontSize: 12, ...(only ? { subtitle: only.subtitle, subtitleFontSize: 11 } : {}) },
    width: only ? 260 : 330,
    height: 200,
    transform: [{ filter: only ? `isValid(datum.${field}) && datum.split === '${only.split}'` : `isValid(datum.${field})` }],
    // Points on a single model's lines; lines only for several (a point overlay hides the split legend's dashes).
    mark: multi ? { type: 'line', strokeWidth: 2 } : { type: 'line', point: { size: 30 }, strokeWidth: 2 },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', scale: { domain: [1, maxEpoch], nice: false }, axis: { format: 'd', tickMinStep: 1 } },
      y: { field, type: 'quantitative', title: only?.yTitle ?? field, scale: { zero: false }, ...(field === 'accuracy' ? { axis: { format: '.0%' } } : {}) },
      color: multi ? { field: 'model', type: 'nominal', title: 'model' } : { field: 'split', type: 'nominal', title: 'split', scale: { domain: ['train', 'valid'], range: ['#4c78a8', '#f58518'] } },
      ...(multi ? { strokeDash: { field: 'split', type: 'nominal', title: 'split', scale: { domain: ['train', 'valid'], range: [[1, 0], [5, 3]] }, legend: { symbolType: 'stroke', symbolStrokeWidth: 2, symbolStrokeColor: '#555', symbolSize: 300 } } } : {}),
      tooltip: [
        { field: 'model', type: 'nominal' },
        { field: 'split', type: 'nominal' },
        { field: 'epoch', type: 'quantitative' },
        { field, type: 'quantitative', format: field === 'accuracy' ? '.2%' : '.4f' },
      ],
    },
  });
  return top({
    title: { text: `Training curves: ${group.stage}`, subtitle: `${group.type}; ${group.series.length} model${group.series.length > 1 ? 's' : ''}` },
    data: { values },
    // A distilled student's training loss is its (T²-scaled) objective, its validation loss the hard
    // cross-entropy: different quantities, so each gets its own chart and axis.
    hconcat: group.trainObjective
      ? [
          panel('loss', 'Training objective', { split: 'train', yTitle: 'training objective', subtitle: group.trainObjective }),
          panel('loss', 'Validation loss', { split: 'valid', yTitle: 'valid hard cross-entropy', subtitle: 'hard cross-entropy on the labels' }),
          panel('accuracy', 'Accuracy'),
        ]
      : [panel('loss', 'Loss'), panel('accuracy', 'Accuracy')],
    resolve: { scale: { color: 'shared', y: 'independent' } },
  });
}

/** Inputs of {@link covarianceHeatmapSpec}. */
export interface HeatmapInputs {
  grid: HeatmapGrid;
  order: ClassOrder;
  classNames: string[];
  title: string;
  subtitle: string;
}

/**
 * The covariance (or its block means of |cov|) as a heatmap in cluster order, each cluster's
 * block outlined; the data goes in a compact {@link MatrixData} for the page to expand.
 */
export function covarianceHeatmapSpec(inp: HeatmapInputs, quantised: Quantised, id: string): ChartDef {
  const { grid, order, classNames } = inp;
  const C = order.order.length;
  const labels: string[] = [];
  for (let b = 0; b < grid.side; b++) {
    const start = b * grid.blockSize;
    const end = Math.min(C, start + grid.blockSize);
    const first = classNames[order.order[start]!] ?? String(order.order[start]);
    labels.push(end - start === 1 ? first : `${first} ... ${classNames[order.order[end - 1]!] ?? String(order.order[end - 1])} (${end - start} classes)`);
  }
  const outlines = order.blocks.map((b) => ({ cluster: b.cluster, start: b.start / grid.blockSize, end: b.end / grid.blockSize, classes: b.end - b.start }));
  const labelled = grid.blockSize === 1 && grid.side <= 40;
  const axis = (title: string): VegaLiteSpec =>
    labelled
      ? { title, values: Array.from({ length: grid.side }, (_, i) => i + 0.5), labelExpr: `${JSON.stringify(labels)}[floor(datum.value)]`, grid: false, labelAngle: 0, labelOverlap: false, labelLimit: 90, tickCount: grid.side }
      : { title, values: order.blocks.map((b) => b.start / grid.blockSize), tickCount: Math.max(1, order.blocks.length), labels: false, grid: false };
  const signed = grid.kind === 'covariance';
  const scale = { domain: [0, grid.side], nice: false, zero: true };
  const size = Math.min(560, Math.max(320, grid.side * 14));
  const spec = top({
    title: { text: inp.title, subtitle: inp.subtitle },
    width: size,
    height: size,
    datasets: { cells: [] },
    layer: [
      {
        data: { name: 'cells' },
        transform: [
          { calculate: 'datum.c + 1', as: 'c1' },
          { calculate: 'datum.r + 1', as: 'r1' },
        ],
        mark: { type: 'rect' },
        encoding: {
          x: { field: 'c', type: 'quantitative', scale, axis: axis('classes (cluster order)') },
          x2: { field: 'c1' },
          y: { field: 'r', type: 'quantitative', scale: { ...scale, reverse: true }, axis: axis('') },
          y2: { field: 'r1' },
          color: {
            field: 'v',
            type: 'quantitative',
            title: signed ? 'covariance' : 'mean |cov|',
            scale: signed ? { scheme: 'blueorange', domain: [-grid.colorMax, grid.colorMax], clamp: true } : { scheme: 'blues', domain: [0, grid.colorMax], clamp: true },
            legend: { format: '.2~g', gradientLength: Math.min(300, size - 40) },
          },
          tooltip: [
            { field: 'rl', title: 'row' },
            { field: 'cl', title: 'column' },
            { field: 'v', type: 'quantitative', title: signed ? 'covariance' : 'mean |cov|', format: '.3~e' },
          ],
        },
      },
      {
        data: { values: outlines },
        mark: { type: 'rect', filled: false, stroke: '#111', strokeWidth: 1.5 },
        encoding: {
          x: { field: 'start', type: 'quantitative', scale },
          x2: { field: 'end' },
          y: { field: 'start', type: 'quantitative', scale: { ...scale, reverse: true } },
          y2: { field: 'end' },
          tooltip: [
            { field: 'cluster', type: 'quantitative', title: 'cluster' },
            { field: 'classes', type: 'quantitative', title: 'classes placed' },
          ],
        },
      },
    ],
  });
  return { id, spec, renderer: 'canvas', matrix: { dataset: 'cells', side: grid.side, labels, ...quantised } };
}

/** Each specialist's accuracy on its subset against the generalist's (a dumbbell chart). */
export function specialistAccuracySpec(info: SpecialistsInfo): VegaLiteSpec {
  const values = info.specialists.flatMap((s) => [
    { specialist: s.id, model: 'specialist', accuracy: s.specialist_accuracy_within, examples: s.within_examples },
    { specialist: s.id, model: 'generalist', accuracy: s.generalist_accuracy_within, examples: s.within_examples },
  ]);
  const y = { field: 'specialist', type: 'nominal', title: null, sort: info.specialists.map((s) => s.id) };
  return top({
    title: { text: 'Accuracy on each specialist’s subset (validation)', subtitle: 'specialist vs generalist, among the subset’s classes' },
    data: { values },
    width: 420,
    height: { step: 22 },
    layer: [
      {
        mark: { type: 'rule', color: '#aaa', strokeWidth: 2 },
        encoding: { y, x: { aggregate: 'min', field: 'accuracy', type: 'quantitative' }, x2: { aggregate: 'max', field: 'accuracy' } },
      },
      {
        mark: { type: 'point', filled: true, size: 80, opacity: 1 },
        encoding: {
          y,
          x: { field: 'accuracy', type: 'quantitative', title: 'accuracy within subset', scale: { zero: false, padding: 10 }, axis: { format: '.0%' } },
          color: { field: 'model', type: 'nominal', title: 'model', scale: { domain: ['generalist', 'specialist'], range: ['#9e9e9e', '#e45756'] } },
          tooltip: [
            { field: 'specialist', type: 'nominal' },
            { field: 'model', type: 'nominal' },
            { field: 'accuracy', type: 'quantitative', format: '.2%' },
            { field: 'examples', type: 'quantitative', title: 'valid examples' },
          ],
        },
      },
    ],
  });
}

/** Test error rate of the generalist, the specialist ensemble and each distilled student. */
export function ensembleErrorSpec(e: EnsembleInfo, distilled: ModelRow[]): VegaLiteSpec {
  const values = [
    { model: 'generalist', error: 1 - e.metrics.generalist.accuracy, accuracy: e.metrics.generalist.accuracy },
    { model: 'ensemble', error: 1 - e.metrics.ensemble.accuracy, accuracy: e.metrics.ensemble.accuracy },
    ...distilled.map((d) => ({ model: `${d.loss === 'hard' ? 'hard labels' : 'distilled'}: ${d.stage}`, error: 1 - d.test.accuracy, accuracy: d.test.accuracy })),
  ];
  const y = { field: 'model', type: 'nominal', title: null, sort: values.map((v) => v.model) };
  return top({
    title: { text: 'Test error rate', subtitle: `generalist vs specialist ensemble (${e.stage})${distilled.length ? ' vs distilled students' : ''}` },
    data: { values },
    width: 420,
    height: { step: 30 },
    layer: [
      {
        mark: { type: 'bar', cornerRadiusEnd: 2 },
        encoding: {
          y,
          x: { field: 'error', type: 'quantitative', title: 'test error rate', axis: { format: '.0%' } },
          color: { field: 'model', type: 'nominal', legend: null, scale: { scheme: 'tableau10' } },
          tooltip: [
            { field: 'model', type: 'nominal' },
            { field: 'accuracy', type: 'quantitative', format: '.2%', title: 'test accuracy' },
            { field: 'error', type: 'quantitative', format: '.2%', title: 'test error rate' },
          ],
        },
      },
      { mark: { type: 'text', align: 'left', dx: 4 }, encoding: { y, x: { field: 'error', type: 'quantitative' }, text: { field: 'error', type: 'quantitative', format: '.2%' } } },
    ],
  });
}

/**
 * The paper's Table 4 as bars: relative change in correct answers by specialists covering the true
 * class, counted as active specialists (`by_coverage`, default) or as clusters holding the class
 * (`by_membership`; an empty chart when the run has no such table).
 */
export function coverageSpec(e: EnsembleInfo, table: 'by_coverage' | 'by_membership' = 'by_coverage'): VegaLiteSpec {
  const membership = table === 'by_membership';
  const values = (membership ? (e.metrics.by_membership ?? []) : e.metrics.by_coverage)
    .filter((r) => r.examples > 0)
    .map((r) => ({
      coverage: r.label,
      order: r.specialists,
      examples: r.examples,
      generalist: r.generalist_correct,
      ensemble: r.ensemble_correct,
      change: r.relative_change,
      label: `n=${r.examples}`,
    }));
  const x = { field: 'coverage', type: 'ordinal', title: membership ? 'clusters holding the true class' : 'active specialists covering the true class', sort: values.map((v) => v.coverage), axis: { labelAngle: 0 } };
  return top({
    title: {
      text: membership ? 'Relative change in correct test cases, by cluster membership of the true class' : 'Relative change in correct test cases, by coverage',
      subtitle: '(ensemble correct - generalist correct) / generalist correct; empty buckets left out',
    },
    data: { values },
    width: { step: 56 },
    height: 220,
    layer: [
      {
        transform: [{ filter: 'isValid(datum.change)' }],
        mark: { type: 'bar', color: '#54a24b', cornerRadiusEnd: 2 },
        encoding: {
          x,
          y: { field: 'change', type: 'quantitative', title: 'relative change', axis: { format: '.1%' } },
          tooltip: [
            { field: 'coverage', type: 'nominal', title: 'specialists covering' },
            { field: 'examples', type: 'quantitative' },
            { field: 'generalist', type: 'quantitative', title: 'generalist correct' },
            { field: 'ensemble', type: 'quantitative', title: 'ensemble correct' },
            { field: 'change', type: 'quantitative', format: '.2%', title: 'relative change' },
          ],
        },
      },
      { mark: { type: 'text', dy: -8, color: '#555' }, encoding: { x, y: { datum: 0 }, text: { field: 'label' } } },
    ],
  });
}

/** Test errors against temperature, one line per student width; dashed rules for hard labels. */
export function sweepSpec(s: SweepInfo): VegaLiteSpec {
  const label = (w: number): string => (s.sweep.depth === null ? String(w) : `${s.sweep.depth} x ${w}`);
  const soft = s.sweep.cells.filter((c) => c.T !== null).map((c) => ({ width: label(c.width), T: c.T, errors: c.test.errors, accuracy: c.test.accuracy }));
  const hard = s.sweep.cells.filter((c) => c.T === null).map((c) => ({ width: label(c.width), errors: c.test.errors, accuracy: c.test.accuracy }));
  const examples = s.sweep.cells[0]?.test.examples ?? 0;
  const widths = s.sweep.widths.map(label);
  const color = { field: 'width', type: 'nominal', title: 'hidden units', scale: { domain: widths }, sort: widths };
  const Ts = s.sweep.temperatures;
  const logScale = Ts.length > 1 && Math.min(...Ts) > 0 && Math.max(...Ts) / Math.min(...Ts) >= 8;
  return top({
    title: { text: `Test errors against temperature (${s.stage})`, subtitle: `${examples} test cases; alpha = ${s.sweep.alpha}${hard.length ? '; dashed: the same width on hard labels' : ''}` },
    width: 460,
    height: 260,
    layer: [
      {
        data: { values: soft },
        mark: { type: 'line', point: { size: 40 }, strokeWidth: 2 },
        encoding: {
          x: { field: 'T', type: 'quantitative', title: 'temperature T', scale: logScale ? { type: 'log' } : { zero: false }, axis: { values: Ts } },
          y: { field: 'errors', type: 'quantitative', title: 'test errors', scale: { zero: false } },
          color,
          tooltip: [
            { field: 'width', type: 'nominal', title: 'hidden units' },
            { field: 'T', type: 'quantitative' },
            { field: 'errors', type: 'quantitative', title: 'test errors' },
            { field: 'accuracy', type: 'quantitative', format: '.2%' },
          ],
        },
      },
      ...(hard.length
        ? [
            {
              data: { values: hard },
              mark: { type: 'rule', strokeDash: [6, 4], strokeWidth: 1.5 },
              encoding: {
                y: { field: 'errors', type: 'quantitative' },
                color,
                tooltip: [
                  { field: 'width', type: 'nominal', title: 'hidden units' },
                  { field: 'errors', type: 'quantitative', title: 'hard-label test errors' },
                ],
              },
            },
          ]
        : []),
    ],
  });
}

/** Sizes of the clusters (classes per specialist), for the cluster section. */
export function clusterSizeSpec(c: ClustersInfo): VegaLiteSpec {
  const values = c.clusters.map((k) => ({ cluster: String(k.id), size: k.size, accuracy: k.generalist_accuracy_within }));
  return top({
    title: { text: 'Classes per cluster', subtitle: `${c.k} clusters (${c.stage})` },
    data: { values },
    width: { step: Math.max(8, Math.min(36, Math.floor(560 / Math.max(1, values.length)))) },
    height: 160,
    mark: { type: 'bar', color: '#4c78a8' },
    encoding: {
      x: { field: 'cluster', type: 'ordinal', title: 'cluster', sort: values.map((v) => v.cluster), axis: values.length > 40 ? { labels: false, ticks: false } : { labelAngle: 0 } },
      y: { field: 'size', type: 'quantitative', title: 'classes' },
      tooltip: [
        { field: 'cluster', type: 'nominal' },
        { field: 'size', type: 'quantitative', title: 'classes' },
        { field: 'accuracy', type: 'quantitative', format: '.2%', title: 'generalist accuracy within' },
      ],
    },
  });
}
