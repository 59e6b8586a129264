/**
 * Choosing and binding a tunnel's public port, with bore's rules and error texts.
 */
import type * as net from "node:net"
import { Effect, Random, type Scope } from "effect"
import { type BindError, PortUnavailable } from "../errors.js"
import { DescriptorWatch, exhaustionOf } from "../net/descriptor-watch.js"
import type { Drain } from "../net/drain.js"
import { type Listener, listenManaged } from "../net/listener.js"
import type { SocketBuffers } from "../net/tuning.js"

/**
 * Random ports tried for `Hello(0)` before giving up. bore's figure: enough to find a free port
 * with probability 1 - 1e-5 when only 15% of the range is free.
 */
export const RANDOM_PORT_TRIES = 150

export interface PortRange {
  readonly minPort: number
  readonly maxPort: number
  /** Address the public listeners bind to. */
  readonly bindTunnels: string
  /** SO_SNDBUF / SO_RCVBUF for the public listeners and their visitors. */
  readonly buffers: SocketBuffers
}

/** Why a bind failed, as the reason bore's Error text is derived from. */
const bindFailureReason = (error: BindError): PortUnavailable["reason"] => {
  switch (error.code) {
    case "EADDRINUSE":
      return "in-use"
    case "EACCES":
      return "permission-denied"
    default:
      return "bind-failed"
  }
}

/**
 * Opens the public listener of a tunnel: on `requested` if it is not 0 (it must lie in the
 * range), else on a random free port of the range. Visitors go to `onVisitor`, which takes
 * each socket over (see `socketOwner` in the listener).
 */
export const openPublicListener = <R>(
  range: PortRange,
  requested: number,
  onVisitor: (visitor: net.Socket) => Effect.Effect<void, never, R>
): Effect.Effect<Listener, PortUnavailable, R | Drain | DescriptorWatch | Scope.Scope> => {
  const bind = (port: number) =>
    listenManaged({ host: range.bindTunnels, port, pauseOnConnect: true, socketOwner: "handler", buffers: range.buffers }, onVisitor).pipe(
      Effect.tapError((error) => reportExhaustion(error.code))
    )
  const unavailable = (error: BindError) => new PortUnavailable({ reason: bindFailureReason(error) })

  if (requested > 0) {
    return requested < range.minPort || requested > range.maxPort
      ? Effect.fail(new PortUnavailable({ reason: "not-in-range" }))
      : Effect.mapError(bind(requested), unavailable)
  }
  return Effect.gen(function*() {
    for (let attempt = 0; attempt < RANDOM_PORT_TRIES; attempt++) {
      const port = yield* Random.nextIntBetween(range.minPort, range.maxPort + 1)
      const bound = yield* Effect.either(bind(port))
      if (bound._tag === "Right") return bound.right
      // Out of descriptors, every other port would fail the same way: stop at once.
      if (exhaustionOf(bound.left) !== undefined) return yield* Effect.fail(unavailable(bound.left))
    }
    return yield* Effect.fail(new PortUnavailable({ reason: "none-free" }))
  })
}

/** Tells the descriptor watch that a bind ran out of descriptors. */
const reportExhaustion = (code: string) =>
  Effect.flatMap(DescriptorWatch, (watch) => {
    const exhaustion = exhaustionOf({ code })
    return exhaustion !== undefined ? watch.report(exhaustion) : Effect.void
  })
