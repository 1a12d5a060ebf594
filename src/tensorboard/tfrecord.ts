/**
 * TFRecord framing, the container of TensorBoard event files. Each record is
 *
 *     uint64 length (little-endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)
 *
 * Records are self-delimiting, so a file written by appending whole records and cut short by a
 * crash holds complete records followed by at most one truncated record; readers (TensorBoard's
 * included) stop at the truncated tail. {@link readRecords} reports it as `truncated`.
 */
import { maskedCrc32c } from './crc32c.ts';

/** One record framed for a TFRecord file. */
export function frameRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/** What {@link readRecords} found in a TFRecord byte string. */
export interface RecordsRead {
  /** The complete records, in file order (views into the input). */
  records: Uint8Array[];
  /** True when the bytes end inside a record (a writer crashed mid-append). */
  truncated: boolean;
  /**
   * Set when a complete record's length or data CRC does not match (the file was damaged or
   * edited): the byte offset of that record and which CRC failed. Reading stops there.
   */
  corrupt?: { offset: number; what: 'length crc' | 'data crc' };
}

/** Splits TFRecord bytes into records, checking both masked CRCs of each. */
export function readRecords(bytes: Uint8Array): RecordsRead {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: Uint8Array[] = [];
  let o = 0;
  while (o < bytes.length) {
    if (bytes.length - o < 12) return { records, truncated: true };
    if (view.getUint32(o + 8, true) !== maskedCrc32c(bytes.subarray(o, o + 8))) return { records, truncated: false, corrupt: { offset: o, what: 'length crc' } };
    const len = view.getBigUint64(o, true);
    if (len > BigInt(bytes.length - o - 16)) return { records, truncated: true };
    const n = Number(len);
    const data = bytes.subarray(o + 12, o + 12 + n);
    if (view.getUint32(o + 12 + n, true) !== maskedCrc32c(data)) return { records, truncated: false, corrupt: { offset: o, what: 'data crc' } };
    records.push(data);
    o += 16 + n;
  }
  return { records, truncated: false };
}
