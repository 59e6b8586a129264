/**
 * Kafka's wire primitives, pure: a `Reader` that walks a message by offset and a `Writer` that
 * builds one.
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

/** Why a message could not be read: it ends early, or a length or varint is impossible. */
export type KafkaCodecErrorReason = "Truncated" | "Malformed"

export class KafkaCodecError extends Error {
  readonly _tag = "KafkaCodecError"
  override readonly name = "KafkaCodecError"
  constructor(
    readonly reason: KafkaCodecErrorReason,
    /** Where in the message the read that failed started. */
    readonly offset: number,
    message: string
  ) {
    super(message)
  }
}

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

const truncated = (offset: number, needed: number, left: number) =>
  new KafkaCodecError("Truncated", offset, `Kafka message ends early: ${needed} bytes needed at offset ${offset}, ${left} left`)

const malformed = (offset: number, what: string) =>
  new KafkaCodecError("Malformed", offset, `Kafka message is malformed at offset ${offset}: ${what}`)

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
    if (n > this.buffer.length - at) throw truncated(at, n, this.buffer.length - at)
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
    for (let i = 0; i < 5; i++) {
      const byte = this.buffer.readUInt8(this.take(1))
      if (i === 4 && byte > 0x0f) throw malformed(start, "varint longer than 32 bits")
      value += (byte & 0x7f) * 2 ** (7 * i)
      if ((byte & 0x80) === 0) return value
    }
    throw malformed(start, "varint longer than 5 bytes")
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
    if (length < -1) throw malformed(at, `string length ${length}`)
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
    if (length < -1) throw malformed(at, `bytes length ${length}`)
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
    if (count < -1) throw malformed(at, `array length ${count}`)
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

export class Writer {
  private readonly chunks: Array<Buffer> = []

  private fixed(size: number, write: (buffer: Buffer) => void): this {
    const buffer = Buffer.allocUnsafe(size)
    write(buffer)
    this.chunks.push(buffer)
    return this
  }

  int8(value: number): this {
    return this.fixed(1, (b) => b.writeInt8(value))
  }

  int16(value: number): this {
    return this.fixed(2, (b) => b.writeInt16BE(value))
  }

  int32(value: number): this {
    return this.fixed(4, (b) => b.writeInt32BE(value))
  }

  int64(value: bigint): this {
    return this.fixed(8, (b) => b.writeBigInt64BE(value))
  }

  boolean(value: boolean): this {
    return this.int8(value ? 1 : 0)
  }

  /** An unsigned 32-bit varint, in the fewest bytes. */
  uvarint(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`uvarint out of range: ${value}`)
    const bytes: Array<number> = []
    let rest = value
    while (rest >= 0x80) {
      bytes.push((rest % 0x80) | 0x80)
      rest = Math.floor(rest / 0x80)
    }
    bytes.push(rest)
    return this.raw(Buffer.from(bytes))
  }

  /** A signed (zigzag) 32-bit varint. */
  varint(value: number): this {
    if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) throw new RangeError(`varint out of range: ${value}`)
    return this.uvarint(((value << 1) ^ (value >> 31)) >>> 0)
  }

  /** Bytes as they are (a chunk already encoded, such as a raw tagged-field section). */
  raw(bytes: Buffer): this {
    this.chunks.push(bytes)
    return this
  }

  string(value: string | null): this {
    if (value === null) return this.int16(-1)
    const bytes = Buffer.from(value, "utf8")
    if (bytes.length > INT16_MAX) throw new RangeError(`string of ${bytes.length} bytes does not fit an int16 length`)
    return this.int16(bytes.length).raw(bytes)
  }

  compactString(value: string | null): this {
    if (value === null) return this.uvarint(0)
    const bytes = Buffer.from(value, "utf8")
    return this.uvarint(bytes.length + 1).raw(bytes)
  }

  bytes(value: Buffer | null): this {
    return value === null ? this.int32(-1) : this.int32(value.length).raw(value)
  }

  compactBytes(value: Buffer | null): this {
    return value === null ? this.uvarint(0) : this.uvarint(value.length + 1).raw(value)
  }

  array<A>(items: ReadonlyArray<A> | null, item: (writer: Writer, value: A) => void): this {
    if (items === null) return this.int32(-1)
    this.int32(items.length)
    for (const value of items) item(this, value)
    return this
  }

  compactArray<A>(items: ReadonlyArray<A> | null, item: (writer: Writer, value: A) => void): this {
    if (items === null) return this.uvarint(0)
    this.uvarint(items.length + 1)
    for (const value of items) item(this, value)
    return this
  }

  /** A tagged-field section built from fields (to copy one as read, write its `raw`). */
  taggedFields(fields: ReadonlyArray<TaggedField>): this {
    this.uvarint(fields.length)
    for (const { data, tag } of fields) this.uvarint(tag).uvarint(data.length).raw(data)
    return this
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks)
  }
}
