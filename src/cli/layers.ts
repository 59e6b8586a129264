/**
 * The one place that composes layers: what each program is made of.
 *
 * `spore server` is the control listener, and when asked for, the HTTP front and the metrics
 * endpoint, over the services they share. Building a layer in sequence releases it in reverse,
 * which gives the server its shutdown order: the graceful shutdown, built last, runs first,
 * while every listener and socket is still open (the drain stops the listeners accepting and
 * waits for the connections forwarded); then the listeners close; then the services.
 */
import { randomBytes } from "node:crypto"
import { Context, Effect, Layer, Option, type Redacted, type Scope } from "effect"
import * as Cluster from "../cluster/cluster.js"
import * as NodeLink from "../cluster/node-link.js"
import type { AcmeError, BindError, StateDirError, TlsConfigError } from "../errors.js"
import * as HttpFront from "../front/front.js"
import * as HttpTunnels from "../front/http-tunnels.js"
import { MetricsEndpoint, serveAndAnnounceMetrics } from "../metrics/http.js"
import * as CertificateStore from "../net/certificate-store.js"
import * as DescriptorWatch from "../net/descriptor-watch.js"
import * as Drain from "../net/drain.js"
import * as Admission from "../server/admission.js"
import type { ServerConfig } from "../server/config.js"
import * as ControlListener from "../server/control-listener.js"
import * as ServerMetrics from "../server/server-metrics.js"
import * as Tunnels from "../server/tunnels.js"
import { TcpTunnelDirectory } from "../visitors/tunnel-directory.js"
import * as FrontMetrics from "../front/front-metrics.js"
import * as PendingRegistry from "../visitors/pending-registry.js"
import * as WaitingVisitors from "../visitors/waiting-visitors.js"

/** What `spore server` was asked to do: the TCP server, and the HTTP front if asked for. */
export interface ServerProgramConfig extends ServerConfig {
  readonly http: Option.Option<HttpFront.HttpFrontConfig>
  /** `--cluster`: the HTTP front's names shared with other nodes through Redis. */
  readonly cluster: Option.Option<ClusterConfig>
}

export interface ClusterConfig {
  /** redis://[:PASSWORD@]HOST:PORT[/DB] */
  readonly url: string
  /** `--node-addr`: where this node listens for the others (port 0: a free one). */
  readonly nodeAddress: NodeLink.NodeAddress
  /** SPORE_CLUSTER_SECRET: what nodes prove to each other. */
  readonly secret: Redacted.Redacted<string>
}

/** The HTTP tunnels, alone or as a node of a cluster (then with its Cluster and NodeLink too). */
const httpTunnelsOf = (config: ServerProgramConfig) =>
  Option.match(config.cluster, {
    onNone: () => HttpTunnels.layer(config.limits.maxTunnels),
    onSome: (cluster) => {
      const store = Layer.unwrapEffect(Effect.gen(function*() {
        const link = yield* NodeLink.NodeLink
        const metrics = yield* ServerMetrics.ServerMetrics
        const node = { id: randomBytes(8).toString("hex"), addr: NodeLink.formatNodeAddress(link.address) }
        return Cluster.layer({ url: cluster.url, node, registry: metrics.registry })
      }))
      return HttpTunnels.clusterLayer(config.limits.maxTunnels).pipe(
        Layer.provideMerge(store),
        Layer.provideMerge(NodeLink.layer({ address: cluster.nodeAddress, secret: cluster.secret }))
      )
    }
  })

/** Waiting visitors, TCP and HTTP alike, counted in the server's metrics. */
const pendingEventsOf = (metrics: ServerMetrics.ServerMetrics["Type"]): PendingRegistry.PendingEvents => ({
  waitingChanged: (delta) => metrics.visitorsPending.inc({}, delta),
  expired: () => metrics.visitorsExpired.inc()
})

