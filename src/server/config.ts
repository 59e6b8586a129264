import type { Duration, Option, Redacted } from "effect"
import type { SocketBuffers } from "../net/tuning.js"
import type { ServerLimits } from "../limits/limits.js"

/** What `spore server`'s TCP side was asked to do (the HTTP front's settings are its own). */
export interface ServerConfig {
  /** Lowest public port a client may be given. */
  readonly minPort: number
  /** Highest public port a client may be given. */
  readonly maxPort: number
  /** When set, every connection to the control port must answer a challenge. */
  readonly secret: Option.Option<Redacted.Redacted<string>>
  /** Address of the control listener. */
  readonly bindAddr: string
  /** Address of the public tunnel listeners. */
  readonly bindTunnels: string
  /** Port of the control listener (bore's is fixed at 7835). */
  readonly controlPort: number
  /** How long a Spore client's tunnel keeps its port after its control connection is lost. */
  readonly lease: Duration.Duration
  /** SO_SNDBUF / SO_RCVBUF for every socket the server opens or accepts. */
  readonly buffers: SocketBuffers
  /** What one peer, one tunnel and everyone together may use. */
  readonly limits: ServerLimits
  /** On shutdown, how long forwarded connections may take to finish. */
  readonly drain: Duration.Duration
  /** TLS for Spore clients on a port of its own beside the plaintext one, if the server has a certificate. */
  readonly tls: Option.Option<ServerTlsConfig>
  /** Where to serve Prometheus metrics, if anywhere. */
  readonly metricsAddr: Option.Option<{ readonly host: string; readonly port: number }>
}

/** `--tls-cert`, `--tls-key`, `--tls-port`, `--require-tls`. */
export interface ServerTlsConfig {
  /** PEM certificate, a chain allowed (leaf first). */
  readonly certFile: string
  /** PEM private key of the certificate. */
  readonly keyFile: string
  /** The TLS control port (0 picks a free one). */
  readonly port: number
  /** Whether the plaintext port refuses everyone (bore peers then cannot connect). */
  readonly require: boolean
}
