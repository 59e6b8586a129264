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

/** A certificate, key or CA file could not be used (at start, or on a reload, which keeps the old one). */
export class TlsConfigError extends Data.TaggedError("TlsConfigError")<{
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `TLS: ${this.path}: ${this.reason}`
  }
}

/**
 * The server did not prove it is the one asked for: a name that does not match, a CA not trusted,
 * a certificate other than the pinned one. Fatal: retrying cannot mend it, and plaintext is never
 * tried instead.
 */
export class TlsVerifyError extends Data.TaggedError("TlsVerifyError")<{
  readonly host: string
  readonly reason: string
}> {
  override get message() {
    return `the server at ${this.host} failed TLS verification: ${this.reason}`
  }
}

/** A listening socket could not be bound; `code` is the errno name (EADDRINUSE, EACCES, ...). */
/** A certificate the front could not get from the ACME directory (or is not allowed to ask for yet). */
export class AcmeError extends Data.TaggedError("AcmeError")<{
  readonly name: string
  readonly reason: string
}> {
  override get message() {
    return `no certificate for ${this.name}: ${this.reason}`
  }
}

/** The ACME state directory (`--state-dir`) could not be read or written. */
export class StateDirError extends Data.TaggedError("StateDirError")<{
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `state directory: ${this.path}: ${this.reason}`
  }
}

export class BindError extends Data.TaggedError("BindError")<{
  readonly host: string
  readonly port: number
  readonly code: string
}> {
  override get message() {
    return `could not listen on ${this.host}:${this.port}: ${this.code}`
  }
}

/** bore's Error text for each reason a server cannot give a client the port it asked for. */
const PORT_UNAVAILABLE_TEXTS = {
  "not-in-range": "client port number not in allowed range",
  "in-use": "port already in use",
  "permission-denied": "permission denied",
  "bind-failed": "failed to bind to port",
  "none-free": "failed to find an available port"
} as const

/** The server could not give a client the port it asked for; `message` is bore's Error text. */
export class PortUnavailable extends Data.TaggedError("PortUnavailable")<{
  readonly reason: keyof typeof PORT_UNAVAILABLE_TEXTS
}> {
  override get message() {
    return PORT_UNAVAILABLE_TEXTS[this.reason]
  }
}

/** bore's Error text for each reason a server turns a peer away at the challenge. */
const SECRET_REJECTED_TEXTS = {
  "invalid-secret": "invalid secret",
  "no-secret": "server requires secret, but no secret was provided"
} as const

/**
 * A server turned a peer away at the challenge: a wrong answer (`invalid-secret`), or no answer
 * at all before its first message (`no-secret`). `message` is bore's Error text.
 */
export class SecretRejected extends Data.TaggedError("SecretRejected")<{
  readonly reason: keyof typeof SECRET_REJECTED_TEXTS
}> {
  override get message() {
    return SECRET_REJECTED_TEXTS[this.reason]
  }
}

/**
 * Authentication failed. On a server, `message` is the Error text sent before closing; on a
 * client, it is the text bore's client prints.
 */
export class AuthenticationError extends Data.TaggedError("AuthenticationError")<{
  readonly message: string
}> {}

/**
 * Why a server refused a client, as its Error text says: a wrong secret (`invalid-secret`), none
 * where one is needed (`secret-required`), a port outside its range (`port-not-allowed`) or one it
 * may not bind (`permission-denied`), a port taken (`port-in-use`) or none to be had
 * (`port-unavailable`), a lease it no longer holds (`no-tunnel-to-resume`), one of its limits
 * (`limit`), plaintext on a server started with `--require-tls` (`tls-required`); `refused` for
 * any other text.
 */
export type ServerRejectedReason =
  | "invalid-secret"
  | "secret-required"
  | "port-not-allowed"
  | "permission-denied"
  | "port-in-use"
  | "port-unavailable"
  | "no-tunnel-to-resume"
  | "limit"
  | "tls-required"
  | "refused"

const TLS_REQUIRED_TEXT = "this server accepts TLS connections only"

/** What a server started with `--require-tls` tells a plaintext peer, naming its TLS port. */
export const tlsRequiredText = (tlsPort: number) => `${TLS_REQUIRED_TEXT}: connect with --tls to port ${tlsPort}`

