/**
 * Helpers for tests that move real bytes over 127.0.0.1.
 */
import type { ClientTls } from "../../src/net/tls.js"
import type { ApiKeys } from "../../src/front/api-keys.js"
import type { HttpFrontConfig } from "../../src/front/front.js"
import { createHash, randomBytes } from "node:crypto"
import * as net from "node:net"
import { Duration, Effect, Option, Redacted, type Scope } from "effect"
import type { ClientConfig } from "../../src/client/config.js"
import type { ProxyProtocolVersion } from "../../src/client/proxy-header.js"
import { runTunnel } from "./client.js"
import { listen } from "../../src/net/listener.js"
import type { SocketBuffers } from "../../src/net/tuning.js"
import { makeVisitorFilter } from "../../src/visitors/visitor-filter.js"
import { DEFAULT_LIMITS, type ServerLimits } from "../../src/limits/limits.js"
import { type ServerProgramConfig, startServer as startServerProgram } from "../../src/cli/layers.js"

export const LOOPBACK = "127.0.0.1"

/** A range of tunnel ports for tests; Hello(0) picks randomly in it and retries if taken. */
export const TEST_PORT_RANGE = { minPort: 40000, maxPort: 49999 }

export const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")
export const randomPayload = (size: number) => randomBytes(size)

/**
 * An echo service on 127.0.0.1 that honours half-close: it echoes until the peer ends its
 * side, then ends its own.
 */
export const echoService = Effect.map(
  listen({ host: LOOPBACK, port: 0 }, (socket) =>
    Effect.async<void>((resume) => {
      socket.pipe(socket)
      socket.once("close", () => resume(Effect.void))
      return Effect.sync(() => socket.destroy())
    })),
  (listener) => listener.port
)

/** A port on 127.0.0.1 that nothing listens on right now. */
export const freePort = Effect.scoped(Effect.map(listen({ host: LOOPBACK, port: 0 }, () => Effect.void), (l) => l.port))

export interface TestServerOptions {
  secret?: string
  minPort?: number
  maxPort?: number
  leaseSeconds?: number
  controlPort?: number
  buffers?: SocketBuffers
  bindTunnels?: string
  limits?: Partial<ServerLimits>
  /** Serve metrics on this port of 127.0.0.1 (0: any). */
  metricsPort?: number
  /** Also serve TLS on an ephemeral port with this certificate (see test/support/tls.ts). */
  tls?: { certFile: string; keyFile: string; require?: boolean }
  /** Start the HTTP front on 127.0.0.1 (port 0 unless given) with these settings. */
  http?: Partial<Omit<HttpFrontConfig, "keys" | "limits">> & { readonly keys: ApiKeys }
}

/** A Spore server on 127.0.0.1 with an ephemeral control port, for the rest of the scope. */
export const startRunningServer = (options: TestServerOptions = {}) => {
  const config: ServerProgramConfig = {
    minPort: options.minPort ?? TEST_PORT_RANGE.minPort,
    maxPort: options.maxPort ?? TEST_PORT_RANGE.maxPort,
    secret: Option.map(Option.fromNullable(options.secret), Redacted.make),
    bindAddr: LOOPBACK,
    bindTunnels: options.bindTunnels ?? LOOPBACK,
    controlPort: options.controlPort ?? 0,
    lease: Duration.seconds(options.leaseSeconds ?? 30),
    cluster: Option.none(),
    buffers: options.buffers ?? {},
    limits: { ...DEFAULT_LIMITS, visitors: makeVisitorFilter([], []), ...options.limits },
    // In-process servers close with their test's scope, under the TestClock: no waiting.
    drain: Duration.zero,
    metricsAddr: Option.fromNullable(options.metricsPort).pipe(Option.map((port) => ({ host: LOOPBACK, port }))),
    tls: Option.fromNullable(options.tls).pipe(Option.map((tls) => ({ ...tls, port: 0, require: tls.require ?? false }))),
    http: Option.fromNullable(options.http).pipe(Option.map((http) => ({
      host: LOOPBACK,
      port: 0,
      domain: Option.none(),
      dashboard: Option.none(),
      https: Option.none(),
      ...http,
      limits: { ...DEFAULT_LIMITS, visitors: makeVisitorFilter([], []), ...options.limits }
    })))
  }
  return startServerProgram(config)
}

/** Like `startRunningServer`; returns the control port. */
export const startServer = (options: TestServerOptions = {}) =>
  Effect.map(startRunningServer(options), (server) => server.controlPort)

export const clientConfig = (
  controlPort: number,
  localPort: number,
  options: {
    secret?: string
    port?: number
    maxReconnectDelay?: number
    buffers?: SocketBuffers
    proxyProtocol?: ProxyProtocolVersion
    /** Warm pool streams; 0 unless asked, so that the plain (bore's) path is what is tested. */
    pool?: number
    /** Connect with TLS (controlPort then being the server's TLS port). */
    tls?: ClientTls
  } = {}
): ClientConfig => ({
  localHost: LOOPBACK,
  localPort,
  to: LOOPBACK,
  port: options.port ?? 0,
  secret: Option.map(Option.fromNullable(options.secret), Redacted.make),
  controlPort,
  reconnect: true,
  maxReconnectDelay: Duration.seconds(options.maxReconnectDelay ?? 64),
  buffers: options.buffers ?? {},
  drain: Duration.zero,
  pool: options.pool ?? 0,
  proxyProtocol: Option.fromNullable(options.proxyProtocol),
  tls: Option.fromNullable(options.tls)
})

