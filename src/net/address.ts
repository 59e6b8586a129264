/**
 * How Spore writes a peer's IP address when it keys, compares or passes it on: an IPv4 address
 * seen through a dual-stack listener (`::ffff:192.0.2.1`) is written as IPv4, so one host counts
 * as one whichever listener it reached.
 */
import * as net from "node:net"

/** `address` without its IPv4-mapped IPv6 prefix, if it has one; any other address as it is. */
export const unmappedAddress = (address: string): string => {
  const prefix = address.slice(0, 7).toLowerCase()
  return prefix === "::ffff:" && net.isIPv4(address.slice(7)) ? address.slice(7) : address
}
