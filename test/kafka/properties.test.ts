/**
 * Property tests: whatever bytes a broker sends, decoding answers with a value or a
 * KafkaCodecError and nothing else; a cut response is refused, never half-edited; and for
 * random brokers, hosts (any Unicode, any length) and tunnel addresses, a rewrite equals the
 * encoding of the response with the new addresses.
 */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { KafkaCodecError } from "../../src/errors.js"
import { type BrokerAddress, brokersIn, rewriteResponse } from "../../src/kafka/rewrite.js"
import {
  encodeApiVersions,
  encodeDescribeCluster,
  encodeFindCoordinator,
  encodeMetadata,
  encodeMetadataHead,
  type Tag
} from "./encode.js"
import { apiVersions, describeCluster, findCoordinator, metadata, noCoordinator, tunnelAddress } from "./fixtures.js"

const header = (apiKey: number, apiVersion: number) => ({ apiKey, apiVersion, correlationId: 1 })

/** Runs `read`; passes if it returns or throws a KafkaCodecError, fails on anything else. */
const onlyCodecErrors = (read: () => unknown): "ok" | "error" => {
  try {
    read()
    return "ok"
  } catch (error) {
    expect(error).toBeInstanceOf(KafkaCodecError)
    return "error"
  }
}

const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a))

/** Valid encodings of every rewritten API and version, as [key, version, bytes]. */
const samples: ReadonlyArray<readonly [number, number, Buffer]> = [
  ...Array.from({ length: 13 }, (_, v) => [3, v, encodeMetadata(v, metadata)] as const),
  ...Array.from({ length: 7 }, (_, v) => [10, v, encodeFindCoordinator(v, findCoordinator)] as const),
  ...Array.from({ length: 4 }, (_, v) => [10, v, encodeFindCoordinator(v, noCoordinator)] as const),
  ...Array.from({ length: 3 }, (_, v) => [60, v, encodeDescribeCluster(v, describeCluster)] as const),
  ...Array.from({ length: 5 }, (_, v) => [18, v, encodeApiVersions(v, apiVersions)] as const)
]

/** A sample with a few bytes overwritten and maybe cut: close enough to valid to go deep. */
const damaged = fc.tuple(
  fc.constantFrom(...samples),
  fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
  fc.option(fc.nat())
).map(([[key, v, sample], edits, cut]) => {
  const copy = Buffer.from(sample)
  for (const [at, value] of edits) copy[at % copy.length] = value
  return [key, v, cut === null ? copy : copy.subarray(0, cut % (copy.length + 1))] as const
})

const anyInput = fc.oneof(
  fc.tuple(fc.constantFrom(3, 10, 18, 60), fc.integer({ min: -1, max: 14 }), bytes(120)),
  damaged
)

describe("hostile bytes", () => {
  it.prop("give a value or a KafkaCodecError, nothing else", [anyInput], ([[key, v, input]]) => {
    const before = Buffer.from(input)
    onlyCodecErrors(() => brokersIn(header(key, v), input))
    onlyCodecErrors(() => rewriteResponse(header(key, v), input, tunnelAddress))
    expect(input.equals(before)).toBe(true)
  }, { fastCheck: { numRuns: 3000 } })

  it("a response cut anywhere in the part that is read is refused as truncated", () => {
    for (const [key, v, sample] of samples) {
      // Metadata is read through its Brokers array only; the others to the end of the body.
      const read = key === 3 ? encodeMetadataHead(v, metadata).length : sample.length
      for (let n = 0; n < sample.length; n++) {
        const cut = sample.subarray(0, n)
        const outcome = onlyCodecErrors(() => rewriteResponse(header(key, v), cut, tunnelAddress))
        expect([key, v, n, outcome]).toEqual([key, v, n, n < read ? "error" : "ok"])
        if (n < read) {
          try {
            brokersIn(header(key, v), cut)
          } catch (error) {
            expect((error as KafkaCodecError).reason).toBe("truncated")
          }
        }
      }
    }
  })
})

const text = fc.string({ unit: "grapheme", maxLength: 90 })
const tagList = fc.array(fc.record({ tag: fc.nat(), data: bytes(8) }), { maxLength: 3 }) as fc.Arbitrary<ReadonlyArray<Tag>>
const nodeId = fc.integer({ min: -2, max: 6 })
const port = fc.integer({ min: -0x80000000, max: 0x7fffffff })
const address = fc.record({ host: text, port })

/** A tunnel that gives each node id one random address. */
const tunnel = fc.array(address, { minLength: 7, maxLength: 7 }).map((addresses) =>
  (broker: BrokerAddress) => addresses[broker.nodeId]!)

const moved = <A extends { readonly host: string; readonly port: number }>(id: number, a: A, to: (b: BrokerAddress) => { host: string; port: number }): A =>
  id < 0 ? a : { ...a, ...to({ nodeId: id, host: a.host, port: a.port }) }

describe("random brokers and addresses", () => {
  it.prop("Metadata: a rewrite is the encoding with the new addresses", [
    fc.integer({ min: 0, max: 12 }),
    fc.array(fc.record({ nodeId, host: text, port, rack: fc.option(text), tags: tagList }), { maxLength: 6 }),
    tagList,
    bytes(4),
    tunnel
  ], ([v, brokers, headerTags, trailing, to]) => {
    const m = { ...metadata, brokers, headerTags, trailing }
    const out = rewriteResponse(header(3, v), encodeMetadata(v, m), to)
    const expected = encodeMetadata(v, { ...m, brokers: brokers.map((b) => moved(b.nodeId, b, to)) })
    expect(out.toString("hex")).toBe(expected.toString("hex"))
  })

  it.prop("FindCoordinator: a rewrite is the encoding with the new addresses", [
    fc.integer({ min: 0, max: 6 }),
    fc.record({ nodeId, host: text, port }),
    fc.array(fc.record({ key: text, nodeId, host: text, port, errorCode: fc.integer({ min: -1, max: 100 }), errorMessage: fc.option(text), tags: tagList }), { maxLength: 5 }),
    tunnel
  ], ([v, one, coordinators, to]) => {
    const f = { ...findCoordinator, ...one, coordinators }
    const out = rewriteResponse(header(10, v), encodeFindCoordinator(v, f), to)
    const expected = encodeFindCoordinator(v, { ...moved(f.nodeId, f, to), coordinators: coordinators.map((c) => moved(c.nodeId, c, to)) })
    expect(out.toString("hex")).toBe(expected.toString("hex"))
  })

  it.prop("DescribeCluster: a rewrite is the encoding with the new addresses", [
    fc.integer({ min: 0, max: 2 }),
    fc.array(fc.record({ brokerId: nodeId, host: text, port, rack: fc.option(text), isFenced: fc.boolean(), tags: tagList }), { maxLength: 6 }),
    tunnel
  ], ([v, brokers, to]) => {
    const d = { ...describeCluster, brokers }
    const out = rewriteResponse(header(60, v), encodeDescribeCluster(v, d), to)
    const expected = encodeDescribeCluster(v, { ...d, brokers: brokers.map((b) => moved(b.brokerId, b, to)) })
    expect(out.toString("hex")).toBe(expected.toString("hex"))
  })
})
