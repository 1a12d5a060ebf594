/**
 * The ensemble's cases in blocks: a split file and the generalist's logits on it (the covariance
 * stage's predictions file, or a generalist model run on each block) read side by side in blocks
 * of a fixed number of rows, each block turned into its combination problem
 * ({@link buildProblemFromModels}). One block's arrays (rows x C) are in memory at a time, so the
 * ensemble's memory does not grow with the number of cases.
 */
import type * as tf from '@tensorflow/tfjs';
import { openSplitStream } from '../data/split-stream.ts';
import { openPredictionsStream, type PredictionsChunk } from '../data/predictions-stream.ts';
import type { LabeledSet } from '../data/split-file.ts';
import { predictLogits } from '../models/predict.ts';
import { ArtifactError } from '../util/errors.ts';
import { buildProblemFromModels, type ModelsProblem, type ModelsProblemInput } from './from-models.ts';

/** One block of a split with its combination problem. */
export interface EnsembleBlock {
  /** The block's rows (views of length `n`). */
  set: LabeledSet;
  built: ModelsProblem;
  /** Index in the split of the block's first row (with `rows`: of the first of the consecutive split rows it was selected from). */
  start: number;
}

/** Inputs of {@link ensembleBlocks}. */
export interface EnsembleBlocksInput extends Omit<ModelsProblemInput, 'set' | 'generalistLogits'> {
  /** The split file (ingest's `<split>.arrow`). */
  splitFile: string;
  /** The generalist's logits on the split's rows (a predictions file, column `logits`)... */
  predictionsFile?: string;
  /** ...or the generalist, run on each block. */
  generalist?: tf.LayersModel;
  /** Rows per block. */
  blockRows: number;
  /**
   * Only these rows of the split (ascending indices), e.g. a student's transfer set: each block
   * then holds the selected rows of `blockRows` consecutive split rows (a block with none is
   * skipped) and the generalist runs on those alone. Default: every row.
   */
  rows?: Int32Array;
}

/**
 * Yields the split's blocks in row order with their problems.
 * @throws ArtifactError when the predictions file does not hold the split's rows (count, labels, classes)
 */
export async function* ensembleBlocks(input: EnsembleBlocksInput): AsyncGenerator<EnsembleBlock> {
  const { splitFile, predictionsFile, generalist, blockRows, C } = input;
  if (!predictionsFile === !generalist) throw new RangeError('ensembleBlocks: pass exactly one of predictionsFile and generalist');
  const split = await openSplitStream(splitFile);
  const preds = predictionsFile ? await openPredictionsStream(predictionsFile) : null;
  const misaligned = (what: string): ArtifactError =>
    new ArtifactError(`${predictionsFile} does not hold the rows of ${splitFile}: ${what}; rerun the covariance stage with --force`);
  try {
    if (preds && preds.C !== C) throw misaligned(`it has ${preds.C} classes, expected ${C}`);
    const predIt = preds?.chunks(blockRows)[Symbol.asyncIterator]();
    const want = input.rows;
    if (want) for (let i = 1; i < want.length; i++) if (!(want[i]! > want[i - 1]!)) throw new RangeError('ensembleBlocks: rows must be strictly ascending');
    let next = 0; // the next wanted row (index into want)
    let rows = 0;
    for await (const chunk of split.chunks(blockRows)) {
      const n0 = chunk.n;
      let y = chunk.y.subarray(0, n0);
      let x = chunk.x.subarray(0, n0 * split.dim);
      let pick: number[] | null = null; // with `rows`: the chunk's wanted rows, relative to its start
      if (want) {
        pick = [];
        while (next < want.length && want[next]! < chunk.start + n0) pick.push(want[next++]! - chunk.start);
      }
      let logits: Float32Array | null = null;
      if (predIt) {
        const nx = await predIt.next();
        const p: PredictionsChunk | undefined = nx.done ? undefined : nx.value;
        if (!p || p.n !== n0) throw misaligned(`it has ${p ? chunk.start + p.n : chunk.start} rows where the split has more`);
        for (let r = 0; r < n0; r++) if (p.labels[r] !== y[r]) throw misaligned(`they differ at row ${chunk.start + r}`);
        logits = p.values.subarray(0, n0 * C);
      }
      rows += n0;
      if (pick) {
        if (pick.length === 0) continue;
        const d = split.dim;
        const xs = new Float32Array(pick.length * d);
        const ys = new Int32Array(pick.length);
        const ls = logits ? new Float32Array(pick.length * C) : null;
        pick.forEach((r, j) => {
          xs.set(x.subarray(r * d, (r + 1) * d), j * d);
          ys[j] = y[r]!;
          if (ls) ls.set(logits!.subarray(r * C, (r + 1) * C), j * C);
        });
        x = xs;
        y = ys;
        logits = ls;
      }
      const n = y.length;
      logits ??= predictLogits(generalist!, x, n, split.dim);
      const set: LabeledSet = { x, y, n, dim: split.dim, ...(split.shape ? { shape: split.shape } : {}) };
      const built = await buildProblemFromModels({ ...input, set, generalistLogits: logits });
      yield { set, built, start: chunk.start };
    }
    if (want && next < want.length) throw new RangeError(`ensembleBlocks: row ${want[next]} is outside the split (${rows} rows)`);
    if (predIt) {
      const extra = await predIt.next();
      if (!extra.done) throw misaligned(`it has more than the split's ${rows} rows`);
    }
  } finally {
    await split.close();
    await preds?.close();
  }
}
