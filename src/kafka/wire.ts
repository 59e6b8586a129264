/**
 * Kafka's wire primitives, pure: a `Reader` that walks a message by offset, and a `Writer` for
 * the little the tunnel writes itself (a broker's Host and Port).
 *
 * The tunnel edits responses by splicing: it walks a response to find where a broker's host and
 * port sit, then copies every other byte as it came. So the reader exposes its `offset`, and
 * tagged-field sections are read RAW (their exact bytes alongside the parsed fields) so they can
 * be written back unchanged even when the sender used an encoding we would not have chosen.
 *
 * Encodings (all big-endian): int8/16/32/64; unsigned varint (7 bits a byte, low first, at most
 * 5 bytes for 32 bits) and zigzag varint; string = int16 length + UTF-8 (-1 = null); compact
 * string = uvarint (length + 1) + UTF-8 (0 = null); bytes = int32 length (-1 = null); arrays
 * take an int32 count or a compact uvarint (count + 1), null alike; a tagged-field section is a
 * uvarint count, then per field a uvarint tag, a uvarint size and that many bytes.
 *
 * The bytes come from a peer: every read is bounds-checked, and running off the end or meeting a
 * length that cannot be throws a `KafkaCodecError`, never a RangeError, so a caller catches one
 * thing. Writing a value that cannot be encoded (a port out of int32, a 40 KB classic string) is
 * a programming error and throws a RangeError.
 */
import { KafkaCodecError } from "../errors.js"

/** One field of a tagged-field section: its tag and its raw value. */
export interface TaggedField {
  readonly tag: number
  readonly data: Buffer
}

/** A tagged-field section as read: its fields, and the exact bytes it took (count included). */
export interface TaggedFields {
  readonly fields: ReadonlyArray<TaggedField>
  readonly raw: Buffer
}

const negativeLength = (offset: number, field: "string" | "bytes" | "array", length: number) =>
  new KafkaCodecError({ reason: "negative-length", offset, field, length })

export class Reader {
  private position: number

  constructor(private readonly buffer: Buffer, offset = 0) {
    this.position = offset
  }

  /** Where the next read starts. */
  get offset(): number {
    return this.position
  }

  get remaining(): number {
    return this.buffer.length - this.position
  }

  /** Checks that `n` more bytes are there and moves past them; returns where they start. */
  private take(n: number): number {
    const at = this.position
    if (n > this.buffer.length - at) throw new KafkaCodecError({ reason: "truncated", offset: at, needed: n, left: this.buffer.length - at })
    this.position = at + n
    return at
  }

  int8(): number {
    return this.buffer.readInt8(this.take(1))
  }

  int16(): number {
    return this.buffer.readInt16BE(this.take(2))
  }

  int32(): number {
    return this.buffer.readInt32BE(this.take(4))
  }

  int64(): bigint {
    return this.buffer.readBigInt64BE(this.take(8))
  }

  /** A Kafka boolean: one byte, anything but 0 is true. */
  boolean(): boolean {
    return this.int8() !== 0
  }

  /** An unsigned 32-bit varint, 0..2^32-1 (a number, exact). */
  uvarint(): number {
    const start = this.position
    let value = 0
    for (let i = 0; i < 4; i++) {
      const byte = this.buffer.readUInt8(this.take(1))
      value += (byte & 0x7f) * 2 ** (7 * i)
      if ((byte & 0x80) === 0) return value
    }
    // The fifth byte holds the top 4 bits, and ends the varint: anything more is past 32 bits.
    const byte = this.buffer.readUInt8(this.take(1))
    if (byte > 0x0f) throw new KafkaCodecError({ reason: "varint-too-long", offset: start })
    return value + byte * 2 ** 28
  }

  /** A signed (zigzag) 32-bit varint. */
  varint(): number {
    const n = this.uvarint()
    return (n >>> 1) ^ -(n & 1)
  }

  /** `n` raw bytes (a view into the message, not a copy). */
  raw(n: number): Buffer {
    const at = this.take(n)
    return this.buffer.subarray(at, at + n)
  }

  /** Every byte from here to the end. */
  rest(): Buffer {
    return this.raw(this.remaining)
  }

  /** A string with an int16 length; null for -1. */
  string(): string | null {
    const at = this.position
    const length = this.int16()
    if (length === -1) return null
    if (length < -1) throw negativeLength(at, "string", length)
    return this.raw(length).toString("utf8")
  }

  /** A string with a uvarint length + 1; null for 0. */
  compactString(): string | null {
    const length = this.uvarint() - 1
    return length === -1 ? null : this.raw(length).toString("utf8")
  }

  /** Bytes with an int32 length; null for -1. */
  bytes(): Buffer | null {
    const at = this.position
    const length = this.int32()
    if (length === -1) return null
    if (length < -1) throw negativeLength(at, "bytes", length)
    return this.raw(length)
  }

  /** Bytes with a uvarint length + 1; null for 0. */
  compactBytes(): Buffer | null {
    const length = this.uvarint() - 1
    return length === -1 ? null : this.raw(length)
  }

  /** An array with an int32 count; null for -1. */
  array<A>(item: (reader: Reader) => A): Array<A> | null {
    const at = this.position
    const count = this.int32()
    if (count === -1) return null
    if (count < -1) throw negativeLength(at, "array", count)
    return this.items(count, item)
  }

  /** An array with a uvarint count + 1; null for 0. */
  compactArray<A>(item: (reader: Reader) => A): Array<A> | null {
    const count = this.uvarint() - 1
    return count === -1 ? null : this.items(count, item)
  }

  private items<A>(count: number, item: (reader: Reader) => A): Array<A> {
    // Grown one item at a time: a hostile count runs out of bytes long before it runs out of memory.
    const out: Array<A> = []
    for (let i = 0; i < count; i++) out.push(item(this))
    return out
  }

  /** A tagged-field section, with the exact bytes it took so it can be written back as is. */
  taggedFields(): TaggedFields {
    const start = this.position
    const count = this.uvarint()
    const fields: Array<TaggedField> = []
    for (let i = 0; i < count; i++) {
      const tag = this.uvarint()
      const size = this.uvarint()
      fields.push({ tag, data: this.raw(size) })
    }
    return { fields, raw: this.buffer.subarray(start, this.position) }
  }
}

const INT16_MAX = 0x7fff

/** Writes a broker's Host, in either string encoding, then its Port: all the tunnel encodes. */
export class Writer {
  private readonly chunks: Array<Buffer> = []

  private fixed(size: number, write: (buffer: Buffer) => void): this {
    const buffer = Buffer.allocUnsafe(size)
    write(buffer)
    this.chunks.push(buffer)
    return this
  }

  int32(value: number): this {
    return this.fixed(4, (b) => b.writeInt32BE(value))
  }

  /** A string with an int16 length. */
  string(value: string): this {
    const bytes = Buffer.from(value, "utf8")
    if (bytes.length > INT16_MAX) throw new RangeError(`string of ${bytes.length} bytes does not fit an int16 length`)
    this.fixed(2, (b) => b.writeInt16BE(bytes.length))
    this.chunks.push(bytes)
    return this
  }

  /** A string with a uvarint length + 1 (in the fewest bytes). */
  compactString(value: string): this {
    const bytes = Buffer.from(value, "utf8")
    const length: Array<number> = []
    let rest = bytes.length + 1
    while (rest >= 0x80) {
      length.push((rest % 0x80) | 0x80)
      rest = Math.floor(rest / 0x80)
    }
    length.push(rest)
    this.chunks.push(Buffer.from(length), bytes)
    return this
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks)
  }
}
