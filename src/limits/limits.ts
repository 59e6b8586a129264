/**
 * How much of the server one peer, one tunnel or everyone together may use. Each limit is a
 * flag of `spore server`; the defaults are generous for honest use and keep a flood from
 * exhausting descriptors or memory.
 */
import { openFileLimits } from "../net/descriptor-watch.js"
import type { VisitorFilter } from "../visitors/visitor-filter.js"

export interface ServerLimits {
  /**
   * Connections to the control port still in their handshake (before Hello, Resume or Accept).
   * Past it a stale handshake, or else the oldest of the address holding the most, is closed to
   * make room (see HandshakePool).
   */
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

/**
 * The handshake pool's default: a quarter of the descriptor limit, so that handshakes alone can
 * never take the descriptors that tunnels and visitors need, between 256 and 16,384.
 */
export const defaultMaxHandshakes = (descriptors = openFileLimits()?.soft) =>
  Math.max(256, Math.min(16_384, Math.floor((descriptors ?? 1024) / 4)))

export const DEFAULT_LIMITS = {
  maxHandshakes: defaultMaxHandshakes(),
  maxConnsPerIp: 32,
  maxTunnels: 1024,
  // bore holds every visitor; 1,024 lets a burst of a thousand through while one tunnel can hold
  // at most that many descriptors (and about 20 KiB each) waiting for a client that never comes.
  maxPending: 1024,
  maxConnsPerTunnel: 4096,
  maxHttpConnsPerIp: 256
} as const
