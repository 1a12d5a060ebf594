/**
 * Reads a run folder into the plain data the HTML report shows. Every finished stage folder
 * (one with a `manifest.json`) is looked at for the artifact files it holds; a file that cannot
 * be read becomes a warning on the page instead of failing the whole report.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { readManifest, type Manifest } from '../artifacts/manifest.ts';
import { describeModel, modelOfParams } from '../models/arch/index.ts';
import { runNameOf } from '../artifacts/run-folder.ts';
import { readCovariance } from '../specialists/covariance.ts';
import { ArtifactError } from '../util/errors.ts';
import { coverageRowSchema } from '../ensemble/metrics.ts';

/** One finished stage of the run. */
export interface StageRecord {
  name: string;
  type: string;
  manifest: Manifest;
}

/** One epoch of a training curve (the fields of `metrics.jsonl` the charts use). */
export interface EpochRow {
  epoch: number;
  train_loss?: number | undefined;
  train_accuracy?: number | undefined;
  valid_loss?: number | undefined;
  valid_accuracy?: number | undefined;
}

/** The training curves of the models one stage trained. */
export interface CurveGroup {
  stage: string;
  type: string;
  /** One series per model (e.g. the stage's model, each specialist, each ensemble member). */
  series: { model: string; epochs: EpochRow[] }[];
  /**
   * What `train_loss` is when it is not the loss `valid_loss` measures (a distilled student's
   * T²-scaled soft objective against the hard cross-entropy on validation): the two are then
   * drawn on separate axes. Undefined when they are the same quantity.
   */
  trainObjective?: string | undefined;
}

/** Formats a weight for a loss formula: `0.7`, `0.3` (no float noise). */
function weight(x: number): string {
  return String(Number(x.toFixed(4)));
}

/**
 * The training objective of a distilled model, from its `metrics.json` (`loss`, `T`, `alpha`),
 * when it differs from the hard-label cross-entropy; undefined for hard-label training.
 */
export function trainObjectiveOf(metrics: unknown): string | undefined {
  if (metrics === null || typeof metrics !== 'object') return undefined;
  const m = metrics as { loss?: unknown; T?: unknown; alpha?: unknown };
  const alpha = typeof m.alpha === 'number' ? m.alpha : 1;
  const hard = alpha < 1 ? ` + ${weight(1 - alpha)}·hard CE` : '';
  const a = alpha < 1 ? `${weight(alpha)}·` : '';
  if (m.loss === 'soft' && typeof m.T === 'number') return `${a}T²·soft CE at T = ${weight(m.T)}${hard}`;
  if (m.loss === 'logits') return `${a}logit MSE${hard}`;
  return undefined;
}

const splitSchema = z.looseObject({ accuracy: z.number(), errors: z.number().optional(), examples: z.number().optional() });
const modelMetricsSchema = z.looseObject({
  test: splitSchema,
  valid: splitSchema.optional(),
  best_epoch: z.number().nullable().optional(),
  loss: z.string().optional(),
  T: z.number().nullable().optional(),
  alpha: z.number().nullable().optional(),
  members: z.array(z.unknown()).optional(),
});

/** A trained model's test (and valid) results, from a stage's `metrics.json`. */
export interface ModelRow {
  stage: string;
  type: string;
  /** Hidden layers, e.g. `2x800`, from the manifest's `hidden` param. */
  arch?: string | undefined;
  test: { accuracy: number; errors?: number | undefined; examples?: number | undefined };
  valid?: { accuracy: number; errors?: number | undefined; examples?: number | undefined } | undefined;
  best_epoch?: number | null | undefined;
  /** Distillation loss type (`soft`, `logits`, `hard`) for `distill` stages. */
  loss?: string | undefined;
  T?: number | null | undefined;
  alpha?: number | null | undefined;
  /** Number of members of a trained ensemble. */
  members?: number | undefined;
}

/** `ingest/classes.json`. */
export interface ClassesInfo {
  stage: string;
  names: string[];
  counts: { train: number; valid: number; test: number }[];
  dim: number;
  shape: number[] | null;
}

/** `covariance/covariance.bin` + `.json`. */
export interface CovarianceInfo {
  stage: string;
  classes: number;
  source: string;
  split: string;
  examples: number;
  /** C x C row-major. */
  cov: Float32Array;
}