/** The reason a server's Error text names: its texts are bore's, and Spore's for what bore lacks. */
const serverRejectedReason = (text: string): ServerRejectedReason => {
  if (text.startsWith(TLS_REQUIRED_TEXT)) return "tls-required"
  switch (text) {
    case SECRET_REJECTED_TEXTS["invalid-secret"]:
      return "invalid-secret"
    case SECRET_REJECTED_TEXTS["no-secret"]:
      return "secret-required"
    case PORT_UNAVAILABLE_TEXTS["not-in-range"]:
      return "port-not-allowed"
    case PORT_UNAVAILABLE_TEXTS["permission-denied"]:
      return "permission-denied"
    case PORT_UNAVAILABLE_TEXTS["in-use"]:
      return "port-in-use"
    case PORT_UNAVAILABLE_TEXTS["bind-failed"]:
    case PORT_UNAVAILABLE_TEXTS["none-free"]:
      return "port-unavailable"
    // A Spore server's answer to a Resume it cannot honour (server/connection.ts NO_TUNNEL_TO_RESUME).
    case "no tunnel to resume":
      return "no-tunnel-to-resume"
  }
  return (Object.values(LimitTexts) as ReadonlyArray<string>).includes(text) ? "limit" : "refused"
}

/**
 * The server answered the handshake with an Error frame: `reason` is what its text says (see
 * `ServerRejected.fromServerMessage`), `serverMessage` the text itself, for display.
 */
