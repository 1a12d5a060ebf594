/**
 * A user's own tfjs Layers model (`model.json` + its weight files, as `model.save('file://...')`
 * of tfjs or `tensorflowjs_converter --input_format keras` write them), read, checked against a
 * dataset and rewritten into the form every stage of the toolkit reads:
 *
 * - it takes flat rows `[n, D]` (an image model `[H, W, C]` gets a `Reshape` in front);
 * - it is a chain of layers (each reading the one before, used once) of the classes in
 *   {@link IMPORTABLE_LAYERS}: what the specialists' body copy (a `tf.sequential` of cloned layers)
 *   and the ONNX exporter both handle;
 * - its last layer is a Dense layer named `logits` with a linear activation and a bias, whose
 *   units are the dataset's classes in `classes.json` order (a final softmax is removed, since
 *   softmax(logits) is what every loss and metric computes itself; `classes:` reorders the units).
 *
 * The rewritten model computes the same function: {@link importLayersModel} checks it against the
 * original on sample rows before returning it.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { layersToOnnx, SUPPORTED_ACTIVATIONS, SUPPORTED_LAYERS } from '../export/layers-to-onnx.ts';
import { ConfigError } from '../util/errors.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { findHead, LOGITS_LAYER } from './arch/head.ts';

/** Layer classes a user's model may contain (the ONNX exporter's list, which the specialists' copy also handles). */
export const IMPORTABLE_LAYERS: readonly string[] = SUPPORTED_LAYERS;

/** Layers that do nothing at inference (dropped when they come after the final softmax). */
const INFERENCE_NO_OPS = new Set(['Dropout', 'SpatialDropout1D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout']);

const weightSpecSchema = z.looseObject({
  name: z.string().min(1),
  shape: z.array(z.number().int().min(0)),
  dtype: z.string(),
});
const modelJsonSchema = z.looseObject({
  modelTopology: z.record(z.string(), z.unknown()),
  format: z.string().optional(),
  weightsManifest: z.array(z.looseObject({ paths: z.array(z.string().min(1)).min(1), weights: z.array(weightSpecSchema) })).min(1),
});
type ModelJson = z.output<typeof modelJsonSchema>;

/** What the user says about the model's outputs; absent: a final softmax means probabilities. */
export type OutputsKind = 'logits' | 'probabilities';

/** The dataset a model is checked against (from the ingest stage's `classes.json`). */
export interface ImportTarget {
  /** Features per row. */
  dim: number;
  /** The rows' example shape (e.g. `[28, 28, 1]`), or null for plain vectors. */
  shape: number[] | null;
  /** Class names in `classes.json` order (the index of a name is its label). */
  classes: string[];
}

/** Options of {@link importLayersModel}. */
export interface ImportOptions {
  /** Class names in the order of the model's output units (default: the dataset's order). */
  classes?: string[] | undefined;
  /** Whether the model outputs logits or probabilities (default: probabilities exactly when it ends in a softmax). */
  outputs?: OutputsKind | undefined;
  /** Rows (`n x dim`, row-major) to check the rewritten model against the original on (a few dozen suffice). */
  sample?: { x: Float32Array; n: number } | undefined;
  log?: Logger | undefined;
}

/** What was done to the user's model, for the stage's records. */
export interface ImportReport {
  /** The model's own input shape (without the batch axis). */
  input_shape: number[];
  /** True when a Reshape from the flat rows to `input_shape` was put in front. */
  reshape_added: boolean;
  /** The outputs as given or detected. */
  outputs: OutputsKind;
  /** What removed the softmax (`activation of dense_3`, `layer softmax_1`), or null. */
  softmax_removed: string | null;
  /** Name of the user's layer that became the head `logits`. */
  head_from: string;
  /** `permutation[j]` = the model's output unit holding dataset class j; null when the order was kept. */
  permutation: number[] | null;
  /** Trailing layers dropped (inference no-ops after the softmax). */
  dropped: string[];
  /** Layer classes of the rewritten model, in order. */
  layers: string[];
  /** Number of weight values. */
  parameters: number;
  /** Largest |difference| between the rewritten model and the original on the sample (in logits, or in probabilities), or null without a sample. */
  check_max_diff: number | null;
}

