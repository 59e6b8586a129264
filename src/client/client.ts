/**
 * `spore local`: keeps a tunnel open and serves every visitor the server announces, coming back
 * by itself (on the same public port) when the server or the network goes away.
 */
import { Clock, Deferred, Duration, Effect, Fiber, FiberSet, Option, Ref, type Scope } from "effect"
import { ControlConnectionLost, VisitorAddressesUnavailable } from "../errors.js"
import { Drain } from "../net/drain.js"
import { readMessage } from "../net/framed-socket.js"
import { NETWORK_TIMEOUT } from "../net/socket.js"
import { makeAuthenticator } from "../protocol/auth.js"
import { decodeServerMessage } from "../protocol/messages.js"
import type { Uuid } from "../protocol/uuid.js"
import { type ClientMetrics, countStatus, registerTunnel } from "./client-metrics.js"
import type { ClientConfig } from "./config.js"
import { forwardVisitor, type VisitorServices } from "./data-connection.js"
import { requestTunnel, type TunnelHandshake, type TunnelRequest, type TunnelRequestError } from "./handshake.js"
import type { VisitorAddresses } from "./proxy-header.js"
import { reconnecting } from "./reconnect.js"
import { silenceWatchdog } from "./silence-watchdog.js"
import type { ClientStatus } from "./status.js"
import { runWarmPool } from "./warm-pool.js"

/**
 * The server sends a heartbeat every 500 ms; this long without any frame means the control
 * connection is dead even if TCP has not noticed.
 */
export const HEARTBEAT_TIMEOUT = Duration.seconds(8)

/** Defined in status.ts with the other clients' statuses; re-exported for cli/tunnel-flags.ts, which imports it from here. */

type Report = (status: ClientStatus) => Effect.Effect<void>

/**
 * Why a client stops: its tunnel could not be opened (fatal, or any failure without
 * reconnection), it was lost without reconnection, or --proxy-protocol met a server that cannot
 * send visitors' addresses.
 */
export type ClientError = TunnelRequestError | ControlConnectionLost | VisitorAddressesUnavailable

/**
 * Runs the client until it fails for good: with `config.reconnect`, only authentication and
 * configuration errors end it; every other failure, at start or later, is retried with backoff.
 * Connections already spliced keep flowing while the control connection is down.
 */
export const run = (config: ClientConfig, reportTo: Report): Effect.Effect<never, ClientError, VisitorServices | Scope.Scope> =>
  Effect.gen(function*() {
    // Every report is also counted in the program's metrics.
    yield* registerTunnel(config)
    let everLost = false
    const report = (status: ClientStatus): Effect.Effect<void, never, ClientMetrics> =>
      Effect.suspend(() => {
        const afterLoss = everLost
        if (status._tag === "Lost") everLost = true
        return Effect.zipRight(countStatus(config, status, afterLoss), reportTo(status))
      })
    const auth = Option.map(config.secret, makeAuthenticator)
    // Visitors belong to the client, not to one control connection.
    const visitors = yield* FiberSet.make<void, never>()
    // Runs before the visitors are interrupted as the scope closes: by then the control
    // connection is gone (no new visitors), and forwarded ones may finish.
    const drain = yield* Drain
    yield* Effect.addFinalizer(() => drain.run(config.drain))
    const request = yield* Ref.make<TunnelRequest>({ port: config.port, leaseToken: Option.none() })
    const onVisitor = (id: Uuid, addresses: Option.Option<VisitorAddresses>) =>
      FiberSet.run(visitors, forwardVisitor(config, auth, id, addresses))
    const onLease = (token: string) => Ref.update(request, (r) => ({ ...r, leaseToken: Option.some(token) }))

    const establish = Effect.flatMap(Ref.get(request), (r) => requestTunnel(config, auth, r))
    const serve = (handshake: TunnelHandshake) =>
      Effect.gen(function*() {
        // Ask for this port next time, whatever we asked for this time. A resumed tunnel keeps its
        // token (so a loss before the server's Lease frame arrives can still resume); after a
        // Hello the old token is dead and the new one comes with the Lease.
        yield* Ref.update(request, (previous) => ({
          port: handshake.remotePort,
          leaseToken: handshake.resumed ? previous.leaseToken : Option.none()
        }))
        const extensions = yield* Deferred.make<number>()
        const lease = yield* Deferred.make<string>()
        const serving = yield* Effect.forkScoped(Effect.flip(serveControl(handshake, {
          visitor: onVisitor,
          lease: (token) => Effect.zipRight(onLease(token), Deferred.succeed(lease, token)),
          extensions: (version) => Deferred.succeed(extensions, version)
        })))
        // The warm pool lives as long as this control connection, and only a Spore server that
        // speaks version 3 is asked for one (a bore server never answers the offer).
        if (config.pool > 0) {
          yield* Effect.forkScoped(Effect.flatMap(Deferred.await(extensions), (version) =>
            version >= 3
              ? Effect.flatMap(Deferred.await(lease), (token) => runWarmPool(config, auth, token, config.pool, visitors))
              : Effect.void))
        }
        // --proxy-protocol needs the visitors' addresses: only a Spore server (version 2) sends
        // them, and it answers the offer at once; a bore server never does.
        if (Option.isSome(config.proxyProtocol)) {
          const lostMeanwhile = yield* Effect.raceFirst(
            Effect.flatMap(Deferred.await(extensions), (version) =>
              version >= 2 ? Effect.succeed(false) : new VisitorAddressesUnavailable({ server: config.to })).pipe(
                Effect.timeoutFail({ duration: NETWORK_TIMEOUT, onTimeout: () => new VisitorAddressesUnavailable({ server: config.to }) })
              ),
            Effect.as(Fiber.await(serving), true)
          )
          if (lostMeanwhile) return yield* Fiber.join(serving)
        }
        yield* report({ _tag: "Listening", host: config.to, port: handshake.remotePort, resumed: handshake.resumed })
        return yield* Fiber.join(serving)
      })
    return yield* reconnecting(config, report, establish, serve)
  })

