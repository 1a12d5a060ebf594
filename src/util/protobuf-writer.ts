/**
 * A minimal Protocol Buffers encoder (wire format only, no schema): enough to write TensorBoard's
 * `Event` and ONNX's `ModelProto` by hand. Fields are appended in call order; the caller is
 * responsible for field numbers and types matching the `.proto` it targets.
 *
 * Wire types used: 0 varint (int32/int64/uint64/bool/enum), 1 64-bit (double, fixed64),
 * 2 length-delimited (string, bytes, sub-message, packed repeated), 5 32-bit (float, fixed32).
 */

const enc = new TextEncoder();

/** Appends protobuf fields to a growing buffer; {@link ProtoWriter.finish} returns the bytes. */
export class ProtoWriter {
  private parts: Uint8Array[] = [];
  private size = 0;

  /** Total bytes written so far. */
  get length(): number {
    return this.size;
  }

  private push(b: Uint8Array): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }

  private rawVarint(v: bigint): this {
    // Negative int64 values are encoded as their 64-bit two's complement (10 bytes).
    let x = BigInt.asUintN(64, v);
    const out: number[] = [];
    while (x >= 0x80n) {
      out.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    out.push(Number(x));
    return this.push(Uint8Array.from(out));
  }

  private key(field: number, wire: number): this {
    if (!Number.isInteger(field) || field < 1 || field > 536870911) throw new RangeError(`protobuf field number ${field} is out of range`);
    return this.rawVarint(BigInt(field * 8 + wire));
  }

  /** A varint field (int32, int64, uint64, bool, enum); negative values as 64-bit two's complement. */
  varint(field: number, value: number | bigint | boolean): this {
    const v = typeof value === 'boolean' ? (value ? 1n : 0n) : typeof value === 'bigint' ? value : BigInt(checkInt(value));
    return this.key(field, 0).rawVarint(v);
  }

  /** A `double` field (wire type 1, little-endian IEEE 754 binary64). */
  double(field: number, value: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, value, true);
    return this.key(field, 1).push(b);
  }

  /** A `float` field (wire type 5, little-endian IEEE 754 binary32). */
  float(field: number, value: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    return this.key(field, 5).push(b);
  }

  /** A `bytes` field (or an already-encoded sub-message). */
  bytes(field: number, value: Uint8Array): this {
    return this.key(field, 2).rawVarint(BigInt(value.length)).push(value);
  }

  /** A `string` field, UTF-8. */
  string(field: number, value: string): this {
    return this.bytes(field, enc.encode(value));
  }

  /** A sub-message field. */
  message(field: number, value: ProtoWriter): this {
    return this.bytes(field, value.finish());
  }

  /** A packed `repeated int64` (or int32) field: one length-delimited run of varints. */
  packedVarints(field: number, values: readonly (number | bigint)[]): this {
    const inner = new ProtoWriter();
    for (const v of values) inner.rawVarint(typeof v === 'bigint' ? v : BigInt(checkInt(v)));
    return this.bytes(field, inner.finish());
  }

  /** The encoded bytes of every field appended so far. */
  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

function checkInt(v: number): number {
  if (!Number.isSafeInteger(v)) throw new RangeError(`protobuf varint ${v} is not a safe integer`);
  return v;
}
