/**
 * Byte-level tests of broker-address rewriting, for every version of every rewritten API: each
 * sample is encoded by the independent test encoder, rewritten, and compared byte for byte with
 * the encoding of the sample as it should come out.
 */
import { describe, expect, it } from "@effect/vitest"
import { KafkaCodecError } from "../../src/errors.js"
import {
  type BrokerAddress,
  brokersIn,
  type RequestHeader,
  rewriteResponse
} from "../../src/kafka/rewrite.js"
import {
  type ApiVersionsResponse,
  encodeApiVersions,
  encodeDescribeCluster,
  encodeFindCoordinator,
  encodeMetadata,
  i16,
  i32
} from "./encode.js"
import {
  apiVersions,
  apiVersionsCapped,
  describeCluster,
  describeClusterMoved,
  findCoordinator,
  findCoordinatorMoved,
  LONG_ORIGINAL,
  metadata,
  metadataMoved,
  noCoordinator,
  tunnelAddress
} from "./fixtures.js"

const hex = (b: Buffer) => b.toString("hex")
const header = (apiKey: number, apiVersion: number): RequestHeader => ({ apiKey, apiVersion, correlationId: 7 })
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

/** Rewrites with the tunnel's addresses, recording which brokers were asked about. */
const rewrite = (h: RequestHeader, response: Buffer) => {
  const asked: Array<BrokerAddress> = []
  const out = rewriteResponse(h, response, (broker) => {
    asked.push(broker)
    return tunnelAddress(broker)
  })
  return { asked, out }
}

const mock = (v: number) => ({ ...metadata, trailing: v >= 9 ? Buffer.of(0) : Buffer.alloc(0) })

describe("Metadata", () => {
  for (const v of range(0, 12)) {
    it(`v${v}: rewrites every broker with node id >= 0 and keeps every other byte`, () => {
      const m = mock(v)
      const before = encodeMetadata(v, m)
      const { asked, out } = rewrite(header(3, v), before)
      expect(hex(out)).toBe(hex(encodeMetadata(v, metadataMoved(m))))
      expect(asked.map((b) => b.nodeId)).toEqual([1, 2, 3])
      expect(brokersIn(header(3, v), before)).toEqual([
        { nodeId: 1, host: "kafka-1.invalid", port: 9092 },
        { nodeId: 2, host: "kafka-2.invalid", port: 9093 },
        { nodeId: 3, host: LONG_ORIGINAL, port: 9094 }
      ])
      expect(brokersIn(header(3, v), out).map((b) => b.port)).toEqual([40001, 40002, 40003])
    })

    it(`v${v}: keeps arbitrary trailing bytes after the body`, () => {
      const m = { ...metadata, trailing: Buffer.from("00ff00deadbeef", "hex") }
      expect(hex(rewrite(header(3, v), encodeMetadata(v, m)).out)).toBe(hex(encodeMetadata(v, metadataMoved(m))))
    })
  }

  it("v9+: keeps the response header's tagged fields, even in a non-minimal varint encoding", () => {
    const plain = encodeMetadata(9, { ...metadata, headerTags: [] })
    const odd = Buffer.from("8100800002aabb", "hex") // count 1 and tag 0 each in two bytes
    const before = Buffer.concat([plain.subarray(0, 4), odd, plain.subarray(5)])
    const expected = encodeMetadata(9, metadataMoved({ ...metadata, headerTags: [] }))
    expect(hex(rewrite(header(3, 9), before).out)).toBe(hex(Buffer.concat([expected.subarray(0, 4), odd, expected.subarray(5)])))
  })

  it("a response with no broker to move is returned as is", () => {
    const m = { ...metadata, brokers: metadata.brokers.filter((b) => b.nodeId < 0) }
    const before = encodeMetadata(12, m)
    const { asked, out } = rewrite(header(3, 12), before)
    expect(out).toBe(before)
    expect(asked).toEqual([])
    expect(brokersIn(header(3, 12), before)).toEqual([])
  })

  it("brokersIn deduplicates by node id, first mention first", () => {
    const m = { ...metadata, brokers: [metadata.brokers[1]!, metadata.brokers[0]!, { ...metadata.brokers[1]!, host: "again" }] }
    expect(brokersIn(header(3, 1), encodeMetadata(1, m)).map((b) => [b.nodeId, b.host])).toEqual([[2, "kafka-2.invalid"], [1, "kafka-1.invalid"]])
  })

  it("a null Brokers array is read as no brokers", () => {
    const before = Buffer.concat([i32(7), i32(-1), i32(0)])
    expect(rewrite(header(3, 0), before).out).toBe(before)
  })
})

describe("FindCoordinator", () => {
  for (const v of range(0, 6)) {
    it(`v${v}: rewrites the coordinator${v >= 4 ? "s" : ""} and keeps every other byte`, () => {
      const before = encodeFindCoordinator(v, findCoordinator)
      const { asked, out } = rewrite(header(10, v), before)
      expect(hex(out)).toBe(hex(encodeFindCoordinator(v, findCoordinatorMoved(findCoordinator))))
      expect(asked.map((b) => b.nodeId)).toEqual(v >= 4 ? [2, 1, 2] : [2])
      expect(brokersIn(header(10, v), before)).toEqual(v >= 4
        ? [{ nodeId: 2, host: "kafka-2.invalid", port: 9093 }, { nodeId: 1, host: "kafka-1.invalid", port: 9092 }]
        : [{ nodeId: 2, host: "kafka-2.invalid", port: 9093 }])
    })

    it(`v${v}: node id -1 (no coordinator) is left as is`, () => {
      const before = encodeFindCoordinator(v, noCoordinator)
      const { asked, out } = rewrite(header(10, v), before)
      expect(out).toBe(before)
      expect(asked).toEqual([])
      expect(brokersIn(header(10, v), before)).toEqual([])
    })

    it(`v${v}: keeps trailing bytes`, () => {
      const f = { ...findCoordinator, trailing: Buffer.of(0, 1, 2) }
      expect(hex(rewrite(header(10, v), encodeFindCoordinator(v, f)).out))
        .toBe(hex(encodeFindCoordinator(v, findCoordinatorMoved(f))))
    })
  }
})

