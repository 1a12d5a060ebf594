import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hashOutputFile } from '../../src/artifacts/output-hash.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'output-hash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

describe('hashOutputFile', () => {
  it('binary files: the sha256 of their bytes (streamed, several chunks)', async () => {
    const bytes = Buffer.alloc(3 * 65_536 + 17);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 255;
    const f = path.join(dir, 'weights.bin');
    writeFileSync(f, bytes);
    expect(await hashOutputFile(f)).toBe(sha(bytes));
  });

  it('JSON and JSONL: wall-clock keys do not count, every other value does', async () => {
    const a = path.join(dir, 'a.json');
    const b = path.join(dir, 'b.json');
    writeFileSync(a, JSON.stringify({ accuracy: 0.9, seconds: 1.5, nested: { train_seconds: 3, stage_peak_rss_mb: 10 } }));
    writeFileSync(b, JSON.stringify({ nested: { stage_peak_rss_mb: 99, train_seconds: 4 }, seconds: 2, accuracy: 0.9 }));
    expect(await hashOutputFile(a)).toBe(await hashOutputFile(b));
    writeFileSync(b, JSON.stringify({ accuracy: 0.91, seconds: 1.5 }));
    expect(await hashOutputFile(a)).not.toBe(await hashOutputFile(b));
    const l1 = path.join(dir, 'm.jsonl');
    const l2 = path.join(dir, 'n.jsonl');
    writeFileSync(l1, '{"epoch":1,"seconds":2}\n{"epoch":2,"seconds":3}\n');
    writeFileSync(l2, '{"epoch":1,"seconds":9}\n{"epoch":2,"seconds":1}\n');
    expect(await hashOutputFile(l1)).toBe(await hashOutputFile(l2));
  });

  it('a .json file that does not parse is hashed as bytes', async () => {
    const f = path.join(dir, 'broken.json');
    writeFileSync(f, '{"a": 1');
    expect(await hashOutputFile(f)).toBe(sha('{"a": 1'));
  });
});
