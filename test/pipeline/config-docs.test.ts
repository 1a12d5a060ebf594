import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { configDocs } from '../../pipeline/config-docs.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { REPO_ROOT } from '../../pipeline/runner.ts';

describe('docs/CONFIG.md', () => {
  it('is generated from the current schemas (run npm run config-docs after changing a stage)', () => {
    const committed = readFileSync(path.join(REPO_ROOT, 'docs', 'CONFIG.md'), 'utf8');
    expect(committed).toBe(configDocs(STAGES));
  });
  it('documents every key of every stage type with its default', () => {
    const text = configDocs(STAGES);
    for (const type of Object.keys(STAGES)) expect(text).toContain(`## \`${type}\``);
    expect(text).toMatch(/\| `epochs` \| integer > 0, <= 10000 \| `20` \| Passes over the training data\. \|/);
    // a stage whose params are a union on `kind` (results): one table per kind, required keys marked
    expect(text).toContain('With `kind: mnist-paper`:');
    expect(text).toMatch(/\| `teacher` \| string \| required \| The teacher \(a `train` stage\) \|/);
    expect(text).toMatch(/\| `full` \| string \| \(optional\) \| The full-data model/);
    const undocumented = text.split('\n').filter((l) => /^\| `[a-z_]+` \|.*\|  \|$/.test(l));
    expect(undocumented, 'keys without a doc comment in their stage or schema file').toEqual([]);
  });
});
