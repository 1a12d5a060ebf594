/**
 * `npm run worker -- --queue redis://HOST:PORT[/db] [--concurrency N] [--threads T]`: takes the
 * jobs a pipeline run with `--queue` puts on the queue (specialists, ensemble members, sweep
 * students: the job types of `src/jobs/job-types.ts`) and runs them, until stopped
 * (Ctrl-C / SIGTERM: it finishes the jobs it runs; a job cut short by SIGKILL goes to another
 * worker). It needs the run folder at the same path as the coordinator (a shared filesystem).
 */
import { parseArgs } from 'node:util';
import { startQueueWorker } from '../jobs/queue-worker.ts';
import { UserError } from '../util/errors.ts';
import { createLogger } from '../util/log.ts';
import { runCli } from './run-cli.ts';

const USAGE = `usage: npm run worker -- --queue redis://[user:pass@]HOST:PORT[/db] [--concurrency N] [--threads T]
                         [--lock-ms MS] [--stalled-ms MS]

(also: distill-kit worker --queue ...)

Runs the jobs that 'npm run pipeline -- --queue URL' queues (one per specialist, train-ensemble
member and distill-sweep student), N at a time, each in its own process with T BLAS threads
(default: cores / N). The run folder must be at the same path on this machine as on the
coordinator (a shared filesystem). Stop with Ctrl-C.
--lock-ms     how long a job's lock lasts unrenewed: a killed worker's job moves on after it (default 30000)
--stalled-ms  how often this worker looks for such jobs (default 30000)`;

await runCli(USAGE, async (argv) => {
  const { values } = parseArgs({
    args: argv,
    options: {
      queue: { type: 'string' },
      concurrency: { type: 'string', default: '1' },
      threads: { type: 'string' },
      'lock-ms': { type: 'string' },
      'stalled-ms': { type: 'string' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!values.queue) throw new UserError('usage', `--queue is required, e.g. --queue redis://127.0.0.1:6379\n${USAGE}`);
  const int = (flag: string, v: string | undefined, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UserError('usage', `--${flag} expects an integer >= ${min}, got '${v}'`);
    return n;
  };
  const log = createLogger({ prefix: 'worker', tty: false });
  const lock = int('lock-ms', values['lock-ms'], 100);
  const stalled = int('stalled-ms', values['stalled-ms'], 100);
  const threads = int('threads', values.threads, 1);
  const worker = startQueueWorker({
    url: values.queue,
    concurrency: int('concurrency', values.concurrency, 1)!,
    ...(threads !== undefined ? { threads } : {}),
    ...(lock !== undefined ? { lockDurationMs: lock } : {}),
    ...(stalled !== undefined ? { stalledIntervalMs: stalled } : {}),
    log,
  });
  await worker.ready();
  log.info(`worker ${worker.name}: ready`);
  await new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      log.info(`${sig}: finishing the running jobs, then stopping`);
      void worker.close().then(resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
});
