/**
 * Kafka's wire primitives against hand-written bytes, and the one error a bad message gives.
 */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { KafkaCodecError } from "../../src/errors.js"
import { Reader, Writer } from "../../src/kafka/wire.js"
import { Writer as TestWriter } from "./encode.js"

const reader = (hex: string) => new Reader(Buffer.from(hex, "hex"))
const written = (build: (w: Writer) => void) => {
  const w = new Writer()
  build(w)
  return w.toBuffer().toString("hex")
}

/** The KafkaCodecError `read` throws (failing the test if it throws anything else, or nothing). */
const codecError = (read: () => unknown): KafkaCodecError => {
  try {
    read()
  } catch (error) {
    expect(error).toBeInstanceOf(KafkaCodecError)
    return error as KafkaCodecError
  }
  throw new Error("expected a KafkaCodecError")
}

describe("Reader", () => {
  it("reads big-endian fixed-width integers, signed", () => {
    const r = reader("ff" + "fffe" + "80000000" + "8000000000000000" + "01" + "00")
    expect([r.int8(), r.int16(), r.int32(), r.int64(), r.boolean(), r.boolean()])
      .toEqual([-1, -2, -2147483648, -9223372036854775808n, true, false])
    expect(r.remaining).toBe(0)
  })

  it("reads unsigned varints up to 32 bits, and zigzag varints", () => {
    expect(reader("00").uvarint()).toBe(0)
    expect(reader("7f").uvarint()).toBe(127)
    expect(reader("8001").uvarint()).toBe(128)
    expect(reader("ac02").uvarint()).toBe(300)
    expect(reader("8000").uvarint()).toBe(0) // non-minimal, still read
    expect(reader("ffffffff0f").uvarint()).toBe(4294967295)
    expect([reader("00").varint(), reader("01").varint(), reader("02").varint(), reader("03").varint()]).toEqual([0, -1, 1, -2])
    expect(reader("feffffff0f").varint()).toBe(2147483647)
    expect(reader("ffffffff0f").varint()).toBe(-2147483648)
  })

  it("rejects varints longer than 32 bits as varint-too-long, and cut ones as truncated", () => {
    expect(codecError(() => reader("ffffffff10").uvarint())).toMatchObject({
      _tag: "KafkaCodecError",
      reason: "varint-too-long",
      offset: 0,
      message: "Kafka message is malformed at offset 0: varint longer than 32 bits"
    })
    expect(codecError(() => new Reader(Buffer.from("00ffffffffff01", "hex"), 1).uvarint())).toMatchObject({ reason: "varint-too-long", offset: 1 })
    expect(codecError(() => reader("80").uvarint())).toMatchObject({
      reason: "truncated",
      offset: 1,
      needed: 1,
      left: 0,
      message: "Kafka message ends early: 1 bytes needed at offset 1, 0 left"
    })
  })

  it("reads strings with an int16 length, -1 being null", () => {
    const r = reader("0003616263" + "ffff" + "0000" + "0002c3a9")
    expect([r.string(), r.string(), r.string(), r.string()]).toEqual(["abc", null, "", "é"])
    expect(codecError(() => reader("fffe").string())).toMatchObject({
      reason: "negative-length",
      offset: 0,
      field: "string",
      length: -2,
      message: "Kafka message is malformed at offset 0: string length -2"
    })
    expect(codecError(() => reader("000561").string())).toMatchObject({ reason: "truncated", offset: 2, needed: 5, left: 1 })
  })

  it("reads compact strings with a uvarint length + 1, 0 being null", () => {
    const r = reader("04616263" + "00" + "01")
    expect([r.compactString(), r.compactString(), r.compactString()]).toEqual(["abc", null, ""])
    expect(codecError(() => reader("0561").compactString()).reason).toBe("truncated")
  })

  it("reads bytes, plain and compact, null alike", () => {
    const r = reader("00000002abcd" + "ffffffff" + "03abcd" + "00")
    expect([r.bytes(), r.bytes(), r.compactBytes(), r.compactBytes()]).toEqual([Buffer.of(0xab, 0xcd), null, Buffer.of(0xab, 0xcd), null])
    expect(codecError(() => reader("fffffffe").bytes())).toMatchObject({
      reason: "negative-length",
      field: "bytes",
      length: -2,
      message: "Kafka message is malformed at offset 0: bytes length -2"
    })
  })

  it("reads arrays with an int32 count or a compact count + 1, null alike", () => {
    const r = reader("00000002" + "0001" + "0002" + "ffffffff" + "03" + "0003" + "0004" + "00" + "01")
    const int16 = (x: Reader) => x.int16()
    expect([r.array(int16), r.array(int16), r.compactArray(int16), r.compactArray(int16), r.compactArray(int16)])
      .toEqual([[1, 2], null, [3, 4], null, []])
    expect(codecError(() => reader("fffffff0").array(int16))).toMatchObject({
      reason: "negative-length",
      field: "array",
      length: -16,
      message: "Kafka message is malformed at offset 0: array length -16"
    })
    // A huge count with no items behind it ends as truncated, without allocating for the count.
    expect(codecError(() => reader("7fffffff0001").array(int16)).reason).toBe("truncated")
  })

  it("reads tagged-field sections raw: the exact bytes, however they were encoded", () => {
    const r = reader("02" + "00" + "02" + "abcd" + "8001" + "00" + "ff")
    const fields = r.taggedFields()
    expect(fields.fields).toEqual([{ tag: 0, data: Buffer.of(0xab, 0xcd) }, { tag: 128, data: Buffer.alloc(0) }])
    expect(fields.raw.toString("hex")).toBe("020002abcd800100")
    expect(r.offset).toBe(8)
    expect(reader("8100" + "8000" + "8100" + "aa").taggedFields().raw.toString("hex")).toBe("81008000" + "8100aa")
    expect(codecError(() => reader("01" + "00" + "05" + "ab").taggedFields()).reason).toBe("truncated")
  })

  it("reports where the failing read started", () => {
    const r = reader("0001" + "00")
    r.int16()
    const error = codecError(() => r.int32())
    expect(error).toMatchObject({ _tag: "KafkaCodecError", name: "KafkaCodecError", reason: "truncated", offset: 2, needed: 4, left: 1 })
    expect(error).toBeInstanceOf(Error)
    expect(error.message).toBe("Kafka message ends early: 4 bytes needed at offset 2, 1 left")
  })
})