describe("DescribeCluster", () => {
  for (const v of range(0, 2)) {
    it(`v${v}: rewrites every broker with id >= 0 and keeps every other byte`, () => {
      for (const d of [describeCluster, { ...describeCluster, headerTags: [{ tag: 1, data: Buffer.of(1, 2, 3) }], trailing: Buffer.of(0) }]) {
        const before = encodeDescribeCluster(v, d)
        const { asked, out } = rewrite(header(60, v), before)
        expect(hex(out)).toBe(hex(encodeDescribeCluster(v, describeClusterMoved(d))))
        expect(asked.map((b) => b.nodeId)).toEqual([1, 2, 3])
        expect(brokersIn(header(60, v), before).map((b) => b.nodeId)).toEqual([1, 2, 3])
      }
    })
  }
})

describe("ApiVersions", () => {
  for (const v of range(0, 4)) {
    it(`v${v}: lowers only the MaxVersions above the caps, in a copy, with a v0 header`, () => {
      const before = encodeApiVersions(v, apiVersions)
      const kept = Buffer.from(before)
      const { asked, out } = rewrite(header(18, v), before)
      expect(hex(out)).toBe(hex(encodeApiVersions(v, apiVersionsCapped(apiVersions))))
      expect(out.length).toBe(before.length)
      expect(hex(before)).toBe(hex(kept))
      expect(asked).toEqual([])
      expect(brokersIn(header(18, v), before)).toEqual([])
    })

    it(`v${v}: nothing above a cap, nothing changed`, () => {
      const before = encodeApiVersions(v, { ...apiVersionsCapped(apiVersions), trailing: Buffer.of(9) })
      expect(rewrite(header(18, v), before).out).toBe(before)
    })
  }

  it("reads a v3 body after a v0 header: the first body byte is not a tag count", () => {
    // Error code 0x0100 would be a tagged-field count of 1 if a v1 header were assumed.
    const a: ApiVersionsResponse = { ...apiVersions, errorCode: 0x0100, tags: [] }
    expect(hex(rewrite(header(18, 3), encodeApiVersions(3, a)).out)).toBe(hex(encodeApiVersions(3, apiVersionsCapped(a))))
  })

  it("a v0 UNSUPPORTED_VERSION answer to a v3 request is read as v0", () => {
    const a: ApiVersionsResponse = { ...apiVersions, errorCode: 35 }
    for (const v of [1, 2, 3, 4]) {
      expect(hex(rewrite(header(18, v), encodeApiVersions(0, a)).out)).toBe(hex(encodeApiVersions(0, apiVersionsCapped(a))))
    }
  })
})

describe("versions whose layout is not known", () => {
  const cases: ReadonlyArray<[string, number, number, Buffer]> = [
    ["Metadata v13", 3, 13, encodeMetadata(12, metadata)],
    ["FindCoordinator v7", 10, 7, encodeFindCoordinator(6, findCoordinator)],
    ["DescribeCluster v3", 60, 3, encodeDescribeCluster(2, describeCluster)],
    ["ApiVersions v5", 18, 5, encodeApiVersions(3, apiVersions)],
    ["Metadata v-1", 3, -1, encodeMetadata(0, metadata)],
    ["Produce v9", 0, 9, Buffer.concat([i32(7), i16(0)])]
  ]
  for (const [name, key, v, bytes] of cases) {
    it(`${name}: returned unchanged, no brokers`, () => {
      expect(rewrite(header(key, v), bytes).out).toBe(bytes)
      expect(brokersIn(header(key, v), bytes)).toEqual([])
    })
  }
})

describe("responses that do not fit their layout", () => {
  const thrown = (read: () => unknown): unknown => {
    try {
      read()
    } catch (error) {
      expect(error).toBeInstanceOf(KafkaCodecError)
      return error
    }
    throw new Error("expected a KafkaCodecError")
  }

  it("a broker with a null host is refused as null-host", () => {
    // FindCoordinator v0: correlation id, error code, node id, a null Host, Port.
    const response = Buffer.concat([i32(7), i16(0), i32(1), i16(-1), i32(9092)])
    const expected = { _tag: "KafkaCodecError", reason: "null-host", offset: 10, nodeId: 1, message: "broker 1 has a null host" }
    expect(thrown(() => brokersIn(header(10, 0), response))).toMatchObject(expected)
    expect(thrown(() => rewriteResponse(header(10, 0), response, tunnelAddress))).toMatchObject(expected)
  })

  it("a null ApiKeys array is refused as null-api-keys", () => {
    const expected = { _tag: "KafkaCodecError", reason: "null-api-keys", offset: 6, message: "ApiVersions has a null ApiKeys array" }
    // v0: an int32 count of -1; v3: a compact count of 0 (and no UNSUPPORTED_VERSION to retry as v0).
    expect(thrown(() => rewriteResponse(header(18, 0), Buffer.concat([i32(7), i16(0), i32(-1)]), tunnelAddress))).toMatchObject(expected)
    expect(thrown(() => rewriteResponse(header(18, 3), Buffer.concat([i32(7), i16(0), Buffer.of(0)]), tunnelAddress))).toMatchObject(expected)
  })
})
