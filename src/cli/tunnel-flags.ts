/**
 * The flags every command that opens tunnels shares (`spore local`, `spore kafka-proxy`): where
 * the server is, how to reconnect, socket tuning, shutdown and logs; their validation; and the
 * status lines a tunnel prints.
 */
import { Options } from "@effect/cli"
import { Duration, Effect, Either, Option } from "effect"
import type { ClientStatus, ReconnectStatus } from "../client/status.js"
import type { ClientConfig } from "../client/config.js"
import { makeClientMetrics } from "../client/client-metrics.js"
import { DEFAULT_POOL_SIZE } from "../client/warm-pool.js"
import { serveAndAnnounceMetrics } from "../metrics/http.js"
import { makeClientTls, parseFingerprint } from "../net/tls.js"
import { MAX_POOL_STREAMS } from "../protocol/messages.js"
import {
  bufferOptions,
  checkBuffers,
  checkHostPort,
  checkCount,
  checkPort,
  checkSeconds,
  checkSecret,
  drainOption,
  integerOption,
  logFormatOption,
  optionalIntegerOption,
  optionalTextOption,
  secretOption,
  UsageError
} from "./options.js"

export const DEFAULT_CONTROL_PORT = 7835

/** The TLS control port's default: bore's plus one (see server/control-listener.ts for why two ports). */
export const DEFAULT_TLS_CONTROL_PORT = 7836

export const tunnelOptions = {
  to: optionalTextOption("to", "The server: HOST, or HOST:PORT to give its control port too (required).", { env: ["SPORE_SERVER", "BORE_SERVER"], alias: "t" }),
  secret: secretOption,
  // Its default is applied in checkTunnelFlags: `spore local --config` may give it in between.
  controlPort: optionalIntegerOption("control-port", "The server's control port.", {
    defaultText: String(DEFAULT_CONTROL_PORT),
    env: ["SPORE_CONTROL_PORT"]
  }),
  tls: Options.boolean("tls").pipe(
    Options.withDescription(`Connect to the server with TLS (a Spore server's --tls-port, by default ${DEFAULT_TLS_CONTROL_PORT}), checking its certificate against the system's CAs. Never falls back to plaintext.`)
  ),
  tlsCa: optionalTextOption("tls-ca", "Trust only this PEM CA file for the server's certificate (implies --tls).", { env: ["SPORE_TLS_CA"] }),
  tlsFingerprint: optionalTextOption(
    "tls-fingerprint",
    "Accept only the server certificate with this SHA-256 fingerprint, as the server logs it, e.g. for a self-signed one (implies --tls).",
    { env: ["SPORE_TLS_FINGERPRINT"] }
  ),
  tlsServername: optionalTextOption(
    "tls-servername",
    "The name to ask for (SNI) and to find in the server's certificate; default: --to when it is a name (implies --tls).",
    { env: ["SPORE_TLS_SERVERNAME"] }
  ),
  noReconnect: Options.boolean("no-reconnect").pipe(
    Options.withDescription("Exit (with code 1) when the server is lost, instead of reconnecting.")
  ),
  maxReconnectDelay: integerOption("max-reconnect-delay", "Longest wait in seconds between reconnection attempts.", {
    default: 64,
    env: ["SPORE_MAX_RECONNECT_DELAY"]
  }),
  pool: integerOption(
    "pool",
    `Data streams kept open and ready for visitors (0 to ${MAX_POOL_STREAMS}; 0 turns the warm pool off). Spore servers only; a bore server is never asked.`,
    { default: DEFAULT_POOL_SIZE, env: ["SPORE_POOL"] }
  ),
  drainSeconds: drainOption,
  logFormat: logFormatOption,
  ...bufferOptions
}

interface TunnelFlags {
  readonly to: Option.Option<string>
  readonly secret: ClientConfig["secret"]
  readonly controlPort: Option.Option<number>
  readonly tls: boolean
  readonly tlsCa: Option.Option<string>
  readonly tlsFingerprint: Option.Option<string>
  readonly tlsServername: Option.Option<string>
  readonly noReconnect: boolean
  readonly maxReconnectDelay: number
  readonly pool: number
  readonly drainSeconds: number
  readonly sndbuf: Option.Option<number>
  readonly recbuf: Option.Option<number>
}

/** What every tunnel of the command shares; `fallback` (a config file) fills what the flags leave out. */
export type SharedTunnelConfig = Omit<ClientConfig, "localHost" | "localPort" | "port" | "proxyProtocol">

