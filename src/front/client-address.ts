/**
 * Whose connection it is: the address the HTTP front counts, locks out, filters, logs and passes
 * on in X-Forwarded-For.
 *
 * By default that is the TCP peer. Behind a load balancer every peer is the balancer, so with
 * `--trusted-proxy CIDR` a connection whose peer is inside one of those blocks may say who the
 * client is: in a PROXY protocol header at its very start (proxy-header.ts), or else in each
 * request's X-Forwarded-For, read from the right: each proxy appends the address it received the
 * connection from, so the rightmost entry that is not itself a trusted proxy is the client, and
 * anything left of it is whatever the client claimed. Nobody else is believed: their PROXY header
 * is a bad request, their X-Forwarded-For just a header passed on.
 */
import * as net from "node:net"
import { type Cidr, makeVisitorFilter } from "../visitors/visitor-filter.js"
import { canonicalAddress, peerAddress } from "../net/address.js"
import type { RequestHead } from "./http-request.js"

export interface TrustedProxies {
  /** Whether `address` (an IP address) is a trusted proxy. */
  readonly trusts: (address: string) => boolean
}

export const makeTrustedProxies = (blocks: ReadonlyArray<Cidr>): TrustedProxies =>
  blocks.length === 0 ? { trusts: () => false } : { trusts: makeVisitorFilter(blocks, []).allows }

/** What a connection's first bytes established about it. */
export interface ConnectionOrigin {
  /** The TCP peer (IPv4 without its IPv6-mapped prefix). */
  readonly peer: string
  /** Whether the peer is a trusted proxy. */
  readonly trusted: boolean
  /** The client a trusted peer's PROXY header named (the peer itself for LOCAL or UNKNOWN). */
  readonly proxied: string | undefined
}

/** Who sent a request, and what X-Forwarded-For says came before. */
export interface RequestClient {
  /** The client's address. */
  readonly address: string
  /**
   * The X-Forwarded-For entries before the client, as the relay passes them on; undefined when
   * the request's own X-Forwarded-For headers are passed on as they came.
   */
  readonly before: ReadonlyArray<string> | undefined
}

/** An X-Forwarded-For entry's address: `IP`, `IPv4:PORT`, `[IPv6]` or `[IPv6]:PORT`. */
const entryAddress = (entry: string): string | undefined => {
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(entry)
  if (bracketed !== null) return net.isIPv6(bracketed[1]!) ? canonicalAddress(bracketed[1]!) : undefined
  const withPort = /^(\d+\.\d+\.\d+\.\d+):\d{1,5}$/.exec(entry)
  return canonicalAddress(withPort === null ? entry : withPort[1]!)
}

/** The connection's origin, before any header has been read. */
export const originOfPeer = (remoteAddress: string | undefined, proxies: TrustedProxies): ConnectionOrigin => {
  const peer = peerAddress(remoteAddress)
  return { peer, trusted: proxies.trusts(peer), proxied: undefined }
}

/** The X-Forwarded-For header values of a request head, in order. */
export const forwardedForOf = (head: RequestHead): ReadonlyArray<string> =>
  head.headers.filter(([name]) => name.toLowerCase() === "x-forwarded-for").map(([, value]) => value)

/**
 * The client of one request on a connection of `origin`, its X-Forwarded-For values given. Only a
 * trusted peer without a PROXY header has its X-Forwarded-For read; when no entry names a client
 * (none, only trusted proxies, or an entry that is not an address before one does), the peer is
 * the client.
 */
export const requestClient = (
  origin: ConnectionOrigin,
  forwardedFor: ReadonlyArray<string>,
  proxies: TrustedProxies
): RequestClient => {
  if (!origin.trusted) return { address: origin.peer, before: undefined }
  if (origin.proxied !== undefined) return { address: origin.proxied, before: undefined }
  const entries = forwardedFor.flatMap((value) => value.split(",")).map((entry) => entry.trim()).filter((entry) => entry !== "")
  for (let index = entries.length - 1; index >= 0; index--) {
    const address = entryAddress(entries[index]!)
    if (address === undefined) break
    if (!proxies.trusts(address)) return { address, before: entries.slice(0, index) }
  }
  return { address: origin.peer, before: undefined }
}
