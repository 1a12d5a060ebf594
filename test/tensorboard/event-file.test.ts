import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32c, maskedCrc32c } from '../../src/tensorboard/crc32c.ts';
import { frameRecord, readRecords } from '../../src/tensorboard/tfrecord.ts';
import { encodeEvent, withoutWallTime } from '../../src/tensorboard/event.ts';
import { EventFileWriter } from '../../src/tensorboard/event-writer.ts';
import { TB_DIR, TB_FILE, epochScalars, writeTrainingCurves } from '../../src/tensorboard/training-curves.ts';
import { hashOutputFile } from '../../src/artifacts/output-hash.ts';
import type { EpochMetrics } from '../../src/models/types.ts';
import { crc32cBitwise, decodeEvent, mask, readEventFile } from './decode-events.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
const f32 = (x: number): number => Math.fround(x);

const HISTORY: EpochMetrics[] = [
  { epoch: 1, train_loss: 2.25, train_accuracy: 0.31, valid_loss: 1.9, valid_accuracy: 0.42, lr: 0.01, seconds: 1.5, examples_per_s: 1234 },
  { epoch: 2, train_loss: 1.1, train_accuracy: 0.62, valid_loss: 1.05, valid_accuracy: 0.66, lr: 0.005, seconds: 2, examples_per_s: 999 },
  { epoch: 3, train_loss: 0.7, train_accuracy: Number.NaN, lr: 0.0025, seconds: 0.5, examples_per_s: 1500 },
];

describe('CRC-32C', () => {
  it('matches the standard check value and an independent bitwise implementation', () => {
    expect(crc32c(ascii('123456789'))).toBe(0xe3069283);
    expect(crc32cBitwise(ascii('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    // RFC 3720 B.4 vectors: 32 bytes of zeros, 32 bytes of 0xff.
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 131 + 7) & 0xff);
    expect(crc32c(bytes)).toBe(crc32cBitwise(bytes));
    expect(maskedCrc32c(bytes)).toBe(mask(crc32cBitwise(bytes)));
  });
});

describe('event encoding', () => {
  it('encodes the Event fields TensorBoard reads (wall_time 1, step 2, file_version 3, summary 5)', () => {
    expect(decodeEvent(encodeEvent({ wallTime: 1700000000.25, step: 0, fileVersion: 'brain.Event:2' }))).toEqual({ wall_time: 1700000000.25, step: 0, file_version: 'brain.Event:2' });
    const e = decodeEvent(encodeEvent({ wallTime: 12.5, step: 300, scalars: [{ tag: 'loss/train', value: 0.1 }, { tag: 'é', value: -3 }] }));
    expect(e).toEqual({ wall_time: 12.5, step: 300, values: [{ tag: 'loss/train', simple_value: f32(0.1) }, { tag: 'é', simple_value: -3 }] });
  });

  it('drops exactly the wall_time field for hashing', () => {
    const a = encodeEvent({ wallTime: 1, step: 5, scalars: [{ tag: 'x', value: 2 }] });
    const b = encodeEvent({ wallTime: 99999.5, step: 5, scalars: [{ tag: 'x', value: 2 }] });
    const c = encodeEvent({ wallTime: 1, step: 5, scalars: [{ tag: 'x', value: 2.5 }] });
    expect(a).not.toEqual(b);
    expect(withoutWallTime(a)).toEqual(withoutWallTime(b));
    expect(withoutWallTime(a)).not.toEqual(withoutWallTime(c));
    expect(decodeEvent(withoutWallTime(a)!)).toEqual({ step: 5, values: [{ tag: 'x', simple_value: 2 }] });
    expect(withoutWallTime(a.subarray(0, a.length - 2))).toBeUndefined();
  });
});

describe('TFRecord framing', () => {
  it('frames uint64 length, masked CRC of the length, data, masked CRC of the data', () => {
    const data = ascii('hello');
    const rec = frameRecord(data);
    const dv = new DataView(rec.buffer);
    expect(rec.length).toBe(8 + 4 + 5 + 4);
    expect(dv.getBigUint64(0, true)).toBe(5n);
    expect(dv.getUint32(8, true)).toBe(mask(crc32cBitwise(rec.subarray(0, 8))));
    expect(rec.subarray(12, 17)).toEqual(data);
    expect(dv.getUint32(17, true)).toBe(mask(crc32cBitwise(data)));
  });

  it('reads back records, flags a truncated tail at every cut point, and a damaged record as corrupt', () => {
    const recs = [ascii('a'), ascii(''), ascii('third record')];
    const file = new Uint8Array(recs.flatMap((r) => [...frameRecord(r)]));
    expect(readRecords(file)).toEqual({ records: recs, truncated: false });
    const boundaries = [0, 13 + 4, 13 + 4 + 16, file.length];
    for (let cut = 0; cut <= file.length; cut++) {
      const r = readRecords(file.subarray(0, cut));
      expect(r.corrupt).toBeUndefined();
      const whole = boundaries.filter((b) => b <= cut).length - 1;
      expect(r.records).toEqual(recs.slice(0, whole));
      expect(r.truncated).toBe(!boundaries.includes(cut));
    }
    const bad = file.slice();
    bad[13] = bad[13]! ^ 1; // a byte of the first record's data CRC
    expect(readRecords(bad).corrupt).toEqual({ offset: 0, what: 'data crc' });
    const bad2 = file.slice();
    bad2[17 + 2] ^= 0x10; // the second record's length
    expect(readRecords(bad2).corrupt).toEqual({ offset: 17, what: 'length crc' });
  });
});

describe('training curves', () => {
  it('writes one event per epoch with losses, accuracies and learning rate, read back by an independent decoder', async () => {
    const out = path.join(dir, 'stage');
    await writeTrainingCurves(out, HISTORY, 1_000_000);
    expect(readdirSync(path.join(out, TB_DIR))).toEqual([TB_FILE]);
    const { events, truncated } = readEventFile(path.join(out, TB_DIR, TB_FILE));
    expect(truncated).toBe(false);
    expect(events).toHaveLength(4);
    expect(events[0]).toEqual({ wall_time: 1_000_000 - 4, step: 0, file_version: 'brain.Event:2' });
    expect(events.slice(1).map((e) => [e.step, e.wall_time])).toEqual([
      [1, 1_000_000 - 2.5],
      [2, 1_000_000 - 0.5],
      [3, 1_000_000],
    ]);
    expect(events[1]!.values).toEqual([
      { tag: 'loss/train', simple_value: f32(2.25) },
      { tag: 'accuracy/train', simple_value: f32(0.31) },
      { tag: 'loss/valid', simple_value: f32(1.9) },
      { tag: 'accuracy/valid', simple_value: f32(0.42) },
      { tag: 'learning_rate', simple_value: f32(0.01) },
    ]);
    // Epoch 3: no validation, NaN training accuracy left out; never the wall-clock fields.
    expect(events[3]!.values).toEqual([
      { tag: 'loss/train', simple_value: f32(0.7) },
      { tag: 'learning_rate', simple_value: f32(0.0025) },
    ]);
    expect(epochScalars({ epoch: 1, train_loss: 1, grad_norm: 3, seconds: 9, examples_per_s: 1, lr: 0.1 } as never).map((s) => s.tag)).toEqual(['loss/train', 'grad_norm', 'learning_rate']);
  });

  it('an empty history gives a file with the version event only', async () => {
    const out = path.join(dir, 'empty');
    await writeTrainingCurves(out, [], 5);
    expect(readEventFile(path.join(out, TB_DIR, TB_FILE))).toEqual({ events: [{ wall_time: 5, step: 0, file_version: 'brain.Event:2' }], truncated: false });
  });

  it('output hash: equal across wall times, different when a value, a step or the framing changes', async () => {
    const a = path.join(dir, 'hash-a');
    const b = path.join(dir, 'hash-b');
    await writeTrainingCurves(a, HISTORY, 1000);
    await writeTrainingCurves(b, HISTORY, 987654.125);
    const fa = path.join(a, TB_DIR, TB_FILE);
    const fb = path.join(b, TB_DIR, TB_FILE);
    expect(readFileSync(fa)).not.toEqual(readFileSync(fb));
    const ha = await hashOutputFile(fa);
    expect(await hashOutputFile(fb)).toBe(ha);
    // A value changed, file re-encoded with valid CRCs: a modified output.
    const c = path.join(dir, 'hash-c');
    await writeTrainingCurves(c, HISTORY.map((h, i) => (i === 1 ? { ...h, valid_accuracy: 0.67 } : h)), 1000);
    expect(await hashOutputFile(path.join(c, TB_DIR, TB_FILE))).not.toBe(ha);
    const d = path.join(dir, 'hash-d');
    await writeTrainingCurves(d, HISTORY.map((h, i) => (i === 2 ? { ...h, epoch: 4 } : h)), 1000);
    expect(await hashOutputFile(path.join(d, TB_DIR, TB_FILE))).not.toBe(ha);
    // A truncated or damaged file is hashed as bytes, so it differs too.
    const bytes = readFileSync(fa);
    writeFileSync(fb, bytes.subarray(0, bytes.length - 3));
    expect(await hashOutputFile(fb)).not.toBe(ha);
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 9] ^= 0x01;
    writeFileSync(fb, flipped);
    expect(await hashOutputFile(fb)).not.toBe(ha);
  });
});