/** The weight files `model.json` lists (absolute paths, manifest order); the file itself is not checked beyond parsing. */
export function weightFilesOf(jsonPath: string): string[] {
  const json = readModelJson(jsonPath);
  const dir = path.dirname(path.resolve(jsonPath));
  return json.weightsManifest.flatMap((g) => g.paths.map((p) => path.join(dir, p)));
}

/**
 * The files of a user's model that exist: `model.json` and its weight files, for keying a cache.
 * A missing or unreadable file is left out, so that the stage itself fails on it with its own
 * message (which says what the file should be).
 */
export function modelFilesOf(jsonPath: string): string[] {
  const isFile = (f: string): boolean => existsSync(f) && statSync(f).isFile();
  if (!isFile(jsonPath)) return [];
  try {
    return [jsonPath, ...weightFilesOf(jsonPath).filter(isFile)];
  } catch {
    return [jsonPath];
  }
}

/** Reads and checks the structure of a tfjs layers `model.json`. @throws ConfigError naming the file. */
function readModelJson(jsonPath: string): ModelJson {
  if (!existsSync(jsonPath)) throw new ConfigError(`${jsonPath}: no such file; 'path' must name the model.json of a tfjs Layers model (written by model.save('file://DIR') or tensorflowjs_converter)`);
  if (statSync(jsonPath).isDirectory()) throw new ConfigError(`${jsonPath} is a folder; 'path' must name the model.json inside it (e.g. ${path.join(jsonPath, 'model.json')})`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(jsonPath, 'utf8'));
  } catch (e) {
    throw new ConfigError(`${jsonPath} is not valid JSON (${(e as Error).message}); 'path' must name the model.json of a tfjs Layers model`);
  }
  const r = modelJsonSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    const graph = typeof raw === 'object' && raw !== null && (raw as { format?: unknown }).format === 'graph-model';
    throw new ConfigError(
      `${jsonPath}: not a tfjs Layers model (${i.path.join('.') || 'top level'}: ${i.message}); ` +
        (graph
          ? 'it is a graph model (tensorflowjs_converter from a SavedModel), which has no layers to train or copy: convert the Keras model instead (tensorflowjs_converter --input_format keras model.h5 DIR)'
          : 'it needs modelTopology and weightsManifest, as tfjs model.save(\'file://DIR\') and tensorflowjs_converter --input_format keras write them'),
    );
  }
  if (r.data.format !== undefined && r.data.format !== 'layers-model') {
    throw new ConfigError(`${jsonPath}: format '${r.data.format}' is not 'layers-model'; convert the Keras model with tensorflowjs_converter --input_format keras (a graph model has no layers to train or copy)`);
  }
  return r.data;
}

type Json = Record<string, unknown>;

/**
 * Small repairs of Keras 3 configs that tfjs-layers does not read: `batch_shape` (Keras 3's name
 * of `batch_input_shape`) and dtype policies written as objects. Applied in place.
 */
