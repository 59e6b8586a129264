/**
 * The client's side of opening a stream to the server: connect, answer the challenge, and for the
 * control stream ask for a tunnel. Failures carry the texts bore's client prints.
 */
import { Clock, Duration, Effect, Option, type Scope } from "effect"
import {
  AuthenticationError,
  ClosedBeforeChallenge,
  type ConnectError,
  type FrameTooLong,
  type HandshakeTimeout,
  type MessageParseError,
  ProtocolViolation,
  ServerRejected,
  type SocketError,
  type TlsVerifyError
} from "../errors.js"
import { type FramedSocket, makeFramedSocket, readFirstMessage } from "../net/framed-socket.js"
import { connect } from "../net/socket.js"
import { secureClientSocket } from "../net/tls.js"
import { tuneControlSocket } from "../net/tuning.js"
import type { Authenticator } from "../protocol/auth.js"
import { ClientMessages, decodeServerMessage, encodeClientMessage } from "../protocol/messages.js"
import type { ClientConfig } from "./config.js"

/** Why opening a stream failed; a refusal (`ServerRejected`) or an early close may be retried. */
type StreamError = ConnectError | TlsVerifyError | AuthenticationError | ServerRejected | ClosedBeforeChallenge | SocketError

/** Why asking for a tunnel failed. */
export type TunnelRequestError =
  | StreamError
  | ServerRejected
  | ProtocolViolation
  | HandshakeTimeout
  | FrameTooLong
  | MessageParseError

const NO_SECRET_REQUIRED = "expected authentication challenge, but no secret was required"

/**
 * A close after this much silence is a server without a secret giving up on our Hello: bore's
 * server closes at its 3 s handshake timeout, which races ours. A close sooner is a refusal.
 */
export const SILENT_SERVER_CLOSE = Duration.millis(2500)

/**
 * Reads the server's challenge and answers it. A server without a secret sends nothing: it waits
 * for our Hello and closes after 3 s, so silence for (nearly) that long means no secret was
 * required, and so does a first frame that is neither a Challenge nor an Error. An Error frame
 * is the server refusing us (a limit, say: `isRetryable` decides), and a close soon after we
 * connect is a busy server turning away what might be a data stream: both may be retried.
 */
const answerChallenge = (stream: FramedSocket, auth: Authenticator, firstMessage: string) =>
  Effect.gen(function*() {
    const started = yield* Clock.currentTimeMillis
    const first = yield* readFirstMessage(stream, decodeServerMessage).pipe(
      Effect.catchIf((error) => error._tag !== "SocketError", () => new AuthenticationError({ message: NO_SECRET_REQUIRED }))
    )
    if (Option.isNone(first)) {
      const silent = (yield* Clock.currentTimeMillis) - started
      if (silent >= Duration.toMillis(SILENT_SERVER_CLOSE)) return yield* new AuthenticationError({ message: NO_SECRET_REQUIRED })
      return yield* new ClosedBeforeChallenge()
    }
    switch (first.value._tag) {
      case "Challenge":
        return yield* stream.writeFrames([encodeClientMessage(ClientMessages.authenticate(auth.answer(first.value.id))), firstMessage])
      case "Error":
        return yield* ServerRejected.fromServerMessage(first.value.message)
      default:
        return yield* new AuthenticationError({ message: NO_SECRET_REQUIRED })
    }
  })

/**
 * A new stream to the server's control port, authenticated when we have a secret, with `first`
 * (Hello, Resume or Accept) sent. The answer to the challenge and `first` go in one write, as bore
 * pipelines them: a server that finds the answer wrong then sees the Accept behind it, and knows
 * not to write on a stream we have already spliced to the local service.
 */
export const openStream = (
  config: ClientConfig,
  auth: Option.Option<Authenticator>,
  first: string
): Effect.Effect<FramedSocket, StreamError, Scope.Scope> =>
  Effect.gen(function*() {
    const socket = yield* connect(config.to, config.controlPort, config.buffers)
    const stream = makeFramedSocket(
      Option.isSome(config.tls) ? yield* secureClientSocket(socket, config.to, config.controlPort, config.tls.value) : socket
    )
    if (Option.isSome(auth)) yield* answerChallenge(stream, auth.value, first)
    else yield* stream.writeFrame(first)
    return stream
  })

export interface TunnelHandshake {
  readonly control: FramedSocket
  /** The public port the server gave us. */
  readonly remotePort: number
  /** Whether a Spore server gave us back our tunnel (port and waiting visitors) by its token. */
  readonly resumed: boolean
}

/** What a client asks for: a port (0 = any), or first its old tunnel back by a lease token. */
export interface TunnelRequest {
  readonly port: number
  readonly leaseToken: Option.Option<string>
}

/**
 * Opens the control stream and asks for the tunnel: with `Resume` when we hold a lease token,
 * falling back to `Hello` if that does not work (lease run out, server restarted, or a bore
 * server, which closes on it). Then the control socket gets keepalive and TCP_USER_TIMEOUT, and
 * we offer Spore's extensions, which only a Spore server reads.
 */
export const requestTunnel = (
  config: ClientConfig,
  auth: Option.Option<Authenticator>,
  request: TunnelRequest
): Effect.Effect<TunnelHandshake, TunnelRequestError, Scope.Scope> =>
  Effect.gen(function*() {
    const resumed = Option.isSome(request.leaseToken)
      ? yield* resumeTunnel(config, auth, request.leaseToken.value)
      : Option.none()
    const handshake = Option.isSome(resumed) ? resumed.value : yield* helloTunnel(config, auth, request.port)
    tuneControlSocket(handshake.control.socket)
    yield* handshake.control.writeFrame(encodeClientMessage(ClientMessages.offerExtensions))
    return handshake
  })

/** Asks for our old tunnel by its lease token; None (and the stream closed) if that fails. */
const resumeTunnel = (config: ClientConfig, auth: Option.Option<Authenticator>, token: string) =>
  Effect.gen(function*() {
    const control = yield* openStream(config, auth, encodeClientMessage(ClientMessages.resume(token)))
    const reply = yield* Effect.option(readFirstMessage(control, decodeServerMessage))
    if (Option.isSome(reply) && Option.isSome(reply.value) && reply.value.value._tag === "Hello") {
      return Option.some<TunnelHandshake>({ control, remotePort: reply.value.value.port, resumed: true })
    }
    control.socket.destroy()
    return Option.none<TunnelHandshake>()
  })

/** Asks for a tunnel with `Hello(port)`, as bore's client does. */
const helloTunnel = (
  config: ClientConfig,
  auth: Option.Option<Authenticator>,
  port: number
): Effect.Effect<TunnelHandshake, TunnelRequestError, Scope.Scope> =>
  Effect.gen(function*() {
    const control = yield* openStream(config, auth, encodeClientMessage(ClientMessages.hello(port)))
    const reply = yield* readFirstMessage(control, decodeServerMessage)
    if (Option.isNone(reply)) return yield* new ProtocolViolation({ message: "unexpected EOF" })
    switch (reply.value._tag) {
      case "Hello":
        return { control, remotePort: reply.value.port, resumed: false }
      case "Error":
        return yield* ServerRejected.fromServerMessage(reply.value.message)
      case "Challenge":
        return yield* new AuthenticationError({
          message: "server requires authentication, but no client secret was provided"
        })
      default:
        return yield* new ProtocolViolation({ message: "unexpected initial non-hello message" })
    }
  })
