import { existsSync } from 'node:fs';
import { runCli } from './run-cli.ts';
import { describePath } from './describe.ts';
import { UserError } from '../util/errors.ts';

const USAGE = 'usage: npm run inspect -- PATH   (a run folder, a stage folder, or an .arrow / .parquet file)';

await runCli(USAGE, async (argv) => {
  const target = argv.find((a) => !a.startsWith('--'));
  if (!target) {
    process.stderr.write(USAGE + '\n');
    process.exit(2);
  }
  if (!existsSync(target)) throw new UserError('io', `${target} does not exist; give a run folder (artifacts/<run>), a stage folder, or an .arrow / .parquet file`);
  process.stdout.write((await describePath(target)) + '\n');
});