function repairKeras3(node: unknown): void {
  if (Array.isArray(node)) {
    for (const v of node) repairKeras3(v);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const o = node as Json;
  if (o.batch_shape !== undefined && o.batch_input_shape === undefined) {
    o.batch_input_shape = o.batch_shape;
    delete o.batch_shape;
  }
  const dt = o.dtype as Json | undefined;
  if (typeof dt === 'object' && dt !== null && typeof (dt.config as Json | undefined)?.name === 'string') o.dtype = (dt.config as Json).name;
  for (const v of Object.values(o)) repairKeras3(v);
}

/** The layer configs of a topology (`{class_name, config}`), nested models included, with their names. */
function layerEntries(topology: Json): { className: string; name: string; config: Json }[] {
  const root = (topology.model_config ?? topology) as Json;
  const out: { className: string; name: string; config: Json }[] = [];
  const visit = (entry: Json): void => {
    const className = String(entry.class_name ?? '');
    const config = (entry.config ?? {}) as Json;
    const layers = Array.isArray(config) ? config : (config.layers as unknown);
    if (className === 'Sequential' || className === 'Model' || className === 'Functional') {
      if (Array.isArray(layers)) for (const l of layers) visit(l as Json);
      return;
    }
    out.push({ className, name: String(config.name ?? entry.name ?? '?'), config });
  };
  visit(root);
  return out;
}

/** Whether `entry` (the topology root) holds a model nested inside another. */
function nestedModel(topology: Json): string | null {
  const root = (topology.model_config ?? topology) as Json;
  const config = (root.config ?? {}) as Json;
  const layers = (Array.isArray(config) ? config : config.layers) as Json[] | undefined;
  for (const l of layers ?? []) {
    const c = String(l.class_name ?? '');
    if (c === 'Sequential' || c === 'Model' || c === 'Functional') return String(((l.config ?? {}) as Json).name ?? l.name ?? c);
  }
  return null;
}

const supportedList = (): string => IMPORTABLE_LAYERS.filter((c) => c !== 'InputLayer').join(', ');

/**
 * Checks every layer class of the topology before tfjs builds it, so an unknown or unsupported
 * class is named with its layer (tfjs would say only "Unknown layer").
 */
function checkLayerClasses(jsonPath: string, topology: Json): void {
  const nested = nestedModel(topology);
  if (nested) {
    throw new ConfigError(
      `${jsonPath}: layer '${nested}' is a whole model nested inside the model; the toolkit reads a flat chain of layers: ` +
        'rebuild it as one model (e.g. in Keras, tf.keras.Sequential(base.layers + head.layers)) and convert it again',
    );
  }
  const known = tf.serialization.SerializationMap.getMap().classNameMap;
  for (const l of layerEntries(topology)) {
    if (IMPORTABLE_LAYERS.includes(l.className)) continue;
    const why = Object.hasOwn(known, l.className)
      ? `tfjs can run it, but the specialists' copy and the ONNX export of the toolkit do not support it`
      : `tfjs does not know this class (a custom layer, or a Keras layer tfjs lacks)`;
    throw new ConfigError(
      `${jsonPath}: layer '${l.name}' is of class ${l.className}: ${why}. Supported layer classes: ${supportedList()}; ` +
        'rebuild the model from these (a Lambda or custom layer must become one of them) and save or convert it again',
    );
  }
}

function bytesPerValue(spec: z.output<typeof weightSpecSchema> & { quantization?: { dtype?: string } }): number | undefined {
  if (spec.quantization?.dtype) return ({ uint8: 1, uint16: 2, float16: 2 } as Record<string, number>)[spec.quantization.dtype];
  return ({ float32: 4, int32: 4, bool: 1 } as Record<string, number>)[spec.dtype];
}

/** The weights of the manifest, by name, decoded (quantized weights dequantized as tfjs does). */
function readWeights(jsonPath: string, json: ModelJson): tf.NamedTensorMap {
  const dir = path.dirname(path.resolve(jsonPath));
  const named: tf.NamedTensorMap = {};
  try {
    for (const group of json.weightsManifest) {
      const parts: Buffer[] = [];
      for (const p of group.paths) {
        const f = path.join(dir, p);
        if (!existsSync(f)) throw new ConfigError(`${jsonPath} lists the weight file ${p}, but ${f} does not exist: copy every file the converter wrote (model.json and its .bin shards) into one folder`);
        parts.push(readFileSync(f));
      }
      const data = Buffer.concat(parts);
      let need = 0;
      for (const s of group.weights) {
        const b = bytesPerValue(s as never);
        if (b === undefined) throw new ConfigError(`${jsonPath}: weight ${s.name} has dtype ${s.dtype}${(s as { quantization?: { dtype?: string } }).quantization ? ` (quantized ${(s as { quantization?: { dtype?: string } }).quantization!.dtype})` : ''}, which cannot be read; save the model with float32 weights`);
        need += b * s.shape.reduce((a, d) => a * d, 1);
      }
      if (data.byteLength !== need) {
        throw new ConfigError(`${jsonPath}: the weight files ${group.paths.join(', ')} hold ${data.byteLength} bytes but the manifest's weights need ${need}; the files do not belong to this model.json (copy them again from where the model was saved)`);
      }
      const buf = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
      const decoded = tf.io.decodeWeights(buf, group.weights as tf.io.WeightsManifestEntry[]);
      for (const [k, v] of Object.entries(decoded)) {
        if (named[k]) {
          v.dispose();
          throw new ConfigError(`${jsonPath}: the weight ${k} is listed twice in weightsManifest`);
        }
        named[k] = v.dtype === 'float32' ? v : tf.tidy(() => tf.cast(v, 'float32'));
        if (named[k] !== v) v.dispose();
      }
    }
  } catch (e) {
    tf.dispose(Object.values(named));
    throw e;
  }
  return named;
}

/** Reads a user's `model.json` and weights into a tfjs model, every problem named with the file and layer. */
async function loadUserModel(jsonPath: string): Promise<tf.LayersModel> {
  const json = readModelJson(jsonPath);
  const topology = structuredClone(json.modelTopology) as Json;
  repairKeras3(topology);
  checkLayerClasses(jsonPath, topology);
  let model: tf.LayersModel;
  try {
    model = await tf.models.modelFromJSON({ modelTopology: topology } as never);
  } catch (e) {
    throw new ConfigError(`${jsonPath}: tfjs cannot build the model's topology (${(e as Error).message.split('\n')[0]}); save it again with tfjs, or convert it from Keras 2 (tf.keras) with tensorflowjs_converter --input_format keras`);
  }
  const named = readWeights(jsonPath, json);
  try {
    const missing: string[] = [];
    for (const w of model.weights) {
      const t = named[w.originalName];
      if (!t) {
        missing.push(w.originalName);
        continue;
      }
      if (!tf.util.arraysEqual(t.shape, w.shape as number[])) {
        throw new ConfigError(`${jsonPath}: weight ${w.originalName} has shape [${t.shape.join(', ')}] in the weight files but the topology needs [${w.shape.join(', ')}]; model.json and the .bin files do not match`);
      }
    }
    if (missing.length) {
      throw new ConfigError(`${jsonPath}: the weightsManifest has no weight ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ` (and ${missing.length - 3} more)` : ''} that the topology needs (it lists ${Object.keys(named).slice(0, 3).join(', ')}...); save the model again so that topology and weights match`);
    }
    // assign directly: setWeights/loadWeights would re-apply kernel constraints
    for (const w of model.weights) (w.read() as tf.Variable).assign(named[w.originalName]!);
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    tf.dispose(Object.values(named));
  }
  return model;
}

/** The model's layers (InputLayer left out), checked to form a single chain. */
function chainOf(jsonPath: string, model: tf.LayersModel): tf.layers.Layer[] {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new ConfigError(`${jsonPath}: the model has ${model.inputs.length} inputs and ${model.outputs.length} outputs; a classifier here takes one input (the features) and gives one output (a score per class)`);
  }
  const layers = model.layers.filter((l) => l.getClassName() !== 'InputLayer');
  let prev = model.layers.find((l) => l.getClassName() === 'InputLayer')?.name;
  for (const l of layers) {
    const inbound = l.inboundNodes.length === 1 ? l.inboundNodes[0]!.inboundLayers.map((x) => x.name) : [];
    if (l.inboundNodes.length !== 1 || inbound.length !== 1 || (prev !== undefined && inbound[0] !== prev)) {
      throw new ConfigError(
        `${jsonPath}: layer '${l.name}' (${l.getClassName()}) ${l.inboundNodes.length !== 1 ? `is used ${l.inboundNodes.length} times` : `reads [${inbound.join(', ')}]`}; ` +
          'the toolkit reads a chain of layers, each reading the one before (a tf.sequential or Keras Sequential model): branches and shared layers are not supported',
      );
    }
    prev = l.name;
  }
  if (layers.length === 0) throw new ConfigError(`${jsonPath}: the model has no layers`);
  return layers;
}

