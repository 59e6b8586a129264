/**
 * `spore http LOCAL_PORT --to https://host --token KEY [--name NAME]`: a named HTTP tunnel over
 * the server's HTTP front (WebSockets, so it passes where port 7835 is closed).
 */
import { Args, Command, Options } from "@effect/cli"
import { Config, Console, Duration, Effect, Either, Option, Redacted } from "effect"
import { isHostValue } from "../front/create-request.js"
import { parseGoDuration } from "../protocol/go-duration.js"
import { formatHostPort } from "../net/address.js"
import * as Drain from "../net/drain.js"
import * as HttpClient from "../client/http-client.js"
import type { HttpClientStatus } from "../client/status.js"
import { makeClientTls } from "../net/tls.js"
import * as Logging from "./logger.js"
import { checkPort, checkSeconds, metricsAddrOption, optionalTextOption, textOption, UsageError } from "./options.js"
import { reconnectLine, serveClientMetrics, tunnelOptions } from "./tunnel-flags.js"
import { ClientMetrics } from "../client/client-metrics.js"

/** What the command does, in `--help`. */
export const description = "Expose a local web app at a named URL through a server's HTTP front."

export const options = {
  localPort: Args.integer({ name: "LOCAL_PORT" }).pipe(Args.withDescription("Port of the local web app to expose.")),
  to: optionalTextOption("to", "The server's HTTP front as a URL, e.g. https://tunnel.example.com or http://host:8080 (required); several, comma-separated, for the nodes of a cluster, tried in turn.", {
    env: ["SPORE_HTTP_SERVER"],
    alias: "t"
  }),
  token: Options.redacted("token").pipe(
    Options.withDescription("An API key of the server (one line of its --api-keys file). Env: SPORE_TOKEN."),
    Options.withFallbackConfig(Config.redacted("SPORE_TOKEN")),
    Options.map((token) => Redacted.make(String(Redacted.value(token)))),
    Options.optional
  ),
  name: optionalTextOption("name", "The tunnel's name (its URL is http://NAME.DOMAIN). Default: one the server picks, kept across reconnects.", {
    env: ["SPORE_NAME"]
  }),
  ttl: optionalTextOption("ttl", "End the tunnel this long after it is created, a Go duration such as 30m or 1h30m; the client then exits. Default: no end.", {
    env: ["SPORE_TTL"]
  }),
  basicAuth: optionalTextOption("basic-auth", "USER:PASS visitors must give (HTTP basic auth), checked by the server; the app never sees it.", {
    env: ["SPORE_BASIC_AUTH"]
  }),
  hostHeader: optionalTextOption(
    "host-header",
    "The Host the app is sent: rewrite (LOCAL_HOST:LOCAL_PORT) or a VALUE, for dev servers that refuse a foreign Host. Default: the visitor's.",
    { env: ["SPORE_HOST_HEADER"] }
  ),
  tlsCa: optionalTextOption("tls-ca", "With an https:// --to: trust only this PEM CA file for the server's certificate. Default: the system's CAs.", {
    env: ["SPORE_TLS_CA"]
  }),
  tlsServername: optionalTextOption(
    "tls-servername",
    "With an https:// --to: the name to ask for (SNI) and to find in its certificate. Default: the URL's host.",
    { env: ["SPORE_TLS_SERVERNAME"] }
  ),
  localHost: textOption("local-host", "Host of the local web app.", { default: "localhost", alias: "l" }),
  metricsAddr: metricsAddrOption,
  // The same reconnection, shutdown and log flags as `spore local`.
  noReconnect: tunnelOptions.noReconnect,
  maxReconnectDelay: tunnelOptions.maxReconnectDelay,
  drainSeconds: tunnelOptions.drainSeconds,
  logFormat: tunnelOptions.logFormat
}

type Flags = Command.Command.ParseConfig<typeof options>

const checkServerUrl = (text: string) => {
  let url: URL | undefined
  try {
    url = new URL(text)
  } catch {
    url = undefined
  }
  return url !== undefined && (url.protocol === "http:" || url.protocol === "https:") && url.pathname === "/" && url.search === ""
    ? Effect.succeed(url)
    : Effect.fail(new UsageError({ message: `--to must be the server's URL, like https://tunnel.example.com or http://host:8080, not ${text}` }))
}

const checkTtl = (ttl: Option.Option<string>) =>
  Option.match(ttl, {
    onNone: () => Effect.succeedNone,
    onSome: (text) =>
      Either.match(parseGoDuration(text), {
        onLeft: (problem) => Effect.fail(new UsageError({ message: `--ttl: ${problem}` })),
        onRight: (ms) => ms === 0 ? Effect.succeedNone : Effect.succeedSome(text)
      })
  })

