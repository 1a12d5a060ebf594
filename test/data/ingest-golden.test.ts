import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingest } from '../../src/data/ingest.ts';
import { cleanup, filesIn, tmpDir } from '../fixtures/data/build.ts';
import { GOLDEN_CASES } from './golden-fixtures.ts';

/**
 * sha256 of the outputs of the in-memory ingest (the implementation before the two-pass
 * streaming rewrite), computed with that code on {@link GOLDEN_CASES}. The streaming ingest
 * must write the same bytes. `classes.json` is hashed as `JSON.stringify` with `source` set to
 * "X" (the input path differs between machines).
 */
const EXPECTED: Record<string, Record<string, string>> = {
  'fixed-int-nosplit': {
    'train.arrow': 'debad0f08122ea25a2809e1cb02bed4f3fe5c107fdf4d6f493b89e47b5064d33',
    'valid.arrow': '898635e0165843c81f9da3f84ed221d481fcf2644e9be46b2555cfac14859ece',
    'test.arrow': '7367256553b1c211b1ec35065efefda89c69a910dff22139763a4566293f7f47',
    'classes.json': '9aeea849a183b9d98949c6669d558129f1c1bea71cffa51829b247cf2b3914b8',
  },
  'list-string-carve-stream': {
    'train.arrow': '60ce010f0c0f301ce8834f223ef905f29c66f910dcdc499bf181265fab99f4b1',
    'valid.arrow': '1b0c94776f020022f91fc34942094dccd09a75d9c5c1c255035ce8ebb1190a04',
    'test.arrow': '6be7fedbd63521d7442c07e3b17a9c4a68639877e6f79b43cc4566afbd3ff2f0',
    'classes.json': '554ef5d752a098b742c00d45512ab87cbefcc96c166865e86bedfb19b3de62cd',
  },
  'columns-dict-limit': {
    'train.arrow': 'edb12007cd3f6341d34c96d8bc29c4aacfb6a06babf121a5f715a59be690400a',
    'valid.arrow': 'cf6e874b633fbd40b573e5a333524b5a4364fe8eab2ea919e7282d332b3bcdd1',
    'test.arrow': 'cfa71cc1de0f6f0917aeec405bf79ac30ee300e01c13cb0caf87716ff0c00475',
    'classes.json': '69a5f0f0f5f16b86bf1175250ae219bb3e7a39c8fc26b3f223ce8eb36da3fdd8',
  },
  'fixed-empty-valid': {
    'train.arrow': '8ddf303757427123a2a19d1f4ead0d0c6f3beaf05b4d2005d30ec7853e477bd1',
    'valid.arrow': '7ed1dbb253fcc305cb9cc9bab2abef442b0028fd6150b9bfaf5d905ba4f2e087',
    'test.arrow': 'db3d6aecef50991ec26e67d264f60bd783a780e178886da4cdf8030e39ee6a54',
    'classes.json': '1b3fe3c3af97b6927bbab909a631e9c0669c2fc95faec5484be05d60dcff8e96',
  },
};

const sha = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

let dir: string;
beforeAll(() => {
  dir = tmpDir('ingest-golden-');
});
afterAll(() => cleanup(dir));

describe('two-pass ingest writes the same bytes as the in-memory ingest', () => {
  for (const c of GOLDEN_CASES) {
    it(c.name, async () => {
      const input = c.write(dir);
      const out = path.join(dir, c.name);
      await ingest({ ...c.options, input, outDir: out });
      expect(filesIn(out)).toEqual(['classes.json', 'test.arrow', 'train.arrow', 'valid.arrow']);
      const got: Record<string, string> = {};
      for (const f of ['train.arrow', 'valid.arrow', 'test.arrow']) got[f] = sha(readFileSync(path.join(out, f)));
      const cls = JSON.parse(readFileSync(path.join(out, 'classes.json'), 'utf8')) as { source: string };
      cls.source = 'X';
      got['classes.json'] = sha(JSON.stringify(cls));
      expect(got).toEqual(EXPECTED[c.name]);
    });
  }

  it('an input that grows between the two passes is refused, and nothing is written', async () => {
    const c = GOLDEN_CASES[0]!;
    const input = c.write(dir);
    const out = path.join(dir, 'changed');
    // The first pass's progress line is the last thing before the second pass opens the file.
    const log = {
      info() {},
      warn() {},
      progress: (label: string) => ({
        tick() {},
        done() {
          if (label.startsWith('checking')) appendFileSync(input, Buffer.alloc(16));
        },
      }),
    };
    await expect(ingest({ ...c.options, input, outDir: out, log })).rejects.toThrow(/the file changed while it was being read \(its size or modification time differs from the first pass\)\. Fix: do not write to the input while ingest runs/);
    expect(filesIn(out)).toEqual([]);
  });
});