/** The activation name of a layer's config (`linear` when none). */
function activationOf(layer: tf.layers.Layer): string {
  const a = (layer.getConfig() as Json).activation;
  return typeof a === 'string' ? a : 'linear';
}

/** Creates a fresh copy of `layer` from its config with `overrides` (unregistered classes were refused earlier). */
function cloneLayer(layer: tf.layers.Layer, overrides: Json): tf.layers.Layer {
  const [cls, fromConfig] = tf.serialization.SerializationMap.getMap().classNameMap[layer.getClassName()]!;
  const config = { ...(layer.getConfig() as Json) };
  delete config.batchInputShape;
  delete config.inputShape;
  delete config.batchSize;
  return fromConfig(cls, { ...config, ...overrides } as tf.serialization.ConfigDict) as tf.layers.Layer;
}

/** Name of the layer that takes the model's input. */
function inputLayerName(model: tf.LayersModel): string {
  return (model.inputs[0]!.sourceLayer as tf.layers.Layer | undefined)?.name ?? model.layers[0]?.name ?? '?';
}

/** The model's input shape without the batch axis, free dimensions filled from the data's shape. */
function inputShapeFor(jsonPath: string, model: tf.LayersModel, target: ImportTarget, log: Logger): { shape: number[]; reshape: boolean } {
  const raw = model.inputs[0]!.shape.slice(1);
  const data = target.shape ?? [target.dim];
  const fix =
    `give the model the input the data has (${target.shape ? `shape [${target.shape.join(', ')}], or flat [${target.dim}]` : `${target.dim} features`}), ` +
    `or ingest the data in the model's layout`;
  if (raw.length === 0) throw new ConfigError(`${jsonPath}: the model's input has no feature axis (shape [${model.inputs[0]!.shape.join(', ')}]); ${fix}`);
  let shape: number[];
  if (raw.some((d) => d === null)) {
    const squeeze = (s: number[]): number[] => (s.length === 3 && s[2] === 1 && raw.length === 2 ? s.slice(0, 2) : s);
    const ds = squeeze(data);
    if (ds.length !== raw.length || raw.some((d, i) => d !== null && d !== ds[i])) {
      throw new ConfigError(`${jsonPath}: the model's input shape [${raw.map((d) => d ?? 'None').join(', ')}] (of layer '${inputLayerName(model)}') does not fit the data's example shape [${data.join(', ')}]; ${fix}`);
    }
    shape = ds;
  } else shape = raw as number[];
  const size = shape.reduce((a, d) => a * d, 1);
  if (size !== target.dim) {
    throw new ConfigError(`${jsonPath}: the model takes inputs of shape [${shape.join(', ')}] (${size} values, layer '${inputLayerName(model)}') but the data's rows have ${target.dim} features${target.shape ? ` (shape [${target.shape.join(', ')}])` : ''}; ${fix}`);
  }
  if (shape.length > 1) {
    const same = (a: number[], b: number[]): boolean => {
      const t = (s: number[]) => (s.length === 3 && s[2] === 1 ? s.slice(0, 2) : s);
      return tf.util.arraysEqual(t(a), t(b));
    };
    if (target.shape && !same(shape, target.shape)) {
      throw new ConfigError(`${jsonPath}: the model takes images of shape [${shape.join(', ')}] but the data's examples have shape [${target.shape.join(', ')}] (same size, other layout: channels first?); ${fix}`);
    }
    if (!target.shape) log.warn(`${jsonPath}: the data records no example shape; its ${target.dim} features are reshaped to the model's input [${shape.join(', ')}] in row-major (channels-last) order`);
  }
  return { shape, reshape: shape.length > 1 };
}

