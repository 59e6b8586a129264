/**
 * One TCP connection to the server's control port: a new tunnel (`Hello`), a returning Spore
 * client (`Resume`), or a data stream for a waiting visitor (`Accept`), after the challenge when
 * the server has a secret.
 *
 * Reactions follow bore exactly: a failed handshake gets an Error frame with bore's text and a
 * close; anything wrong after it (bad frame, unknown id, a second Authenticate) a silent close.
 * Spore's limits (see Admission) add Error frames of their own: a connection over a limit is
 * told why and closed.
 */
import type * as net from "node:net"
import { Duration, Effect, Option } from "effect"
import { AuthenticationError, type LimitReached, type PortUnavailable } from "../errors.js"
import { type FramedSocket, makeFramedSocket, readFirstMessage } from "../net/framed-socket.js"
import { tracked } from "../net/drain.js"
import { splice } from "../net/splice.js"
import type { Authenticator } from "../protocol/auth.js"
import { type ClientMessage, decodeClientMessage, encodeServerMessage, ServerMessages } from "../protocol/messages.js"
import { randomUuid, type Uuid } from "../protocol/uuid.js"
import { Admission } from "./admission.js"
import { PendingRegistry } from "./pending-registry.js"
import { ServerMetrics } from "./server-metrics.js"
import { Tunnels } from "./tunnels.js"

const NO_SECRET_GIVEN = "server requires secret, but no secret was provided"

/** Challenge/response; fails with the text bore sends when the client does not prove the secret. */
const authenticate = (stream: FramedSocket, auth: Authenticator) =>
  Effect.gen(function*() {
    const challenge = yield* randomUuid
    yield* stream.writeFrame(encodeServerMessage(ServerMessages.challenge(challenge)))
    const reply = yield* readFirstMessage(stream, decodeClientMessage)
    if (Option.isNone(reply) || reply.value._tag !== "Authenticate") {
      return yield* new AuthenticationError({ message: NO_SECRET_GIVEN })
    }
    if (!auth.validate(challenge, reply.value.answer)) {
      return yield* new AuthenticationError({ message: "invalid secret" })
    }
  }).pipe(
    Effect.tapError((error) =>
      error._tag === "SocketError"
        ? Effect.void
        : Effect.zipRight(
          Effect.logWarning(`handshake failed: ${error.message}`),
          stream.writeFrame(encodeServerMessage(ServerMessages.error(error.message))).pipe(Effect.ignore)
        ))
  )

/**
 * Hands a claimed visitor to the data stream that claimed it and copies bytes both ways.
 *
 * Its log lines are annotated one by one, not as a region: a region would keep a copy of the
 * fiber's refs for as long as the connection lives (about 2 KiB each, measured), and there are
 * thousands of these.
 */
const forwardVisitor = (stream: FramedSocket, id: Uuid, peer: string) =>
  Effect.gen(function*() {
    const registry = yield* PendingRegistry
    const metrics = yield* ServerMetrics
    // Claimed inside acquireRelease: from here on this fiber owns the visitor's socket, and
    // counts it among its tunnel's active visitors until it is closed.
    const visitor = yield* Effect.acquireRelease(
      Effect.tap(registry.claim(id), (claimed) => {
        if (Option.isSome(claimed)) metrics.visitorsActive.inc()
      }),
      (claimed) =>
        Effect.sync(() =>
          Option.map(claimed, ({ counts, visitor: socket }) => {
            socket.destroy()
            counts.active--
            metrics.visitorsActive.dec()
          })
        )
    )
    if (Option.isNone(visitor)) {
      metrics.handshakeFailures.inc({ reason: "unknown-id" })
      return yield* Effect.logWarning(`Accept for unknown visitor ${id}; closed`).pipe(Effect.annotateLogs({ peer, conn: id }))
    }
    const { visitor: socket, waited } = visitor.value
    const tunnel = String(socket.localPort)
    metrics.claimSeconds.observe({}, Duration.toMillis(waited) / 1000)
    metrics.traffic.track({ port: tunnel }, socket, "bytesRead")
    yield* Effect.logDebug(`forwarding visitor ${id}`).pipe(Effect.annotateLogs({ peer, conn: id, tunnel }))
    // Bytes the client sent right after its Accept frame go to the visitor first.
    yield* tracked(splice(stream.socket, visitor.value.visitor, stream.release()))
  })

const rejectPort = (stream: FramedSocket) => (error: PortUnavailable) =>
  Effect.zipRight(
    Effect.logWarning(`tunnel refused: ${error.message}`),
    stream.writeFrame(encodeServerMessage(ServerMessages.error(error.message))).pipe(Effect.ignore)
  )

