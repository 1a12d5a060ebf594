/**
 * `npm run predict -- artifacts/RUN/STAGE --input FILE [--out preds.arrow] [--top K]`: a finished
 * stage's predictions on new rows (see src/predict/).
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runCli } from './run-cli.ts';
import { initBackend } from '../backend/select.ts';
import { loadPredictor } from '../predict/predictor.ts';
import { predictFile } from '../predict/predict-file.ts';
import { createLogger } from '../util/log.ts';
import { ConfigError } from '../util/errors.ts';

const USAGE = `usage: npm run predict -- STAGE_FOLDER --input FILE [--out FILE.arrow [--force]] [--top K] [--backend NAME]

Predicts the rows of FILE (Arrow IPC file/stream or Parquet, the columns ingest accepts; a label
column is optional) with a finished stage: any stage that trained a model (artifacts/RUN/generalist,
artifacts/RUN/student, ...) or an ensemble stage (the generalist, the specialists active for each
row and the KL combination at the weight chosen in training). Writes predicted, predicted_name,
top_classes and top_probabilities (K most probable classes, default 5) and label (-1 where a row
had none) to --out; with labels, prints the accuracy. Rows are streamed in record batches.
An existing --out file is replaced when an earlier predict wrote it, any other file only with --force.`;

await runCli(USAGE, async (argv) => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      input: { type: 'string' },
      out: { type: 'string' },
      top: { type: 'string' },
      backend: { type: 'string' },
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
  if (positionals.length !== 1 || !values.input) {
    process.stderr.write(USAGE + '\n');
    process.exit(2);
  }
  const top = values.top === undefined ? 5 : Number(values.top);
  if (!Number.isInteger(top) || top < 1) throw new ConfigError(`--top ${values.top}: give a whole number >= 1`);
  const log = createLogger();
  const backend = await initBackend(values.backend ?? 'auto', (m) => log.info(m));
  log.info(`backend: ${backend.name} (${backend.detail})`);
  const predictor = await loadPredictor(positionals[0]!);
  try {
    const r = await predictFile(predictor, { input: values.input, ...(values.out ? { out: values.out } : {}), top, force: values.force, log });
    const acc = r.accuracy === null ? 'no labels' : `accuracy ${(100 * r.accuracy).toFixed(2)}% (${r.errors} errors of ${r.labelled})`;
    console.log(`${r.rows} rows predicted by ${predictor.kind} ${path.basename(predictor.stageDir)}: ${acc}${r.out ? `; wrote ${r.out}` : ''}`);
  } finally {
    predictor.dispose();
  }
});
