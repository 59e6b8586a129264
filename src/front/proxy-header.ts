/**
 * The PROXY protocol header (HAProxy's spec, versions 1 and 2) that a load balancer in front of
 * the HTTP front may put at the very start of a connection, read back: pure, no I/O. The front
 * reads one only from a `--trusted-proxy` (anyone else could claim any address with it).
 *
 * Version 1 is one text line, `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n` or `PROXY UNKNOWN...\r\n`,
 * at most 107 bytes. Version 2 is a 12-byte signature, a version/command byte, a family byte, a
 * 16-bit length and that many bytes of addresses (and TLVs, skipped). A LOCAL command, an UNKNOWN
 * line and families without an IP address (UNSPEC, UNIX) carry no address: the connection's own
 * peer stands.
 */
import * as net from "node:net"

/** The 12 bytes that start every version 2 header. */
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])
const V1_PREFIX = Buffer.from("PROXY ", "latin1")
/** The longest version 1 line, CR LF included (the spec's figure). */
export const V1_MAX_BYTES = 107

export type ProxyHeaderDecoding =
  /** The bytes so far could still start a header: read more. */
  | { readonly _tag: "Incomplete" }
  /** The connection does not start with a header. */
  | { readonly _tag: "Absent" }
  /** It starts with a header that is not well formed. */
  | { readonly _tag: "Invalid"; readonly reason: string }
  /** A header of `length` bytes; `source` is the client's address, if it names one. */
  | { readonly _tag: "Header"; readonly length: number; readonly source: string | undefined }

const incomplete: ProxyHeaderDecoding = { _tag: "Incomplete" }
const absent: ProxyHeaderDecoding = { _tag: "Absent" }
const invalid = (reason: string): ProxyHeaderDecoding => ({ _tag: "Invalid", reason })

/** Whether `data` and `prefix` agree on their common length. */
const agrees = (data: Uint8Array, prefix: Buffer) => {
  const length = Math.min(data.length, prefix.length)
  return prefix.subarray(0, length).equals(data.subarray(0, length))
}

const PORT = /^(0|[1-9]\d{0,4})$/

const decodeV1 = (data: Buffer): ProxyHeaderDecoding => {
  const end = data.indexOf("\r\n", 0, "latin1")
  if (end === -1) return data.length >= V1_MAX_BYTES ? invalid("PROXY header line too long") : incomplete
  if (end + 2 > V1_MAX_BYTES) return invalid("PROXY header line too long")
  const fields = data.subarray(0, end).toString("latin1").split(" ")
  if (fields[1] === "UNKNOWN") return { _tag: "Header", length: end + 2, source: undefined }
  const [, protocol, source = "", destination = "", sourcePort = "", destinationPort = "", ...rest] = fields
  const family = protocol === "TCP4" ? 4 : protocol === "TCP6" ? 6 : 0
  if (family === 0) return invalid(`PROXY header with protocol ${protocol ?? ""}`)
  if (
    rest.length > 0 || net.isIP(source) !== family || net.isIP(destination) !== family ||
    ![sourcePort, destinationPort].every((port) => PORT.test(port) && Number(port) <= 65535)
  ) return invalid("malformed PROXY header")
  return { _tag: "Header", length: end + 2, source }
}

const ipv6Text = (bytes: Uint8Array) => {
  const groups: Array<string> = []
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16))
  return new net.SocketAddress({ address: groups.join(":"), family: "ipv6" }).address
}

const decodeV2 = (data: Buffer): ProxyHeaderDecoding => {
  if (data.length < 16) return incomplete
  const versionCommand = data[12]!
  const family = data[13]! >> 4
  const length = 16 + data.readUInt16BE(14)
  if (versionCommand >> 4 !== 2) return invalid(`PROXY header version ${versionCommand >> 4}`)
  const command = versionCommand & 0x0f
  if (command > 1) return invalid(`PROXY header command ${command}`)
  if (data.length < length) return incomplete
  // LOCAL: the proxy's own connection (a health check, say).
  if (command === 0) return { _tag: "Header", length, source: undefined }
  const block = data.subarray(16, length)
  if (family === 1) {
    if (block.length < 12) return invalid("PROXY header too short for IPv4 addresses")
    return { _tag: "Header", length, source: [...block.subarray(0, 4)].join(".") }
  }
  if (family === 2) {
    if (block.length < 36) return invalid("PROXY header too short for IPv6 addresses")
    return { _tag: "Header", length, source: ipv6Text(block.subarray(0, 16)) }
  }
  if (family === 0 || family === 3) return { _tag: "Header", length, source: undefined }
  return invalid(`PROXY header address family ${family}`)
}

/** Decodes the header at the start of `data` (bytes after it are left alone). */
export const decodeProxyHeader = (data: Buffer): ProxyHeaderDecoding => {
  if (data.length === 0) return incomplete
  if (agrees(data, V2_SIGNATURE)) return data.length < V2_SIGNATURE.length ? incomplete : decodeV2(data)
  if (agrees(data, V1_PREFIX)) return data.length < V1_PREFIX.length ? incomplete : decodeV1(data)
  return absent
}