describe("Writer", () => {
  it("writes a Host, in either string encoding, and a Port: all the tunnel encodes", () => {
    expect(written((w) => w.string("abc").string("").int32(9092))).toBe("0003616263" + "0000" + "00002384")
    expect(written((w) => w.compactString("abc").compactString("").int32(-1))).toBe("04616263" + "01" + "ffffffff")
    // A length + 1 of 128 takes two uvarint bytes.
    expect(written((w) => w.compactString("x".repeat(127))).slice(0, 4)).toBe("8001")
  })

  it("refuses values that cannot be encoded with a RangeError", () => {
    expect(() => new Writer().string("x".repeat(0x8000))).toThrow(RangeError)
    expect(() => new Writer().int32(2 ** 31)).toThrow(RangeError)
  })

  it.prop("writes what the Reader reads", [fc.string({ unit: "grapheme", maxLength: 200 }), fc.integer({ min: -0x80000000, max: 0x7fffffff })], ([s, port]) => {
    const r = new Reader(new Writer().string(s).int32(port).compactString(s).int32(port).toBuffer())
    expect([r.string(), r.int32(), r.compactString(), r.int32()]).toEqual([s, port, s, port])
    expect(r.remaining).toBe(0)
  })
})

describe("Reader against the test encoder", () => {
  const encoded = (build: (w: TestWriter) => void) => {
    const w = new TestWriter()
    build(w)
    return w.toBuffer().toString("hex")
  }
  const i8 = (n: number) => Buffer.of(n & 0xff)

  it("the test encoder writes Kafka's encodings, in the fewest bytes", () => {
    expect(encoded((w) => w.int8(-1).int16(-2).int32(1).int64(-1n).boolean(true))).toBe("fffffe00000001ffffffffffffffff01")
    expect(encoded((w) => w.uvarint(0).uvarint(127).uvarint(128).uvarint(300).uvarint(4294967295))).toBe("007f8001ac02ffffffff0f")
    expect(encoded((w) => w.varint(0).varint(-1).varint(1).varint(-2147483648))).toBe("000102ffffffff0f")
    expect(encoded((w) => w.string("abc").string(null).compactString("abc").compactString(null).compactString(""))).toBe("0003616263ffff04616263" + "0001")
    expect(encoded((w) => w.bytes(Buffer.of(1)).bytes(null).compactBytes(Buffer.of(1)).compactBytes(null))).toBe("0000000101ffffffff020100")
    expect(encoded((w) => w.array([1, 2], i8).array(null, i8).compactArray([3], i8).compactArray(null, i8)))
      .toBe("000000020102ffffffff020300")
    expect(encoded((w) => w.taggedFields([{ tag: 0, data: Buffer.of(0xab) }, { tag: 300, data: Buffer.alloc(0) }]).taggedFields([])))
      .toBe("020001abac020000")
  })

  it.prop("the Reader reads what it writes", [
    fc.integer({ min: 0, max: 0xffffffff }),
    fc.integer({ min: -0x80000000, max: 0x7fffffff }),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    fc.option(fc.string({ unit: "grapheme", maxLength: 200 })),
    fc.option(fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a))),
    fc.array(fc.record({ tag: fc.nat(), data: fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a)) }), { maxLength: 4 })
  ], ([u, i, big, s, bytes, fields]) => {
    const buffer = new TestWriter().uvarint(u).varint(i).int32(i).int64(big).string(s).compactString(s)
      .bytes(bytes).compactBytes(bytes).compactArray(fields, (f) => new TestWriter().uvarint(f.tag).toBuffer()).taggedFields(fields).toBuffer()
    const r = new Reader(buffer)
    expect([r.uvarint(), r.varint(), r.int32(), r.int64(), r.string(), r.compactString(), r.bytes(), r.compactBytes()])
      .toEqual([u, i, i, big, s, s, bytes, bytes])
    expect(r.compactArray((x) => x.uvarint())).toEqual(fields.map((f) => f.tag))
    expect(r.taggedFields().fields).toEqual(fields)
    expect(r.remaining).toBe(0)
  })
})
