/**
 * One tunnel on the server: a public listener whose visitors are announced to the client on its
 * control stream, with a heartbeat every 500 ms in between.
 *
 * The frame sequence is bore's: `Hello(port)`, then a loop of `Heartbeat` followed by a wait of up
 * to 500 ms for a visitor, announced with `Connection(id)`. Unlike bore, the control stream is
 * read, so the tunnel (its port and its waiting visitors) ends as soon as the client goes away.
 */
import { Duration, Effect, Option, Queue, Scope } from "effect"
import type { PortUnavailable, SocketError } from "../errors.js"
import type { FramedSocket } from "../net/framed-socket.js"
import { untilClosed } from "../net/socket.js"
import { encodeServerMessage, ServerMessages } from "../protocol/messages.js"
import type { Uuid } from "../protocol/uuid.js"
import { PendingRegistry } from "./pending-registry.js"
import { openPublicListener, type PortRange } from "./ports.js"

/** How often an idle control stream gets a heartbeat (bore: 500 ms). */
export const HEARTBEAT_INTERVAL = Duration.millis(500)

/**
 * Serves a tunnel for the client on `control`, which asked for `requestedPort` (0 = any). Fails
 * with PortUnavailable before anything is sent if no port can be had; otherwise runs until the
 * control connection ends, then closes the public port and every visitor still waiting.
 */
export const runTunnel = (
  control: FramedSocket,
  range: PortRange,
  requestedPort: number
): Effect.Effect<void, PortUnavailable | SocketError, PendingRegistry | Scope.Scope> =>
  Effect.gen(function*() {
    const registry = yield* PendingRegistry
    const tunnelScope = yield* Effect.scope
    const arrivals = yield* Queue.unbounded<Uuid>()
    const listener = yield* openPublicListener(range, requestedPort, (visitor) =>
      registry.hold(visitor).pipe(
        Effect.flatMap((id) => Queue.offer(arrivals, id)),
        // Held visitors belong to the tunnel, not to the listener's per-connection fiber.
        Effect.provideService(Scope.Scope, tunnelScope),
        Effect.annotateLogs({ visitor: `${visitor.remoteAddress}:${visitor.remotePort}` })
      ))
    const send = (message: Parameters<typeof encodeServerMessage>[0]) =>
      control.writeFrame(encodeServerMessage(message))

    yield* send(ServerMessages.hello(listener.port))
    yield* Effect.logInfo(`tunnel open on port ${listener.port}`)

    const announceVisitors = Effect.gen(function*() {
      while (true) {
        yield* send(ServerMessages.heartbeat)
        const visitor = yield* Queue.take(arrivals).pipe(Effect.timeout(HEARTBEAT_INTERVAL), Effect.option)
        if (Option.isSome(visitor)) yield* send(ServerMessages.connection(visitor.value))
      }
    })
    yield* Effect.raceFirst(announceVisitors, untilClosed(control.socket))
    yield* Effect.logInfo(`tunnel on port ${listener.port} closed: the client went away`)
  })
