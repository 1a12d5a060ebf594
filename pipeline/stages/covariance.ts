import path from 'node:path';
import { z } from 'zod';
import { defineStage } from '../stage.ts';
import { readSplit } from '../../src/data/split-file.ts';
import { loadModel } from '../../src/models/io.ts';
import { predictLogits } from '../../src/models/predict.ts';
import { CovarianceAccumulator, writeCovariance } from '../../src/specialists/covariance.ts';
import { writePredictions } from '../../src/artifacts/predictions.ts';

const schema = z.strictObject({
  /** The `ingest` stage. */
  data: z.string().default('ingest'),
  /** The model stage whose predictions are clustered (the generalist). */
  model: z.string().default('generalist'),
  /** Which split the covariance is computed on; labels are not used (never `test`). */
  split: z.enum(['valid', 'train']).default('valid'),
  /** Covariance of the predicted probabilities (the default) or of the logits. */
  source: z.enum(['probabilities', 'logits']).default('probabilities'),
  /** Rows per forward pass. */
  batch_size: z.number().int().positive().max(65_536).default(1000),
});

/**
 * `covariance`: the C x C covariance of the generalist's predictions, streamed in batches, and the
 * generalist's logits on valid and test (reused by clusters, specialists and ensemble).
 */
export const covarianceStage = defineStage({
  type: 'covariance',
  description: "covariance of the generalist's predicted probabilities (streamed) + its logits on valid/test",
  schema,
  deps: (p) => [p.data, p.model],
  code: ['pipeline/stages/covariance.ts', 'src/specialists/covariance.ts', 'src/models/predict.ts', 'src/models/io.ts', 'src/artifacts/predictions.ts'],
  async run(ctx) {
    const p = ctx.params;
    const model = await loadModel(path.join(ctx.input(p.model), 'model'));
    try {
      const dataDir = ctx.input(p.data);
      const set = await readSplit(path.join(dataDir, `${p.split}.arrow`));
      const C = model.outputs[0]!.shape[1] as number;
      const acc = new CovarianceAccumulator(C, p.source);
      const bar = ctx.log.progress(`covariance on ${p.split}`, set.n);
      // Logits of the chosen split are kept only when it is `valid` (written below); the
      // accumulator itself never holds more than one batch.
      const keep = p.split === 'valid' ? new Float32Array(set.n * C) : undefined;
      predictLogits(model, set.x, set.n, set.dim, {
        batchSize: p.batch_size,
        onBatch: (start, logits, rows) => {
          acc.addBatch(logits, rows);
          keep?.set(logits.subarray(0, rows * C), start * C);
          bar.tick(rows);
        },
      });
      bar.done();
      const result = acc.result();
      await writeCovariance(ctx.outDir, result, { split: p.split, source: p.source });
      for (const split of ['valid', 'test'] as const) {
        const s = split === p.split ? set : await readSplit(path.join(dataDir, `${split}.arrow`));
        const values = split === 'valid' && keep ? keep : predictLogits(model, s.x, s.n, s.dim, { batchSize: p.batch_size });
        await writePredictions(path.join(ctx.outDir, `predictions-${split}.arrow`), { labels: s.y, values, n: s.n, C }, 'logits', { split, model: p.model });
      }
      let trace = 0;
      for (let i = 0; i < C; i++) trace += result.cov[i * C + i]!;
      ctx.log.info(`covariance of ${p.source} over ${result.examples} ${p.split} examples, ${C} classes (trace ${trace.toFixed(4)})`);
      return { classes: C, examples: result.examples, source: p.source, split: p.split };
    } finally {
      model.dispose();
    }
  },
});
