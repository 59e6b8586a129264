import type { Duration, Option, Redacted } from "effect"
import type { ClientTls } from "../net/tls.js"
import type { SocketBuffers } from "../net/tuning.js"
import type { ProxyProtocolVersion } from "./proxy-header.js"

/** What `spore local` was asked to do. */
export interface ClientConfig {
  /** Host of the local service to expose. */
  readonly localHost: string
  /** Port of the local service to expose. */
  readonly localPort: number
  /** The server's host. */
  readonly to: string
  /** The public port to ask for; 0 lets the server choose. */
  readonly port: number
  /** When set, answer the server's challenge with it. */
  readonly secret: Option.Option<Redacted.Redacted<string>>
  /** The server's control port (bore's is fixed at 7835). */
  readonly controlPort: number
  /** Whether to reconnect after losing the server (else exit, unlike bore, with an error). */
  readonly reconnect: boolean
  /** The longest wait between two reconnection attempts. */
  readonly maxReconnectDelay: Duration.Duration
  /** SO_SNDBUF / SO_RCVBUF for every socket the client opens (control, data, local service). */
  readonly buffers: SocketBuffers
  /** On shutdown, how long forwarded connections may take to finish. */
  readonly drain: Duration.Duration
  /** Warm pool streams to keep open to a Spore server (0: none); bore servers are not asked. */
  readonly pool: number
  /** Send the local service a PROXY protocol header with each visitor's address. */
  readonly proxyProtocol: Option.Option<ProxyProtocolVersion>
  /** TLS to the server for every stream (control, data, pool): how to check it. None: plaintext. */
  readonly tls: Option.Option<ClientTls>
  /** Said with a visitor's drop when the local host's name does not resolve (the Kafka proxy's hint). */
  readonly unreachableHint?: string
}
