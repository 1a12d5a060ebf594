/**
 * `export`: a trained model of a run folder as an ONNX file, e.g.
 * `npm run export -- artifacts/RUN/STAGE --onnx model.onnx`.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from '../artifacts/atomic.ts';
import { loadModel, MODEL_JSON } from '../models/io.ts';
import { ArtifactError, UserError } from '../util/errors.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { layersToOnnx } from './layers-to-onnx.ts';
import { encodeModel, OPSET } from './onnx-proto.ts';

/** Name of the exported graph's input (the model's input shape, batch first). */
export const ONNX_INPUT = 'input';
/** Name of the exported graph's output (what the model outputs: the logits for this project's models). */
export const ONNX_OUTPUT = 'logits';

/** What {@link exportOnnx} wrote. */
export interface OnnxExportResult {
  file: string;
  bytes: number;
  /** The model folder read (`<stage>/model`). */
  modelDir: string;
  inputShape: (number | string)[];
  outputShape: (number | string)[];
  nodes: number;
  /** Class names in output order, when the run's `classes.json` matches the output width. */
  classes: string[] | null;
}

/**
 * The model folder of a stage folder: `<dir>/model` (or `dir` itself when it holds `model.json`).
 * @throws ArtifactError when there is none, naming the sub-folders that hold models (e.g. the
 * specialists of a `specialists` stage).
 */
export function findModelDir(dir: string): string {
  if (!existsSync(dir)) throw new UserError('io', `${dir} does not exist; give a stage folder of a run, e.g. artifacts/<run>/<stage>`);
  if (existsSync(path.join(dir, 'model', MODEL_JSON))) return path.join(dir, 'model');
  if (existsSync(path.join(dir, MODEL_JSON))) return dir;
  let subs: string[] = [];
  try {
    subs = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && existsSync(path.join(dir, e.name, 'model', MODEL_JSON)))
      .map((e) => e.name)
      .sort();
  } catch {
    /* not a folder: no sub-models */
  }
  if (subs.length > 0) {
    throw new ArtifactError(`${dir} holds ${subs.length} models (${subs.slice(0, 5).join(', ')}${subs.length > 5 ? ', ...' : ''}), not one: export one of them, e.g. ${path.join(dir, subs[0]!)}`);
  }
  throw new ArtifactError(`${dir} has no trained model (no model/${MODEL_JSON}); give the folder of a stage that trains one (train, generalist, distill, ...)`);
}

/**
 * The class names of the run a model folder belongs to: the `classes.json` of the stage's `data`
 * param (default `ingest`) beside the stage folder, or above it for a sub-model; null when none
 * is found or its class count differs from `width`.
 */
function classNames(modelDir: string, width: number): string[] | null {
  let stage = path.dirname(modelDir);
  for (let up = 0; up < 2; up++, stage = path.dirname(stage)) {
    let data = 'ingest';
    try {
      const m = JSON.parse(readFileSync(path.join(stage, 'manifest.json'), 'utf8')) as { params?: { data?: unknown } };
      if (typeof m.params?.data === 'string') data = m.params.data;
    } catch {
      continue;
    }
    try {
      const c = JSON.parse(readFileSync(path.join(path.dirname(stage), data, 'classes.json'), 'utf8')) as { classes: { index: number; name: string }[] };
      const names = [...c.classes].sort((a, b) => a.index - b.index).map((x) => x.name);
      return names.length === width ? names : null;
    } catch {
      return null;
    }
  }
  return null;
}

function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++, dir = path.dirname(dir)) {
    try {
      const p = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (p.name === 'distill-kit' && p.version) return p.version;
    } catch {
      /* keep looking */
    }
  }
  return '0.0.0';
}

/**
 * The ONNX `ModelProto` bytes of a tfjs Layers model: input `input` (the model's own input
 * shape, batch first), output `logits` (what the model outputs: the logits for this project's
 * models), opset 13.
 * @param metadata extra `metadata_props` (string key/value pairs)
 */
export function modelToOnnx(model: tf.LayersModel, metadata: Record<string, string> = {}): { bytes: Uint8Array; inputShape: (number | string)[]; outputShape: (number | string)[]; nodes: number } {
  const g = layersToOnnx(model, { inputName: ONNX_INPUT, outputName: ONNX_OUTPUT });
  const bytes = encodeModel({
    graphName: model.name,
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: [g.input],
    outputs: [g.output],
    producerName: 'distill-kit',
    producerVersion: packageVersion(),
    docString: `exported from a TensorFlow.js ${tf.version.tfjs} Layers model by distill-kit (ONNX opset ${OPSET})`,
    metadata,
  });
  return { bytes, inputShape: g.input.shape, outputShape: g.output.shape, nodes: g.nodes.length };
}

/**
 * Exports the model of a stage folder (`<dir>/model`, or a model folder) to the ONNX file `out`,
 * written atomically. The file records the class names (`classes`, JSON) in its metadata when the
 * run's `classes.json` is found.
 * @throws UserError when `out` exists and `force` is not set (a file is never overwritten unasked);
 * ArtifactError when the folder holds no model or the model has a layer the export does not support.
 */
export async function exportOnnx(dir: string, out: string, opts: { force?: boolean; log?: Logger } = {}): Promise<OnnxExportResult> {
  const log = opts.log ?? silentLogger;
  if (existsSync(out) && !opts.force) throw new UserError('io', `${out} already exists; choose another --onnx file or add --force to replace it`);
  const modelDir = findModelDir(dir);
  const model = await loadModel(modelDir);
  try {
    const width = model.outputs[0]!.shape.at(-1);
    const classes = typeof width === 'number' ? classNames(modelDir, width) : null;
    const metadata: Record<string, string> = { source_stage: path.basename(modelDir === dir ? path.dirname(path.resolve(modelDir)) : path.resolve(dir)) };
    if (classes) metadata.classes = JSON.stringify(classes);
    const r = modelToOnnx(model, metadata);
    await writeFileAtomic(out, r.bytes);
    log.info(`wrote ${out} (${r.bytes.length} bytes, ${r.nodes} nodes): input '${ONNX_INPUT}' [${r.inputShape.join(', ')}], output '${ONNX_OUTPUT}' [${r.outputShape.join(', ')}]`);
    return { file: out, bytes: r.bytes.length, modelDir, inputShape: r.inputShape, outputShape: r.outputShape, nodes: r.nodes, classes };
  } finally {
    model.dispose();
  }
}
