/**
 * TensorBoard's `Event` protobuf (tensorflow/core/util/event.proto), the scalar subset:
 *
 *     message Event { double wall_time = 1; int64 step = 2; oneof what { string file_version = 3; Summary summary = 5; } }
 *     message Summary { repeated Value value = 1; message Value { string tag = 1; float simple_value = 2; } }
 *
 * Encoded by hand with {@link ProtoWriter}; no TensorFlow library involved.
 */
import { ProtoWriter } from '../util/protobuf-writer.ts';

/** The `file_version` every event file starts with (TensorBoard reads version 2 files). */
export const FILE_VERSION = 'brain.Event:2';

/** One scalar of a summary event. */
export interface Scalar {
  tag: string;
  value: number;
}

/** An event to encode: the file-version header or a summary of scalars at one step. */
export type EventSpec = { wallTime: number; step: number } & ({ fileVersion: string } | { scalars: readonly Scalar[] });

/** The `Event` message bytes of `e`. */
export function encodeEvent(e: EventSpec): Uint8Array {
  const w = new ProtoWriter().double(1, e.wallTime).varint(2, e.step);
  if ('fileVersion' in e) return w.string(3, e.fileVersion).finish();
  const summary = new ProtoWriter();
  for (const s of e.scalars) summary.message(1, new ProtoWriter().string(1, s.tag).float(2, s.value));
  return w.message(5, summary).finish();
}

/**
 * The bytes of an encoded `Event` without its `wall_time` field(s) (field 1, 64-bit), every other
 * field kept byte for byte; undefined when the bytes are not a well-formed protobuf message.
 * Two runs of the same training write events that differ only in wall time, so this is what the
 * output hash of an event file covers (see `src/artifacts/output-hash.ts`).
 */
export function withoutWallTime(event: Uint8Array): Uint8Array | undefined {
  const kept: Uint8Array[] = [];
  let o = 0;
  const varint = (): bigint | undefined => {
    let v = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (o >= event.length) return undefined;
      const b = event[o++]!;
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
    }
    return undefined;
  };
  while (o < event.length) {
    const start = o;
    const key = varint();
    if (key === undefined) return undefined;
    const wire = Number(key & 7n);
    if (wire === 0) {
      if (varint() === undefined) return undefined;
    } else if (wire === 1) o += 8;
    else if (wire === 5) o += 4;
    else if (wire === 2) {
      const len = varint();
      if (len === undefined || len > BigInt(event.length - o)) return undefined;
      o += Number(len);
    } else return undefined;
    if (o > event.length) return undefined;
    if (key !== (1n << 3n) + 1n) kept.push(event.subarray(start, o));
  }
  const out = new Uint8Array(kept.reduce((a, k) => a + k.length, 0));
  let p = 0;
  for (const k of kept) {
    out.set(k, p);
    p += k.length;
  }
  return out;
}
