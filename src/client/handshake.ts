/**
 * The client's side of opening a stream to the server: connect, answer the challenge, and for the
 * control stream ask for a tunnel. Failures carry the texts bore's client prints.
 */
import { Effect, Option, type Scope } from "effect"
import {
  AuthenticationError,
  type ConnectError,
  type FrameTooLong,
  type HandshakeTimeout,
  type MessageParseError,
  ProtocolViolation,
  ServerRejected,
  type SocketError
} from "../errors.js"
import { type FramedSocket, makeFramedSocket, readFirstMessage } from "../net/framed-socket.js"
import { connect } from "../net/socket.js"
import type { Authenticator } from "../protocol/auth.js"
import { ClientMessages, decodeServerMessage, encodeClientMessage } from "../protocol/messages.js"
import type { ClientConfig } from "./config.js"

type StreamError = ConnectError | AuthenticationError | SocketError

/**
 * Reads the server's challenge and answers it. A server without a secret sends nothing and closes
 * after 3 s; whichever comes first, the user learns that no secret was required.
 */
const answerChallenge = (stream: FramedSocket, auth: Authenticator) =>
  Effect.gen(function*() {
    const first = yield* readFirstMessage(stream, decodeServerMessage).pipe(
      Effect.catchIf((error) => error._tag !== "SocketError", () => Effect.succeedNone)
    )
    if (Option.isNone(first) || first.value._tag !== "Challenge") {
      return yield* new AuthenticationError({ message: "expected authentication challenge, but no secret was required" })
    }
    yield* stream.writeFrame(encodeClientMessage(ClientMessages.authenticate(auth.answer(first.value.id))))
  })

/** A new stream to the server's control port, authenticated when we have a secret. */
export const openStream = (
  config: ClientConfig,
  auth: Option.Option<Authenticator>
): Effect.Effect<FramedSocket, StreamError, Scope.Scope> =>
  Effect.gen(function*() {
    const stream = makeFramedSocket(yield* connect(config.to, config.controlPort))
    if (Option.isSome(auth)) yield* answerChallenge(stream, auth.value)
    return stream
  })

export interface TunnelHandshake {
  readonly control: FramedSocket
  /** The public port the server gave us. */
  readonly remotePort: number
}

/** Opens the control stream and asks for the tunnel with `Hello`. */
export const requestTunnel = (
  config: ClientConfig,
  auth: Option.Option<Authenticator>
): Effect.Effect<
  TunnelHandshake,
  StreamError | ServerRejected | ProtocolViolation | HandshakeTimeout | FrameTooLong | MessageParseError,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const control = yield* openStream(config, auth)
    yield* control.writeFrame(encodeClientMessage(ClientMessages.hello(config.port)))
    const reply = yield* readFirstMessage(control, decodeServerMessage)
    if (Option.isNone(reply)) return yield* new ProtocolViolation({ message: "unexpected EOF" })
    switch (reply.value._tag) {
      case "Hello":
        return { control, remotePort: reply.value.port }
      case "Error":
        return yield* new ServerRejected({ serverMessage: reply.value.message })
      case "Challenge":
        return yield* new AuthenticationError({
          message: "server requires authentication, but no client secret was provided"
        })
      default:
        return yield* new ProtocolViolation({ message: "unexpected initial non-hello message" })
    }
  })
