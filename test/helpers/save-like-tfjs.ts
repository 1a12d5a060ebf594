/** Writes a tfjs model as tfjs-node's `model.save('file://DIR')` and tensorflowjs_converter do (for tests). */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Saves `model` to `dir/model.json` (modelTopology + weightsManifest) beside
 * `group1-shardKofN.bin` weight files (`shards` of them), the layout of tfjs-node's
 * `model.save('file://DIR')` and of `tensorflowjs_converter --input_format keras`.
 * @returns the path of `model.json`.
 */
export async function saveLikeTfjs(model: tf.LayersModel, dir: string, shards = 1): Promise<string> {
  let art: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => ((art = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })));
  const bytes = new Uint8Array(tf.io.CompositeArrayBuffer.join(art!.weightData!));
  mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  const per = Math.ceil(bytes.length / shards);
  for (let k = 0; k < shards; k++) {
    const name = `group1-shard${k + 1}of${shards}.bin`;
    writeFileSync(path.join(dir, name), bytes.subarray(k * per, Math.min(bytes.length, (k + 1) * per)));
    paths.push(name);
  }
  const json = { modelTopology: art!.modelTopology, format: 'layers-model', generatedBy: 'test', convertedBy: null, weightsManifest: [{ paths, weights: art!.weightSpecs }] };
  writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
  return path.join(dir, 'model.json');
}
