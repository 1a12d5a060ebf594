import path from 'node:path';
import { configDocs } from './config-docs.ts';
import { STAGES } from './stages/index.ts';
import { REPO_ROOT } from './runner.ts';
import { writeFileAtomic } from '../src/artifacts/atomic.ts';

const file = path.join(REPO_ROOT, 'docs', 'CONFIG.md');
await writeFileAtomic(file, configDocs(STAGES));
console.log(`wrote ${path.relative(process.cwd(), file)}`);