const clusterRowSchema = z.looseObject({
  id: z.number(),
  size: z.number(),
  classes: z.array(z.number()),
  names: z.array(z.string()),
  within_mass: z.number(),
  between_mass: z.number(),
  generalist_accuracy_within: z.number().nullable(),
  valid_examples: z.number(),
});
const clustersSchema = z.looseObject({
  k: z.number(),
  generalist_valid_accuracy: z.number().nullable().optional(),
  classes_per_coverage: z.record(z.string(), z.number()).optional(),
  options: z.looseObject({ covariance: z.string().optional() }).optional(),
  clusters: z.array(clusterRowSchema),
});
/** One cluster of `clusters.json`. */
export type ClusterRow = z.output<typeof clusterRowSchema>;
/** `clusters/clusters.json`. */
export interface ClustersInfo {
  stage: string;
  k: number;
  /** The covariance stage the clusters were computed from (from the stage's options). */
  covarianceStage?: string | undefined;
  generalist_valid_accuracy: number | null;
  classes_per_coverage: Record<string, number>;
  clusters: ClusterRow[];
}

const specialistRowSchema = z.looseObject({
  id: z.string(),
  size: z.number(),
  classes: z.array(z.number()),
  within_examples: z.number(),
  specialist_accuracy_within: z.number(),
  generalist_accuracy_within: z.number(),
  natural_rate: z.number(),
  mean_dustbin_prob: z.number(),
  dustbin_offset: z.number().optional(),
  specialist_auc: z.number().optional(),
  generalist_auc: z.number().optional(),
});
const specialistsSchema = z.looseObject({ head: z.string().optional(), correction: z.string().optional(), specialists: z.array(specialistRowSchema) });
/** One specialist of `specialists.json`. */
export type SpecialistRow = z.output<typeof specialistRowSchema>;
/** `specialists/specialists.json`. */
export interface SpecialistsInfo {
  stage: string;
  head?: string | undefined;
  correction?: string | undefined;
  specialists: SpecialistRow[];
}

const ensembleSchema = z.looseObject({
  examples: z.number().optional(),
  generalist: z.looseObject({ accuracy: z.number() }),
  ensemble: z.looseObject({ accuracy: z.number() }),
  conditional: z.looseObject({ examples: z.number(), generalist_accuracy: z.number().nullable(), ensemble_accuracy: z.number().nullable() }),
  /** Cases by the number of ACTIVE specialists covering the true class. */
  by_coverage: z.array(coverageRowSchema),
  /** Cases by the number of clusters holding the true class (paper Table 4); absent in older runs. */
  by_membership: z.array(coverageRowSchema).optional(),
  /** `by_membership` per kind of the true class (synthetic data with bridges). */
  by_membership_kind: z.record(z.string(), z.array(coverageRowSchema)).optional(),
  /** The same cases with one specialist per class (`ensemble: {overlap_ablation: true}`). */
  overlap_ablation: z
    .looseObject({ memberships_removed: z.number(), ensemble: z.looseObject({ accuracy: z.number() }), by_membership: z.array(coverageRowSchema).optional() })
    .optional(),
  weight: z.number().optional(),
  weight_table: z.array(z.looseObject({ weight: z.number(), accuracy: z.number() })).optional(),
  top_n: z.number().optional(),
  solver: z.string().optional(),
});
/** The specialist ensemble's `metrics.json` (the paper's Tables 3 and 4). */
export type EnsembleFile = z.output<typeof ensembleSchema>;
/** One `ensemble` stage. */
export interface EnsembleInfo {
  stage: string;
  metrics: EnsembleFile;
}

/** A `results` stage: `results.md` and `results.json`. */
export interface ResultsInfo {
  stage: string;
  markdown?: string | undefined;
  json?: unknown;
}

const sweepSchema = z.looseObject({
  widths: z.array(z.number()),
  temperatures: z.array(z.number()),
  depth: z.number(),
  alpha: z.number(),
  cells: z.array(z.looseObject({ width: z.number(), T: z.number().nullable(), test: z.looseObject({ errors: z.number(), examples: z.number(), accuracy: z.number() }) })),
});
/** A `distill-sweep` stage's `sweep.json`. */
export interface SweepInfo {
  stage: string;
  sweep: z.output<typeof sweepSchema>;
}

/** Everything the report shows. Sections whose data is absent are left out of the page. */
export interface ReportData {
  title: string;
  runDir: string;
  generatedAt: string;
  /** Finished stages in the order they ran (the report stage itself excluded). */
  stages: StageRecord[];
  /** Files that exist but could not be read. */
  warnings: string[];
  classes?: ClassesInfo | undefined;
  curves: CurveGroup[];
  models: ModelRow[];
  covariance?: CovarianceInfo | undefined;
  clusters?: ClustersInfo | undefined;
  specialists?: SpecialistsInfo | undefined;
  ensembles: EnsembleInfo[];
  results: ResultsInfo[];
  sweeps: SweepInfo[];
}

