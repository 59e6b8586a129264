/**
 * `spore local`: keeps a tunnel open and serves every visitor the server announces, coming back
 * by itself (on the same public port) when the server or the network goes away.
 */
import { Clock, Deferred, Duration, Effect, Fiber, FiberSet, Option, Ref, Schedule, ScheduleDecision, type Scope } from "effect"
import { ControlConnectionLost, ServerRejected, VisitorAddressesUnavailable } from "../errors.js"
import { Drain } from "../net/drain.js"
import { readMessage } from "../net/framed-socket.js"
import { NETWORK_TIMEOUT } from "../net/socket.js"
import { makeAuthenticator } from "../protocol/auth.js"
import { decodeServerMessage } from "../protocol/messages.js"
import type { Uuid } from "../protocol/uuid.js"
import { countStatus, registerTunnel } from "./client-metrics.js"
import type { ClientConfig } from "./config.js"
import { forwardVisitor } from "./data-connection.js"
import { requestTunnel, type TunnelHandshake, type TunnelRequest } from "./handshake.js"
import type { VisitorAddresses } from "./proxy-header.js"
import { isRetryable, reconnectSchedule } from "./reconnect.js"
import { runWarmPool } from "./warm-pool.js"

/**
 * The server sends a heartbeat every 500 ms; this long without any frame means the control
 * connection is dead even if TCP has not noticed.
 */
export const HEARTBEAT_TIMEOUT = Duration.seconds(8)

/** How often the heartbeat watchdog looks: a dead connection is noticed 8 to 9 s after its last frame. */
const WATCHDOG_TICK = Duration.seconds(1)

/**
 * Why an attempt failed, in plain words: a refusal is the server's own text ("server is busy, try
 * again later"), without the "server error:" of the fatal message.
 */
const attemptFailure = (error: { readonly message: string }) =>
  error instanceof ServerRejected ? error.serverMessage : error.message

/** What the client reports as it goes, in plain words. */
export type ClientStatus =
  | { readonly _tag: "Listening"; readonly host: string; readonly port: number; readonly resumed: boolean }
  | { readonly _tag: "Lost"; readonly reason: string }
  | { readonly _tag: "AttemptFailed"; readonly reason: string }
  | { readonly _tag: "Retrying"; readonly delay: Duration.Duration }

type Report = (status: ClientStatus) => Effect.Effect<void>

export interface ClientTunnel {
  /** The public port the server gave us. */
  readonly remotePort: number
  /** Serves visitors until the control connection is lost (that is a failure: the tunnel is gone). */
  readonly serve: Effect.Effect<never, ControlConnectionLost>
}

/** Opens one tunnel, with no reconnection; its sockets live as long as the scope. */
export const openTunnel = (config: ClientConfig) =>
  Effect.gen(function*() {
    const auth = Option.map(config.secret, makeAuthenticator)
    const handshake = yield* requestTunnel(config, auth, { port: config.port, leaseToken: Option.none() })
    const visitors = yield* FiberSet.make<void, never>()
    return {
      remotePort: handshake.remotePort,
      serve: serveControl(handshake, {
        visitor: (id, addresses) => FiberSet.run(visitors, forwardVisitor(config, auth, id, addresses)),
        lease: () => Effect.void,
        extensions: () => Effect.void
      })
    } satisfies ClientTunnel
  })

/**
 * Runs the client until it fails for good: with `config.reconnect`, only authentication and
 * configuration errors end it; every other failure, at start or later, is retried with backoff.
 * Connections already spliced keep flowing while the control connection is down.
 */
