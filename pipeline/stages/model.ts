/**
 * `model`: a user's own trained tfjs Layers model (saved by tfjs, or converted from Keras with
 * tensorflowjs_converter), checked against the dataset and written in the toolkit's form, so
 * that it is read like any trained stage: a distillation teacher, the generalist of the
 * specialist pipeline, `init_from` of a student, `npm run predict`, `npm run export`.
 */
import path from 'node:path';
import { z } from 'zod';
import { defineStage } from '../stage.ts';
import { importLayersModel, modelFilesOf } from '../../src/models/import-model.ts';
import { saveModel } from '../../src/models/io.ts';
import { sha256File } from '../../src/artifacts/hash.ts';
import { writeJsonAtomic } from '../../src/artifacts/atomic.ts';
import { evaluateSplits, readIngested } from './common.ts';

const schema = z.strictObject({
  /** The `ingest` stage whose data the model is checked against and measured on. */
  data: z.string().default('ingest'),
  /**
   * The model's `model.json` (tfjs Layers format: `modelTopology` + `weightsManifest`, its weight
   * files beside it), e.g. from tfjs `model.save('file://DIR')` or `tensorflowjs_converter
   * --input_format keras model.h5 DIR`. Relative to the working directory.
   */
  path: z.string().min(1),
  /**
   * The class names of the model's output units, in the model's order, when it differs from
   * `classes.json`'s (e.g. a model trained with other label indices); the units are reordered.
   */
  classes: z.array(z.string().min(1)).min(2).optional(),
  /**
   * What the model outputs: `logits`, or `probabilities` (a final softmax, which is removed so
   * that the stage's model gives logits). Default: `probabilities` exactly when the model ends
   * in a softmax.
   */
  outputs: z.enum(['logits', 'probabilities']).optional(),
});

/** Name of the file recording where the model came from and what was changed. */
export const SOURCE_FILE = 'source.json';

/**
 * `model`: reads the user's model, validates it against the dataset (input shape vs the rows'
 * features or shape, output units vs the classes, `classes:` names, `outputs:`), rewrites it
 * (flat input, Dense head `logits` in the dataset's class order, logits out), and writes
 * `model/`, `metrics.json` (valid and test accuracy) and `source.json`.
 */
export const modelStage = defineStage({
  type: 'model',
  description: "your own trained tfjs Layers model (model.json + weights, e.g. converted from Keras), checked against the data and used like a trained stage",
  schema,
  deps: (p) => [p.data],
  externalInputs: (p) => modelFilesOf(p.path),
  code: ['pipeline/stages/model.ts'],
  async run(ctx) {
    const p = ctx.params;
    const jsonPath = path.resolve(p.path);
    const data = await readIngested(ctx.input(p.data));
    const classes = data.classes.classes.map((c) => c.name);
    const { model, report } = await importLayersModel(
      jsonPath,
      { dim: data.classes.dim, shape: data.classes.shape, classes },
      { classes: p.classes, outputs: p.outputs, sample: data.valid.n > 0 ? { x: data.valid.x, n: data.valid.n } : undefined, log: ctx.log },
    );
    try {
      const { valid, test } = evaluateSplits(model, data);
      await saveModel(model, path.join(ctx.outDir, 'model'));
      const files = modelFilesOf(jsonPath);
      const hashes: Record<string, string> = {};
      for (const f of files) hashes[path.relative(path.dirname(jsonPath), f)] = await sha256File(f);
      await writeJsonAtomic(path.join(ctx.outDir, SOURCE_FILE), { path: p.path, files: hashes, ...report });
      await writeJsonAtomic(path.join(ctx.outDir, 'metrics.json'), { test, valid, best_epoch: null, classes: classes.length, source: p.path, outputs: report.outputs });
      const changes = [
        report.reshape_added ? `Reshape [${data.classes.dim}] -> [${report.input_shape.join(', ')}] put in front` : null,
        report.softmax_removed ? `softmax removed (${report.softmax_removed})` : null,
        report.permutation ? 'output units reordered to classes.json' : null,
        report.head_from !== 'logits' ? `head '${report.head_from}' renamed 'logits'` : null,
      ].filter((s) => s !== null);
      ctx.log.info(`${p.path}: ${report.layers.length} layers, ${report.parameters} parameters${changes.length ? `; ${changes.join('; ')}` : ''}`);
      ctx.log.info(`valid accuracy ${(100 * valid.accuracy).toFixed(2)}%, test accuracy ${(100 * test.accuracy).toFixed(2)}% (${test.errors} errors of ${test.examples})`);
      return { test_accuracy: test.accuracy, test_errors: test.errors, valid_accuracy: valid.accuracy, parameters: report.parameters };
    } finally {
      model.dispose();
    }
  },
});