const checkBasicAuth = (credential: Option.Option<string>) =>
  Option.match(credential, {
    onNone: () => Effect.succeedNone,
    onSome: (text) => {
      const colon = text.indexOf(":")
      return colon < 1 || colon === text.length - 1
        ? Effect.fail(new UsageError({ message: "--basic-auth must be USER:PASS, both non-empty" }))
        : Effect.succeedSome({ user: text.slice(0, colon), password: text.slice(colon + 1) })
    }
  })

const checkHostHeader = (value: Option.Option<string>, localHost: string, localPort: number) =>
  Option.match(value, {
    onNone: () => Effect.succeedNone,
    onSome: (text) => {
      const host = text === "rewrite" ? formatHostPort(localHost, localPort) : text
      return isHostValue(host)
        ? Effect.succeedSome(host)
        : Effect.fail(new UsageError({ message: `--host-header must be rewrite or a host (with a port if any), not ${text}` }))
    }
  })

const toConfig = (flags: Flags): Effect.Effect<HttpClient.HttpClientConfig, UsageError> =>
  Effect.gen(function*() {
    if (Option.isNone(flags.to)) return yield* new UsageError({ message: "missing --to: the URL of the server's HTTP front" })
    if (Option.isNone(flags.token) || Redacted.value(flags.token.value).length === 0) {
      return yield* new UsageError({ message: "missing --token: an API key of the server" })
    }
    // Several servers, comma-separated: the nodes of a cluster, tried in turn.
    const servers = yield* Effect.forEach(flags.to.value.split(",").map((text) => text.trim()).filter((text) => text !== ""), checkServerUrl)
    const server = servers[0]
    if (server === undefined) return yield* new UsageError({ message: "missing --to: the URL of the server's HTTP front" })
    if (new Set(servers.map((url) => url.protocol)).size > 1) return yield* new UsageError({ message: "--to: give every server with the same scheme, all http:// or all https://" })
    if (server.protocol !== "https:" && (Option.isSome(flags.tlsCa) || Option.isSome(flags.tlsServername))) {
      return yield* new UsageError({ message: "--tls-ca and --tls-servername need an https:// --to" })
    }
    const localPort = yield* checkPort("local-port", flags.localPort, { allowZero: false })
    const tls = yield* makeClientTls({ caFile: flags.tlsCa, servername: flags.tlsServername, fingerprint: Option.none() }).pipe(
      Effect.mapError((error) => new UsageError({ message: error.message }))
    )
    return {
      server,
      servers,
      tls: { context: tls.context, servername: tls.servername },
      token: flags.token.value,
      name: flags.name,
      ttl: yield* checkTtl(flags.ttl),
      basicAuth: yield* checkBasicAuth(flags.basicAuth),
      hostHeader: yield* checkHostHeader(flags.hostHeader, flags.localHost, localPort),
      localHost: flags.localHost,
      localPort,
      reconnect: !flags.noReconnect,
      maxReconnectDelay: Duration.seconds(yield* checkSeconds("max-reconnect-delay", flags.maxReconnectDelay, { min: 1 })),
      drain: Duration.seconds(yield* checkSeconds("drain-seconds", flags.drainSeconds, { min: 0 }))
    }
  })

/** The tunnel's state in plain words, one line each time it changes. */
export const httpStatusLine = (status: HttpClientStatus) =>
  status._tag === "Online"
    ? `${status.again ? "reconnected: " : ""}${status.name} is online at ${status.url}`
    : reconnectLine(status)

export const httpCommand = Command.make("http", options, (flags) =>
  Logging.withLogFormat(flags.logFormat, (format) =>
    Effect.gen(function*() {
      const config = yield* toConfig(flags)
      const say = (line: string) => format === "json" ? Effect.logInfo(line) : Console.error(line)
      const metrics = yield* serveClientMetrics(flags.metricsAddr)
      return yield* HttpClient.run(config, (status) => say(httpStatusLine(status))).pipe(
        Effect.provideService(ClientMetrics, metrics),
        // The end --ttl asked for (or the server's own ttl): done, not failed, so exit 0.
        Effect.catchTag("TunnelExpired", (expired) => say(`${expired.message}; exiting`))
      )
    }).pipe(Effect.scoped, Effect.provide(Drain.layer)))).pipe(
    Command.withDescription(description)
  )