export const checkTunnelFlags = (
  flags: TunnelFlags,
  fallback: { readonly to?: string | undefined; readonly controlPort?: number | undefined } = {}
): Effect.Effect<SharedTunnelConfig, UsageError> =>
  Effect.gen(function*() {
    const to = Option.orElse(flags.to, () => Option.fromNullable(fallback.to))
    if (Option.isNone(to)) return yield* new UsageError({ message: "missing --to: the address of the server" })
    const server = yield* splitServer(to.value)
    const tls = yield* checkClientTls(flags)
    const given = Option.orElse(flags.controlPort, () => Option.fromNullable(fallback.controlPort))
    if (server.port !== undefined && Option.isSome(given) && given.value !== server.port) {
      return yield* new UsageError({
        message: `--to ${to.value} and --control-port ${given.value} name two control ports: give it once, in --to or in --control-port`
      })
    }
    const controlPort = server.port ?? Option.getOrElse(given, () => Option.isSome(tls) ? DEFAULT_TLS_CONTROL_PORT : DEFAULT_CONTROL_PORT)
    return {
      to: server.host,
      secret: yield* checkSecret(flags.secret),
      controlPort: yield* checkPort("control-port", controlPort, { allowZero: false }),
      tls,
      reconnect: !flags.noReconnect,
      maxReconnectDelay: Duration.seconds(yield* checkSeconds("max-reconnect-delay", flags.maxReconnectDelay, { min: 1 })),
      buffers: yield* checkBuffers(flags),
      pool: yield* checkCount("pool", flags.pool, { min: 0, max: MAX_POOL_STREAMS }),
      drain: Duration.seconds(yield* checkSeconds("drain-seconds", flags.drainSeconds, { min: 0 }))
    }
  })

/**
 * `--to` as a host and, when it says one, the control port: `host:7835` and `[2001:db8::1]:7835`
 * carry it, a bare IPv6 address (two colons or more) does not. A URL is refused with what to give.
 */
export const splitServer = (to: string): Effect.Effect<{ readonly host: string; readonly port: number | undefined }, UsageError> => {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(to)) {
    return Effect.fail(new UsageError({ message: `--to takes the server's host, with :PORT for its control port if need be, not a URL (${to}); spore http is the one that takes URLs` }))
  }
  const bracketed = /^\[([^\]]+)\](?::(\d*))?$/.exec(to)
  const plain = /^([^:]+):(\d*)$/.exec(to)
  const [host, port] = bracketed !== null ? [bracketed[1]!, bracketed[2]] : plain !== null ? [plain[1]!, plain[2]] : [to, undefined]
  if (port === undefined) return Effect.succeed({ host, port: undefined })
  const number = Number(port)
  return port === "" || !Number.isInteger(number) || number < 1 || number > 65535
    ? Effect.fail(new UsageError({ message: `--to ${to}: the control port after the colon must be 1-65535` }))
    : Effect.succeed({ host, port: number })
}

/** `--tls` and the flags that imply it: how the client will check the server, built once. */
const checkClientTls = (flags: TunnelFlags): Effect.Effect<ClientConfig["tls"], UsageError> =>
  Effect.gen(function*() {
    const wanted = flags.tls || Option.isSome(flags.tlsCa) || Option.isSome(flags.tlsFingerprint) || Option.isSome(flags.tlsServername)
    if (!wanted) return Option.none()
    const fingerprint = yield* Effect.transposeMapOption(flags.tlsFingerprint, (text) =>
      Either.match(parseFingerprint(text), {
        onLeft: (problem) => Effect.fail(new UsageError({ message: problem })),
        onRight: Effect.succeed
      }))
    const tls = yield* makeClientTls({ caFile: flags.tlsCa, servername: flags.tlsServername, fingerprint }).pipe(
      Effect.mapError((error) => new UsageError({ message: `--tls-ca: ${error.message}` }))
    )
    return Option.some(tls)
  })

/**
 * A lost connection and the way back, in plain words. A refused attempt's reason is the server's
 * own text: `could not reach the server: server is busy, try again later`.
 */
export const reconnectLine = (status: ReconnectStatus) => {
  switch (status._tag) {
    case "Lost":
      return `lost the connection to the server: ${status.reason}`
    case "AttemptFailed":
      return `could not reach the server: ${status.reason}`
    case "Retrying":
      return `reconnecting in ${(Duration.toMillis(status.delay) / 1000).toFixed(1)} s`
  }
}

/** A tunnel's state in plain words, one line each time it changes. */
export const statusLine = (status: ClientStatus) =>
  status._tag === "Listening"
    ? `${status.resumed ? "resumed: " : ""}listening at ${status.host}:${status.port}`
    : reconnectLine(status)

/**
 * A client's metrics, served with Node's process metrics at `--metrics-addr` when given, for the
 * rest of the scope (spore local, spore http, spore kafka-proxy).
 */
export const serveClientMetrics = (metricsAddr: Option.Option<string>) =>
  Effect.gen(function*() {
    const metrics = makeClientMetrics()
    if (Option.isSome(metricsAddr)) {
      const address = yield* checkHostPort("metrics-addr", metricsAddr.value)
      yield* serveAndAnnounceMetrics(address, metrics.registry)
    }
    return metrics
  })
