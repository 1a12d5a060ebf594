/**
 * `npm run report -- artifacts/RUN [--out FILE] [--stages a,b] [--title TEXT]`: writes the run's
 * self-contained HTML report, by default to `artifacts/RUN/report/index.html`.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runCli } from './run-cli.ts';
import { writeReport } from '../report/write.ts';
import { createLogger } from '../util/log.ts';
import { UserError } from '../util/errors.ts';

const USAGE = `usage: npm run report -- RUN_FOLDER [--out FILE [--force]] [--stages a,b,...] [--title TEXT]

Writes one self-contained HTML page (charts included, no network needed) summarising a run:
stages and times, training curves, the prediction covariance by cluster, clusters, specialists,
the ensemble's accuracy tables, distillation results. Default output RUN_FOLDER/report/index.html.
An existing --out file is replaced when it is an earlier report page, any other file only with --force.`;

await runCli(USAGE, async (argv) => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      stages: { type: 'string' },
      title: { type: 'string' },
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
  const runDir = positionals[0];
  if (!runDir || positionals.length > 1) {
    process.stderr.write(USAGE + '\n');
    process.exit(2);
  }
  if (!existsSync(runDir) || !statSync(runDir).isDirectory()) {
    throw new UserError('io', `${runDir} is not a folder; give a run folder written by the pipeline (artifacts/<config name>)`);
  }
  const reportDir = path.join(runDir, 'report');
  const out = values.out ?? path.join(reportDir, 'index.html');
  const written = await writeReport(runDir, out, {
    log: createLogger(),
    force: values.force || values.out === undefined, // the default path is the run folder's own report/
    ...(values.stages ? { stages: values.stages.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
    ...(values.title !== undefined ? { title: values.title } : {}),
  });
  console.log(path.relative(process.cwd(), path.resolve(written.file)) || written.file);
});
