/**
 * An independent reader of TensorBoard event files for the tests: a bitwise CRC-32C (no table)
 * and a generic protobuf field decoder, sharing no code with src/tensorboard.
 */
import { readFileSync } from 'node:fs';

/** CRC-32C, bit by bit (Castagnoli, reflected 0x82F63B78). */
export function crc32cBitwise(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** TensorFlow's mask: rotate right by 15 bits, add 0xa282ead8. */
export function mask(crc: number): number {
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

/** One decoded event (the fields this project writes). */
export interface DecodedEvent {
  wall_time?: number;
  step?: number;
  file_version?: string;
  values?: { tag: string; simple_value: number }[];
}

type Field = { no: number; wire: number; int?: bigint; bytes?: Uint8Array; f64?: number; f32?: number };

function fields(b: Uint8Array): Field[] {
  const out: Field[] = [];
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let i = 0;
  const varint = (): bigint => {
    let v = 0n;
    let s = 0n;
    for (;;) {
      if (i >= b.length) throw new Error('varint runs past the end');
      const x = b[i++]!;
      v |= BigInt(x & 0x7f) << s;
      s += 7n;
      if (!(x & 0x80)) return v;
    }
  };
  while (i < b.length) {
    const key = Number(varint());
    const f: Field = { no: key >> 3, wire: key & 7 };
    if (f.wire === 0) f.int = varint();
    else if (f.wire === 1) (f.f64 = dv.getFloat64(i, true)), (i += 8);
    else if (f.wire === 5) (f.f32 = dv.getFloat32(i, true)), (i += 4);
    else if (f.wire === 2) {
      const n = Number(varint());
      f.bytes = b.subarray(i, i + n);
      i += n;
    } else throw new Error(`unexpected wire type ${f.wire}`);
    if (i > b.length) throw new Error('field runs past the end');
    out.push(f);
  }
  return out;
}

/** Decodes one `Event` message. */
export function decodeEvent(b: Uint8Array): DecodedEvent {
  const e: DecodedEvent = {};
  for (const f of fields(b)) {
    if (f.no === 1 && f.wire === 1) e.wall_time = f.f64!;
    else if (f.no === 2 && f.wire === 0) e.step = Number(BigInt.asIntN(64, f.int!));
    else if (f.no === 3 && f.wire === 2) e.file_version = new TextDecoder().decode(f.bytes!);
    else if (f.no === 5 && f.wire === 2) {
      e.values = [];
      for (const v of fields(f.bytes!)) {
        if (v.no !== 1 || v.wire !== 2) throw new Error(`unexpected Summary field ${v.no}`);
        const val = { tag: '', simple_value: NaN };
        for (const g of fields(v.bytes!)) {
          if (g.no === 1 && g.wire === 2) val.tag = new TextDecoder().decode(g.bytes!);
          else if (g.no === 2 && g.wire === 5) val.simple_value = g.f32!;
          else throw new Error(`unexpected Summary.Value field ${g.no}/${g.wire}`);
        }
        e.values.push(val);
      }
    } else throw new Error(`unexpected Event field ${f.no}/${f.wire}`);
  }
  return e;
}

/**
 * The events of a TFRecord file, checking both masked CRCs of every record. Throws on a bad CRC;
 * a truncated final record is dropped and reported as `truncated`.
 */
export function readEventFile(fileOrBytes: string | Uint8Array): { events: DecodedEvent[]; truncated: boolean } {
  const b = typeof fileOrBytes === 'string' ? new Uint8Array(readFileSync(fileOrBytes)) : fileOrBytes;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const events: DecodedEvent[] = [];
  let i = 0;
  while (i < b.length) {
    if (b.length - i < 12) return { events, truncated: true };
    const len = Number(dv.getBigUint64(i, true));
    if (dv.getUint32(i + 8, true) !== mask(crc32cBitwise(b.subarray(i, i + 8)))) throw new Error(`bad length CRC at byte ${i}`);
    if (b.length - i < 16 + len) return { events, truncated: true };
    const data = b.subarray(i + 12, i + 12 + len);
    if (dv.getUint32(i + 12 + len, true) !== mask(crc32cBitwise(data))) throw new Error(`bad data CRC at byte ${i}`);
    events.push(decodeEvent(data));
    i += 16 + len;
  }
  return { events, truncated: false };
}
