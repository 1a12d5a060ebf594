/**
 * `ensemble.train_transfer`: soft targets on the students' transfer set only. The rows written
 * are those a distill stage with the same `transfer:` selects, each the same q as an ensemble
 * that combined every train row; a student whose transfer set reaches outside them is refused.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { selectTransfer } from '../../pipeline/stages/transfer.ts';
import { readSoftTargets } from '../../pipeline/stages/teachers.ts';
import { readPredictions } from '../../src/artifacts/predictions.ts';
import { readSplit } from '../../src/data/split-file.ts';
import { silentLogger } from '../../src/util/log.ts';

const config = (extra = ''): string => `
name: train-transfer
seed: 5
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 12, groups: 3, dim: 8, perClass: 40, seed: 3, classSpread: 0.5}}
  generalist: {hidden: [8], epochs: 3, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  covariance: {}
  clusters: {k: 3}
  specialists: {epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.005}}
  ensemble: {top_n: 2, weight: 1, train_targets: true}
  half: {type: ensemble, top_n: 2, weight: 1, train_targets: true, train_transfer: {fraction: 0.5}}
  student: {type: distill, teacher_targets: half, transfer: {fraction: 0.5}, hidden: [8], epochs: 1, batch_size: 16, loss: {type: soft, T: 2}}
${extra}`;

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('ensemble train_transfer', () => {
  it('writes the transfer rows only, with the q of the whole-split ensemble; a student on other rows is refused', async () => {
    const out = mkdtempSync(path.join(os.tmpdir(), 'train-transfer-'));
    dirs.push(out);
    const cacheDir = mkdtempSync(path.join(os.tmpdir(), 'train-transfer-cache-'));
    dirs.push(cacheDir);
    const r = await runPipeline(parseConfig(config(), 'train-transfer.yaml', STAGES), { out, cacheDir, log: silentLogger });
    expect(r.stages.every((s) => s.status === 'ran')).toBe(true);
    const train = await readSplit(path.join(out, 'ingest', 'train.arrow'));
    const rows = selectTransfer(train.y, 12, { fraction: 0.5 }, 5);
    expect(rows.length).toBe(train.n / 2);
    const all = readPredictions(path.join(out, 'ensemble', 'soft-targets-train.arrow'), 'probabilities');
    const half = readPredictions(path.join(out, 'half', 'soft-targets-train.arrow'), 'probabilities');
    expect(all.n).toBe(train.n);
    expect(half.n).toBe(rows.length);
    expect(half.metadata.get('transfer_rows')).toBe(String(rows.length));
    let diff = 0;
    rows.forEach((row, i) => {
      expect(half.labels[i]).toBe(train.y[row]);
      for (let c = 0; c < 12; c++) diff = Math.max(diff, Math.abs(half.values[i * 12 + c]! - all.values[row * 12 + c]!));
    });
    expect(diff).toBeLessThan(1e-6);
    // The reader maps the wanted rows (any order) to the file's rows.
    const some = Int32Array.from([rows[7]!, rows[0]!, rows[rows.length - 1]!]);
    const got = await readSoftTargets(path.join(out, 'half'), 'half', train.y, some);
    some.forEach((row, j) => expect(Array.from(got.probabilities.subarray(j * 12, j * 12 + 12))).toEqual(Array.from(all.values.subarray(row * 12, row * 12 + 12))));
    const student = JSON.parse(readFileSync(path.join(out, 'student', 'metrics.json'), 'utf8')) as { transfer: { examples: number } };
    expect(student.transfer.examples).toBe(rows.length);

    const wider = '  wide: {type: distill, teacher_targets: half, transfer: {fraction: 0.75}, hidden: [8], epochs: 1, batch_size: 16, loss: {type: soft, T: 2}}\n';
    await expect(runPipeline(parseConfig(config(wider), 'train-transfer.yaml', STAGES), { out, cacheDir, log: silentLogger })).rejects.toThrow(
      /wrote soft targets for 240 of the 480 train rows only.*give this stage the same transfer/,
    );
  });

  it('refuses train_transfer without train_targets, or with unlabeled rows', () => {
    const base = config().replace(/  half:.*\n  student:.*\n/, '');
    expect(() => parseConfig(base.replace('train_targets: true}', 'train_transfer: {fraction: 0.5}}'), 't.yaml', STAGES)).toThrow(/train_targets, which is off/);
    expect(() => parseConfig(base.replace('train_targets: true}', "train_targets: true, train_transfer: {source: both}}"), 't.yaml', STAGES)).toThrow(/source 'both' does not apply/);
  });
});