export class ServerRejected extends Data.TaggedError("ServerRejected")<{
  readonly reason: ServerRejectedReason
  readonly serverMessage: string
}> {
  /** The refusal an Error frame's text makes. */
  static fromServerMessage(serverMessage: string) {
    return new ServerRejected({ reason: serverRejectedReason(serverMessage), serverMessage })
  }

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

/** `spore http`: the server ended the tunnel because its ttl ran out (control closed with 1000). */
export class TunnelExpired extends Data.TaggedError("TunnelExpired")<{
  readonly reason: string
}> {
  override get message() {
    return `the server ended the tunnel: its ttl ran out${this.reason === "" ? "" : ` (${this.reason})`}`
  }
}

/**
 * `spore kafka-proxy`: a response named broker `nodeId`, whose tunnel did not open in time (10 s);
 * the connection that carried the response is closed.
 */
export class BrokerTunnelTimeout extends Data.TaggedError("BrokerTunnelTimeout")<{
  readonly nodeId: number
}> {
  override get message() {
    return "the broker's tunnel did not open in time"
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
 * The Error texts peers are sent when a limit turns them away (bore has none; these are Spore's).
 * `handshakes` is no longer sent (a full handshake pool closes silently), but older Spore servers
 * send it before their Challenge, and clients retry it like the others.
 */
export const LimitTexts = {
  handshakes: "server is busy, try again later",
  connsPerIp: "too many connections from your address",
  tunnels: "server has too many tunnels, try again later",
  authLockout: "too many authentication failures, try again later"
} as const

/** The text each limit that refuses a peer with an Error frame sends. */
const LIMIT_REACHED_TEXTS = {
  "max-tunnels": LimitTexts.tunnels,
  "max-conns-per-ip": LimitTexts.connsPerIp,
  "auth-lockout": LimitTexts.authLockout
} as const

/**
 * A server limit turned a peer away: `limit` names the flag (or the lockout), `message` is the
 * Error text a peer that speaks the protocol is sent.
 */
export class LimitReached extends Data.TaggedError("LimitReached")<{
  readonly limit: keyof typeof LIMIT_REACHED_TEXTS
}> {
  override get message() {
    return LIMIT_REACHED_TEXTS[this.limit]
  }
}

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

/** The page the front answers a visitor with when its tunnel cannot take it: status and title. */
const VISITOR_REFUSALS = {
  offline: [502, "Tunnel offline"],
  busy: [503, "Tunnel busy"],
  timeout: [504, "Tunnel timeout"],
  "lost-client": [502, "Tunnel offline"]
} as const

/**
 * A visitor's tunnel cannot take it: no client connected (`offline`), too many visitors
 * (`busy`), no data channel in time (`timeout`), or the client went while it waited
 * (`lost-client`). The page's status, title and text derive from the reason.
 */
export class VisitorRefused extends Data.TaggedError("VisitorRefused")<{
  readonly reason: keyof typeof VISITOR_REFUSALS
  readonly tunnel: string
}> {
  get status(): number {
    return VISITOR_REFUSALS[this.reason][0]
  }

  get title(): string {
    return VISITOR_REFUSALS[this.reason][1]
  }

  override get message(): string {
    switch (this.reason) {
      case "offline":
        return `The tunnel ${this.tunnel} has no client connected right now.`
      case "busy":
        return `The tunnel ${this.tunnel} has too many visitors right now.`
      case "timeout":
        return `The tunnel ${this.tunnel} did not answer in time.`
      case "lost-client":
        return `The tunnel ${this.tunnel} lost its client.`
    }
  }
}

/** The HTTP status the front's API answers each refusal with. */
const API_REFUSAL_STATUS = {
  "bad-body": 400,
  "body-too-large": 413,
  "key-required": 401,
  "invalid-key": 401,
  "locked-out": 429,
  "rate-limited": 429,
  "no-such-endpoint": 404,
  "no-such-tunnel": 404,
  "no-such-visitor": 404,
  "no-such-request": 404,
  "not-replayable": 409,
  "invalid-name": 400,
  "name-taken": 409,
  "max-tunnels": 429,
  "closed-in-handshake": 400,
  "cluster-unavailable": 503
} as const

/**
 * The HTTP front's API (or a WebSocket endpoint) refused a request. `status` and the JSON error
 * text derive from `reason` and its fields: `detail` (what was wrong with the body, the endpoint
 * asked for, the name), `limit` (a size or a count), `retryAfterSeconds` (when a 429 may be
 * retried, sent as Retry-After).
 */
export class ApiRefusal extends Data.TaggedError("ApiRefusal")<{
  readonly reason: keyof typeof API_REFUSAL_STATUS
  readonly detail?: string
  readonly limit?: number
  readonly retryAfterSeconds?: number
}> {
  get status(): number {
    return API_REFUSAL_STATUS[this.reason]
  }

  override get message(): string {
    switch (this.reason) {
      case "bad-body":
        return this.detail ?? "bad request body"
      case "body-too-large":
        return `the body is over ${this.limit} bytes`
      case "key-required":
        return "an API key is required (Authorization: Bearer KEY)"
      case "invalid-key":
        return "invalid API key"
      case "locked-out":
        return LimitTexts.authLockout
      case "rate-limited":
        return `rate limited: retry in ${this.retryAfterSeconds} s`
      case "no-such-endpoint":
        return `no such endpoint: ${this.detail}`
      case "no-such-tunnel":
        return "no such tunnel"
      case "no-such-visitor":
        return "connection not found or expired"
      case "no-such-request":
        return "no such request in the tunnel's log (it keeps the last 100)"
      case "not-replayable":
        return "this request cannot be replayed: its body was over 1 KiB, cut, or it was an upgrade"
      case "invalid-name":
        return `invalid name: ${this.detail}`
      case "name-taken":
        return `the name ${this.detail} is taken`
      case "max-tunnels":
        return `the server has reached its limit of ${this.limit} http tunnels`
      case "closed-in-handshake":
        return "closed during the WebSocket handshake"
      case "cluster-unavailable":
        return `new tunnels cannot be created now: ${this.detail}; tunnels already online keep serving`
    }
  }
}

// Cluster

/**
 * The cluster's store (Redis, `spore server --cluster`) did not answer: names cannot be claimed,
 * renewed or looked up until it is back. Tunnels already served by this node keep serving.
 */
export class ClusterUnavailable extends Data.TaggedError("ClusterUnavailable")<{
  readonly reason: string
}> {
  override get message(): string {
    return `the cluster's Redis is unreachable (${this.reason})`
  }
}

// Kafka

/**
 * A Kafka message read from a peer did not fit its layout: it ends early (`truncated`: a read
 * `needed` bytes with only `left` left), a varint runs past 32 bits, a length or count is
 * negative but not the -1 of null (`field` says which kind, `length` what it was), a broker's
 * Host is null (`nodeId`), or ApiVersions' non-nullable ApiKeys array is null. `offset` is
 * where in the message the read that failed started.
 */
export class KafkaCodecError extends Data.TaggedError("KafkaCodecError")<{
  readonly reason: "truncated" | "varint-too-long" | "negative-length" | "null-host" | "null-api-keys"
  readonly offset: number
  readonly needed?: number
  readonly left?: number
  readonly field?: "string" | "bytes" | "array"
  readonly length?: number
  readonly nodeId?: number
}> {
  override get message() {
    switch (this.reason) {
      case "truncated":
        return `Kafka message ends early: ${this.needed} bytes needed at offset ${this.offset}, ${this.left} left`
      case "varint-too-long":
        return `Kafka message is malformed at offset ${this.offset}: varint longer than 32 bits`
      case "negative-length":
        return `Kafka message is malformed at offset ${this.offset}: ${this.field} length ${this.length}`
      case "null-host":
        return `broker ${this.nodeId} has a null host`
      case "null-api-keys":
        return "ApiVersions has a null ApiKeys array"
    }
  }
}

/**
 * Why the Kafka relay closed a connection: a frame's size is below its header's (`size`), a
 * response to be rewritten is over the collecting limit (`size`), or a response answers a
 * version above the cap of its API (`apiKey`, `apiVersion`, `cap`), whose layout might name
 * brokers where the proxy would not see them.
 */
export class KafkaRelayError extends Data.TaggedError("KafkaRelayError")<{
  readonly reason: "short-frame" | "response-too-large" | "version-unsupported"
  readonly size?: number
  readonly apiKey?: number
  readonly apiVersion?: number
  readonly cap?: number
}> {
  override get message() {
    switch (this.reason) {
      case "short-frame":
        return `a Kafka frame of ${this.size} bytes is too short`
      case "response-too-large":
        return `a ${this.size}-byte response is too large to rewrite`
      case "version-unsupported":
        return `api ${this.apiKey} v${this.apiVersion} is above what the proxy rewrites (v${this.cap})`
    }
  }
}
