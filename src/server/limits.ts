/**
 * How much of the server one peer, one tunnel or everyone together may use. Each limit is a
 * flag of `spore server`; the defaults are generous for honest use and keep a flood from
 * exhausting descriptors or memory.
 */
import type { VisitorFilter } from "./visitor-filter.js"

export interface ServerLimits {
  /** Connections to the control port still in their handshake (before Hello, Resume or Accept). */
  readonly maxHandshakes: number
  /** Tunnel control connections (Hello or Resume) open at once from one IP address. */
  readonly maxConnsPerIp: number
  /** Tunnels open at once, counting those held for a lost client. */
  readonly maxTunnels: number
  /** Visitors of one tunnel waiting for its client; further visitors are closed at once. */
  readonly maxPending: number
  /** Visitors of one tunnel open at once, waiting or forwarded; further ones are closed at once. */
  readonly maxConnsPerTunnel: number
  /** Connections to the HTTP front open at once from one IP address (visitors and API alike). */
  readonly maxHttpConnsPerIp: number
  /** Which visitor addresses the public tunnel ports serve. */
  readonly visitors: VisitorFilter
}

export const DEFAULT_LIMITS = {
  maxHandshakes: 256,
  maxConnsPerIp: 32,
  maxTunnels: 1024,
  maxPending: 64,
  maxConnsPerTunnel: 1024,
  maxHttpConnsPerIp: 256
} as const

/** The Error texts peers are sent when a limit turns them away (bore has none; these are Spore's). */
export const LimitTexts = {
  handshakes: "server is busy, try again later",
  connsPerIp: "too many connections from your address",
  tunnels: "server has too many tunnels, try again later",
  authLockout: "too many authentication failures, try again later"
} as const