/** Options of {@link collectRun}. */
export interface CollectOptions {
  /** Only these stages (default: every finished stage in the run folder). */
  stages?: string[];
  /** Page title (default: the config name recorded in the run folder's marker, else the folder's name). */
  title?: string;
}

const epochSchema = z.looseObject({
  epoch: z.number(),
  train_loss: z.number().optional(),
  train_accuracy: z.number().optional(),
  valid_loss: z.number().optional(),
  valid_accuracy: z.number().optional(),
});

function readJsonFile(file: string): unknown {
  return JSON.parse(readFileSync(file, 'utf8'));
}

function parseWith<S extends z.ZodType>(schema: S, value: unknown, file: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const iss = r.error.issues[0]!;
    throw new ArtifactError(`${file}: ${iss.path.join('.') || '(top level)'}: ${iss.message}`);
  }
  return r.data;
}

function epochsOf(rows: unknown[], file: string): EpochRow[] {
  return rows.map((r) => {
    const e = parseWith(epochSchema, r, file);
    return { epoch: e.epoch, train_loss: e.train_loss, train_accuracy: e.train_accuracy, valid_loss: e.valid_loss, valid_accuracy: e.valid_accuracy };
  });
}

function readJsonl(file: string): EpochRow[] {
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  return epochsOf(
    lines.map((l, i) => {
      try {
        return JSON.parse(l) as unknown;
      } catch {
        throw new ArtifactError(`${file}: line ${i + 1} is not JSON`);
      }
    }),
    file,
  );
}

/**
 * `2x800`, `1200-800`, `linear` or `cnn 32-64, dense 256` from a manifest's params (its `model`, or
 * the stage-level `hidden` of older manifests); undefined without either.
 */
export function archOfParams(params: Record<string, unknown>): string | undefined {
  const model = modelOfParams(params);
  return model ? describeModel(model) : undefined;
}

function subdirs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

/**
 * Reads every finished stage of a run folder (or only `opts.stages`) into {@link ReportData}.
 * @throws ArtifactError when `runDir` is not a folder
 */
