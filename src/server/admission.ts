/**
 * Who may use the control port, and how much of it: the limits that apply before a connection is
 * a tunnel or a data stream (concurrent handshakes, addresses locked out after failed
 * authentication) and to tunnel control connections (per source address).
 *
 * Slots are scoped: a handshake slot is given back when the handshake ends, a control slot when
 * the control connection closes, whatever way they end.
 */
import { Context, Effect, Layer, type Scope } from "effect"
import { LimitReached } from "../errors.js"
import { makeAuthLockout } from "./auth-lockout.js"
import { LimitTexts, type ServerLimits } from "./limits.js"
import { makeRefusalLog } from "./refusal-log.js"

export class Admission extends Context.Tag("spore/Admission")<Admission, {
  /**
   * Admits a new connection from `address` to its handshake, holding a handshake slot for the
   * rest of the scope. Fails if the address is locked out or every slot is taken.
   */
  readonly enterHandshake: (address: string) => Effect.Effect<void, LimitReached, Scope.Scope>
  /** Holds one of `address`'s tunnel control slots for the rest of the scope. */
  readonly holdControl: (address: string) => Effect.Effect<void, LimitReached, Scope.Scope>
  /** Counts a failed authentication from `address` (enough of them lock it out for a while). */
  readonly authFailed: (address: string) => Effect.Effect<void>
}>() {}

type Limits = Pick<ServerLimits, "maxHandshakes" | "maxConnsPerIp">

export const make = (limits: Limits) =>
  Effect.sync(() => {
    const lockout = makeAuthLockout()
    const refusalLog = makeRefusalLog()
    let handshakes = 0
    // Only addresses with a control connection open have an entry, so its size is bounded by
    // the tunnels open.
    const controlsByAddress = new Map<string, number>()

    const refuse = (limit: string, message: string, logLine: string) =>
      Effect.zipRight(refusalLog(limit, logLine), Effect.fail(new LimitReached({ limit, message })))

    /** Takes a slot if `take` allows it; `give` runs when the scope closes. */
    const slot = (take: () => boolean, give: () => void) =>
      Effect.uninterruptible(Effect.suspend(() =>
        take() ? Effect.as(Effect.addFinalizer(() => Effect.sync(give)), true) : Effect.succeed(false)
      ))

    const enterHandshake = (address: string) =>
      Effect.gen(function*() {
        if (yield* lockout.isLocked(address)) {
          return yield* refuse("auth-lockout", LimitTexts.authLockout, `refused ${address}: locked out after repeated authentication failures`)
        }
        const taken = yield* slot(
          () => handshakes < limits.maxHandshakes && (handshakes++, true),
          () => handshakes--
        )
        if (!taken) {
          return yield* refuse("max-handshakes", LimitTexts.handshakes, `refused ${address}: ${limits.maxHandshakes} handshakes already in progress (--max-handshakes)`)
        }
      })

    const holdControl = (address: string) =>
      Effect.gen(function*() {
        const taken = yield* slot(
          () => {
            const open = controlsByAddress.get(address) ?? 0
            if (open >= limits.maxConnsPerIp) return false
            controlsByAddress.set(address, open + 1)
            return true
          },
          () => {
            const open = (controlsByAddress.get(address) ?? 1) - 1
            if (open === 0) controlsByAddress.delete(address)
            else controlsByAddress.set(address, open)
          }
        )
        if (!taken) {
          return yield* refuse("max-conns-per-ip", LimitTexts.connsPerIp, `refused ${address}: ${limits.maxConnsPerIp} tunnel connections already open from it (--max-conns-per-ip)`)
        }
      })

    const authFailed = (address: string) =>
      Effect.flatMap(lockout.recordFailure(address), (locked) =>
        locked
          ? Effect.logWarning(`${address} locked out for a minute after repeated authentication failures`)
          : Effect.void)

    return Admission.of({ enterHandshake, holdControl, authFailed })
  })

export const layer = (limits: Limits) => Layer.effect(Admission, make(limits))