/** Tells a peer turned away by a limit why (the limit has already logged it). */
const sendRefusal = (stream: FramedSocket) => (error: LimitReached) =>
  stream.writeFrame(encodeServerMessage(ServerMessages.error(error.message))).pipe(Effect.ignore)

/** The `reason` label of spore_handshake_failures_total for a connection that ended in `error`. */
const failureReason = (error: { readonly _tag: string; readonly message: string }): string => {
  switch (error._tag) {
    case "HandshakeTimeout":
      return "timeout"
    case "FrameTooLong":
      return "frame-too-long"
    case "MessageParseError":
      return "malformed"
    case "AuthenticationError":
      return error.message === "invalid secret" ? "invalid-secret" : "no-secret"
    case "LimitReached":
      return (error as LimitReached).limit
    case "PortUnavailable":
      return "port-unavailable"
    default:
      return "socket-error"
  }
}

/** Sent when a Resume names no tunnel (expired lease, restarted server): the client falls back. */
export const NO_TUNNEL_TO_RESUME = "no tunnel to resume"

export const handleConnection = (auth: Option.Option<Authenticator>) =>
(socket: net.Socket): Effect.Effect<void, never, Admission | PendingRegistry | ServerMetrics | Tunnels> =>
  Effect.suspend(() => {
    const stream = makeFramedSocket(socket)
    const peer = `${socket.remoteAddress}:${socket.remotePort}`
    return serveConnection(auth, stream, socket.remoteAddress ?? "an unknown address", peer).pipe(
      Effect.tapError((error) => Effect.map(ServerMetrics, (metrics) => metrics.handshakeFailures.inc({ reason: failureReason(error) }))),
      Effect.catchTag("LimitReached", (error) => Effect.annotateLogs(sendRefusal(stream)(error), { peer })),
      Effect.catchAll((error) => Effect.annotateLogs(Effect.logDebug(`connection closed: ${error.message}`), { peer })),
      Effect.scoped
    )
  })

const serveConnection = (auth: Option.Option<Authenticator>, stream: FramedSocket, address: string, peer: string) =>
  Effect.gen(function*() {
    const admission = yield* Admission
    // The handshake holds one of the limited handshake slots until its first message is read.
    const first = yield* Effect.scoped(Effect.gen(function*() {
      yield* admission.enterHandshake(address)
      if (Option.isSome(auth)) {
        yield* authenticate(stream, auth.value).pipe(
          Effect.tapErrorTag("AuthenticationError", () => admission.authFailed(address))
        )
      }
      return yield* readFirstMessage(stream, decodeClientMessage)
    })).pipe(Effect.annotateLogs({ peer }))
    if (Option.isNone(first)) return
    // Data streams are the many: they annotate their own lines (see forwardVisitor).
    if (first.value._tag === "Accept") return yield* forwardVisitor(stream, first.value.id, peer)
    return yield* serveControlMessage(first.value, stream, address).pipe(Effect.annotateLogs({ peer }))
  })

/** A first message that is not an Accept: a new tunnel, a resumed one, or a mistake. */
const serveControlMessage = (message: Exclude<ClientMessage, { _tag: "Accept" }>, stream: FramedSocket, address: string) =>
  Effect.gen(function*() {
    const admission = yield* Admission
    const tunnels = yield* Tunnels
    switch (message._tag) {
      case "Hello":
        yield* admission.holdControl(address)
        return yield* tunnels.open(message.port, stream).pipe(
          Effect.tapErrorTag("PortUnavailable", () => Effect.map(ServerMetrics, (metrics) => metrics.handshakeFailures.inc({ reason: "port-unavailable" }))),
          Effect.catchTag("PortUnavailable", rejectPort(stream))
        )
      case "Resume":
        yield* admission.holdControl(address)
        if (yield* tunnels.resume(message.token, stream)) return
        yield* Effect.map(ServerMetrics, (metrics) => metrics.handshakeFailures.inc({ reason: "no-tunnel-to-resume" }))
        yield* Effect.logInfo("Resume for no known tunnel; refused")
        return yield* stream.writeFrame(encodeServerMessage(ServerMessages.error(NO_TUNNEL_TO_RESUME)))
      case "Authenticate":
      case "Spore":
        yield* Effect.map(ServerMetrics, (metrics) => metrics.handshakeFailures.inc({ reason: "unexpected-message" }))
        return yield* Effect.logWarning(`unexpected ${message._tag}; closed`)
    }
  })
