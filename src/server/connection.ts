/**
 * One TCP connection to the server's control port: a new tunnel (`Hello`), a returning Spore
 * client (`Resume`), a data stream for a waiting visitor (`Accept`), or a Spore client's warm
 * data stream for visitors to come (`Pool`), after the challenge when the server has a secret.
 *
 * Reactions follow bore exactly: a failed handshake gets an Error frame with bore's text and a
 * close; anything wrong after it (bad frame, unknown id, a second Authenticate) a silent close.
 * Spore's limits (see Admission) add Error frames of their own: a Hello or Resume over a limit
 * is told why and closed. Nothing is ever written to a connection that could still be a data
 * stream (its client has spliced it to a local service): a limit that must close one before its
 * first message closes it silently.
 */
import type * as net from "node:net"
import { Duration, Effect, Either, Option } from "effect"
import { LimitTexts, type LimitReached, type PortUnavailable, SecretRejected } from "../errors.js"
import { type FramedSocket, makeFramedSocket, readFirstMessage } from "../net/framed-socket.js"
import { type Drain, tracked } from "../net/drain.js"
import { splice } from "../net/splice.js"
import type { Authenticator } from "../protocol/auth.js"
import { type ClientMessage, decodeClientMessage, encodeServerMessage, ServerMessages } from "../protocol/messages.js"
import { randomUuid, type Uuid } from "../protocol/uuid.js"
import { Admission } from "./admission.js"
import { PendingRegistry } from "../visitors/pending-registry.js"
import { ServerMetrics } from "./server-metrics.js"
import { Tunnels } from "./tunnels.js"

/** Writes bore's Error frame for a failed handshake (a peer that has gone cannot be told). */
const tell = (stream: FramedSocket, text: string) =>
  stream.writeFrame(encodeServerMessage(ServerMessages.error(text))).pipe(Effect.ignore)

/**
 * Challenge/response; fails with the text bore sends when the client does not prove the secret.
 *
 * Only a wrong answer counts towards the address's lockout: a peer that closes or falls silent
 * during the challenge (a health check, a port scan) has guessed nothing.
 *
 * A wrong answer is told `invalid secret` as bore does, with two exceptions. A Spore client sends
 * its answer and its Accept in one write and has spliced the stream to its local service by
 * then: when an Accept has arrived behind the answer, the stream is closed silently, so that not
 * one byte of ours reaches that service. And an address already locked out is told that instead,
 * whether its answer was right or wrong, so that the lockout is no oracle for guessing.
 */
const authenticate = (stream: FramedSocket, auth: Authenticator, address: string, peer: string) =>
  Effect.gen(function*() {
    const admission = yield* Admission
    // Annotated line by line: a region over every handshake would cost each connection a
    // FiberRef patch for lines that are rare.
    const warn = (text: string) => Effect.annotateLogs(Effect.logWarning(text), { peer })
    const challenge = yield* randomUuid
    yield* stream.writeFrame(encodeServerMessage(ServerMessages.challenge(challenge)))
    const reply = yield* readFirstMessage(stream, decodeClientMessage).pipe(
      Effect.tapError((error) => error._tag === "SocketError" ? Effect.void : tell(stream, error.message))
    )
    if (Option.isNone(reply) || reply.value._tag !== "Authenticate") {
      // A peer that closes during the challenge (a health check, a port scan, a flood) is no
      // news, and a flood of them must not flood the log; one that speaks without the secret is
      // a misconfigured client, worth a warning.
      const rejected = new SecretRejected({ reason: "no-secret" })
      const line = `handshake failed: ${rejected.message}`
      yield* Option.isNone(reply) ? Effect.annotateLogs(Effect.logDebug(line), { peer }) : warn(line)
      yield* tell(stream, rejected.message)
      return yield* rejected
    }
    if (auth.validate(challenge, reply.value.answer)) return
    const rejected = new SecretRejected({ reason: "invalid-secret" })
    const wasLockedOut = yield* admission.isLockedOut(address)
    yield* admission.authFailed(address)
    const next = Option.flatMap(stream.takeArrivedFrame(), (frame) => Either.getRight(decodeClientMessage(frame)))
    if (Option.isSome(next) && next.value._tag === "Accept") {
      yield* warn("handshake failed: invalid secret (a data stream; closed without a reply)")
    } else {
      yield* warn(`handshake failed: ${rejected.message}`)
      yield* tell(stream, wasLockedOut ? LimitTexts.authLockout : rejected.message)
    }
    return yield* rejected
  })

