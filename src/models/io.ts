import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../artifacts/atomic.ts';
import { sha256 } from '../artifacts/hash.ts';
import { ArtifactError } from '../util/errors.ts';

/** File names of a saved model inside its folder. */
export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

/**
 * Saves `model` to `dir/model.json` + `dir/weights.bin` in the standard tfjs layers format (what
 * `tf.loadLayersModel('file://dir/model.json')` of tfjs-node reads). Each file is written
 * atomically, weights first; `model.json` records the SHA-256 of the weights in
 * `userDefinedMetadata.weightsSha256`, so a folder left with new weights and an old `model.json`
 * (a crash between the two renames) is detected by {@link loadModel} instead of loading silently.
 */
export async function saveModel(model: tf.LayersModel, dir: string): Promise<void> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!artifacts || !artifacts.modelTopology || !artifacts.weightSpecs) {
    throw new Error('tfjs returned no model artifacts to save');
  }
  const weights = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData ?? new ArrayBuffer(0)));
  const modelJson: tf.io.ModelJSON = {
    modelTopology: artifacts.modelTopology,
    format: artifacts.format ?? 'layers-model',
    generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
    convertedBy: artifacts.convertedBy ?? null,
    weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs }],
    userDefinedMetadata: { weightsSha256: sha256(weights), weightsBytes: weights.byteLength },
  };
  await fs.mkdir(dir, { recursive: true });
  await writeFileAtomic(path.join(dir, WEIGHTS_BIN), weights);
  await writeJsonAtomic(path.join(dir, MODEL_JSON), modelJson);
}

function bytesPerValue(spec: tf.io.WeightsManifestEntry): number | undefined {
  if (spec.quantization) return { uint8: 1, uint16: 2, float16: 2 }[spec.quantization.dtype];
  return ({ float32: 4, int32: 4, bool: 1, complex64: 8 } as Record<string, number>)[spec.dtype];
}

async function readOrThrow(file: string): Promise<Buffer> {
  try {
    return await fs.readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new ArtifactError(`model file ${file} is missing: rerun the stage that trains this model (with --force if it is marked done)`, { cause: e });
    }
    throw new ArtifactError(`cannot read model file ${file}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Loads a model saved by {@link saveModel} (or any single-shard tfjs layers model whose
 * manifest lists `weights.bin`). Weights are assigned exactly as stored: unlike
 * `tf.loadLayersModel`, kernel constraints are NOT re-applied on load (tfjs's max-norm rescales
 * every column by `norm / (norm + 1e-7)`, which would change the logits in the last bits).
 * @throws ArtifactError naming the file when `model.json` or `weights.bin` is missing, or saying
 * the model is corrupted (rerun the stage with --force) when the JSON does not parse, the weights
 * have the wrong size or hash, or the topology cannot be rebuilt.
 */
export async function loadModel(dir: string): Promise<tf.LayersModel> {
  const jsonPath = path.join(dir, MODEL_JSON);
  const binPath = path.join(dir, WEIGHTS_BIN);
  const corrupted = (why: string, cause?: unknown): ArtifactError =>
    new ArtifactError(`model in ${dir} is corrupted (${why}): rerun the stage that wrote it with --force`, { cause });
  const jsonText = (await readOrThrow(jsonPath)).toString('utf8');
  let json: tf.io.ModelJSON;
  try {
    json = JSON.parse(jsonText) as tf.io.ModelJSON;
  } catch (e) {
    throw corrupted(`${MODEL_JSON} is not valid JSON: ${(e as Error).message}`, e);
  }
  if (typeof json !== 'object' || json === null || typeof json.modelTopology !== 'object' || json.modelTopology === null) {
    throw corrupted(`${MODEL_JSON} has no modelTopology`);
  }
  if (!Array.isArray(json.weightsManifest) || json.weightsManifest.length === 0) {
    throw corrupted(`${MODEL_JSON} has no weightsManifest`);
  }
  const specs: tf.io.WeightsManifestEntry[] = [];
  for (const group of json.weightsManifest) {
    if (!Array.isArray(group.paths) || !Array.isArray(group.weights)) throw corrupted(`${MODEL_JSON} has a malformed weightsManifest group`);
    if (group.paths.length !== 1 || group.paths[0] !== WEIGHTS_BIN) {
      throw corrupted(`${MODEL_JSON} lists weight files ${JSON.stringify(group.paths)}, expected ["${WEIGHTS_BIN}"]`);
    }
    specs.push(...group.weights);
  }
  let expected = 0;
  for (const s of specs) {
    const b = bytesPerValue(s);
    if (b === undefined || !Array.isArray(s.shape)) throw corrupted(`weight ${s.name} has unsupported dtype ${String(s.dtype)}`);
    expected += b * s.shape.reduce((p, d) => p * d, 1);
  }
  const bin = await readOrThrow(binPath);
  if (bin.byteLength !== expected) {
    throw corrupted(`${WEIGHTS_BIN} has ${bin.byteLength} bytes, the manifest needs ${expected}`);
  }
  const meta = json.userDefinedMetadata as { weightsSha256?: unknown } | undefined;
  if (meta && typeof meta.weightsSha256 === 'string' && meta.weightsSha256 !== sha256(bin)) {
    throw corrupted(`${WEIGHTS_BIN} does not match the hash recorded in ${MODEL_JSON}`);
  }
  let model: tf.LayersModel;
  try {
    model = await tf.models.modelFromJSON({ modelTopology: json.modelTopology } as tf.io.ModelJSON as never);
  } catch (e) {
    throw corrupted(`the topology in ${MODEL_JSON} cannot be rebuilt: ${(e as Error).message}`, e);
  }
  const data = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) as ArrayBuffer;
  const named = tf.io.decodeWeights(data, specs);
  try {
    assignExact(model, named, corrupted);
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    tf.dispose(Object.values(named));
  }
  return model;
}

/** Assigns `named` (by original weight name) to the model's variables, bypassing constraints. */
function assignExact(model: tf.LayersModel, named: tf.NamedTensorMap, corrupted: (why: string) => ArtifactError): void {
  const weights = model.weights;
  const names = Object.keys(named);
  if (names.length !== weights.length) throw corrupted(`${WEIGHTS_BIN} holds ${names.length} tensors, the topology has ${weights.length}`);
  for (const w of weights) {
    const t = named[w.originalName];
    if (!t) throw corrupted(`weight ${w.originalName} is missing from the manifest`);
    if (t.shape.join('x') !== w.shape.join('x')) {
      throw corrupted(`weight ${w.originalName} has shape [${t.shape.join(', ')}], the topology needs [${w.shape.join(', ')}]`);
    }
  }
  for (const w of weights) (w.read() as tf.Variable).assign(named[w.originalName]!);
}
