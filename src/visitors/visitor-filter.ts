/**
 * Which visitor addresses the public tunnel ports serve (`--allow-visitor`, `--deny-visitor`).
 *
 * Rules are CIDR blocks, IPv4 or IPv6, held in Node's own `net.BlockList`, which also matches an
 * IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack listener reports) against IPv4
 * blocks and the other way round. A deny rule wins over an allow rule; with no allow rule,
 * everyone not denied is served.
 */
import { Either } from "effect"
import * as net from "node:net"

/** One CIDR block: `192.0.2.0/24`, `2001:db8::/32`, or a bare address (a block of one). */
export interface Cidr {
  readonly address: string
  readonly prefix: number
  readonly family: "ipv4" | "ipv6"
}

/** Parses a CIDR block; Left says what is wrong with it. */
export const parseCidr = (text: string): Either.Either<Cidr, string> => {
  const [address = "", prefixText, ...rest] = text.trim().split("/")
  const version = net.isIP(address)
  // A zone id (fe80::1%eth0) names an interface, not an address a visitor can come from.
  if (version === 0 || rest.length > 0 || address.includes("%")) {
    return Either.left(`${text} is not an IPv4 or IPv6 address or CIDR block (like 192.0.2.0/24 or 2001:db8::/32)`)
  }
  const family = version === 4 ? "ipv4" : "ipv6"
  const widest = version === 4 ? 32 : 128
  if (prefixText === undefined) return Either.right({ address, prefix: widest, family })
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN
  if (!(prefix >= 0 && prefix <= widest)) {
    return Either.left(`${text}: the prefix length of an ${family === "ipv4" ? "IPv4" : "IPv6"} block is 0 to ${widest}`)
  }
  return Either.right({ address, prefix, family })
}

export interface VisitorFilter {
  /** Whether a visitor from `address` is served (an unknown address is not). */
  readonly allows: (address: string | undefined) => boolean
}

const blockListOf = (blocks: ReadonlyArray<Cidr>) => {
  const list = new net.BlockList()
  for (const block of blocks) list.addSubnet(block.address, block.prefix, block.family)
  return list
}

export const makeVisitorFilter = (allow: ReadonlyArray<Cidr>, deny: ReadonlyArray<Cidr>): VisitorFilter => {
  if (allow.length === 0 && deny.length === 0) return { allows: () => true }
  const allowed = blockListOf(allow)
  const denied = blockListOf(deny)
  return {
    allows: (address) => {
      const version = address === undefined ? 0 : net.isIP(address)
      if (address === undefined || version === 0) return false
      const family = version === 4 ? "ipv4" : "ipv6"
      if (denied.check(address, family)) return false
      return allow.length === 0 || allowed.check(address, family)
    }
  }
}
