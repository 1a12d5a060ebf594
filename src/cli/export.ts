/**
 * `npm run export -- artifacts/RUN/STAGE --onnx FILE [--force]`: writes the stage's trained model
 * as an ONNX file (input `input`, output `logits`), for onnxruntime and other ONNX runtimes.
 */
import { parseArgs } from 'node:util';
import { runCli } from './run-cli.ts';
import { exportOnnx } from '../export/export-model.ts';
import { SUPPORTED_LAYERS } from '../export/layers-to-onnx.ts';
import { createLogger } from '../util/log.ts';

const USAGE = `usage: npm run export -- STAGE_FOLDER --onnx FILE [--force]

Writes the model a training stage saved (STAGE_FOLDER/model, e.g. artifacts/<run>/distill; for a
specialist, artifacts/<run>/specialists/specialist-00) as an ONNX file (opset 13). Input 'input'
has the model's input shape with the batch first; output 'logits' is what the model outputs (the
logits: apply softmax for probabilities). Class names are in the file's metadata ('classes').
An existing FILE is replaced only with --force.
Layers: ${SUPPORTED_LAYERS.join(', ')}.`;

await runCli(USAGE, async (argv) => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      onnx: { type: 'string' },
      force: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const dir = positionals[0];
  if (!dir || positionals.length > 1 || !values.onnx) {
    process.stderr.write(USAGE + '\n');
    process.exit(2);
  }
  await exportOnnx(dir, values.onnx, { force: values.force, log: createLogger() });
});
