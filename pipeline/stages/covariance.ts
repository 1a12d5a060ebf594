import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { defineStage } from '../stage.ts';
import { openSplitStream } from '../../src/data/split-stream.ts';
import { PredictionsWriter } from '../../src/data/predictions-stream.ts';
import { loadModel } from '../../src/models/io.ts';
import { predictLogits } from '../../src/models/predict.ts';
import { CovarianceAccumulator, writeCovariance } from '../../src/specialists/covariance.ts';
import { unlabeledFile, warnIfTrainedOnValid } from './common.ts';
import { failpoint } from '../../src/util/failpoint.ts';

const schema = z.strictObject({
  /** The `ingest` stage. */
  data: z.string().default('ingest'),
  /** The model stage whose predictions are clustered (the generalist). */
  model: z.string().default('generalist'),
  /**
   * Which split the covariance is computed on; labels are not used (never `test`). `unlabeled`:
   * the dataset's rows with split = 'unlabeled' (an unlabelled transfer set).
   */
  split: z.enum(['valid', 'train', 'unlabeled']).default('valid'),
  /** Covariance of the predicted probabilities (the default) or of the logits. */
  source: z.enum(['probabilities', 'logits']).default('probabilities'),
  /** Rows per forward pass. */
  batch_size: z.number().int().positive().max(65_536).default(1000),
});

/**
 * `covariance`: the C x C covariance of the generalist's predictions, streamed in batches, and the
 * generalist's logits on valid and test (reused by clusters, specialists and ensemble).
 *
 * Memory does not grow with the number of rows: each split is read from its file in chunks of
 * `batch_size` rows and the logits go straight to the accumulator and to the predictions files
 * (one record batch buffered); the C x C accumulator is the only large state.
 */
export const covarianceStage = defineStage({
  type: 'covariance',
  description: "covariance of the generalist's predicted probabilities (streamed) + its logits on valid/test",
  schema,
  deps: (p) => [p.data, p.model],
  code: ['pipeline/stages/covariance.ts'],
  async run(ctx) {
    const p = ctx.params;
    if (p.split === 'valid') warnIfTrainedOnValid(ctx.input(p.model), p.model, 'the covariance (split: valid)', ctx.log);
    const model = await loadModel(path.join(ctx.input(p.model), 'model'));
    try {
      const dataDir = ctx.input(p.data);
      const C = model.outputs[0]!.shape[1] as number;
      const rows = splitRows(dataDir);
      if (p.split === 'unlabeled') unlabeledFile(dataDir, p.data, "covariance.split is 'unlabeled'", 'use split: valid or train');
      /**
       * One streaming pass over a split: chunks of exactly batch_size rows, so every forward pass
       * sees the same rows as a pass over the whole split would (identical logits and
       * covariance), and only one chunk, its logits and one record batch per output are held.
       */
      const pass = async (split: 'train' | 'valid' | 'test' | 'unlabeled', acc?: CovarianceAccumulator): Promise<void> => {
        const stream = await openSplitStream(path.join(dataDir, `${split}.arrow`));
        const writer = split === 'train' || split === 'unlabeled' ? undefined : new PredictionsWriter(path.join(ctx.outDir, `predictions-${split}.arrow`), C, 'logits', { split, model: p.model });
        const bar = ctx.log.progress(acc ? `covariance on ${split}` : `logits on ${split}`, rows[split] ?? 0);
        try {
          for await (const chunk of stream.chunks(p.batch_size)) {
            predictLogits(model, chunk.x.subarray(0, chunk.n * stream.dim), chunk.n, stream.dim, {
              batchSize: p.batch_size,
              onBatch: (start, logits, n) => {
                acc?.addBatch(logits, n);
                writer?.add(chunk.y.subarray(start, start + n), logits, n);
                bar.tick(n);
              },
            });
          }
          writer?.finish();
        } catch (e) {
          writer?.abort();
          throw e;
        } finally {
          await stream.close();
        }
        bar.done();
      };
      const acc = new CovarianceAccumulator(C, p.source);
      await pass(p.split, acc);
      const result = acc.result();
      await writeCovariance(ctx.outDir, result, { split: p.split, source: p.source });
      failpoint('covariance-written');
      if (p.split !== 'valid') await pass('valid');
      await pass('test');
      let trace = 0;
      for (let i = 0; i < C; i++) trace += result.cov[i * C + i]!;
      ctx.log.info(`covariance of ${p.source} over ${result.examples} ${p.split} examples, ${C} classes (trace ${trace.toFixed(4)})`);
      return { classes: C, examples: result.examples, source: p.source, split: p.split };
    } finally {
      model.dispose();
    }
  },
});

/** Rows per split from the ingest stage's `classes.json` (for progress totals; {} if unreadable). */
function splitRows(dataDir: string): Partial<Record<'train' | 'valid' | 'test' | 'unlabeled', number>> {
  try {
    const c = JSON.parse(readFileSync(path.join(dataDir, 'classes.json'), 'utf8')) as { rows?: Partial<Record<'train' | 'valid' | 'test' | 'unlabeled', number>> };
    return c.rows ?? {};
  } catch {
    return {};
  }
}