/**
 * Opens a tunnel (without reconnection) and serves it in the background for the rest of the
 * scope; returns its public port. Fails as the client does if the tunnel does not open.
 */
export const startTunnel = (config: ClientConfig) => Effect.map(runTunnel(config), (tunnel) => tunnel.port)

/**
 * A TCP connection to host:port (127.0.0.1 by default), destroyed when the scope closes. `from`
 * picks the source address (any of 127.0.0.0/8 works on loopback), to act as another peer.
 */
export const dial = (port: number, host: string = LOOPBACK, from?: string): Effect.Effect<net.Socket, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<net.Socket, Error>((resume) => {
      const socket = net.connect({ host, port, allowHalfOpen: true, ...(from === undefined ? {} : { localAddress: from }) })
      socket.once("connect", () => resume(Effect.succeed(socket)))
      socket.once("error", (error) => resume(Effect.fail(error)))
    }),
    (socket) => Effect.sync(() => socket.destroy())
  )

/**
 * A local service on 127.0.0.1 that hashes what each visitor sends and, once the visitor ends its
 * side, answers `<length> <sha256 hex>` and ends; `received` counts the bytes of all visitors.
 */
export const hashingService = Effect.acquireRelease(
  Effect.async<{ server: net.Server; port: number; received: () => number }>((resume) => {
    let received = 0
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      const hash = createHash("sha256")
      let length = 0
      socket.on("data", (chunk: Buffer) => {
        hash.update(chunk)
        length += chunk.length
        received += chunk.length
      })
      socket.on("end", () => socket.end(`${length} ${hash.digest("hex")}`))
      socket.on("error", () => socket.destroy())
    })
    server.listen(0, LOOPBACK, () =>
      resume(Effect.succeed({ server, port: (server.address() as net.AddressInfo).port, received: () => received })))
  }),
  ({ server }) => Effect.sync(() => server.close())
)

/** Exactly `count` bytes (or more, if they came in one chunk) from `socket`, then pauses it. */
export const readExactly = (socket: net.Socket, count: number) =>
  Effect.async<Buffer>((resume) => {
    const chunks: Array<Buffer> = []
    let length = 0
    const onData = (chunk: Buffer) => {
      chunks.push(chunk)
      length += chunk.length
      if (length >= count) {
        socket.off("data", onData)
        socket.pause()
        resume(Effect.succeed(Buffer.concat(chunks)))
      }
    }
    socket.on("data", onData)
    // A wire peer leaves its socket paused between frames.
    socket.resume()
  })

/** Everything the peer sends until it ends its side. */
export const readAll = (socket: net.Socket): Effect.Effect<Buffer, Error> =>
  Effect.async<Buffer, Error>((resume) => {
    const chunks: Array<Buffer> = []
    socket.on("data", (chunk: Buffer) => chunks.push(chunk))
    socket.once("end", () => resume(Effect.succeed(Buffer.concat(chunks))))
    socket.once("error", (error) => resume(Effect.fail(error)))
    socket.once("close", () => resume(Effect.succeed(Buffer.concat(chunks))))
  })

/** Sends `payload` on a fresh connection, half-closes, and returns everything received back. */
export const roundTrip = (port: number, payload: Uint8Array) =>
  Effect.scoped(Effect.gen(function*() {
    const socket = yield* dial(port)
    const received = readAll(socket)
    socket.end(payload)
    return yield* received
  }))

/** Two ends of one loopback TCP connection, both destroyed when the scope closes. */
export const socketPair = Effect.gen(function*() {
  const accepted = yield* Effect.acquireRelease(
    Effect.async<{ server: net.Server; port: number; next: Promise<net.Socket> }>((resume) => {
      const server = net.createServer({ allowHalfOpen: true })
      const next = new Promise<net.Socket>((onSocket) => server.once("connection", onSocket))
      server.listen(0, LOOPBACK, () => resume(Effect.succeed({ server, port: (server.address() as net.AddressInfo).port, next })))
    }),
    ({ server }) => Effect.sync(() => server.close())
  )
  const near = yield* dial(accepted.port)
  const far = yield* Effect.acquireRelease(Effect.promise(() => accepted.next), (s) => Effect.sync(() => s.destroy()))
  return { near, far }
})

/** Resolves when the socket has been closed by the peer or destroyed. */
export const closed = (socket: net.Socket): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (socket.destroyed || socket.readableEnded) return resume(Effect.void)
    socket.resume()
    socket.once("end", () => resume(Effect.void))
    socket.once("close", () => resume(Effect.void))
  })
