/**
 * How well saved models (and their arithmetic-mean ensemble) classify the rows of a split shifted by
 * up to `jitter` pixels, the way a jittered transfer set presents them to a teacher queried online
 * (src/models/shifted-accuracy.ts). Shifts are drawn with seed 1, one per row, the same for every model.
 *
 *   npx tsx scripts/shifted-accuracy.ts <split.arrow> <jitter> <model dir>...
 *   e.g. npx tsx scripts/shifted-accuracy.ts artifacts/mnist-ensemble/ingest/train.arrow 2 \
 *          artifacts/mnist-ensemble/members/member-{0..9}/model
 */
import { readSplit } from '../src/data/split-file.ts';
import { loadModel } from '../src/models/io.ts';
import { shiftedAccuracy } from '../src/models/shifted-accuracy.ts';
import { initBackend } from '../src/backend/select.ts';

async function main(): Promise<void> {
  const [file, jitterArg, ...dirs] = process.argv.slice(2);
  const jitter = Number(jitterArg);
  if (!file || !Number.isInteger(jitter) || jitter < 0 || dirs.length === 0) {
    console.error('usage: npx tsx scripts/shifted-accuracy.ts <split.arrow> <jitter pixels> <model dir>...');
    process.exit(2);
  }
  await initBackend('auto');
  const set = await readSplit(file);
  const r = await shiftedAccuracy(set, jitter, dirs.length, (i) => loadModel(dirs[i]!));
  const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
  console.log(`${set.n} rows of ${file}, shifted by up to ${jitter} pixels (seed 1)`);
  console.log('model | accuracy on the rows | on the shifted rows');
  r.models.forEach((m, i) => console.log(`${dirs[i]} | ${pct(m.plain)} | ${pct(m.shifted)}`));
  if (dirs.length > 1) console.log(`arithmetic mean of the ${dirs.length} | ${pct(r.mean.plain)} | ${pct(r.mean.shifted)}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
