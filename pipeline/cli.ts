import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from './config.ts';
import { runPipeline, type RunOptions } from './runner.ts';
import { runPipelineConcurrently } from './concurrent-runner.ts';
import { STAGES } from './stages/index.ts';
import { runCli } from '../src/cli/run-cli.ts';
import { UserError } from '../src/util/errors.ts';
import { PACKAGE_ROOT } from '../src/util/package-root.ts';
import { parseQueueUrl } from '../src/jobs/queue-url.ts';

const USAGE = `usage: npm run pipeline -- [--config pipeline/configs/NAME.yaml] [--out DIR] [--only STAGE[,STAGE...] | --from STAGE]
                             [--force] [--backend auto|tensorflow|wasm-blas|wasm|cpu] [--seed N] [--workers N [--concurrent-stages]] [--queue redis://HOST:PORT[/db]] [--verbose]

Runs the stages of a config in order; unchanged stages are skipped. Default config: pipeline/configs/mnist.yaml.
--workers N runs independent jobs (specialists, train-ensemble members, distill-sweep students) in N local processes;
--concurrent-stages also runs independent stages side by side (e.g. a control beside the specialists), each in its own
process, the N processes shared between them (pipeline/concurrent-runner.ts);
--queue puts them on a BullMQ queue for 'npm run worker' processes (run folder on a shared filesystem).
--only runs just the listed stages (comma-separated, in config order) on finished upstream stages.
Stage types: ${Object.values(STAGES).map((s) => `\n  ${s.type.padEnd(12)} ${s.description}`).join('')}`;

/**
 * `pipeline/configs/mnist.yaml` in the working directory (a clone of the repository), else the copy
 * in the installed package.
 */
function defaultConfig(): string {
  const rel = path.join('pipeline', 'configs', 'mnist.yaml');
  return existsSync(rel) ? rel : path.join(PACKAGE_ROOT, rel);
}

await runCli(USAGE, async (argv) => {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      out: { type: 'string' },
      only: { type: 'string' },
      from: { type: 'string' },
      force: { type: 'boolean', default: false },
      backend: { type: 'string' },
      seed: { type: 'string' },
      workers: { type: 'string' },
      'concurrent-stages': { type: 'boolean', default: false },
      queue: { type: 'string' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const int = (flag: string, v: string | undefined, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UserError('usage', `--${flag} expects an integer >= ${min}, got '${v}'`);
    return n;
  };
  if (values.queue !== undefined) parseQueueUrl(values.queue, '--queue');
  const config = loadConfig(values.config ?? defaultConfig(), STAGES);
  const workers = int('workers', values.workers, 1) ?? 1;
  const options: RunOptions = {
    ...(values.out !== undefined ? { out: values.out } : {}),
    ...(values.only !== undefined ? { only: values.only.split(',').map((n) => n.trim()).filter((n) => n !== '') } : {}),
    ...(values.from !== undefined ? { from: values.from } : {}),
    force: values.force,
    ...(values.backend !== undefined ? { backend: values.backend } : {}),
    ...(values.seed !== undefined ? { seed: int('seed', values.seed, 0)! } : {}),
    workers,
    ...(values.queue !== undefined ? { queue: values.queue } : {}),
  };
  const result = values['concurrent-stages'] ? await runPipelineConcurrently(config, { ...options, workers }) : await runPipeline(config, options);
  const rel = path.relative(process.cwd(), result.runDir) || '.';
  console.log(`\n${config.name}: ${result.stages.map((s) => `${s.name} ${s.status}${s.status === 'ran' ? ` ${s.seconds.toFixed(1)}s` : ''}`).join(', ')}`);
  console.log(`artifacts in ${rel}/ (npm run inspect -- ${rel}/<stage>)`);
});