/**
 * The permutation taking the model's output order to the dataset's: `perm[j]` = the output unit of
 * dataset class j. Null when `names` is absent or already in the dataset's order.
 */
function permutationOf(jsonPath: string, names: string[] | undefined, dataset: string[], units: number): number[] | null {
  if (!names) return null;
  if (names.length !== units) throw new ConfigError(`classes: lists ${names.length} names but the model (${jsonPath}) has ${units} output units; list one name per output unit, in the model's order`);
  const at = new Map<string, number>();
  names.forEach((n, i) => {
    if (at.has(n)) throw new ConfigError(`classes: '${n}' is listed twice (positions ${at.get(n)} and ${i}); each output unit of ${jsonPath} has one class`);
    at.set(n, i);
  });
  const unknown = names.filter((n) => !dataset.includes(n));
  if (unknown.length) {
    throw new ConfigError(`classes: ${unknown.slice(0, 5).map((n) => `'${n}'`).join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not a class of the dataset (classes.json has ${dataset.slice(0, 10).map((n) => `'${n}'`).join(', ')}${dataset.length > 10 ? ', ...' : ''}); use the dataset's class names`);
  }
  const perm = dataset.map((n) => at.get(n)!);
  return perm.every((p, j) => p === j) ? null : perm;
}

/**
 * Reads the tfjs Layers model at `jsonPath` and rewrites it for the dataset `target` (see the
 * module comment): flat input, a chain of supported layers, a Dense head `logits` over the
 * dataset's classes in its order, logits out. The caller owns the returned model.
 * @throws ConfigError naming the file, the layer or shape, and the fix, for every mismatch: a
 * missing or unreadable file, an unsupported layer class or structure, an input that does not fit
 * the rows, output units that are not the number of classes, `classes:` names that are not the
 * dataset's, `outputs:` that contradicts the model's final activation.
 */
