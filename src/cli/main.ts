/**
 * `distill-kit <command> [args]`: the package's command-line entry (the `bin` of package.json).
 * Each command is one row of {@link COMMANDS}; the command's own flags follow its name, e.g.
 * `distill-kit pipeline --config my.yaml`, `distill-kit inspect artifacts/RUN`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PACKAGE_ROOT, PACKAGE_VERSION } from '../util/package-root.ts';

/** One subcommand: a one-line summary and how to run it (its arguments are `process.argv.slice(2)`). */
interface Command {
  summary: string;
  run: () => Promise<unknown>;
}

/** The subcommands, in the order `--help` lists them. Adding one is one row. */
const COMMANDS: Record<string, Command> = {
  pipeline: { summary: 'run the stages of a config (unchanged stages are skipped)', run: () => import('../../pipeline/cli.ts') },
  inspect: { summary: 'describe a run folder, a stage folder or an .arrow file', run: () => import('./inspect.ts') },
  dataset: { summary: 'make a built-in dataset recipe as an .arrow file', run: async () => (process.exitCode = await (await import('../../datasets/cli.ts')).main(process.argv.slice(2))) },
  predict: { summary: 'predict new rows (.arrow or .parquet) with a finished stage', run: () => import('./predict.ts') },
  report: { summary: "(re)write a run's self-contained HTML report", run: () => import('./report.ts') },
  export: { summary: 'export a trained model of a stage folder (--onnx FILE)', run: () => import('./export.ts') },
  worker: { summary: 'take the jobs of pipeline runs with --queue redis://... (specialists) and run them', run: () => import('./worker.ts') },
  bench: { summary: 'throughput benchmarks, beside PyTorch when installed (in a clone of the repository)', run: runBench },
};

/**
 * The benchmarks are TypeScript under `bench/` in the repository (not in the npm package): run
 * them with tsx when they are there, else say where to find them.
 */
async function runBench(): Promise<void> {
  const entry = path.join(PACKAGE_ROOT, 'bench', 'run.ts');
  let tsx: string | undefined;
  try {
    tsx = pathToFileURL(path.join(path.dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'loader.mjs')).href;
  } catch {
    /* tsx is a development dependency: absent from an installed package */
  }
  if (!existsSync(entry) || tsx === undefined) {
    process.stderr.write('error: distill-kit bench runs the benchmarks in bench/ of a clone of the distill-kit repository (they are not part of the npm package): there, run npm ci, then npm run bench\n');
    process.exitCode = 1;
    return;
  }
  const r = spawnSync(process.execPath, ['--import', tsx, entry, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
}

function usage(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return [
    `usage: distill-kit <command> [args]   (distill-kit ${PACKAGE_VERSION})`,
    '',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(w)}  ${c.summary}`),
    '',
    "'distill-kit <command> --help' shows a command's options.",
  ].join('\n');
}

/**
 * Runs the subcommand named by `process.argv[2]`, with `process.argv` rewritten so the command
 * sees only its own arguments. Unknown commands print the list and exit 2.
 */
export async function main(): Promise<void> {
  const name = process.argv[2];
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? process.stderr : process.stdout).write(usage() + '\n');
    if (name === undefined) process.exitCode = 2;
    return;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${PACKAGE_VERSION}\n`);
    return;
  }
  const cmd = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!cmd) {
    process.stderr.write(`error: unknown command '${name}'; the commands are ${Object.keys(COMMANDS).join(', ')} (distill-kit --help)\n`);
    process.exitCode = 2;
    return;
  }
  process.argv.splice(2, 1);
  await cmd.run();
}
