/**
 * A finished stage as a predictor on new data: any stage that trained a model (`model/` in its
 * folder: generalist, train, distill, a specialist's generalist...) gives the softmax of its
 * logits; an `ensemble` stage gives the paper's KL combination of its generalist and the
 * specialists active for each case, with the weight, solver and top-n it chose in training.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { readManifest } from '../artifacts/manifest.ts';
import { buildProblemFromModels } from '../ensemble/from-models.ts';
import { readSpecialistsSummary } from '../ensemble/specialists-file.ts';
import { solveEm } from '../ensemble/solve-em.ts';
import { solveGradient } from '../ensemble/solve-gradient.ts';
import { loadModel, MODEL_JSON } from '../models/io.ts';
import { outputDim, predictLogits } from '../models/predict.ts';
import { softmaxRows } from '../specialists/specialist-train.ts';
import { ArtifactError, DataError } from '../util/errors.ts';

/** A loaded stage that turns feature rows into class probabilities. */
export interface Predictor {
  /** `model` (one trained model) or `ensemble` (generalist + specialists + the KL combination). */
  kind: 'model' | 'ensemble';
  /** The stage folder it was loaded from. */
  stageDir: string;
  /** Class names in output order (the run's `classes.json`). */
  classes: string[];
  /** Features per row. */
  dim: number;
  /** The training data's example shape, when it had one. */
  shape: number[] | null;
  /**
   * Class probabilities for `n` rows of `x` (row-major `n x dim`): `n x C`, row-major.
   * @throws DataError when `x` does not hold `n x dim` values
   */
  predict(x: Float32Array, n: number): Promise<Float32Array>;
  /** Frees the models' tensors. */
  dispose(): void;
}

const classesSchema = z.looseObject({
  classes: z.array(z.looseObject({ index: z.number().int().min(0), name: z.string() })).min(1),
  dim: z.number().int().positive(),
  shape: z.array(z.number().int().positive()).nullable().optional(),
});

const ensembleParamsSchema = z.looseObject({
  data: z.string(),
  model: z.string(),
  specialists: z.string(),
  top_n: z.number().int().positive(),
  solver: z.enum(['em', 'gradient']),
  tolerance: z.number().positive(),
  max_iterations: z.number().int().positive(),
});

const ensembleMetricsSchema = z.looseObject({ weight: z.number().min(0) });

/** Reads a JSON file through a schema, or says which file is wrong and how to repair it. */
function readJson<T>(file: string, schema: z.ZodType<T>, fix: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ArtifactError(`cannot read ${file}: ${(e as Error).message}; ${fix}`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ArtifactError(`${file}: ${issue.path.join('.') || '(top level)'}: ${issue.message}; ${fix}`);
  }
  return r.data;
}

/** The data stage a stage was trained on: its `data` param, else `ingest`. */
function dataStageOf(params: unknown): string {
  const d = (params as { data?: unknown } | undefined)?.data;
  return typeof d === 'string' ? d : 'ingest';
}

function readClasses(ingestDir: string): { classes: string[]; dim: number; shape: number[] | null } {
  const c = readJson(path.join(ingestDir, 'classes.json'), classesSchema, 'rerun the ingest stage with --force');
  const names = new Array<string>(c.classes.length);
  for (const k of c.classes) {
    if (k.index >= names.length || names[k.index] !== undefined) throw new ArtifactError(`${path.join(ingestDir, 'classes.json')}: class indices are not 0..${names.length - 1}; rerun the ingest stage with --force`);
    names[k.index] = k.name;
  }
  return { classes: names, dim: c.dim, shape: c.shape ?? null };
}

function checkRows(x: Float32Array, n: number, dim: number): void {
  if (!Number.isInteger(n) || n < 0 || x.length !== n * dim) throw new DataError(`predict: the feature array has ${x.length} values, expected n x dim = ${n} x ${dim}`);
}