/** What the server's listeners serve from; they live as long as the server. */
const serverServices = (config: ServerProgramConfig) => {
  const withMetrics = <A, E, R>(make: (metrics: ServerMetrics.ServerMetrics["Type"]) => Layer.Layer<A, E, R>) =>
    Layer.unwrapEffect(Effect.map(ServerMetrics.ServerMetrics, make))
  const visitors = Layer.merge(
    withMetrics((metrics) => PendingRegistry.layer(pendingEventsOf(metrics))),
    withMetrics((metrics) => WaitingVisitors.layer(pendingEventsOf(metrics)))
  )
  const admission = withMetrics((metrics) =>
    Admission.layer(config.limits, {
      handshakesChanged: (delta) => metrics.handshakesInProgress.inc({}, delta),
      evicted: () => metrics.handshakeFailures.inc({ reason: "max-handshakes" })
    })
  )
  // Kept whether or not the front is asked for: without it, nothing uses it.
  const httpTunnels = httpTunnelsOf(config)
  // One certificate store for the TLS control port and the HTTPS front.
  const certificate = CertificateStore.layer(Option.map(config.tls, ({ certFile, keyFile }) => ({ certFile, keyFile })))
  const base = Layer.mergeAll(ServerMetrics.layer, DescriptorWatch.layer, Drain.layer, certificate)
  // The operator's dashboard lists the TCP tunnels through this window (front/ and server/ stay apart).
  const directory = Layer.effect(TcpTunnelDirectory, Effect.map(Tunnels.Tunnels, (tunnels) => TcpTunnelDirectory.of({ list: tunnels.list })))
  // The front's counts go in the server's registry: one --metrics-addr serves both.
  const frontMetrics = Layer.unwrapEffect(Effect.map(ServerMetrics.ServerMetrics, (metrics) => FrontMetrics.layer(metrics.registry)))
  return Layer.merge(directory, frontMetrics).pipe(
    Layer.provideMerge(Tunnels.layer(config)),
    Layer.provideMerge(Layer.mergeAll(visitors, admission, httpTunnels)),
    Layer.provideMerge(base)
  )
}

/** On shutdown: visitors still waiting are closed, then the drain runs (see the module's comment). */
const gracefulShutdown = (config: ServerConfig) =>
  Layer.scopedDiscard(Effect.gen(function*() {
    const drain = yield* Drain.Drain
    const registry = yield* PendingRegistry.PendingRegistry
    yield* Effect.addFinalizer(() => Effect.zipRight(registry.closeAll, drain.run(config.drain)))
  }))

/** `spore server`: every listener it was asked for, over its services, with its shutdown. */
export const ServerLive = (config: ServerProgramConfig) => {
  const front = Option.match(config.http, {
    onNone: () => Layer.empty,
    onSome: (front) => HttpFront.layer({ ...front, buffers: config.buffers })
  })
  const metrics = Option.match(config.metricsAddr, {
    onNone: () => Layer.empty,
    onSome: (address) =>
      Layer.scoped(MetricsEndpoint, Effect.flatMap(ServerMetrics.ServerMetrics, (metrics) => serveAndAnnounceMetrics(address, metrics.registry)))
  })
  // The front after the control listener, as before: its log line comes second.
  const listeners = front.pipe(Layer.provideMerge(ControlListener.layer(config)), Layer.provideMerge(metrics))
  return gracefulShutdown(config).pipe(Layer.provideMerge(listeners), Layer.provideMerge(serverServices(config)))
}

export interface RunningServer {
  /** The control port actually bound (useful when the config asked for 0). */
  readonly controlPort: number
  /** The TLS control port actually bound, when the config gave a certificate. */
  readonly tlsPort: Option.Option<number>
  /** Reads the certificate files again, as SIGHUP does (nothing without TLS). */
  readonly reloadCertificate: Effect.Effect<void>
  /** The metrics port actually bound, when the config asked for metrics. */
  readonly metricsPort: Option.Option<number>
  /** The HTTP front's port and its operator status page's, when the config asked for them. */
  readonly http: Option.Option<HttpFront.HttpFront["Type"]>
}

/** Starts the server in the scope; it serves until the scope closes. */
export const startServer = (config: ServerProgramConfig): Effect.Effect<RunningServer, BindError | TlsConfigError | AcmeError | StateDirError, Scope.Scope> =>
  Effect.map(Layer.build(ServerLive(config)), (context) => ({
    controlPort: Context.get(context, ControlListener.ControlListener).port,
    tlsPort: Context.get(context, ControlListener.ControlListener).tlsPort,
    reloadCertificate: Context.get(context, ControlListener.ControlListener).reloadCertificate,
    metricsPort: Option.map(Context.getOption(context, MetricsEndpoint), (endpoint) => endpoint.port),
    http: Context.getOption(context, HttpFront.HttpFront)
  }))
