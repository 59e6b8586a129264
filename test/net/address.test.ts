import { describe, expect, it } from "@effect/vitest"
import { canonicalAddress, formatHostPort, peerAddress, unmappedAddress } from "../../src/net/address.js"

describe("addresses", () => {
  it("peerAddress unmaps IPv4 and names a missing address", () => {
    expect(peerAddress("::ffff:192.0.2.1")).toBe("192.0.2.1")
    expect(peerAddress("::FFFF:192.0.2.1")).toBe("192.0.2.1")
    expect(peerAddress("192.0.2.1")).toBe("192.0.2.1")
    expect(peerAddress("2001:db8::1")).toBe("2001:db8::1")
    expect(peerAddress("::ffff:abcd")).toBe("::ffff:abcd")
    expect(peerAddress(undefined)).toBe("unknown")
    expect(peerAddress("")).toBe("unknown")
  })

  it("unmappedAddress leaves anything but a mapped IPv4 address as it is", () => {
    expect(unmappedAddress("::ffff:10.0.0.1")).toBe("10.0.0.1")
    expect(unmappedAddress("::ffff:10.0.0")).toBe("::ffff:10.0.0")
    expect(unmappedAddress("fe80::1")).toBe("fe80::1")
  })

  it("canonicalAddress shortens IPv6, unmaps IPv4 and refuses what is not an address", () => {
    expect(canonicalAddress("192.0.2.7")).toBe("192.0.2.7")
    expect(canonicalAddress("2001:0db8:0000:0000:0000:0000:0000:0001")).toBe("2001:db8::1")
    expect(canonicalAddress("::ffff:192.0.2.7")).toBe("192.0.2.7")
    expect(canonicalAddress("fe80::1%eth0")).toBeUndefined()
    expect(canonicalAddress("example.com")).toBeUndefined()
    expect(canonicalAddress("")).toBeUndefined()
  })

  it("formatHostPort brackets an IPv6 host", () => {
    expect(formatHostPort("127.0.0.1", 80)).toBe("127.0.0.1:80")
    expect(formatHostPort("::1", 8080)).toBe("[::1]:8080")
  })
})