/**
 * Loads a finished stage for prediction.
 *
 * @param stageDir a stage folder of a run (`artifacts/RUN/STAGE`)
 * @throws ArtifactError when the folder is not a finished stage with a model, or not an ensemble;
 *   when the run's `classes.json` or the ensemble's files are missing or malformed
 */
export async function loadPredictor(stageDir: string): Promise<Predictor> {
  const dir = path.resolve(stageDir);
  const manifest = readManifest(dir);
  if (!manifest) throw new ArtifactError(`${stageDir} is not a finished stage (no manifest.json); give a stage folder of a run, e.g. artifacts/RUN/generalist or artifacts/RUN/ensemble`);
  const runDir = path.dirname(dir);
  if (manifest.type === 'ensemble') return loadEnsemble(dir, runDir, manifest.params);
  if (!existsSync(path.join(dir, 'model', MODEL_JSON))) {
    throw new ArtifactError(`stage '${manifest.stage}' (${manifest.type}) in ${stageDir} has no trained model (no model/${MODEL_JSON}); give a stage that trains one (generalist, train, distill, ...) or an ensemble stage`);
  }
  const { classes, dim, shape } = readClasses(path.join(runDir, dataStageOf(manifest.params)));
  const model = await loadModel(path.join(dir, 'model'));
  const C = outputDim(model);
  if (C !== classes.length) {
    model.dispose();
    throw new ArtifactError(`${stageDir}: the model has ${C} outputs but the run's classes.json lists ${classes.length} classes; was the stage trained on another dataset?`);
  }
  return {
    kind: 'model',
    stageDir: dir,
    classes,
    dim,
    shape,
    predict: async (x, n) => {
      checkRows(x, n, dim);
      return softmaxRows(predictLogits(model, x, n, dim), n, C);
    },
    dispose: () => model.dispose(),
  };
}

async function loadEnsemble(dir: string, runDir: string, params: unknown): Promise<Predictor> {
  const fix = 'rerun the ensemble stage with --force';
  const pr = ensembleParamsSchema.safeParse(params);
  if (!pr.success) throw new ArtifactError(`${path.join(dir, 'manifest.json')}: the ensemble's params are not readable (${pr.error.issues[0]!.path.join('.')}: ${pr.error.issues[0]!.message}); ${fix}`);
  const p = pr.data;
  const { weight } = readJson(path.join(dir, 'metrics.json'), ensembleMetricsSchema, fix);
  const { classes, dim, shape } = readClasses(path.join(runDir, p.data));
  const specDir = path.join(runDir, p.specialists);
  const summary = readSpecialistsSummary(specDir);
  const subsets = summary.specialists.map((s) => [...s.classes].sort((a, b) => a - b));
  const generalist = await loadModel(path.join(runDir, p.model, 'model'));
  const C = classes.length;
  if (outputDim(generalist) !== C) {
    generalist.dispose();
    throw new ArtifactError(`${path.join(runDir, p.model)}: the generalist has ${outputDim(generalist)} outputs but classes.json lists ${C} classes; ${fix}`);
  }
  return {
    kind: 'ensemble',
    stageDir: dir,
    classes,
    dim,
    shape,
    predict: async (x, n) => {
      checkRows(x, n, dim);
      const logits = predictLogits(generalist, x, n, dim);
      const built = await buildProblemFromModels({
        set: { x, y: new Int32Array(n), n, dim },
        generalistLogits: logits,
        C,
        subsets,
        head: summary.head,
        specialistLabel: (m) => `specialist ${summary.specialists[m]!.id}`,
        loadSpecialist: (m) => loadModel(path.join(specDir, summary.specialists[m]!.id, 'model')),
        topN: p.top_n,
      });
      const opts = { weight, tolerance: p.tolerance, maxIterations: p.max_iterations };
      return (p.solver === 'em' ? solveEm(built.problem, opts) : solveGradient(built.problem, opts)).q;
    },
    dispose: () => generalist.dispose(),
  };
}
