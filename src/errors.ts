/**
 * Every failure a caller can act on, as a tagged error.
 *
 * Where bore sends or prints a fixed text for a failure, `message` is that text word for word:
 * clients (bore's own and reconnecting wrappers) match on it.
 */
import { Data } from "effect"

/** A frame grew past the 256-byte limit without a NUL (bore: "frame error, invalid byte length"). */
export class FrameTooLong extends Data.TaggedError("FrameTooLong")<{}> {
  override get message() {
    return "frame error, invalid byte length"
  }
}

/** A frame was not one of the messages this side accepts (bore: "unable to parse message"). */
export class MessageParseError extends Data.TaggedError("MessageParseError")<{
  readonly reason: string
}> {
  override get message() {
    return "unable to parse message"
  }
}

/** No first frame within NETWORK_TIMEOUT (bore: "timed out waiting for initial message"). */
export class HandshakeTimeout extends Data.TaggedError("HandshakeTimeout")<{}> {
  override get message() {
    return "timed out waiting for initial message"
  }
}

/** A socket failed while reading or writing. */
export class SocketError extends Data.TaggedError("SocketError")<{
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message() {
    return this.reason
  }
}

/** An outgoing TCP connection could not be made (refused, unreachable, or 3 s passed). */
export class ConnectError extends Data.TaggedError("ConnectError")<{
  readonly host: string
  readonly port: number
  readonly reason: string
}> {
  override get message() {
    return `could not connect to ${this.host}:${this.port}: ${this.reason}`
  }
}

/** A listening socket could not be bound; `code` is the errno name (EADDRINUSE, EACCES, ...). */
export class BindError extends Data.TaggedError("BindError")<{
  readonly host: string
  readonly port: number
  readonly code: string
}> {
  override get message() {
    return `could not listen on ${this.host}:${this.port}: ${this.code}`
  }
}

/** The server could not give a client the port it asked for; `message` is bore's Error text. */
export class PortUnavailable extends Data.TaggedError("PortUnavailable")<{
  readonly message: string
}> {}

/**
 * Authentication failed. On a server, `message` is the Error text sent before closing; on a
 * client, it is the text bore's client prints.
 */
export class AuthenticationError extends Data.TaggedError("AuthenticationError")<{
  readonly message: string
}> {}

/** The server answered the handshake with an Error frame. */
export class ServerRejected extends Data.TaggedError("ServerRejected")<{
  readonly serverMessage: string
}> {
  override get message() {
    return `server error: ${this.serverMessage}`
  }
}

/**
 * The server closed a new stream, quickly, before sending its challenge: a busy server closes
 * silently a connection that might be a data stream, so this is worth trying again.
 */
export class ClosedBeforeChallenge extends Data.TaggedError("ClosedBeforeChallenge")<{}> {
  override get message() {
    return "the server closed the connection before its challenge"
  }
}

/** A warm pool stream ended, or could not be opened, before it carried a visitor; its slot opens another. */
export class PoolStreamLost extends Data.TaggedError("PoolStreamLost")<{
  readonly reason: string
}> {
  override get message() {
    return `pool stream lost: ${this.reason}`
  }
}

/** The server broke the protocol (bore's client texts: "unexpected EOF", ...). */
export class ProtocolViolation extends Data.TaggedError("ProtocolViolation")<{
  readonly message: string
}> {}

/** The control connection to the server ended after the tunnel was up. */
export class ControlConnectionLost extends Data.TaggedError("ControlConnectionLost")<{
  readonly reason: string
}> {
  override get message() {
    return `lost the control connection to the server: ${this.reason}`
  }
}

/**
 * `--proxy-protocol` needs the visitors' addresses, which only a Spore server (extensions version
 * 2 or later) sends; this server did not answer the offer in time (a bore server never does).
 */
export class VisitorAddressesUnavailable extends Data.TaggedError("VisitorAddressesUnavailable")<{
  readonly server: string
}> {
  override get message() {
    return `--proxy-protocol needs a Spore server (version 2 or later) to learn visitors' addresses, ` +
      `and ${this.server} did not answer Spore's extension offer (a bore server, or an older Spore)`
  }
}

/**
 * A server limit turned a peer away. `message` is the Error text a peer that speaks the protocol
 * is sent (bore has no limits, so these texts are Spore's own); `limit` names the flag.
 */
export class LimitReached extends Data.TaggedError("LimitReached")<{
  readonly limit: string
  readonly message: string
}> {}

/**
 * A visitor's HTTP request that the relay will not forward: `status` is the HTTP status it is
 * answered with (400 malformed, 431 head too large, 501 unsupported transfer coding, 505 version).
 */
export class HttpRequestError extends Data.TaggedError("HttpRequestError")<{
  readonly status: 400 | 431 | 501 | 505
  readonly reason: string
}> {
  override get message() {
    return this.reason
  }
}

/** The HTTP tunnel API refused a request: `status` and a text for its JSON `error` field. */
export class HttpApiError extends Data.TaggedError("HttpApiError")<{
  readonly status: number
  readonly reason: string
}> {
  override get message() {
    return this.reason
  }
}