/**
 * The control loop: heartbeats keep it alive, each `Connection` starts a data connection, and a
 * `Lease` from a Spore server is kept for resuming. Ends, as a failure, when the connection is.
 */
/** What the control loop hands on. */
interface ControlEvents<R> {
  /** A visitor to forward, with its addresses when the server sent them (a `Visitor` frame). */
  readonly visitor: (id: Uuid, addresses: Option.Option<VisitorAddresses>) => Effect.Effect<unknown, never, R>
  /** A Spore server's lease token, for resuming. */
  readonly lease: (token: string) => Effect.Effect<void>
  /** A Spore server's answer to the offer of extensions: the version it speaks. */
  readonly extensions: (version: number) => Effect.Effect<unknown>
}

const serveControl = <R>(
  { control }: TunnelHandshake,
  on: ControlEvents<R>
): Effect.Effect<never, ControlConnectionLost, R> =>
  Effect.gen(function*() {
    // Every frame counts as a heartbeat.
    let lastFrameAt = yield* Clock.currentTimeMillis
    const watchdog = silenceWatchdog(HEARTBEAT_TIMEOUT, () => lastFrameAt, () =>
      new ControlConnectionLost({ reason: `no heartbeat from the server for ${Duration.format(HEARTBEAT_TIMEOUT)}` }))
    const readLoop = Effect.gen(function*() {
      while (true) {
        const next = yield* readMessage(control, decodeServerMessage)
        lastFrameAt = yield* Clock.currentTimeMillis
        if (Option.isNone(next)) return yield* new ControlConnectionLost({ reason: "the server closed it" })
        const message = next.value
        switch (message._tag) {
          case "Heartbeat":
            break
          case "Connection":
            yield* Effect.logDebug(`new visitor ${message.id}`)
            yield* on.visitor(message.id, Option.none())
            break
          case "Visitor": {
            const { destination, id, source } = message.visitor
            yield* Effect.logDebug(`new visitor ${id} from ${source.address}:${source.port}`)
            yield* on.visitor(id, Option.some({ source, destination }))
            break
          }
          case "Lease":
            yield* on.lease(message.token)
            break
          case "Spore":
            yield* on.extensions(message.version)
            break
          case "Error":
            yield* Effect.logError(`server error: ${message.message}`)
            break
          default:
            yield* Effect.logWarning(`unexpected ${message._tag} on the control connection; ignored`)
        }
      }
    })
    return yield* Effect.raceFirst(readLoop, watchdog)
  }).pipe(
    Effect.catchTags({
      FrameTooLong: (error) => new ControlConnectionLost({ reason: error.message }),
      MessageParseError: (error) => new ControlConnectionLost({ reason: `${error.message}: ${error.reason}` }),
      SocketError: (error) => new ControlConnectionLost({ reason: error.message })
    })
  )
