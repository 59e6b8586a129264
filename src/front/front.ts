/**
 * The HTTP front of `spore server --http-addr`: one port for visitors of named tunnels, the
 * REST API, the status page and the WebSocket endpoints of `spore http` clients.
 *
 * Connections arrive on a plain TCP listener, because a visitor's bytes must reach its tunnel
 * exactly as sent: Node's HTTP parser would decode chunked bodies and re-frame them. The first
 * request head decides. A request for a tunnel (`Host: NAME.DOMAIN`, or a path under
 * `/t/NAME/`) stays with the relay (visitor.ts); anything else is handed, with the bytes read so
 * far put back, to Node's HTTP server (the API and the WebSocket upgrades).
 *
 * With `--https-addr` (https.ts), the same front also listens with TLS: a connection accepted there
 * is wrapped (its certificate chosen by SNI) and served exactly as a plain one, with
 * X-Forwarded-Proto https; the plain port then answers ACME challenges and redirects the rest.
 *
 * A connection from a `--trusted-proxy` may say whose it is (client-address.ts): a PROXY header
 * is read before the first head, and its address is counted at once; otherwise X-Forwarded-For
 * names the client, known only once the first head is in, so such a connection is counted from
 * then on (before it, it counts for nobody: the proxy is the operator's own, and the 30 s head
 * timeout still closes it). Everyone else is counted by the peer address on arrival, as always.
 */
import * as http from "node:http"
import * as net from "node:net"
import * as tls from "node:tls"
import { Context, Effect, FiberSet, Layer, Option, type Scope } from "effect"
import { WebSocketServer } from "ws"
import type { AcmeError, BindError, ClusterUnavailable, StateDirError } from "../errors.js"
import { OperatorCertificate } from "../net/certificate-store.js"
import { canonicalAddress, formatHostPort } from "../net/address.js"
import type { DescriptorWatch } from "../net/descriptor-watch.js"
import { type Drain, tracked } from "../net/drain.js"
import { bindServer, listenManaged } from "../net/listener.js"
import { untilSocketClosed } from "../net/socket.js"
import type { SocketBuffers } from "../net/tuning.js"
import { makeAuthLockout } from "../limits/auth-lockout.js"
import type { Cidr, VisitorFilter } from "../visitors/visitor-filter.js"
import type { ApiKeys } from "./api-keys.js"
import { type ApiContext, handleApiRequest, handleDashboardRequest } from "./api.js"
import { MAX_MESSAGE_BYTES } from "../net/ws-channel.js"
import { answerFraming, handleUpgrade } from "./ws-endpoints.js"
import { type ConnectionOrigin, forwardedForOf, makeTrustedProxies, originOfPeer, requestClient } from "./client-address.js"
import { errorResponse } from "./error-page.js"
import { type RequestHead, routeOf } from "./http-request.js"
import { HttpTunnels } from "./http-tunnels.js"
import { type FrontTls, type HttpsConfig, makeFrontTls, redirectToHttps } from "./https.js"
import { makeAddressSlots } from "../limits/address-slots.js"
import { makeRateLimit } from "../limits/rate-limit.js"
import { makeRequestReader } from "./request-reader.js"
import { REQUEST_HEAD_TIMEOUT_SECONDS, requestRefusal, respondAndClose, serveVisitor, type VisitorLimits } from "./visitor.js"
import { WaitingVisitors } from "../visitors/waiting-visitors.js"
import { Cluster, SOLO, type TunnelRecord } from "../cluster/cluster.js"
import { type ForwardHeader, NodeLink } from "../cluster/node-link.js"
import { describeForCluster, elsewhere, type HandedConnection, jsonError, keepClusterNames, tunnelIdOf } from "./cluster-routing.js"
import type { RequestClient } from "./client-address.js"
import type { TcpTunnelDirectory } from "../visitors/tunnel-directory.js"
import { FrontMetrics } from "./front-metrics.js"

/** The longest a replayed request's connection is kept. */
const REPLAY_LIMIT = "40 seconds"

export interface HttpFrontConfig {
  readonly host: string
  readonly port: number
  /** Tunnels are served at NAME.DOMAIN when set, and at /t/NAME/ always. */
  readonly domain: Option.Option<string>
  readonly keys: ApiKeys
  /** Also serve the front over TLS, on its own address (`--https-addr`). */
  readonly https: Option.Option<HttpsConfig>
  /** The operator's status page of every tunnel, on its own address, if asked for. */
  readonly dashboard: Option.Option<{ readonly host: string; readonly port: number }>
  /**
   * `--trusted-proxy`: peers whose PROXY header or X-Forwarded-For names the client (the address
   * counted, locked out, filtered, logged and passed on). None by default.
   */
  readonly trustedProxies?: ReadonlyArray<Cidr>
  /** SO_SNDBUF / SO_RCVBUF for the front's sockets (the server's --sndbuf and --recbuf). */
  readonly buffers?: SocketBuffers
  readonly limits: VisitorLimits & {
    readonly maxTunnels: number
    readonly maxHttpConnsPerIp: number
    /** `--allow-visitor` / `--deny-visitor`: who may visit tunnels (the API is for keys to decide). */
    readonly visitors: VisitorFilter
  }
}

