/**
 * Request headers, which requests get their responses decoded, flexible versions and caps.
 */
import { describe, expect, it } from "@effect/vitest"
import { KafkaCodecError } from "../../src/errors.js"
import { ApiKey, isFlexible, responseHeaderVersion, VERSION_CAPS } from "../../src/kafka/apis.js"
import { isRewritten, readRequestHeader } from "../../src/kafka/rewrite.js"

describe("readRequestHeader", () => {
  it("reads api key, api version and correlation id, and ignores what follows", () => {
    // A Metadata v12 request: header, then client id and body (not read).
    const request = Buffer.from("0003" + "000c" + "0000002a" + "0007" + "72646b61666b61" + "00" + "01", "hex")
    expect(readRequestHeader(request)).toEqual({ apiKey: 3, apiVersion: 12, correlationId: 42 })
    expect(readRequestHeader(Buffer.from("0012000300000000", "hex"))).toEqual({ apiKey: 18, apiVersion: 3, correlationId: 0 })
  })

  it("reads the correlation id as a signed int32", () => {
    expect(readRequestHeader(Buffer.from("00000009ffffffff", "hex")).correlationId).toBe(-1)
  })

  it("throws KafkaCodecError (truncated) on fewer than 8 bytes", () => {
    for (let n = 0; n < 8; n++) {
      expect(() => readRequestHeader(Buffer.alloc(n))).toThrow(KafkaCodecError)
      try {
        readRequestHeader(Buffer.alloc(n))
      } catch (error) {
        expect(error).toMatchObject({ _tag: "KafkaCodecError", reason: "truncated" })
      }
    }
  })
})

describe("isRewritten", () => {
  const header = (apiKey: number, apiVersion: number) => ({ apiKey, apiVersion, correlationId: 1 })

  it("is true for Metadata, FindCoordinator, DescribeCluster and ApiVersions, any version", () => {
    for (const key of [3, 10, 60, 18]) {
      for (const v of [0, 1, 3, 9, 12, 13, 100, -1]) expect(isRewritten(header(key, v))).toBe(true)
    }
  })

  it("is false for everything else, Produce and Fetch included", () => {
    for (const key of [0, 1, 2, 8, 9, 11, 12, 17, 19, 29, 32, 36, 61, 1000, -1]) expect(isRewritten(header(key, 0))).toBe(false)
  })
})

describe("flexible versions and response headers", () => {
  it("knows where each API turns flexible", () => {
    const cases: ReadonlyArray<[number, number]> = [
      [ApiKey.Metadata, 9], [ApiKey.FindCoordinator, 3], [ApiKey.ApiVersions, 3], [ApiKey.Produce, 9], [ApiKey.Fetch, 12]
    ]
    for (const [key, first] of cases) {
      expect(isFlexible(key, first - 1)).toBe(false)
      expect(isFlexible(key, first)).toBe(true)
      expect(isFlexible(key, first + 5)).toBe(true)
    }
    expect(isFlexible(ApiKey.DescribeCluster, 0)).toBe(true)
  })

  it("uses header v1 exactly when flexible, except ApiVersions, always v0", () => {
    expect(responseHeaderVersion(ApiKey.Metadata, 8)).toBe(0)
    expect(responseHeaderVersion(ApiKey.Metadata, 9)).toBe(1)
    expect(responseHeaderVersion(ApiKey.FindCoordinator, 2)).toBe(0)
    expect(responseHeaderVersion(ApiKey.FindCoordinator, 3)).toBe(1)
    expect(responseHeaderVersion(ApiKey.DescribeCluster, 0)).toBe(1)
    expect(responseHeaderVersion(ApiKey.Produce, 9)).toBe(1)
    expect(responseHeaderVersion(ApiKey.Fetch, 11)).toBe(0)
    for (const v of [0, 2, 3, 4]) expect(responseHeaderVersion(ApiKey.ApiVersions, v)).toBe(0)
  })

  it("caps versions below the ones that carry NodeEndpoints", () => {
    expect([...VERSION_CAPS].sort(([a], [b]) => a - b)).toEqual([[0, 9], [1, 15], [3, 12], [10, 6], [60, 2]])
    expect(VERSION_CAPS.get(ApiKey.Produce)).toBeLessThan(10)
    expect(VERSION_CAPS.get(ApiKey.Fetch)).toBeLessThan(16)
    expect(VERSION_CAPS.has(ApiKey.ApiVersions)).toBe(false)
  })
})