export const run = (config: ClientConfig, reportTo: Report): Effect.Effect<never, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    // Every report is also counted (when the program keeps metrics).
    yield* registerTunnel(config)
    let everLost = false
    const report: Report = (status) =>
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
    const drain = yield* Effect.serviceOption(Drain)
    if (Option.isSome(drain)) yield* Effect.addFinalizer(() => drain.value.run(config.drain))
    const request = yield* Ref.make<TunnelRequest>({ port: config.port, leaseToken: Option.none() })
    const onVisitor = (id: Uuid, addresses: Option.Option<VisitorAddresses>) =>
      FiberSet.run(visitors, forwardVisitor(config, auth, id, addresses))
    const onLease = (token: string) => Ref.update(request, (r) => ({ ...r, leaseToken: Option.some(token) }))

    const establish = Effect.flatMap(Ref.get(request), (r) => requestTunnel(config, auth, r)).pipe(
      Effect.tapError((error) =>
        config.reconnect && isRetryable(error) ? report({ _tag: "AttemptFailed", reason: attemptFailure(error) }) : Effect.void
      )
    )
    const backoff = reconnectSchedule(config.maxReconnectDelay).pipe(
      Schedule.whileInput(isRetryable),
      // Reported only when there will be another attempt (a tap on the output would also fire
      // for the fatal error that ends the retries).
      Schedule.onDecision((delay, decision) =>
        ScheduleDecision.isContinue(decision) ? report({ _tag: "Retrying", delay }) : Effect.void
      )
    )
    /**
     * Establishes a tunnel, retrying with backoff. After a loss, the loss counts as the first
     * failed attempt, so even the first reconnection waits: a server that accepts and drops at
     * once cannot make the client spin.
     */
    const establishAfter = (lost: Option.Option<ControlConnectionLost>) =>
      Effect.gen(function*() {
        if (!config.reconnect) return yield* establish
        const pendingLoss = yield* Ref.make(lost)
        const attempt = Effect.flatMap(
          Ref.getAndSet(pendingLoss, Option.none()),
          (loss): Effect.Effect<TunnelHandshake, Effect.Effect.Error<typeof establish> | ControlConnectionLost, Scope.Scope> =>
            Option.isSome(loss) ? Effect.fail(loss.value) : establish
        )
        return yield* Effect.retry(attempt, backoff)
      })

    let lost = Option.none<ControlConnectionLost>()
    while (true) {
      const loss = yield* Effect.scoped(Effect.gen(function*() {
        const handshake = yield* establishAfter(lost)
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
      }))
      yield* report({ _tag: "Lost", reason: loss.reason })
      if (!config.reconnect) return yield* loss
      lost = Option.some(loss)
    }
  })

/**
 * The control loop: heartbeats keep it alive, each `Connection` starts a data connection, and a
 * `Lease` from a Spore server is kept for resuming. Ends, as a failure, when the connection is.
 */
/** What the control loop hands on. */
interface ControlEvents {
  /** A visitor to forward, with its addresses when the server sent them (a `Visitor` frame). */
  readonly visitor: (id: Uuid, addresses: Option.Option<VisitorAddresses>) => Effect.Effect<unknown>
  /** A Spore server's lease token, for resuming. */
  readonly lease: (token: string) => Effect.Effect<void>
  /** A Spore server's answer to the offer of extensions: the version it speaks. */
  readonly extensions: (version: number) => Effect.Effect<unknown>
}

const serveControl = (
  { control }: TunnelHandshake,
  on: ControlEvents
): Effect.Effect<never, ControlConnectionLost> =>
  Effect.gen(function*() {
    // One watchdog for the whole connection rather than a timeout raced against every read (two
    // fibers per frame): each frame is a heartbeat, and the watchdog checks how long ago the last
    // one came, waking only every second.
    let lastFrameAt = yield* Clock.currentTimeMillis
    const watchdog = Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(WATCHDOG_TICK)
        if ((yield* Clock.currentTimeMillis) - lastFrameAt >= Duration.toMillis(HEARTBEAT_TIMEOUT)) {
          return yield* new ControlConnectionLost({ reason: `no heartbeat from the server for ${Duration.format(HEARTBEAT_TIMEOUT)}` })
        }
      }
    })
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
