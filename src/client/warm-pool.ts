/**
 * The client's warm pool (a Spore extension, version 3): data streams opened ahead of time, each
 * authenticated and idle with `{"Pool":token}` sent, so that the server can hand a visitor to one
 * at once. bore's path costs the visitor a `Connection` frame, a new connection back and a
 * challenge round trip before its first byte moves; a pooled visitor's first byte follows its
 * announcement on the same stream.
 *
 * The pool runs for one control session, started once a Spore server has answered version 3 and
 * given its lease token, and stops with it: losing the control connection closes every idle
 * stream (the server closes its side too). Each of the `size` slots keeps one stream open; when
 * its stream is handed a visitor, the visitor's forwarding moves to the client's visitors (it
 * outlives the session, as plain visitors do) and the slot opens the next stream at once. A slot
 * whose stream fails or is closed before carrying a visitor waits with backoff before the next.
 */
import { Duration, Effect, Exit, FiberSet, Option, Schedule, Scope } from "effect"
import { PoolStreamLost } from "../errors.js"
import { type FramedSocket, readMessage } from "../net/framed-socket.js"
import type { Authenticator } from "../protocol/auth.js"
import { ClientMessages, decodeServerMessage, encodeClientMessage } from "../protocol/messages.js"
import type { Uuid } from "../protocol/uuid.js"
import { ClientMetrics, tunnelLabel } from "./client-metrics.js"
import type { ClientConfig } from "./config.js"
import { forwardPooledVisitor, type VisitorServices } from "./data-connection.js"
import { openStream } from "./handshake.js"
import type { VisitorAddresses } from "./proxy-header.js"

/**
 * `--pool`'s default. Four idle streams cost four descriptors and a few dozen KiB on each side,
 * and serve a burst of four visitors, or a steady rate of four per round trip, with no wait;
 * beyond that visitors take the plain path, which stays as fast as bore's.
 */
export const DEFAULT_POOL_SIZE = 4

/** The wait before a slot opens its next stream after a failure: from 100 ms, doubling, to 10 s. */
const refillSchedule = Schedule.exponential(Duration.millis(100), 2).pipe(
  Schedule.jittered,
  Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.seconds(10)))
)

/** A pooled stream the server has handed a visitor to. */
interface Announced {
  readonly stream: FramedSocket
  readonly id: Uuid
  readonly addresses: Option.Option<VisitorAddresses>
}

/**
 * Runs `size` slots for the tunnel `token` names until interrupted (the control session ended).
 * Visitors are forwarded in `visitors`, the client's own set.
 */
export const runWarmPool = (
  config: ClientConfig,
  auth: Option.Option<Authenticator>,
  token: string,
  size: number,
  visitors: FiberSet.FiberSet<void, never>
): Effect.Effect<never, never, VisitorServices> =>
  Effect.gen(function*() {
    const metrics = yield* ClientMetrics
    const idleChanged = (delta: number) => metrics.poolIdle.inc(tunnelLabel(config), delta)

    /** Opens a stream and waits, without a timeout, for the visitor the server hands it. */
    const waitForVisitor: Effect.Effect<Announced, PoolStreamLost, Scope.Scope> = Effect.gen(function*() {
      const stream = yield* openStream(config, auth, encodeClientMessage(ClientMessages.pool(token))).pipe(
        Effect.mapError((error) => new PoolStreamLost({ reason: error.message }))
      )
      yield* Effect.acquireRelease(Effect.sync(() => idleChanged(1)), () => Effect.sync(() => idleChanged(-1)))
      const message = yield* readMessage(stream, decodeServerMessage).pipe(
        Effect.mapError((error) => new PoolStreamLost({ reason: error.message }))
      )
      if (Option.isNone(message)) return yield* new PoolStreamLost({ reason: "the server closed it" })
      switch (message.value._tag) {
        case "Visitor": {
          const { destination, id, source } = message.value.visitor
          return { stream, id, addresses: Option.some({ source, destination }) }
        }
        case "Connection":
          return { stream, id: message.value.id, addresses: Option.none() }
        default:
          return yield* new PoolStreamLost({ reason: `unexpected ${message.value._tag}` })
      }
    })

    /**
     * One stream from open to handover. Its scope is closed here unless a visitor came, and then
     * by the visitor's fiber when the visitor is done: the handover happens with interruption
     * off, so that the stream always has exactly one owner.
     */
    const oneStream = Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const announced = yield* restore(Scope.extend(waitForVisitor, scope)).pipe(
          Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Scope.close(scope, Exit.void))
        )
        const { addresses, id, stream } = announced
        yield* Effect.whenLogLevel(Effect.annotateLogs(Effect.logDebug(`new visitor ${id} on a pooled stream`), { conn: id }), "Debug")
        yield* FiberSet.run(
          visitors,
          forwardPooledVisitor(config, stream, id, addresses).pipe(
            Scope.extend(scope),
            Effect.interruptible,
            Effect.ensuring(Scope.close(scope, Exit.void))
          )
        )
      })
    )

    // The schedule never gives up: a slot only ends when the session does.
    const slot = Effect.forever(Effect.retryOrElse(oneStream, refillSchedule, () => Effect.void))
    yield* Effect.all(Array.from({ length: size }, () => slot), { concurrency: "unbounded", discard: true })
    return yield* Effect.never
  })
