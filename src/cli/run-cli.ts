import { diskFullError } from '../artifacts/disk-full.ts';
import { UserError } from '../util/errors.ts';

/**
 * Runs a command-line entry point: user errors (bad config, bad data, bad flags) print one
 * `error:` line without a stack trace (unless `--verbose`) and exit 1; usage errors exit 2.
 */
export async function runCli(usage: string, main: (argv: string[]) => Promise<void>): Promise<void> {
  const argv = process.argv.slice(2);
  const verbose = argv.includes('--verbose');
  try {
    await main(argv);
  } catch (e0) {
    const e = diskFullError(e0);
    const err = e as Error & { code?: string };
    if (err.code?.startsWith?.('ERR_PARSE_ARGS')) {
      process.stderr.write(`error: ${err.message}\n${usage}\n`);
      process.exit(2);
    }
    if (e instanceof UserError || verbose === false) {
      const known = e instanceof UserError;
      process.stderr.write(`error: ${err.message}\n`);
      if (verbose && err.stack) process.stderr.write(err.stack + '\n');
      else if (!known) process.stderr.write('(an unexpected error: rerun with --verbose for the stack trace, and please report it)\n');
      process.exit(1);
    }
    process.stderr.write(`${err.stack ?? String(e)}\n`);
    process.exit(1);
  }
}
