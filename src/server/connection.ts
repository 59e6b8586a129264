/**
 * One TCP connection to the server's control port: a new tunnel (`Hello`), a returning Spore
 * client (`Resume`), or a data stream for a waiting visitor (`Accept`), after the challenge when
 * the server has a secret.
 *
 * Reactions follow bore exactly: a failed handshake gets an Error frame with bore's text and a
 * close; anything wrong after it (bad frame, unknown id, a second Authenticate) a silent close.
 */
import type * as net from "node:net"
import { Effect, Option } from "effect"
import { AuthenticationError, type PortUnavailable } from "../errors.js"
import { type FramedSocket, makeFramedSocket, readFirstMessage } from "../net/framed-socket.js"
import { splice } from "../net/splice.js"
import type { Authenticator } from "../protocol/auth.js"
import { decodeClientMessage, encodeServerMessage, ServerMessages } from "../protocol/messages.js"
import { randomUuid, type Uuid } from "../protocol/uuid.js"
import { PendingRegistry } from "./pending-registry.js"
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

/** Hands a claimed visitor to the data stream that claimed it and copies bytes both ways. */
const forwardVisitor = (stream: FramedSocket, id: Uuid) =>
  Effect.gen(function*() {
    const registry = yield* PendingRegistry
    // Claimed inside acquireRelease: from here on this fiber owns the visitor's socket.
    const visitor = yield* Effect.acquireRelease(
      registry.claim(id),
      (claimed) => Effect.sync(() => Option.map(claimed, (socket) => socket.destroy()))
    )
    if (Option.isNone(visitor)) {
      return yield* Effect.logWarning(`Accept for unknown visitor ${id}; closed`)
    }
    yield* Effect.logDebug(`forwarding visitor ${id}`)
    // Bytes the client sent right after its Accept frame go to the visitor first.
    yield* splice(stream.socket, visitor.value, stream.release())
  })

const rejectPort = (stream: FramedSocket) => (error: PortUnavailable) =>
  Effect.zipRight(
    Effect.logWarning(`tunnel refused: ${error.message}`),
    stream.writeFrame(encodeServerMessage(ServerMessages.error(error.message))).pipe(Effect.ignore)
  )

/** Sent when a Resume names no tunnel (expired lease, restarted server): the client falls back. */
export const NO_TUNNEL_TO_RESUME = "no tunnel to resume"

export const handleConnection = (auth: Option.Option<Authenticator>) =>
(socket: net.Socket): Effect.Effect<void, never, PendingRegistry | Tunnels> =>
  Effect.gen(function*() {
    const tunnels = yield* Tunnels
    const stream = makeFramedSocket(socket)
    if (Option.isSome(auth)) yield* authenticate(stream, auth.value)

    const first = yield* readFirstMessage(stream, decodeClientMessage)
    if (Option.isNone(first)) return
    const message = first.value
    switch (message._tag) {
      case "Hello":
        return yield* tunnels.open(message.port, stream).pipe(Effect.catchTag("PortUnavailable", rejectPort(stream)))
      case "Resume":
        if (yield* tunnels.resume(message.token, stream)) return
        yield* Effect.logInfo("Resume for no known tunnel; refused")
        return yield* stream.writeFrame(encodeServerMessage(ServerMessages.error(NO_TUNNEL_TO_RESUME)))
      case "Accept":
        return yield* forwardVisitor(stream, message.id)
      case "Authenticate":
      case "Spore":
        return yield* Effect.logWarning(`unexpected ${message._tag}; closed`)
    }
  }).pipe(
    Effect.catchAll((error) => Effect.logDebug(`connection closed: ${error.message}`)),
    Effect.scoped,
    Effect.annotateLogs({ peer: `${socket.remoteAddress}:${socket.remotePort}` })
  )