export async function importLayersModel(jsonPath: string, target: ImportTarget, opts: ImportOptions = {}): Promise<{ model: tf.LayersModel; report: ImportReport }> {
  const log = opts.log ?? silentLogger;
  const C = target.classes.length;
  const user = await loadUserModel(jsonPath);
  let built: tf.Sequential | undefined;
  try {
    const chain = chainOf(jsonPath, user);
    const input = inputShapeFor(jsonPath, user, target, log);
    // the end of the chain: inference no-ops after a softmax, then the softmax itself
    let end = chain.length;
    const dropped: string[] = [];
    const isSoftmaxLayer = (l: tf.layers.Layer): boolean =>
      (l.getClassName() === 'Activation' && activationOf(l) === 'softmax') ||
      (l.getClassName() === 'Softmax' && [undefined, -1].includes((l.getConfig() as Json).axis as number | undefined));
    const softmaxBefore = (i: number): boolean => {
      for (let k = i - 1; k >= 0; k--) {
        const l = chain[k]!;
        if (isSoftmaxLayer(l) || (l.getClassName() === 'Dense' && activationOf(l) === 'softmax')) return true;
        if (!INFERENCE_NO_OPS.has(l.getClassName())) return false;
      }
      return false;
    };
    while (end > 0 && INFERENCE_NO_OPS.has(chain[end - 1]!.getClassName()) && softmaxBefore(end - 1)) dropped.unshift(chain[--end]!.name);
    let softmax: string | null = null;
    let headSoftmax = false;
    if (end > 0 && isSoftmaxLayer(chain[end - 1]!)) {
      softmax = `layer ${chain[end - 1]!.name}`;
      dropped.unshift(chain[--end]!.name);
      while (end > 0 && INFERENCE_NO_OPS.has(chain[end - 1]!.getClassName())) dropped.unshift(chain[--end]!.name);
    }
    const last = end > 0 ? chain[end - 1]! : undefined;
    if (!last || last.getClassName() !== 'Dense') {
      const what = last ? `layer '${last.name}' (${last.getClassName()})` : 'nothing';
      throw new ConfigError(
        `${jsonPath}: the model's scores come from ${what}, not from a Dense layer; the toolkit reads the logits from a final Dense layer ` +
          `(the specialists rebuild it for their classes): end the model with a Dense layer of ${C} units (no activation, or softmax), then save it again`,
      );
    }
    if (!softmax && activationOf(last) === 'softmax') {
      softmax = `activation of ${last.name}`;
      headSoftmax = true;
    }
    if (softmax && activationOf(last) !== 'linear' && !headSoftmax) {
      throw new ConfigError(`${jsonPath}: the softmax (${softmax}) follows layer '${last.name}', whose activation is ${activationOf(last)}; the logits must be linear: remove that activation, then save the model again`);
    }
    if (!softmax && activationOf(last) !== 'linear') {
      throw new ConfigError(
        `${jsonPath}: the last layer '${last.name}' has activation ${activationOf(last)}; a classifier's last layer gives logits (no activation) or probabilities (softmax): ` +
          `set its activation to linear or softmax and save the model again`,
      );
    }
    const outputs: OutputsKind = opts.outputs ?? (softmax ? 'probabilities' : 'logits');
    if (outputs === 'logits' && softmax) {
      throw new ConfigError(`outputs: logits, but ${jsonPath} ends in a softmax (${softmax}), so it outputs probabilities: set outputs: probabilities (or leave outputs out), and the softmax is removed to give logits`);
    }
    if (outputs === 'probabilities' && !softmax) {
      throw new ConfigError(
        `outputs: probabilities, but ${jsonPath} does not end in a softmax (its last layer '${last.name}' is a Dense layer with a linear activation), so its outputs are logits: ` +
          'set outputs: logits (or leave outputs out)',
      );
    }
    const units = (last.getConfig() as Json).units as number;
    const outShape = (last.outputShape as number[]).slice(1);
    if (outShape.length !== 1) {
      throw new ConfigError(`${jsonPath}: the Dense layer '${last.name}' outputs shape [${outShape.join(', ')}] per example, not one score per class; put a Flatten (or global pooling) layer before it and save the model again`);
    }
    if (units !== C) {
      throw new ConfigError(`${jsonPath}: the last Dense layer '${last.name}' has ${units} units but the dataset has ${C} classes (classes.json); give the model one output unit per class, or ingest the data with the model's classes`);
    }
    const perm = permutationOf(jsonPath, opts.classes, target.classes, units);
    const kept = chain.slice(0, end);
    for (const l of kept) {
      const a = activationOf(l);
      if (!(SUPPORTED_ACTIVATIONS as readonly string[]).includes(a)) {
        throw new ConfigError(`${jsonPath}: layer '${l.name}' (${l.getClassName()}) has activation '${a}'; supported activations: ${SUPPORTED_ACTIVATIONS.join(', ')}; change it and save the model again`);
      }
    }
    // the rewritten chain
    const names = new Set(kept.map((l) => l.name));
    const fresh = (base: string): string => {
      let n = base;
      for (let k = 1; names.has(n); k++) n = `${base}_${k}`;
      names.add(n);
      return n;
    };
    built = tf.sequential({ name: 'imported' });
    if (input.reshape) built.add(tf.layers.reshape({ targetShape: input.shape, inputShape: [target.dim], name: fresh('input_reshape') }));
    kept.forEach((l, i) => {
      const overrides: Json = {};
      if (i === 0 && !input.reshape) overrides.batchInputShape = [null, target.dim];
      if (l === last) Object.assign(overrides, { name: LOGITS_LAYER, activation: 'linear', useBias: true });
      else if (l.name === LOGITS_LAYER) overrides.name = fresh(`${LOGITS_LAYER}_body`);
      built!.add(cloneLayer(l, overrides));
    });
    const offset = input.reshape ? 1 : 0;
    kept.forEach((l, i) => {
      const dst = built!.layers[i + offset]!;
      const values = l.getWeights();
      if (l === last) {
        const [kernel, bias] = values as [tf.Tensor, tf.Tensor | undefined];
        const [k, b] = tf.tidy(() => {
          const b0 = bias ?? tf.zeros([units]);
          if (!perm) return [kernel.clone(), b0.clone()];
          const idx = tf.tensor1d(perm, 'int32');
          return [tf.gather(kernel, idx, 1), tf.gather(b0, idx)];
        });
        (dst.weights[0]!.read() as tf.Variable).assign(k);
        (dst.weights[1]!.read() as tf.Variable).assign(b);
        tf.dispose([k, b]);
        return;
      }
      if (values.length !== dst.weights.length) throw new Error(`import: layer '${l.name}' has ${values.length} weights, its copy ${dst.weights.length}`);
      dst.weights.forEach((w, j) => (w.read() as tf.Variable).assign(values[j]!));
    });
    findHead(built, jsonPath);
    try {
      layersToOnnx(built);
    } catch (e) {
      throw new ConfigError(`${jsonPath}: ${(e as Error).message.replace(/^ONNX export: /, '')} (the toolkit supports what it can export); change that layer and save the model again`);
    }
    let check: number | null = null;
    if (opts.sample && opts.sample.n > 0) check = compareOnSample(user, built, opts.sample, target.dim, input.shape, outputs, perm);
    const report: ImportReport = {
      input_shape: input.shape,
      reshape_added: input.reshape,
      outputs,
      softmax_removed: softmax,
      head_from: last.name,
      permutation: perm,
      dropped,
      layers: built.layers.map((l) => l.getClassName()),
      parameters: built.countParams(),
      check_max_diff: check,
    };
    const model = built;
    built = undefined;
    return { model, report };
  } finally {
    user.dispose();
    built?.dispose();
  }
}

