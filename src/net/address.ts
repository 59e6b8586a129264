/**
 * How Spore writes addresses. A peer's IP address, when it is keyed, compared or passed on: an
 * IPv4 address seen through a dual-stack listener (`::ffff:192.0.2.1`) is written as IPv4, so
 * one host counts as one whichever listener it reached. And a listener's `host:port` in a log
 * line or a link, an IPv6 host in brackets.
 */
import * as net from "node:net"

/** `address` without its IPv4-mapped IPv6 prefix, if it has one; any other address as it is. */
export const unmappedAddress = (address: string): string => {
  const prefix = address.slice(0, 7).toLowerCase()
  return prefix === "::ffff:" && net.isIPv4(address.slice(7)) ? address.slice(7) : address
}

/** A socket's remote address as it is counted and logged ("unknown" once the socket is gone). */
export const peerAddress = (remoteAddress: string | undefined): string =>
  remoteAddress === undefined || remoteAddress === "" ? "unknown" : unmappedAddress(remoteAddress)

/**
 * An address read from a header, the way it is keyed: IPv4 without an IPv6-mapped prefix, IPv6
 * in its canonical short form. Undefined for anything that is not an address.
 */
export const canonicalAddress = (text: string): string | undefined => {
  const version = net.isIP(text)
  if (version === 4) return text
  if (version !== 6 || text.includes("%")) return undefined
  return peerAddress(new net.SocketAddress({ address: text, family: "ipv6" }).address)
}

/** `host:port`, with an IPv6 host in brackets. */
export const formatHostPort = (host: string, port: number) => host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`