export async function collectRun(runDir: string, opts: CollectOptions = {}): Promise<ReportData> {
  if (!existsSync(runDir) || !statSync(runDir).isDirectory()) {
    throw new ArtifactError(`${runDir} is not a run folder; give the folder a pipeline run wrote (artifacts/<config name>)`);
  }
  const warnings: string[] = [];
  const wanted = opts.stages && opts.stages.length ? new Set(opts.stages) : undefined;
  const stages: StageRecord[] = [];
  for (const name of subdirs(runDir)) {
    if (wanted && !wanted.has(name)) continue;
    let m: Manifest | undefined;
    try {
      m = readManifest(path.join(runDir, name));
    } catch (e) {
      warnings.push((e as Error).message);
      continue;
    }
    if (!m || m.type === 'report') continue;
    stages.push({ name, type: m.type, manifest: m });
  }
  if (wanted) for (const w of wanted) if (!stages.some((s) => s.name === w)) warnings.push(`stage '${w}' has not finished in ${runDir}; its sections are missing`);
  stages.sort((a, b) => a.manifest.started_at.localeCompare(b.manifest.started_at) || a.name.localeCompare(b.name));

  const data: ReportData = {
    title: opts.title ?? runNameOf(runDir),
    runDir: path.resolve(runDir),
    generatedAt: new Date().toISOString(),
    stages,
    warnings,
    curves: [],
    models: [],
    ensembles: [],
    results: [],
    sweeps: [],
  };
  const covariances: CovarianceInfo[] = [];
  const clusters: ClustersInfo[] = [];
  for (const s of stages) {
    const dir = path.join(runDir, s.name);
    const f = (...p: string[]): string => path.join(dir, ...p);
    const attempt = (file: string, fn: () => void | Promise<void>): Promise<void> =>
      Promise.resolve()
        .then(fn)
        .catch((e: unknown) => {
          warnings.push(`${s.name}/${file}: ${(e as Error).message}`);
        });
    if (!data.classes && existsSync(f('classes.json'))) {
      await attempt('classes.json', () => {
        const c = parseWith(
          z.looseObject({
            classes: z.array(z.looseObject({ index: z.number(), name: z.string(), counts: z.looseObject({ train: z.number(), valid: z.number(), test: z.number() }) })),
            dim: z.number(),
            shape: z.array(z.number()).nullable().optional(),
          }),
          readJsonFile(f('classes.json')),
          f('classes.json'),
        );
        const sorted = [...c.classes].sort((a, b) => a.index - b.index);
        data.classes = { stage: s.name, names: sorted.map((k) => k.name), counts: sorted.map((k) => ({ train: k.counts.train, valid: k.counts.valid, test: k.counts.test })), dim: c.dim, shape: c.shape ?? null };
      });
    }
    // Training curves: the stage's own metrics.jsonl, those of sub-models, specialists' histories.
    const series: CurveGroup['series'] = [];
    if (existsSync(f('metrics.jsonl'))) await attempt('metrics.jsonl', () => void series.push({ model: s.name, epochs: readJsonl(f('metrics.jsonl')) }));
    for (const sub of subdirs(dir)) {
      if (existsSync(f(sub, 'metrics.jsonl'))) await attempt(`${sub}/metrics.jsonl`, () => void series.push({ model: sub, epochs: readJsonl(f(sub, 'metrics.jsonl')) }));
      else if (existsSync(f(sub, 'metrics.json'))) {
        await attempt(`${sub}/metrics.json`, () => {
          const j = readJsonFile(f(sub, 'metrics.json'));
          if (j !== null && typeof j === 'object' && Array.isArray((j as { history?: unknown }).history)) series.push({ model: sub, epochs: epochsOf((j as { history: unknown[] }).history, f(sub, 'metrics.json')) });
        });
      }
    }
    const nonEmpty = series.filter((x) => x.epochs.length > 0);
    let trainObjective: string | undefined;
    if (nonEmpty.length && existsSync(f('metrics.json'))) {
      try {
        trainObjective = trainObjectiveOf(readJsonFile(f('metrics.json')));
      } catch {
        /* an unreadable metrics.json is reported below */
      }
    }
    if (nonEmpty.length) data.curves.push({ stage: s.name, type: s.type, series: nonEmpty, ...(trainObjective ? { trainObjective } : {}) });

    if (existsSync(f('metrics.json'))) {
      await attempt('metrics.json', () => {
        const j = readJsonFile(f('metrics.json'));
        const ens = ensembleSchema.safeParse(j);
        if (ens.success) {
          data.ensembles.push({ stage: s.name, metrics: ens.data });
          return;
        }
        const m = modelMetricsSchema.safeParse(j);
        if (m.success) {
          data.models.push({
            stage: s.name,
            type: s.type,
            arch: archOfParams(s.manifest.params),
            test: m.data.test,
            valid: m.data.valid,
            best_epoch: m.data.best_epoch,
            loss: m.data.loss,
            T: m.data.T,
            alpha: m.data.alpha,
            members: m.data.members?.length,
          });
        }
      });
    }
    if (existsSync(f('covariance.bin')) && existsSync(f('covariance.json'))) {
      await attempt('covariance.bin', async () => {
        const c = await readCovariance(dir);
        covariances.push({ stage: s.name, classes: c.classes, source: c.source, split: c.split, examples: c.examples, cov: c.cov });
      });
    }
    if (existsSync(f('clusters.json'))) {
      await attempt('clusters.json', () => {
        const c = parseWith(clustersSchema, readJsonFile(f('clusters.json')), f('clusters.json'));
        clusters.push({
          stage: s.name,
          k: c.k,
          covarianceStage: c.options?.covariance,
          generalist_valid_accuracy: c.generalist_valid_accuracy ?? null,
          classes_per_coverage: c.classes_per_coverage ?? {},
          clusters: c.clusters,
        });
      });
    }
    if (!data.specialists && existsSync(f('specialists.json'))) {
      await attempt('specialists.json', () => {
        const sp = parseWith(specialistsSchema, readJsonFile(f('specialists.json')), f('specialists.json'));
        data.specialists = { stage: s.name, head: sp.head, correction: sp.correction, specialists: sp.specialists };
      });
    }
    if (existsSync(f('results.md')) || existsSync(f('results.json'))) {
      await attempt('results.md', () => {
        data.results.push({
          stage: s.name,
          markdown: existsSync(f('results.md')) ? readFileSync(f('results.md'), 'utf8') : undefined,
          json: existsSync(f('results.json')) ? readJsonFile(f('results.json')) : undefined,
        });
      });
    }
    if (existsSync(f('sweep.json'))) {
      await attempt('sweep.json', () => void data.sweeps.push({ stage: s.name, sweep: parseWith(sweepSchema, readJsonFile(f('sweep.json')), f('sweep.json')) }));
    }
  }
  // The heatmap pairs a covariance with the clusters computed from it (else the first of each).
  data.clusters = clusters[0];
  data.covariance = (data.clusters && covariances.find((c) => c.stage === data.clusters!.covarianceStage)) ?? covariances[0];
  if (data.covariance && data.clusters && data.clusters.covarianceStage !== undefined && data.clusters.covarianceStage !== data.covariance.stage) {
    data.clusters = clusters.find((c) => c.covarianceStage === data.covariance!.stage) ?? data.clusters;
  }
  return data;
}
