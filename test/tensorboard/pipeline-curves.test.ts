import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { parseConfig } from '../../pipeline/config.ts';
import { runPipeline } from '../../pipeline/runner.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import { silentLogger } from '../../src/util/log.ts';
import { encodeEventFile } from '../../src/tensorboard/event-writer.ts';
import { readEventFile } from './decode-events.ts';

/** Every kind of training stage, tiny: train, train-ensemble, distill, distill-sweep, specialists. */
const CONFIG = `
name: tb
seed: 11
backend: cpu
stages:
  ingest:
    dataset: {recipe: synthetic, options: {classes: 6, groups: 2, dim: 5, perClass: 20, seed: 3, classSpread: 0.5}}
  generalist: {hidden: [6], epochs: 3, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  members: {type: train-ensemble, members: 2, hidden: [4], epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  student: {type: distill, teacher: generalist, hidden: [4], epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.01}, loss: {type: soft, T: 2, alpha: 0.5}}
  sweep: {type: distill-sweep, teacher: generalist, widths: [3], depth: 1, temperatures: [2], hard_baseline: true, epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.01}}
  covariance: {}
  clusters: {k: 2}
  specialists: {epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.005}}
`;

const root = mkdtempSync(path.join(os.tmpdir(), 'tb-pipeline-'));
const cache = mkdtempSync(path.join(os.tmpdir(), 'tb-cache-'));
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(cache, { recursive: true, force: true });
});
const run = (out: string) => runPipeline(parseConfig(CONFIG, 'tb.yaml', STAGES), { out, cacheDir: cache, log: silentLogger });

/** Every event file below `dir`, relative. */
function eventFiles(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(dir, rel))) {
    const r = rel ? `${rel}/${e}` : e;
    if (statSync(path.join(dir, r)).isDirectory()) out.push(...eventFiles(dir, r));
    else if (e.includes('tfevents')) out.push(r);
  }
  return out.sort();
}

const manifestOutputs = (run: string, stage: string): Record<string, string> => (JSON.parse(readFileSync(path.join(run, stage, 'manifest.json'), 'utf8')) as { outputs: Record<string, string> }).outputs;

describe('TensorBoard curves of every training stage', () => {
  const a = path.join(root, 'a');
  const b = path.join(root, 'b');

  it('writes one event file per trained model, matching metrics.jsonl / the specialist history', async () => {
    const before = tf.memory().numTensors;
    await run(a);
    expect(tf.memory().numTensors).toBe(before);
    const F = 'tb/events.out.tfevents.0.distill-kit';
    expect(eventFiles(a)).toEqual([`generalist/${F}`, `members/member-0/${F}`, `members/member-1/${F}`, `specialists/specialist-00/${F}`, `specialists/specialist-01/${F}`, `student/${F}`, `sweep/w3-T2/${F}`, `sweep/w3-hard/${F}`]);
    const gen = readEventFile(path.join(a, 'generalist', F));
    expect(gen.truncated).toBe(false);
    expect(gen.events[0]!.file_version).toBe('brain.Event:2');
    const lines = readFileSync(path.join(a, 'generalist', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    expect(gen.events.slice(1).map((e) => e.step)).toEqual(lines.map((l) => l.epoch));
    for (const [i, l] of lines.entries()) {
      const v = Object.fromEntries(gen.events[i + 1]!.values!.map((x) => [x.tag, x.simple_value]));
      expect(v).toEqual({
        'loss/train': Math.fround(l.train_loss!),
        'accuracy/train': Math.fround(l.train_accuracy!),
        'loss/valid': Math.fround(l.valid_loss!),
        'accuracy/valid': Math.fround(l.valid_accuracy!),
        learning_rate: Math.fround(l.lr!),
      });
    }
    const walls = gen.events.map((e) => e.wall_time!);
    expect([...walls].sort((x, y) => x - y)).toEqual(walls);
    expect(Math.abs(walls.at(-1)! - Date.now() / 1000)).toBeLessThan(600);
    const spec = JSON.parse(readFileSync(path.join(a, 'specialists', 'specialist-01', 'metrics.json'), 'utf8')) as { history: { epoch: number; train_loss: number }[] };
    const se = readEventFile(path.join(a, 'specialists', 'specialist-01', F)).events.slice(1);
    expect(se.map((e) => [e.step, e.values!.find((x) => x.tag === 'loss/train')!.simple_value])).toEqual(spec.history.map((h) => [h.epoch, Math.fround(h.train_loss)]));
    expect(readEventFile(path.join(a, 'sweep', 'w3-T2', F)).events.map((e) => e.step)).toEqual([0, 1, 2]);
    expect(manifestOutputs(a, 'generalist')[F]).toMatch(/^[0-9a-f]{64}$/);
  }, 120_000);

  it('a second run has identical output hashes though its wall times differ', async () => {
    await run(b);
    for (const s of ['generalist', 'members', 'student', 'sweep', 'specialists']) expect(manifestOutputs(b, s), s).toEqual(manifestOutputs(a, s));
    const F = path.join('generalist', 'tb', 'events.out.tfevents.0.distill-kit');
    expect(readFileSync(path.join(b, F))).not.toEqual(readFileSync(path.join(a, F)));
  }, 120_000);

  it('an edited event file (valid CRCs, one value changed) is reported as modified', async () => {
    const F = path.join(b, 'generalist', 'tb', 'events.out.tfevents.0.distill-kit');
    const evs = readEventFile(F).events;
    const edited = encodeEventFile(
      evs[0]!.wall_time!,
      evs.slice(1).map((e, i) => ({ wallTime: e.wall_time!, step: e.step!, scalars: e.values!.map((v) => ({ tag: v.tag, value: i === 0 && v.tag === 'accuracy/valid' ? 0.999 : v.simple_value })) })),
    );
    writeFileSync(F, edited);
    await expect(run(b)).rejects.toThrow(/stage 'generalist' in .*: generalist\/tb\/events\.out\.tfevents\.0\.distill-kit was modified after the stage wrote it/);
  }, 120_000);
});