describe('EventFileWriter (live appends)', () => {
  it('appends readable records; a crash mid-record leaves the complete ones readable', () => {
    const out = path.join(dir, 'live');
    const w = new EventFileWriter(out, { wallTime: 10 });
    w.addScalars(1, [{ tag: 'loss/train', value: 1.5 }], 11);
    w.addScalars(2, [{ tag: 'loss/train', value: 0.75 }], 12);
    w.close();
    expect(() => w.addScalars(3, [])).toThrow(/closed/);
    expect(path.basename(w.file)).toMatch(/^events\.out\.tfevents\.\d+\./);
    expect(() => new EventFileWriter(out, { fileName: path.basename(w.file) })).toThrow(/EEXIST/);
    const bytes = new Uint8Array(readFileSync(w.file));
    const full = readEventFile(bytes);
    expect(full.events.map((e) => [e.step, e.wall_time, e.values?.[0]?.simple_value ?? e.file_version])).toEqual([
      [0, 10, 'brain.Event:2'],
      [1, 11, 1.5],
      [2, 12, 0.75],
    ]);
    // What a kill during the last write leaves: the file cut anywhere inside the last record.
    const lastLen = frameRecord(encodeEvent({ wallTime: 12, step: 2, scalars: [{ tag: 'loss/train', value: 0.75 }] })).length;
    for (let cut = bytes.length - lastLen + 1; cut < bytes.length; cut++) {
      const r = readEventFile(bytes.subarray(0, cut));
      expect(r.truncated).toBe(true);
      expect(r.events).toEqual(full.events.slice(0, 2));
    }
  });
});
