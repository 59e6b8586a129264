/**
 * Reading the client's address, pure: PROXY headers (checked against the client's encoder, which
 * was written from the spec separately), X-Forwarded-For from the right, the chain passed on; and
 * the request reader taking a PROXY header that arrives in pieces.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Option } from "effect"
import { encodeProxyHeader } from "../../src/client/proxy-header.js"
import { type ConnectionOrigin, makeTrustedProxies, requestClient } from "../../src/front/client-address.js"
import { parseHead, rewriteHead } from "../../src/front/http-request.js"
import { decodeProxyHeader } from "../../src/front/proxy-header.js"
import { makeRequestReader } from "../../src/front/request-reader.js"
import { parseCidr } from "../../src/visitors/visitor-filter.js"
import { socketPair } from "../support/net.js"

const header = (version: "v1" | "v2", source: string, destination: string) =>
  encodeProxyHeader(version, { source: { address: source, port: 40000 }, destination: { address: destination, port: 443 } })

const proxies = makeTrustedProxies(["10.0.0.0/8", "2001:db8:ffff::/48"].map((text) => Either.getOrThrow(parseCidr(text))))
const viaProxy: ConnectionOrigin = { peer: "10.0.0.1", trusted: true, proxied: undefined }

describe("PROXY headers", () => {
  it("decodes what a balancer sends, versions 1 and 2, IPv4 and IPv6, and leaves the bytes after it", () => {
    const cases: Array<[Buffer, string | undefined]> = [
      [header("v1", "203.0.113.7", "192.0.2.1"), "203.0.113.7"],
      [header("v2", "203.0.113.7", "192.0.2.1"), "203.0.113.7"],
      [header("v1", "2001:db8::7", "2001:db8::1"), "2001:db8::7"],
      [header("v2", "2001:db8::7", "2001:db8::1"), "2001:db8::7"],
      [encodeProxyHeader("v1", undefined), undefined],
      [encodeProxyHeader("v2", undefined), undefined]
    ]
    for (const [bytes, source] of cases) {
      const withRequest = Buffer.concat([bytes, Buffer.from("GET / HTTP/1.1\r\n\r\n")])
      expect(decodeProxyHeader(withRequest)).toEqual({ _tag: "Header", length: bytes.length, source })
      // Every prefix of the header waits for more.
      for (let length = 1; length < bytes.length; length++) {
        expect(decodeProxyHeader(bytes.subarray(0, length))._tag, `${length} of ${bytes.length}`).toBe("Incomplete")
      }
    }
    // A v2 header's TLVs are skipped with it.
    const v2 = header("v2", "203.0.113.7", "192.0.2.1")
    const tlv = Buffer.from([0x04, 0x00, 0x02, 0xab, 0xcd])
    const withTlv = Buffer.concat([v2.subarray(0, 14), Buffer.from([0, v2.readUInt16BE(14) + tlv.length]), v2.subarray(16), tlv])
    expect(decodeProxyHeader(withTlv)).toEqual({ _tag: "Header", length: withTlv.length, source: "203.0.113.7" })
  })

  it("tells a connection without one apart after its first byte, and refuses malformed ones", () => {
    for (const text of ["GET / HTTP/1.1\r\n", "POST", "\r\nGET /", "PROXX"]) {
      expect(decodeProxyHeader(Buffer.from(text))._tag, text).toBe("Absent")
    }
    const invalid = [
      "PROXY TCP5 203.0.113.7 192.0.2.1 1 2\r\n",
      "PROXY TCP4 203.0.113.7 192.0.2.1 1\r\n",
      "PROXY TCP4 2001:db8::7 192.0.2.1 1 2\r\n",
      "PROXY TCP4 203.0.113.7 192.0.2.1 1 65536\r\n",
      "PROXY TCP4 203.0.113.7 192.0.2.1 01 2\r\n",
      "PROXY TCP4 203.0.113.7 192.0.2.1 1 2 3\r\n",
      `PROXY TCP4 ${"1".repeat(120)}`
    ]
    for (const text of invalid) expect(decodeProxyHeader(Buffer.from(text))._tag, text).toBe("Invalid")
    const v2 = header("v2", "203.0.113.7", "192.0.2.1")
    const withByte = (index: number, value: number) => Buffer.concat([v2.subarray(0, index), Buffer.from([value]), v2.subarray(index + 1)])
    expect(decodeProxyHeader(withByte(12, 0x11))._tag).toBe("Invalid") // version 1 in a v2 header
    expect(decodeProxyHeader(withByte(12, 0x22))._tag).toBe("Invalid") // command 2
    expect(decodeProxyHeader(withByte(13, 0x41))._tag).toBe("Invalid") // family 4
    expect(decodeProxyHeader(withByte(13, 0x21))._tag).toBe("Invalid") // IPv6 in a 12-byte block
  })

  it.scoped("the request reader takes a header that arrives in pieces, then the request after it", () =>
    Effect.gen(function*() {
      const { far, near } = yield* socketPair
      const reader = makeRequestReader(far)
      const bytes = Buffer.concat([header("v2", "203.0.113.7", "192.0.2.1"), Buffer.from("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")])
      const proxy = yield* Effect.fork(reader.readProxyHeader)
      for (const [from, to] of [[0, 5], [5, 13], [13, 20], [20, bytes.length]] as const) {
        near.write(bytes.subarray(from, to))
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
      }
      expect(yield* proxy.await.pipe(Effect.flatten)).toEqual(Option.some({ source: "203.0.113.7" }))
      const request = Option.getOrThrow(yield* reader.readHead)
      expect(request.head.target).toBe("/x")
    }))
})

describe("the client's address", () => {
  const forwarded = (origin: ConnectionOrigin, ...values: Array<string>) => requestClient(origin, values, proxies)

  it("believes a trusted proxy's X-Forwarded-For from the right, and nobody else's", () => {
    expect(forwarded(viaProxy, "203.0.113.7")).toEqual({ address: "203.0.113.7", before: [] })
    expect(forwarded(viaProxy, "198.51.100.1, 203.0.113.7")).toEqual({ address: "203.0.113.7", before: ["198.51.100.1"] })
    // Trusted hops are skipped; repeated headers are one list.
    expect(forwarded(viaProxy, "198.51.100.1", "203.0.113.7,10.9.9.9 , 10.0.0.5")).toEqual({ address: "203.0.113.7", before: ["198.51.100.1"] })
    expect(forwarded(viaProxy, "[2001:DB8::7]:443, 2001:db8:ffff::1")).toEqual({ address: "2001:db8::7", before: [] })
    expect(forwarded(viaProxy, "203.0.113.7:5678")).toEqual({ address: "203.0.113.7", before: [] })
    expect(forwarded(viaProxy, "::ffff:203.0.113.7")).toEqual({ address: "203.0.113.7", before: [] })
    // Nothing to go by: the peer, with the request's own headers passed on.
    for (const values of [[], [""], ["10.0.0.9"], ["203.0.113.7, garbage"], ["unknown, 10.0.0.9"], ["fe80::1%eth0"]]) {
      expect(forwarded(viaProxy, ...values), values.join(" | ")).toEqual({ address: "10.0.0.1", before: undefined })
    }
    // An entry that is no address stops the walk, but only left of the client.
    expect(forwarded(viaProxy, "garbage, 203.0.113.7")).toEqual({ address: "203.0.113.7", before: ["garbage"] })
    const stranger: ConnectionOrigin = { peer: "192.0.2.9", trusted: false, proxied: undefined }
    expect(forwarded(stranger, "203.0.113.7")).toEqual({ address: "192.0.2.9", before: undefined })
    // A PROXY header wins over X-Forwarded-For.
    expect(forwarded({ ...viaProxy, proxied: "203.0.113.8" }, "203.0.113.7")).toEqual({ address: "203.0.113.8", before: undefined })
    expect(makeTrustedProxies([]).trusts("10.0.0.1")).toBe(false)
  })

  it("passes the chain on ending with the client", () => {
    const head = Either.getOrThrow(parseHead(Buffer.from("GET / HTTP/1.1\r\nX-Forwarded-For: 198.51.100.1, 203.0.113.7, 10.0.0.5\r\n\r\n")))
    const client = requestClient(viaProxy, ["198.51.100.1, 203.0.113.7, 10.0.0.5"], proxies)
    const text = Buffer.from(rewriteHead(head, { target: "/", forwardedFor: client.address, before: client.before, proto: "http" })).toString()
    expect(text).toContain("\r\nX-Forwarded-For: 198.51.100.1, 203.0.113.7\r\n")
    const direct = Buffer.from(rewriteHead(head, { target: "/", forwardedFor: "192.0.2.9", proto: "http" })).toString()
    expect(direct).toContain("\r\nX-Forwarded-For: 198.51.100.1, 203.0.113.7, 10.0.0.5, 192.0.2.9\r\n")
  })
})
