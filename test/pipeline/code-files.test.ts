import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { directDependencies, stageCodeFiles, stageCodeHash } from '../../pipeline/code-files.ts';
import { REPO_ROOT } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A tiny repository of the given files (path -> content). */
function repo(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(tmpdir(), 'code-files-'));
  dirs.push(root);
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), text);
  }
  return root;
}

describe('stage code files (derived from the import graph)', () => {
  it("the distill stages' derived files include the fused softmax cross-entropy, the kernels and the native source", () => {
    for (const type of ['distill', 'distill-sweep']) {
      const files = stageCodeFiles(STAGES[type]!.code, REPO_ROOT);
      expect(files).toContain('src/backend/softmax-xent.ts');
      expect(files).toContain('src/distill/losses.ts');
      expect(files).toContain('src/backend/blas-kernels.ts');
      expect(files).toContain('native/src/addon.c');
      expect(files.every((f) => !f.includes('node_modules'))).toBe(true);
    }
    expect(stageCodeFiles(STAGES['distill-sweep']!.code, REPO_ROOT)).toContain('pipeline/stages/distill.ts');
  });

  it('every stage type derives a non-empty set of existing files', () => {
    for (const [type, def] of Object.entries(STAGES)) {
      const files = stageCodeFiles(def.code, REPO_ROOT);
      expect(files.length, type).toBeGreaterThan(0);
    }
  });

  it('follows static, side-effect, re-export and dynamic imports and code-key directives; skips type-only imports, packages and comments', () => {
    const root = repo({
      'a.ts': [
        "import { b } from './lib/b.ts';",
        "import './side.ts';",
        "export { e } from './e.ts';",
        "import type { T } from './types-only.ts';",
        "import * as tf from '@tensorflow/tfjs';",
        '/**',
        " * import { x } from './in-a-comment.ts';",
        ' */',
        '// code-key: ./data/table.c',
        "export async function later() { return import('./lazy.ts'); }",
      ].join('\n'),
      'lib/b.ts': "import {\n  c,\n  d,\n} from '../c.ts';\nexport const b = 1;",
      'c.ts': 'export const c = 1, d = 2;',
      'side.ts': '',
      'e.ts': 'export const e = 1;',
      'types-only.ts': 'export type T = number;',
      'in-a-comment.ts': '',
      'lazy.ts': '',
      'data/table.c': 'int x;',
      'unrelated.ts': '',
    });
    expect(stageCodeFiles(['a.ts'], root)).toEqual(['a.ts', 'c.ts', 'data/table.c', 'e.ts', 'lazy.ts', 'lib/b.ts', 'side.ts']);
    // a folder entry stands for its .ts files, each followed
    expect(stageCodeFiles(['lib'], root)).toEqual(['c.ts', 'lib/b.ts']);
  });

  it('editing a file imported transitively changes the stage key; editing an unrelated file does not', () => {
    const root = repo({ 'stage.ts': "import './mid.ts';", 'mid.ts': "import { k } from './deep/kernel.ts';", 'deep/kernel.ts': 'export const k = 1;', 'other.ts': 'x' });
    const before = stageCodeHash(['stage.ts'], root);
    expect(before.files).toBe(3);
    writeFileSync(path.join(root, 'other.ts'), 'y');
    expect(stageCodeHash(['stage.ts'], root).sha256).toBe(before.sha256);
    writeFileSync(path.join(root, 'deep/kernel.ts'), 'export const k = 2;');
    expect(stageCodeHash(['stage.ts'], root).sha256).not.toBe(before.sha256);
  });

  it('a static import or directive naming a missing file is an error that names it', () => {
    expect(() => directDependencies('/x/a.ts', "import { q } from './nope.ts';")).toThrow(/import '\.\/nope\.ts' names no file/);
    expect(() => directDependencies('/x/a.ts', '// code-key: ./gone.c')).toThrow(/code-key directive '\.\/gone\.c'/);
    expect(() => stageCodeFiles(['missing.ts'], repo({}))).toThrow(/stage code path missing\.ts does not exist/);
  });
});