/** The HTTP front, serving: the ports it bound. */
export class HttpFront extends Context.Tag("spore/HttpFront")<HttpFront, {
  readonly port: number
  /** The HTTPS port, when `--https-addr` was given. */
  readonly httpsPort: Option.Option<number>
  readonly dashboardPort: Option.Option<number>
}>() {}

/** The services the front serves from: its tunnels and waiting visitors, the server's drain and descriptor watch. */
type FrontServices = HttpTunnels | WaitingVisitors | TcpTunnelDirectory | FrontMetrics | Drain | DescriptorWatch | OperatorCertificate

/** Starts the front; it serves until the scope closes, which closes all its sockets. */
export const make = (config: HttpFrontConfig): Effect.Effect<HttpFront["Type"], BindError | AcmeError | StateDirError, FrontServices | Scope.Scope> =>
  Effect.gen(function*() {
    const proxies = makeTrustedProxies(config.trustedProxies ?? [])
    // What each connection handed to Node's HTTP server established about its origin.
    const origins = new WeakMap<net.Socket, ConnectionOrigin>()
    // Wrong passwords of tunnels' basic auth, apart from the API's wrong keys: a visitor who
    // mistypes one is not locked out of the API, nor a client of its tunnels' pages.
    const basicAuthLockout = makeAuthLockout()
    const context: ApiContext = {
      keys: config.keys,
      lockout: makeAuthLockout(),
      rateLimit: makeRateLimit(),
      domain: config.domain,
      clientOf: (request) => {
        const origin = origins.get(request.socket as net.Socket) ?? originOfPeer(request.socket.remoteAddress, proxies)
        const values = request.headersDistinct["x-forwarded-for"] ?? []
        return requestClient(origin, values, proxies).address
      },
      replay: (bytes) => replay(bytes)
    }
    // The inspector's replay: the request goes to the front's own port as a visitor of its own
    // (over its TLS when it has some, since plain http then only redirects), so it is routed,
    // checked and logged like any other. The answer is read and dropped; the log shows it.
    // Each replay's connection is a fiber of the front: closed with it, or when the front has
    // closed it (after its 30 s wait for a next request), or at REPLAY_LIMIT.
    const replays = yield* FiberSet.make<void, never>()
    const replay = (bytes: Buffer) =>
      Effect.asVoid(FiberSet.run(replays, Effect.acquireUseRelease(
        Effect.sync(() => {
          const self = (host: string) => host === "0.0.0.0" || host === "" ? "127.0.0.1" : host === "::" ? "::1" : host
          const servername = /\r?\nhost:[ \t]*([^:\r\n]+)/i.exec(bytes.toString("latin1"))?.[1]
          const socket: net.Socket = Option.isSome(config.https)
            ? tls.connect({
              host: self(config.https.value.host),
              port: httpsPort,
              // Our own certificate, on our own port: there is nobody in between to check for.
              rejectUnauthorized: false,
              ...(servername === undefined || net.isIP(servername) !== 0 ? {} : { servername })
            })
            : net.connect({ host: self(config.host), port: frontPort })
          socket.on("error", () => {})
          socket.on("data", () => {})
          // No FIN after it: a request followed by one is dropped by some servers (Node's among them).
          socket.write(bytes)
          return socket
        }),
        (socket) => untilSocketClosed(socket).pipe(Effect.timeout(REPLAY_LIMIT), Effect.ignore),
        (socket) => Effect.sync(() => socket.destroy())
      )))
    // Set once the plain port is bound.
    let frontPort = 0
    const domain = Option.getOrUndefined(config.domain)
    // Callbacks from Node's servers run as fibers of the front, interrupted when it closes.
    const run = yield* FiberSet.makeRuntime<HttpTunnels | WaitingVisitors | TcpTunnelDirectory>()

    const api = http.createServer((request, response) => run(handleApiRequest(context, request, response)))
    const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES })
    answerFraming(wss)
    api.on("upgrade", (request, socket, head) => run(handleUpgrade(context, wss, request, socket, head)))
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        wss.close()
        api.close()
      })
    )

    // Open connections per address (each is also closed after 30 s without a request head).
    const slots = makeAddressSlots(config.limits.maxHttpConnsPerIp)

    const tooMany = (socket: net.Socket) =>
      respondAndClose(socket, errorResponse(429, "Too many connections", "Too many connections from your address."))
    const withinHeadTimeout = Effect.timeoutOption(`${REQUEST_HEAD_TIMEOUT_SECONDS} seconds`)

    // TLS, when asked for: certificates for the front's domain and its tunnels' names only.
    const tunnels = yield* HttpTunnels
    // In a cluster: the names of every node, and the channel to the others.
    const cluster = Option.getOrElse(yield* Effect.serviceOption(Cluster), () => SOLO)
    const link = yield* Effect.serviceOption(NodeLink)
    const metrics = yield* FrontMetrics
    /** Hands a connection to the node `locate` finds (cluster-routing.ts), counted. */
    const handOver = (nodes: NodeLink["Type"], connection: HandedConnection, locate: Effect.Effect<Option.Option<TunnelRecord>, ClusterUnavailable>) =>
      Effect.tap(elsewhere(nodes, connection, locate), (outcome) =>
        Effect.sync(() => {
          if (outcome !== "unknown") metrics.handedOver(outcome)
        }))
    const isOwnName = (name: string) => {
      if (domain === undefined) return false
      if (name === domain) return true
      const label = name.endsWith(`.${domain}`) ? name.slice(0, -domain.length - 1) : ""
      return label !== "" && !label.includes(".") && Option.isSome(tunnels.byName(label))
    }
    const operator = yield* OperatorCertificate
    const frontTls: Option.Option<FrontTls> = yield* Effect.transposeMapOption(config.https, (https) => makeFrontTls(https, operator, isOwnName))
    // Set once the HTTPS port is bound; the plain port redirects there.
    let httpsPort = 0

    /** With HTTPS on, what the plain port answers instead of serving a request. */
    const plainAnswer = (head: RequestHead, origin: ConnectionOrigin): Option.Option<Uint8Array> => {
      if (Option.isNone(frontTls)) return Option.none()
      const challenge = frontTls.value.challengeResponse(head)
      if (Option.isSome(challenge)) return challenge
      // A trusted TLS terminator in front of the plain port says the visitor came by https.
      const forwardedProto = head.headers.find(([name]) => name.toLowerCase() === "x-forwarded-proto")?.[1]
      if (origin.trusted && forwardedProto === "https") return Option.none()
      return Option.some(redirectToHttps(head, httpsPort))
    }

    /**
     * Serves one connection. `forwarded`: it came from another node of the cluster, which counted
     * it and says whose it is (node-link.ts); it is served as that client's.
     */
    const serveConnection = (socket: net.Socket, secure: boolean, forwarded?: ForwardHeader) =>
      Effect.gen(function*() {
        let origin = forwarded === undefined
          ? originOfPeer(socket.remoteAddress, proxies)
          : { peer: forwarded.client, trusted: false, proxied: undefined }
        if (forwarded === undefined && !origin.trusted && !(yield* slots.take(origin.peer))) return yield* tooMany(socket)
        const reader = makeRequestReader(socket)
        if (origin.trusted) {
          const header = yield* withinHeadTimeout(reader.readProxyHeader)
          if (Option.isNone(header)) return
          if (Option.isSome(header.value)) {
            const proxied = canonicalAddress(header.value.value.source ?? "") ?? origin.peer
            origin = { ...origin, proxied }
            if (!(yield* slots.take(proxied))) return yield* tooMany(socket)
          }
        }
        const first = yield* withinHeadTimeout(reader.readHead)
        if (Option.isNone(first) || Option.isNone(first.value)) return
        const request = first.value.value
        const answer = secure || forwarded !== undefined ? Option.none() : plainAnswer(request.head, origin)
        if (Option.isSome(answer)) return yield* respondAndClose(socket, answer.value)
        const connection = origin
        const clientOf = (head: RequestHead) =>
          forwarded === undefined ? requestClient(connection, forwardedForOf(head), proxies) : { address: forwarded.client, before: forwarded.before }
        const hops = forwarded?.hops ?? 0
        const proto = secure ? "https" as const : "http" as const
        if (origin.trusted && origin.proxied === undefined && !(yield* slots.take(clientOf(request.head).address))) {
          return yield* tooMany(socket)
        }
        if (routeOf(request.head, domain)._tag !== "Front") {
          const options = {
            domain,
            limits: config.limits,
            clientOf,
            allows: config.limits.visitors.allows,
            proto,
            basicAuthLockout,
            ...(Option.isSome(link) ? { elsewhere: (name: string, raw: Buffer, client: RequestClient) => handOver(link.value, { socket, reader, raw, client, proto, hops }, cluster.byName(name)) } : {})
          }
          return yield* tracked(serveVisitor(socket, reader, request, options))
        }
        // A call about a tunnel another node holds (the API by id) is answered by that node.
        const id = Option.isSome(link) ? tunnelIdOf(request.head.target) : undefined
        if (id !== undefined && Option.isSome(link) && Option.isNone(tunnels.byId(id))) {
          const client = clientOf(request.head)
          const outcome = yield* handOver(link.value, { socket, reader, raw: request.raw, client, proto, hops }, cluster.byId(id))
          if (outcome === "forwarded") return
          if (outcome === "unavailable") {
            return yield* respondAndClose(socket, jsonError(503, "the server holding this tunnel cannot be reached now; try again in a few seconds", 5))
          }
        }
        origins.set(socket, origin)
        reader.release(request.raw)
        api.emit("connection", socket)
        // Paused by the reader; Node's server reads the bytes put back once it flows again.
        socket.resume()
        yield* untilSocketClosed(socket)
      }).pipe(
        Effect.catchTag("HttpRequestError", (error) => respondAndClose(socket, requestRefusal(error))),
        Effect.scoped
      )

    const front = yield* listenManaged({ host: config.host, port: config.port, buffers: config.buffers ?? {} }, (socket) => serveConnection(socket, false))
    if (Option.isSome(link)) {
      const services = yield* Effect.context<HttpTunnels | WaitingVisitors | FrontMetrics | Drain>()
      yield* link.value.serve((socket, header) => serveConnection(socket, header.proto === "https", header).pipe(Effect.asVoid, Effect.provide(services)))
      yield* Effect.forkScoped(keepClusterNames(tunnels, cluster, describeForCluster(config.domain)))
    }
    frontPort = front.port
    yield* Effect.logInfo(`http front listening on ${config.host}:${front.port}` + (domain === undefined ? "" : `, tunnels at NAME.${domain}`))
    if (Option.isSome(config.https) && Option.isSome(frontTls)) {
      const { secure } = frontTls.value
      const { host, port } = config.https.value
      // The raw socket is the listener's (destroyed when the handler ends), the TLS one over it ours.
      const listener = yield* listenManaged({ host, port, buffers: config.buffers ?? {} }, (raw) =>
        Effect.suspend(() => {
          const socket = secure(raw)
          return Effect.ensuring(serveConnection(socket, true), Effect.sync(() => socket.destroy()))
        }))
      httpsPort = listener.port
      yield* Effect.logInfo(`https front listening on ${host}:${httpsPort}; plain http on ${front.port} redirects there`)
    }

    let dashboardPort = Option.none<number>()
    if (Option.isSome(config.dashboard)) {
      const { host, port } = config.dashboard.value
      // Links to the front: its own address, or (listening on every address) the host name the
      // operator reached the dashboard by, with the front's port.
      const frontOrigin = (request: http.IncomingMessage) => {
        const wildcard = config.host === "0.0.0.0" || config.host === "::"
        const name = (request.headers.host ?? "localhost").replace(/:\d+$/, "")
        const frontHost = Option.match(config.https, { onNone: () => config.host, onSome: (https) => https.host })
        const frontPort = Option.isSome(config.https) ? httpsPort : front.port
        return {
          proto: Option.isSome(config.https) ? "https" : "http",
          host: wildcard ? `${name}:${frontPort}` : formatHostPort(frontHost, frontPort)
        }
      }
      const dashboard = http.createServer((request, response) => run(handleDashboardRequest(context, frontOrigin, request, response)))
      // With HTTPS on, the dashboard is served with TLS too (the front's certificates).
      const listening = Option.match(frontTls, {
        onNone: () => dashboard,
        onSome: ({ secure }) => net.createServer((socket) => dashboard.emit("connection", secure(socket)))
      })
      yield* Effect.acquireRelease(bindServer(listening, host, port), () =>
        Effect.sync(() => {
          listening.close()
          dashboard.close()
          dashboard.closeAllConnections()
        }))
      const bound = (listening.address() as net.AddressInfo).port
      dashboardPort = Option.some(bound)
      yield* Effect.logInfo(`status page of every http tunnel at ${Option.isSome(frontTls) ? "https" : "http"}://${host}:${bound}/`)
    }
    return { port: front.port, httpsPort: Option.isSome(config.https) ? Option.some(httpsPort) : Option.none(), dashboardPort }
  })

export const layer = (config: HttpFrontConfig) => Layer.scoped(HttpFront, make(config))