/**
 * Hands a claimed visitor to the data stream that claimed it and copies bytes both ways.
 *
 * Its log lines are annotated one by one, not as a region: a region would keep a copy of the
 * fiber's refs for as long as the connection lives (about 2 KiB each, measured), and there are
 * thousands of these.
 */
const spliceClaimedVisitor = (stream: FramedSocket, id: Uuid, peer: string) =>
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
    yield* Effect.whenLogLevel(Effect.logDebug(`forwarding visitor ${id}`).pipe(Effect.annotateLogs({ peer, conn: id, tunnel })), "Debug")
    // Bytes the client sent right after its Accept frame go to the visitor first.
    yield* tracked(splice(stream.socket, visitor.value.visitor, stream.release()))
  })

/**
 * A warm pool stream: idle until a visitor is handed to it. One that is not taken is closed
 * without a word, like any stream that might be a data stream.
 */
const poolStream = (stream: FramedSocket, token: string) =>
  Effect.gen(function*() {
    const tunnels = yield* Tunnels
    if (yield* tunnels.pool(token, stream)) return
    yield* Effect.map(ServerMetrics, (metrics) => metrics.handshakeFailures.inc({ reason: "pool-refused" }))
  })

const rejectPort = (stream: FramedSocket) => (error: PortUnavailable) =>
  Effect.zipRight(
    Effect.logWarning(`tunnel refused: ${error.message}`),
    stream.writeFrame(encodeServerMessage(ServerMessages.error(error.message))).pipe(Effect.ignore)
  )

/**
 * Tells a peer turned away by a limit why (the limit has already logged it). Limits are checked
 * only once a Hello or Resume has been read, so this never reaches a data stream.
 */
const sendRefusal = (stream: FramedSocket) => (error: LimitReached) => tell(stream, error.message)

/** The `reason` label of spore_handshake_failures_total for a connection that ended in `error`. */
const failureReason = (error: { readonly _tag: string; readonly message: string }): string => {
  switch (error._tag) {
    case "SecretRejected":
      return (error as SecretRejected).reason
    case "HandshakeTimeout":
      return "timeout"
    case "FrameTooLong":
      return "frame-too-long"
    case "MessageParseError":
      return "malformed"
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
(socket: net.Socket): Effect.Effect<void, never, Admission | Drain | PendingRegistry | ServerMetrics | Tunnels> =>
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
    // The handshake holds a slot of the handshake pool until its first message is read; if the
    // pool needs the slot for a newer connection first, this one is closed without a word.
    const first = yield* Effect.scoped(Effect.gen(function*() {
      yield* admission.enterHandshake(address, () => stream.socket.destroy())
      if (Option.isSome(auth)) yield* authenticate(stream, auth.value, address, peer)
      return yield* readFirstMessage(stream, decodeClientMessage)
    }))
    if (Option.isNone(first)) return
    // Data streams are the many: they annotate their own lines (see spliceClaimedVisitor).
    if (first.value._tag === "Accept") return yield* spliceClaimedVisitor(stream, first.value.id, peer)
    if (first.value._tag === "Pool") return yield* poolStream(stream, first.value.token)
    return yield* serveControlMessage(first.value, stream, address).pipe(Effect.annotateLogs({ peer }))
  })

/** A first message that is not an Accept or Pool: a new tunnel, a resumed one, or a mistake. */
const serveControlMessage = (message: Exclude<ClientMessage, { _tag: "Accept" | "Pool" }>, stream: FramedSocket, address: string) =>
  Effect.gen(function*() {
    const admission = yield* Admission
    const tunnels = yield* Tunnels
    if (message._tag === "Hello" || message._tag === "Resume") yield* admission.checkLockout(address)
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
