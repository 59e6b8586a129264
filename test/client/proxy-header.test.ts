import { describe, expect, it } from "@effect/vitest"
import { encodeProxyHeader, V2_SIGNATURE } from "../../src/client/proxy-header.js"
import { parseProxyHeader } from "../support/proxy-header-parser.js"

const ipv4 = { source: { address: "203.0.113.7", port: 51234 }, destination: { address: "198.51.100.1", port: 20417 } }
const ipv6 = { source: { address: "2001:db8::7", port: 443 }, destination: { address: "2001:db8:0:0:1::1", port: 20417 } }
const mapped = { source: { address: "::ffff:203.0.113.7", port: 51234 }, destination: { address: "::ffff:198.51.100.1", port: 20417 } }

describe("PROXY protocol header", () => {
  it("version 1: one text line per the spec", () => {
    expect(encodeProxyHeader("v1", ipv4).toString("latin1")).toBe("PROXY TCP4 203.0.113.7 198.51.100.1 51234 20417\r\n")
    expect(encodeProxyHeader("v1", ipv6).toString("latin1")).toBe("PROXY TCP6 2001:db8::7 2001:db8:0:0:1::1 443 20417\r\n")
    // A dual-stack listener's view of an IPv4 visitor is written as IPv4.
    expect(encodeProxyHeader("v1", mapped).toString("latin1")).toBe("PROXY TCP4 203.0.113.7 198.51.100.1 51234 20417\r\n")
    expect(encodeProxyHeader("v1", undefined).toString("latin1")).toBe("PROXY UNKNOWN\r\n")
    // Mixed families cannot be one header line: unknown, as the spec allows.
    expect(encodeProxyHeader("v1", { source: ipv4.source, destination: ipv6.destination }).toString("latin1")).toBe("PROXY UNKNOWN\r\n")
  })

  it("version 2, IPv4: signature, PROXY command, TCP4, 12 address bytes", () => {
    const header = encodeProxyHeader("v2", ipv4)
    expect(header.toString("hex")).toBe(
      V2_SIGNATURE.toString("hex") + "21" + "11" + "000c" + "cb007107" + "c6336401" + "c822" + "4fc1"
    )
    expect(parseProxyHeader(header)).toEqual({ version: 2, kind: "TCP4", ...ipv4, length: 28 })
  })

  it("version 2, IPv6: TCP6 with 36 address bytes", () => {
    const header = encodeProxyHeader("v2", ipv6)
    expect(header.length).toBe(16 + 36)
    expect(header.subarray(12, 16).toString("hex")).toBe("21210024")
    expect(parseProxyHeader(header)).toEqual({
      version: 2,
      kind: "TCP6",
      source: { address: "2001:db8:0:0:0:0:0:7", port: 443 },
      destination: { address: "2001:db8:0:0:1:0:0:1", port: 20417 },
      length: 52
    })
    const embedded = encodeProxyHeader("v2", { source: { address: "64:ff9b::192.0.2.33", port: 1 }, destination: ipv6.destination })
    expect(parseProxyHeader(embedded).source).toEqual({ address: "64:ff9b:0:0:0:0:c000:221", port: 1 })
  })

  it("version 2 without addresses is a LOCAL header", () => {
    const header = encodeProxyHeader("v2", undefined)
    expect(header.toString("hex")).toBe(V2_SIGNATURE.toString("hex") + "20000000")
    expect(parseProxyHeader(header)).toEqual({ version: 2, kind: "LOCAL", length: 16 })
  })

  it("a mapped IPv4 pair is written as TCP4 in version 2 too", () => {
    expect(parseProxyHeader(encodeProxyHeader("v2", mapped))).toEqual({ version: 2, kind: "TCP4", ...ipv4, length: 28 })
  })
})
