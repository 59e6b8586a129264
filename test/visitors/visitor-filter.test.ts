import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { type Cidr, makeVisitorFilter, parseCidr } from "../../src/visitors/visitor-filter.js"

const cidr = (text: string): Cidr => Either.getOrThrowWith(parseCidr(text), (problem) => new Error(problem))

describe("visitor filter", () => {
  it("parses IPv4 and IPv6 blocks and bare addresses", () => {
    expect(cidr("192.0.2.0/24")).toEqual({ address: "192.0.2.0", prefix: 24, family: "ipv4" })
    expect(cidr("2001:db8::/32")).toEqual({ address: "2001:db8::", prefix: 32, family: "ipv6" })
    expect(cidr("198.51.100.7")).toEqual({ address: "198.51.100.7", prefix: 32, family: "ipv4" })
    expect(cidr("::1")).toEqual({ address: "::1", prefix: 128, family: "ipv6" })
  })

  it("rejects what is not a block, saying why", () => {
    for (const text of ["example.com", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/8/8", "256.0.0.1", "", "fe80::1%eth0"]) {
      expect(Either.isLeft(parseCidr(text))).toBe(true)
    }
    expect(parseCidr("10.0.0.0/33")).toEqual(Either.left("10.0.0.0/33: the prefix length of an IPv4 block is 0 to 32"))
    expect(parseCidr("::/129")).toEqual(Either.left("::/129: the prefix length of an IPv6 block is 0 to 128"))
  })

  it("with no rules serves everyone", () => {
    const filter = makeVisitorFilter([], [])
    expect(filter.allows("203.0.113.9")).toBe(true)
    expect(filter.allows("2001:db8::1")).toBe(true)
  })

  it("an allow list serves only its blocks, in either address family", () => {
    const filter = makeVisitorFilter([cidr("10.0.0.0/8"), cidr("2001:db8::/32")], [])
    expect(filter.allows("10.1.2.3")).toBe(true)
    // What a dual-stack listener reports for an IPv4 visitor.
    expect(filter.allows("::ffff:10.1.2.3")).toBe(true)
    expect(filter.allows("11.0.0.1")).toBe(false)
    expect(filter.allows("2001:db8:ffff::1")).toBe(true)
    expect(filter.allows("2001:db9::1")).toBe(false)
    expect(filter.allows(undefined)).toBe(false)
  })

  it("a deny rule wins over an allow rule", () => {
    const filter = makeVisitorFilter([cidr("10.0.0.0/8")], [cidr("10.0.0.0/24"), cidr("2001:db8::bad")])
    expect(filter.allows("10.0.0.77")).toBe(false)
    expect(filter.allows("::ffff:10.0.0.77")).toBe(false)
    expect(filter.allows("10.0.1.77")).toBe(true)
    // Deny only: everyone else is served.
    const denyOnly = makeVisitorFilter([], [cidr("2001:db8::bad"), cidr("192.0.2.0/24")])
    expect(denyOnly.allows("2001:db8::bad")).toBe(false)
    expect(denyOnly.allows("2001:db8::bae")).toBe(true)
    expect(denyOnly.allows("192.0.2.200")).toBe(false)
    expect(denyOnly.allows("192.0.3.1")).toBe(true)
  })
})
