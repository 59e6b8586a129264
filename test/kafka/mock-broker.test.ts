/**
 * Real bytes: frames recorded between librdkafka clients (kcat's 2.0.2, and 2.15.1) and the
 * librdkafka 2.15.1 mock cluster (`kafka-mock.sh start -b 3 -t orders:3 -s -r 0` with broker N
 * advertised as kafka-N.invalid:909(N+1)), through a logging proxy. They pin the codec to what a
 * broker really sends, quirks included: the extra 0x00 after Metadata v12, and the mock's odd
 * answer to an ApiVersions v3 request (UNSUPPORTED_VERSION with a one-byte count of 1 before a
 * v0-style entry), which a client reads, shrugs at, and retries as v0.
 */
import { describe, expect, it } from "@effect/vitest"
import { brokersIn, readRequestHeader, rewriteResponse } from "../../src/kafka/rewrite.js"

interface Recorded {
  readonly apiKey: number
  readonly apiVersion: number
  readonly request: string
  readonly response: string
}

const apiVersionsV3: Recorded = {
  apiKey: 18, apiVersion: 3,
  request: "0012000300000001000772646b61666b61000b6c696272646b61666b6106322e302e3200",
  response: "0000000100230100120000000200000000"
}

const apiVersionsV0: Recorded = {
  apiKey: 18, apiVersion: 0,
  request: "0012000000000002000772646b61666b61",
  response: "0000000200000000001800000000000a00010000001000020000000700030000000c000800000009000900000006000a" +
    "00000003000b00000006000c00000005000d00000004000e000000040012000000020016000000040017000200020018" +
    "00000001001900000001001a00000001001c00000003004400010001004700000000004800000000004c00010001004e" +
    "00010001004f00010001"
}

const metadataV4: Recorded = {
  apiKey: 3, apiVersion: 4,
  request: "0003000400000004000772646b61666b61ffffffff01",
  response: "00000004000000000000000300000001000f6b61666b612d312e696e76616c696400002384ffff00000002000f6b6166" +
    "6b612d322e696e76616c696400002385ffff00000003000f6b61666b612d332e696e76616c696400002386ffff00176d" +
    "6f636b436c75737465723135373362383666646361380000000000000001000000066f72646572730000000003000000" +
    "000000000000010000000300000001000000020000000300000003000000010000000200000003000000000001000000" +
    "020000000300000001000000020000000300000003000000010000000200000003000000000002000000030000000300" +
    "000001000000020000000300000003000000010000000200000003"
}

const metadataV12: Recorded = {
  apiKey: 3, apiVersion: 12,
  request: "0003000c00000004000772646b61666b610000000000000000",
  response: "0000000400000000000400000001106b61666b612d312e696e76616c696400002384000000000002106b61666b612d32" +
    "2e696e76616c696400002385000000000003106b61666b612d332e696e76616c6964000023860000186d6f636b436c75" +
    "7374657231353733623836666463613800000000020000076f726465727366c29de2e1b7456ca9a5539dca0dc5a50004" +
    "000000000000000000010000000104000000010000000200000003040000000100000002000000030100000000000001" +
    "000000020000000104000000010000000200000003040000000100000002000000030100000000000002000000030000" +
    "00010400000001000000020000000304000000010000000200000003010080000000000000"
}

const findCoordinatorV2: Recorded = {
  apiKey: 10, apiVersion: 2,
  request: "000a000200000004000772646b61666b6100046772703100",
  response: "00000004000000000000ffff00000001000f6b61666b612d312e696e76616c696400002384"
}

const all = [apiVersionsV3, apiVersionsV0, metadataV4, metadataV12, findCoordinatorV2]
const bytes = (hex: string) => Buffer.from(hex, "hex")
const headerOf = (r: Recorded) => readRequestHeader(bytes(r.request))
const advertised = [1, 2, 3].map((n) => ({ nodeId: n, host: `kafka-${n}.invalid`, port: 9091 + n }))
const tunnel = ({ nodeId }: { readonly nodeId: number }) => ({ host: "127.0.0.1", port: 40000 + nodeId })

/** Host and port of broker N as the mock sent them, and as the tunnel should send them, in hex. */
const hostPort = (compact: boolean, host: string, port: number) => {
  const text = Buffer.from(host).toString("hex")
  const length = compact ? (host.length + 1).toString(16).padStart(2, "0") : host.length.toString(16).padStart(4, "0")
  return length + text + port.toString(16).padStart(8, "0")
}
const expectedRewrite = (r: Recorded, compact: boolean, nodes: ReadonlyArray<number>) =>
  nodes.reduce(
    (hex, n) => hex.replace(hostPort(compact, `kafka-${n}.invalid`, 9091 + n), hostPort(compact, "127.0.0.1", 40000 + n)),
    r.response
  )

describe("recorded from the librdkafka mock cluster", () => {
  it("request headers read as recorded", () => {
    for (const r of all) expect(headerOf(r)).toMatchObject({ apiKey: r.apiKey, apiVersion: r.apiVersion })
    expect(headerOf(metadataV12).correlationId).toBe(4)
  })

  it("Metadata v4 and v12: every broker rewritten, every other byte (the trailing 0x00 too) kept", () => {
    for (const [r, compact] of [[metadataV4, false], [metadataV12, true]] as const) {
      expect(brokersIn(headerOf(r), bytes(r.response))).toEqual(advertised)
      const out = rewriteResponse(headerOf(r), bytes(r.response), tunnel)
      expect(out.toString("hex")).toBe(expectedRewrite(r, compact, [1, 2, 3]))
      expect(out.length).toBe(r.response.length / 2 - 3 * 6)
      // And back: the addresses the mock advertised give the recorded bytes again.
      const back = rewriteResponse(headerOf(r), out, ({ nodeId }) => advertised[nodeId - 1]!)
      expect(back.toString("hex")).toBe(r.response)
    }
    expect(metadataV12.response.endsWith("0000")).toBe(true) // top-level tags, then the mock's extra 0x00
  })

  it("FindCoordinator v2: the coordinator rewritten", () => {
    const r = findCoordinatorV2
    expect(brokersIn(headerOf(r), bytes(r.response))).toEqual([advertised[0]])
    expect(rewriteResponse(headerOf(r), bytes(r.response), tunnel).toString("hex")).toBe(expectedRewrite(r, false, [1]))
  })

  it("ApiVersions v0: Produce 10 and Fetch 16 lowered to 9 and 15, nothing else touched", () => {
    const r = apiVersionsV0
    const out = rewriteResponse(headerOf(r), bytes(r.response), tunnel)
    const expected = r.response
      .replace("00000000000a0001", "0000000000090001") // Produce 0..10 -> 0..9
      .replace("000100000010", "00010000000f") // Fetch 0..16 -> 0..15
    expect(out.toString("hex")).toBe(expected)
    expect(brokersIn(headerOf(r), bytes(r.response))).toEqual([])
  })

  it("ApiVersions v3 answered with the mock's UNSUPPORTED_VERSION quirk: passed on unchanged", () => {
    const r = apiVersionsV3
    const response = bytes(r.response)
    expect(rewriteResponse(headerOf(r), response, tunnel)).toBe(response)
    expect(brokersIn(headerOf(r), response)).toEqual([])
  })
})
