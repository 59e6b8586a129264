/**
 * One visitor on the client side: a stream to the server that carries it, and a connection to
 * the local service, spliced together. The stream is either opened for the visitor (bore's way:
 * `Accept` after the server's `Connection`) or was waiting in the warm pool (see WarmPool).
 */
import type * as net from "node:net"
import { Effect, Option, type Scope } from "effect"
import type { FramedSocket } from "../net/framed-socket.js"
import { beginConnect, connect } from "../net/socket.js"
import { type Drain, tracked } from "../net/drain.js"
import type { Authenticator } from "../protocol/auth.js"
import { ClientMessages, encodeClientMessage } from "../protocol/messages.js"
import type { Uuid } from "../protocol/uuid.js"
import { ClientMetrics, tunnelLabel } from "./client-metrics.js"
import type { ClientConfig } from "./config.js"
import { openStream } from "./handshake.js"
import { LocalRelay } from "./local-relay.js"
import { encodeProxyHeader, type VisitorAddresses } from "./proxy-header.js"

/** What serving a visitor needs from the program: its drain, its metrics and how to join the two sockets. */
export type VisitorServices = Drain | ClientMetrics | LocalRelay

/**
 * Serves visitor `id` until both directions are done. If the local service cannot be reached the
 * data stream is closed, so the visitor sees a close; the tunnel itself carries on.
 */
export const forwardVisitor = (
  config: ClientConfig,
  auth: Option.Option<Authenticator>,
  id: Uuid,
  addresses: Option.Option<VisitorAddresses>
): Effect.Effect<void, never, VisitorServices> =>
  Effect.gen(function*() {
    // The local connection is made while the data stream is opened, not after (bore's order):
    // a new visitor waits for one round trip less. If it fails, Accept has still been sent, so
    // the visitor sees a close at once rather than waiting out the 10 s expiry.
    const local = yield* beginConnect(config.localHost, config.localPort, config.buffers)
    const stream = yield* openStream(config, auth, encodeClientMessage(ClientMessages.accept(id)))
    yield* joinLocal(config, stream, yield* local.connected, addresses)
  }).pipe(dropOnFailure(config, id), Effect.scoped)

/**
 * Serves visitor `id`, announced on the warm pool stream `stream` (which the scope owns), until
 * both directions are done.
 */
export const forwardPooledVisitor = (
  config: ClientConfig,
  stream: FramedSocket,
  id: Uuid,
  addresses: Option.Option<VisitorAddresses>
): Effect.Effect<void, never, VisitorServices | Scope.Scope> =>
  Effect.flatMap(connect(config.localHost, config.localPort, config.buffers), (local) => joinLocal(config, stream, local, addresses)).pipe(
    dropOnFailure(config, id)
  )

/** Splices the server's stream to the local service, counted, after the PROXY header if asked for. */
const joinLocal = (config: ClientConfig, stream: FramedSocket, local: net.Socket, addresses: Option.Option<VisitorAddresses>) =>
  Effect.gen(function*() {
    const metrics = yield* ClientMetrics
    const labels = tunnelLabel(config)
    metrics.visitors.inc(labels)
    metrics.visitorsActive.inc(labels)
    metrics.traffic.track(labels, local, "bytesWritten")
    yield* Effect.addFinalizer(() => Effect.sync(() => metrics.visitorsActive.dec(labels)))
    // The PROXY header goes first, then visitor bytes that arrived with the server's frames.
    if (Option.isSome(config.proxyProtocol)) {
      local.write(encodeProxyHeader(config.proxyProtocol.value, Option.getOrUndefined(addresses)))
    }
    const relay = yield* LocalRelay
    yield* tracked(relay.join(stream.socket, local, stream.release()))
  })

/** A visitor that cannot be served is counted and logged; the tunnel carries on. */
/** The config's hint, for a local host whose name does not resolve. */
const hintFor = (config: ClientConfig, error: { readonly message: string }) =>
  config.unreachableHint !== undefined && /ENOTFOUND|EAI_AGAIN/.test(error.message) ? `; ${config.unreachableHint}` : ""

const dropOnFailure = (config: ClientConfig, id: Uuid) =>
<R>(effect: Effect.Effect<void, { readonly message: string }, R>): Effect.Effect<void, never, R | ClientMetrics> =>
  Effect.catchAll(effect, (error) =>
    Effect.zipRight(
      Effect.map(ClientMetrics, (metrics) => metrics.visitorsFailed.inc(tunnelLabel(config))),
      // Annotated line by line, not as a region, which would hold a copy of the fiber's refs
      // for the life of every connection.
      Effect.annotateLogs(Effect.logWarning(`visitor ${id} dropped: ${error.message}${hintFor(config, error)}`), { conn: id })
    ))
