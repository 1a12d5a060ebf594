/**
 * How well models (and their arithmetic-mean ensemble) classify the rows of a split shifted by up
 * to `jitter` pixels, the way a jittered transfer set presents them to a teacher queried online.
 * A teacher trained without shifts can be much worse there than on the split itself, and then its
 * soft targets on a jittered transfer set teach errors.
 *
 *   npx tsx scripts/shifted-accuracy.ts <split.arrow> <jitter> <model dir>...
 *   e.g. npx tsx scripts/shifted-accuracy.ts artifacts/mnist-ensemble/ingest/train.arrow 2 \
 *          artifacts/mnist-ensemble/members/member-{0..9}/model
 *
 * Shifts are drawn with seed 1 (one shift per row, the same for every model).
 */
import { readSplit } from '../src/data/split-file.ts';
import { imageShape, jitterBatch } from '../src/models/jitter.ts';
import { loadModel } from '../src/models/io.ts';
import { predictLogits } from '../src/models/predict.ts';
import { initBackend } from '../src/backend/select.ts';
import { Rng } from '../src/util/rng.ts';

function accuracy(probsOrLogits: Float32Array, labels: Int32Array, C: number): number {
  let right = 0;
  for (let r = 0; r < labels.length; r++) {
    let b = 0;
    for (let i = 1; i < C; i++) if (probsOrLogits[r * C + i]! > probsOrLogits[r * C + b]!) b = i;
    if (b === labels[r]) right++;
  }
  return right / labels.length;
}

function softmaxInto(logits: Float32Array, C: number, acc: Float32Array, scale: number): void {
  for (let r = 0; r < logits.length / C; r++) {
    let m = -Infinity;
    for (let i = 0; i < C; i++) m = Math.max(m, logits[r * C + i]!);
    let s = 0;
    for (let i = 0; i < C; i++) s += Math.exp(logits[r * C + i]! - m);
    for (let i = 0; i < C; i++) acc[r * C + i]! += (scale * Math.exp(logits[r * C + i]! - m)) / s;
  }
}

async function main(): Promise<void> {
  const [file, jitterArg, ...models] = process.argv.slice(2);
  const jitter = Number(jitterArg);
  if (!file || !Number.isInteger(jitter) || jitter < 0 || models.length === 0) {
    console.error('usage: npx tsx scripts/shifted-accuracy.ts <split.arrow> <jitter pixels> <model dir>...');
    process.exit(2);
  }
  await initBackend('auto');
  const set = await readSplit(file);
  const img = imageShape(set.shape, set.dim);
  const shifted = jitterBatch(set.x, set.n, img, jitter, new Rng(1));
  let C = 0;
  let mean: Float32Array | null = null;
  let meanPlain: Float32Array | null = null;
  console.log(`${set.n} rows of ${file}, shifted by up to ${jitter} pixels (seed 1)`);
  console.log('model | accuracy on the rows | on the shifted rows');
  for (const dir of models) {
    const model = await loadModel(dir);
    try {
      const plain = predictLogits(model, set.x, set.n, set.dim);
      const moved = predictLogits(model, shifted, set.n, set.dim);
      C = plain.length / set.n;
      mean ??= new Float32Array(set.n * C);
      meanPlain ??= new Float32Array(set.n * C);
      softmaxInto(moved, C, mean, 1 / models.length);
      softmaxInto(plain, C, meanPlain, 1 / models.length);
      console.log(`${dir} | ${(100 * accuracy(plain, set.y, C)).toFixed(2)}% | ${(100 * accuracy(moved, set.y, C)).toFixed(2)}%`);
    } finally {
      model.dispose();
    }
  }
  if (models.length > 1) console.log(`arithmetic mean of the ${models.length} | ${(100 * accuracy(meanPlain!, set.y, C)).toFixed(2)}% | ${(100 * accuracy(mean!, set.y, C)).toFixed(2)}%`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
