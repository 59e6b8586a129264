/**
 * The PROXY protocol header (HAProxy's spec, versions 1 and 2) that `spore local
 * --proxy-protocol` writes to the local service before a visitor's bytes, so that the service
 * sees the visitor's real address instead of the client's.
 *
 * An IPv4 visitor seen through a dual-stack listener (`::ffff:192.0.2.1`) is written as IPv4.
 * When the address is unknown (a visitor announced by a plain `Connection` frame), version 1
 * says `PROXY UNKNOWN` and version 2 sends a LOCAL header: the service then uses the
 * connection's own addresses, as the spec asks.
 */
import * as net from "node:net"
import { unmappedAddress } from "../net/address.js"

export type ProxyProtocolVersion = "v1" | "v2"

/** One end of the visitor's connection to the server's public port. */
export interface Endpoint {
  readonly address: string
  readonly port: number
}

/** The visitor (source) and the public port it reached (destination). */
export interface VisitorAddresses {
  readonly source: Endpoint
  readonly destination: Endpoint
}

/** The 12-byte signature that starts every version 2 header. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])


/** Both addresses in one family (4 or 6), or undefined if they cannot be written as one. */
const inOneFamily = (addresses: VisitorAddresses) => {
  const source = unmappedAddress(addresses.source.address)
  const destination = unmappedAddress(addresses.destination.address)
  const family = net.isIP(source)
  if (family === 0 || net.isIP(destination) !== family) return undefined
  return { family, source, destination }
}

const ipv6Bytes = (address: string): Buffer => {
  // Expand "::" to the zero groups it stands for; an embedded IPv4 tail is two groups.
  let text = address
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (tail !== null) {
    const [a, b, c, d] = tail[1]!.split(".").map(Number) as [number, number, number, number]
    text = `${text.slice(0, tail.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head = "", rest] = text.split("::")
  const headGroups = head === "" ? [] : head.split(":")
  const restGroups = rest === undefined || rest === "" ? [] : rest.split(":")
  const zeros = rest === undefined ? [] : Array<string>(8 - headGroups.length - restGroups.length).fill("0")
  const bytes = Buffer.alloc(16)
  ;[...headGroups, ...zeros, ...restGroups].forEach((group, index) => bytes.writeUInt16BE(parseInt(group, 16), index * 2))
  return bytes
}

const ipv4Bytes = (address: string) => Buffer.from(address.split(".").map(Number))

const v1 = (addresses: VisitorAddresses | undefined): Buffer => {
  const known = addresses === undefined ? undefined : inOneFamily(addresses)
  if (addresses === undefined || known === undefined) return Buffer.from("PROXY UNKNOWN\r\n", "latin1")
  const protocol = known.family === 4 ? "TCP4" : "TCP6"
  return Buffer.from(
    `PROXY ${protocol} ${known.source} ${known.destination} ${addresses.source.port} ${addresses.destination.port}\r\n`,
    "latin1"
  )
}

const v2 = (addresses: VisitorAddresses | undefined): Buffer => {
  const known = addresses === undefined ? undefined : inOneFamily(addresses)
  if (addresses === undefined || known === undefined) {
    // Version 2, command LOCAL; family UNSPEC; no address block.
    return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])])
  }
  const toBytes = known.family === 4 ? ipv4Bytes : ipv6Bytes
  const ports = Buffer.alloc(4)
  ports.writeUInt16BE(addresses.source.port, 0)
  ports.writeUInt16BE(addresses.destination.port, 2)
  const block = Buffer.concat([toBytes(known.source), toBytes(known.destination), ports])
  const length = Buffer.alloc(2)
  length.writeUInt16BE(block.length)
  // Version 2, command PROXY; TCP over IPv4 (0x11) or IPv6 (0x21).
  return Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, known.family === 4 ? 0x11 : 0x21]), length, block])
}

/** The header to write to the local service before the visitor's bytes. */
export const encodeProxyHeader = (version: ProxyProtocolVersion, addresses: VisitorAddresses | undefined): Buffer =>
  version === "v1" ? v1(addresses) : v2(addresses)
