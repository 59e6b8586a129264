/**
 * Who may use the control port, and how much of it.
 *
 * - Handshakes (connections that have not sent their first message yet) share one pool, which
 *   never refuses a newcomer: when it is full, a stale handshake, or else the oldest of the
 *   address holding the most, is closed silently to make room (see HandshakePool). Idle sockets
 *   so cannot keep honest data streams and tunnels out, and nothing is written on a connection
 *   that might be a data stream.
 * - An address that keeps answering the challenge wrongly is locked out for a while. The lockout
 *   is applied only to what asks for a tunnel (Hello, Resume), after the first message is read:
 *   a data stream that proves itself (the secret, then an Accept of a waiting visitor) is served
 *   from a locked-out address too, so a misconfigured neighbour behind the same NAT cannot take
 *   a live tunnel's visitors away.
 * - Tunnel control connections are limited per source address.
 *
 * Slots are scoped: a handshake slot is given back when the handshake ends, a control slot when
 * the control connection closes, whatever way they end.
 */
import { Clock, Context, Effect, Layer, type Scope } from "effect"
import { LimitReached } from "../errors.js"
import { makeAddressSlots } from "../limits/address-slots.js"
import { unmappedAddress } from "../net/address.js"
import { makeAuthLockout } from "../limits/auth-lockout.js"
import { type Handshake, makeHandshakePool } from "./handshake-pool.js"
import type { ServerLimits } from "../limits/limits.js"
import { makeRefusalLog } from "../limits/refusal-log.js"

export class Admission extends Context.Tag("spore/Admission")<Admission, {
  /**
   * Admits a new connection from `address` to its handshake, holding a handshake slot for the
   * rest of the scope. Never refuses; `close` is called if the slot is later taken away to make
   * room for a newer connection.
   */
  readonly enterHandshake: (address: string, close: () => void) => Effect.Effect<void, never, Scope.Scope>
  /** Fails if `address` is locked out after repeated authentication failures. */
  readonly checkLockout: (address: string) => Effect.Effect<void, LimitReached>
  /** Whether `address` is locked out right now. */
  readonly isLockedOut: (address: string) => Effect.Effect<boolean>
  /** Holds one of `address`'s tunnel control slots for the rest of the scope. */
  readonly holdControl: (address: string) => Effect.Effect<void, LimitReached, Scope.Scope>
  /** Counts a wrong answer to the challenge from `address` (enough of them lock it out for a while). */
  readonly authFailed: (address: string) => Effect.Effect<void>
}>() {}

type Limits = Pick<ServerLimits, "maxHandshakes" | "maxConnsPerIp">

/** What admission tells whoever counts (the server's metrics). */
export interface AdmissionEvents {
  /** The number of handshakes in progress changed by `delta`. */
  readonly handshakesChanged: (delta: number) => void
  /** A handshake was closed to make room for a newer one. */
  readonly evicted: () => void
}

const NO_EVENTS: AdmissionEvents = { handshakesChanged: () => {}, evicted: () => {} }

export const make = (limits: Limits, events: AdmissionEvents = NO_EVENTS) =>
  Effect.sync(() => {
    const lockout = makeAuthLockout()
    const refusalLog = makeRefusalLog()
    const pool = makeHandshakePool(limits.maxHandshakes)
    const controlSlots = makeAddressSlots(limits.maxConnsPerIp)

    const refuse = (limit: LimitReached["limit"], logLine: string) =>
      Effect.zipRight(refusalLog(limit, logLine), Effect.fail(new LimitReached({ limit })))

    const enterHandshake = (address: string, close: () => void) =>
      Effect.uninterruptible(Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const handshake: Handshake = { address: unmappedAddress(address), since: now, evict: close }
        const evicted = pool.add(handshake)
        events.handshakesChanged(1)
        const admitted = Effect.addFinalizer(() =>
          Effect.sync(() => {
            if (pool.remove(handshake)) events.handshakesChanged(-1)
          })
        )
        if (evicted === undefined) return admitted
        events.handshakesChanged(-1)
        evicted.evict()
        events.evicted()
        return Effect.zipRight(
          refusalLog(
            "max-handshakes",
            `closed a handshake from ${evicted.address} to make room for one from ${handshake.address}: ` +
              `${limits.maxHandshakes} handshakes in progress (--max-handshakes)`
          ),
          admitted
        )
      }))

    const isLockedOut = (address: string) => lockout.isLocked(address)

    const checkLockout = (address: string) =>
      Effect.flatMap(lockout.isLocked(address), (locked) =>
        locked
          ? refuse("auth-lockout", `refused ${address}: locked out after repeated authentication failures`)
          : Effect.void)

    const holdControl = (address: string) =>
      Effect.gen(function*() {
        const taken = yield* controlSlots.take(address)
        if (!taken) {
          return yield* refuse("max-conns-per-ip", `refused ${address}: ${limits.maxConnsPerIp} tunnel connections already open from it (--max-conns-per-ip)`)
        }
      })

    const authFailed = (address: string) =>
      Effect.flatMap(lockout.recordFailure(address), (locked) =>
        locked
          ? Effect.logWarning(`${address} locked out for a minute after repeated authentication failures`)
          : Effect.void)

    return Admission.of({ enterHandshake, checkLockout, isLockedOut, holdControl, authFailed })
  })

export const layer = (limits: Limits, events?: AdmissionEvents) => Layer.effect(Admission, make(limits, events))
