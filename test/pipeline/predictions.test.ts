import { describe, it, expect } from 'vitest';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readPredictions, writePredictions } from '../../src/artifacts/predictions.ts';

describe('predictions files', () => {
  it('round-trips labels and vectors across several record batches', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pred-'));
    const n = 9000, C = 7;
    const labels = Int32Array.from({ length: n }, (_, i) => i % C);
    const values = Float32Array.from({ length: n * C }, (_, i) => Math.sin(i));
    const file = path.join(dir, 'p.arrow');
    await writePredictions(file, { labels, values, n, C }, 'logits', { split: 'valid' });
    const back = readPredictions(file);
    expect(back.n).toBe(n);
    expect(back.C).toBe(C);
    expect(back.labels).toEqual(labels);
    expect(back.values).toEqual(values);
    expect(back.metadata.get('split')).toBe('valid');
  });
  it('reports a missing file clearly', () => {
    expect(() => readPredictions('/nonexistent/p.arrow')).toThrow(/cannot read predictions \/nonexistent\/p\.arrow/);
  });
});