/**
 * Largest |difference| between the rewritten model and the original on sample rows: of the
 * logits (outputs `logits`) or of the probabilities (`probabilities`), after the permutation.
 * @throws Error when it exceeds what float32 rounding explains (a bug in the rewrite, not the user's).
 */
function compareOnSample(user: tf.LayersModel, built: tf.LayersModel, sample: { x: Float32Array; n: number }, dim: number, shape: number[], outputs: OutputsKind, perm: number[] | null): number {
  const n = Math.min(sample.n, 64);
  const [diff, scale] = tf.tidy(() => {
    const x = tf.tensor2d(sample.x.subarray(0, n * dim), [n, dim]);
    let orig = user.predict(x.reshape([n, ...shape])) as tf.Tensor2D;
    if (perm) orig = tf.gather(orig, tf.tensor1d(perm, 'int32'), 1);
    let mine = built.predict(x) as tf.Tensor2D;
    if (outputs === 'probabilities') mine = tf.softmax(mine);
    return [tf.max(tf.abs(tf.sub(orig, mine))).dataSync()[0]!, tf.max(tf.abs(orig)).dataSync()[0]!];
  });
  const tol = outputs === 'probabilities' ? 1e-5 : 1e-5 * (1 + scale);
  if (!(diff <= tol)) throw new Error(`import: the rewritten model differs from the original by ${diff} on the sample rows (tolerance ${tol}); this is a bug in the toolkit`);
  return diff;
}
