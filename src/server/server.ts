/**
 * `spore server`: the control listener, serving tunnels and data streams until interrupted.
 */
import { Context, Effect, Layer, Option, type Scope } from "effect"
import type { BindError } from "../errors.js"
import * as DescriptorWatch from "../net/descriptor-watch.js"
import * as Drain from "../net/drain.js"
import { formatHostPort, serveMetrics } from "../metrics/http.js"
import { listen } from "../net/listener.js"
import * as HttpFront from "../front/front.js"
import { makeAuthenticator } from "../protocol/auth.js"
import * as Admission from "./admission.js"
import type { ServerConfig } from "./config.js"
import { handleConnection } from "./connection.js"
import * as PendingRegistry from "../visitors/pending-registry.js"
import { makeServerMetrics, ServerMetrics } from "./server-metrics.js"
import * as Tunnels from "./tunnels.js"

export interface RunningServer {
  /** The control port actually bound (useful when the config asked for 0). */
  readonly controlPort: number
  /** The metrics port actually bound, when the config asked for metrics. */
  readonly metricsPort: Option.Option<number>
  /** The HTTP front's port and its operator status page's, when the config asked for them. */
  readonly http: Option.Option<HttpFront.HttpFront>
}

/** Starts the server; it serves until the scope closes, which closes every socket it opened. */
export const start = (config: ServerConfig): Effect.Effect<RunningServer, BindError, Scope.Scope> =>
  Effect.gen(function*() {
    const auth = Option.map(config.secret, makeAuthenticator)
    const metrics = makeServerMetrics()
    const pendingEvents = {
      waitingChanged: (delta: number) => metrics.visitorsPending.inc({}, delta),
      expired: () => metrics.visitorsExpired.inc()
    }
    // Built in the server's scope: tunnels and waiting visitors live as long as the server.
    const services = yield* Layer.build(Layer.mergeAll(
      Tunnels.layer(config).pipe(Layer.provideMerge(PendingRegistry.layer(pendingEvents))),
      Admission.layer(config.limits, {
        handshakesChanged: (delta) => metrics.handshakesInProgress.inc({}, delta),
        evicted: () => metrics.handshakeFailures.inc({ reason: "max-handshakes" })
      }),
      DescriptorWatch.layer,
      Drain.layer
    ).pipe(Layer.provideMerge(Layer.succeed(ServerMetrics, metrics))))
    const control = yield* listen({ host: config.bindAddr, port: config.controlPort, buffers: config.buffers }, handleConnection(auth)).pipe(
      Effect.provide(services)
    )
    // Started before the drain's finalizer, so the drain reaches it too: its listener stops
    // accepting, and visitors with a data channel may finish.
    const http = yield* Effect.transposeMapOption(config.http, (front) =>
      HttpFront.start({ ...front, buffers: config.buffers }, pendingEvents).pipe(Effect.provide(services)))
    // Added last, so it runs first as the server's scope closes: while every socket is still open.
    const drain = Context.get(services, Drain.Drain)
    const registry = Context.get(services, PendingRegistry.PendingRegistry)
    yield* Effect.addFinalizer(() => Effect.zipRight(registry.closeAll, drain.run(config.drain)))
    yield* Effect.logInfo(
      `server listening on ${config.bindAddr}:${control.port}, tunnel ports ${config.minPort}-${config.maxPort}` +
        (Option.isSome(config.secret) ? ", secret required" : "")
    )
    let metricsPort = Option.none<number>()
    if (Option.isSome(config.metricsAddr)) {
      const { port } = yield* serveMetrics(config.metricsAddr.value, metrics.registry)
      yield* Effect.logInfo(`metrics at http://${formatHostPort(config.metricsAddr.value.host, port)}/metrics`)
      metricsPort = Option.some(port)
    }
    return { controlPort: control.port, metricsPort, http }
  })
